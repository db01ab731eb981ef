//! HLS playlists (`m3u8-rs`): the renditions of a stream with their swarm ids, the segments of a
//! media playlist, and the refresh of a live playlist.

use std::time::Duration;

use peer_sdk::integrity::{HashList, SegmentHash};
use peer_sdk::swarm_id;
use reqwest::StatusCode;
use url::Url;

use crate::cdn::{CdnClient, CdnError};
use crate::id20::Id20;

/// Errors while loading or reading playlists.
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    /// The playlist could not be fetched.
    #[error("fetching {url}: {source}")]
    Fetch {
        /// The playlist's URL.
        url: Url,
        /// Why.
        source: CdnError,
    },
    /// The text is not an HLS playlist.
    #[error("{url} is not a valid HLS playlist: {problem}")]
    Parse {
        /// The playlist's URL.
        url: Url,
        /// What the parser said.
        problem: String,
    },
    /// A URI in the playlist does not resolve against the playlist's URL.
    #[error("bad URI {uri:?} in {url}")]
    BadUri {
        /// The playlist's URL.
        url: Url,
        /// The URI as written.
        uri: String,
    },
    /// The playlist publishes no hash list (404); it is not asked for again.
    #[error("{0} does not exist: the playlist publishes no hash list")]
    NoHashList(Url),
    /// A master playlist was expected to list at least one variant.
    #[error("{0} lists no variant streams")]
    NoVariants(Url),
    /// A media playlist was expected where a master playlist was found, or the reverse.
    #[error("{0} is a master playlist, not a media playlist")]
    NotMedia(Url),
}

/// One rendition (variant stream) and the swarm its viewers share.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// Index in the stream's list of renditions, as the driver numbers them for the core.
    pub index: u16,
    /// Media playlist URL.
    pub url: Url,
    /// Peak bit rate (`BANDWIDTH`), bits per second.
    pub bandwidth: Option<u64>,
    /// The swarm id (see `tracker/PROTOCOL.md`).
    pub info_hash: Id20,
}

/// The renditions of a stream, lowest bit rate first.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The URL the stream was loaded from.
    pub url: Url,
    /// The renditions.
    pub renditions: Vec<Rendition>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub seq: u64,
    /// The URI exactly as the playlist writes it (the key of the hash list).
    pub uri: String,
    /// Absolute URL.
    pub url: Url,
    /// Playback duration.
    pub duration: Duration,
    /// Trusted SHA-256 and size from the playlist's hash list, when it publishes one.
    pub hash: Option<SegmentHash>,
}

/// The contents of one media playlist load.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`.
    pub target_duration: Duration,
    /// Whether more segments will come (no `EXT-X-ENDLIST`).
    pub live: bool,
    /// The segments listed, in order.
    pub segments: Vec<Segment>,
}

/// Loads a stream: a master playlist gives its variants; a media playlist alone is a stream of
/// one rendition. `stream_id` overrides the URL-derived stream id (tokenised or multi-CDN URLs).
pub async fn load_stream(
    cdn: &CdnClient,
    url: &Url,
    stream_id: Option<&str>,
) -> Result<Stream, HlsError> {
    let body = fetch(cdn, url).await?;
    parse_stream(url, &body, stream_id)
}

/// Reads a master (or single media) playlist into a [`Stream`].
pub fn parse_stream(url: &Url, body: &[u8], stream_id: Option<&str>) -> Result<Stream, HlsError> {
    let stream_id = stream_id.unwrap_or_else(|| swarm_id::strip_query(url.as_str()));
    let playlist = parse(url, body)?;
    let m3u8_rs::Playlist::MasterPlaylist(master) = playlist else {
        let key = swarm_id::strip_query(url.as_str());
        let rendition = Rendition {
            index: 0,
            url: url.clone(),
            bandwidth: None,
            info_hash: swarm_id::info_hash(stream_id, key),
        };
        return Ok(Stream {
            url: url.clone(),
            renditions: vec![rendition],
        });
    };
    let mut variants: Vec<_> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    variants.sort_by_key(|v| v.bandwidth);
    let mut renditions = Vec::with_capacity(variants.len());
    for (index, variant) in variants.into_iter().enumerate() {
        let resolution = variant
            .resolution
            .map(|r| format!("{}x{}", r.width, r.height));
        let key = swarm_id::rendition_key(
            Some(variant.bandwidth),
            variant.codecs.as_deref(),
            resolution.as_deref(),
        );
        renditions.push(Rendition {
            index: u16::try_from(index).unwrap_or(u16::MAX),
            url: resolve(url, &variant.uri)?,
            bandwidth: Some(variant.bandwidth),
            info_hash: swarm_id::info_hash(stream_id, &key),
        });
    }
    if renditions.is_empty() {
        return Err(HlsError::NoVariants(url.clone()));
    }
    Ok(Stream {
        url: url.clone(),
        renditions,
    })
}

/// Reads a media playlist.
pub fn parse_media(url: &Url, body: &[u8]) -> Result<MediaPlaylist, HlsError> {
    let m3u8_rs::Playlist::MediaPlaylist(media) = parse(url, body)? else {
        return Err(HlsError::NotMedia(url.clone()));
    };
    let mut segments = Vec::with_capacity(media.segments.len());
    for (offset, segment) in media.segments.iter().enumerate() {
        segments.push(Segment {
            seq: media.media_sequence + offset as u64,
            uri: segment.uri.clone(),
            url: resolve(url, &segment.uri)?,
            duration: Duration::from_secs_f32(segment.duration.max(0.0)),
            hash: None,
        });
    }
    Ok(MediaPlaylist {
        target_duration: Duration::from_secs(media.target_duration.max(1)),
        live: !media.end_list,
        segments,
    })
}

/// The URL of the sidecar hash list of the media playlist at `playlist`
/// ([`peer_sdk::stream::hash_list_url`] with the suffix `.hashes`).
pub fn hash_list_url(playlist: &Url) -> Url {
    let url = peer_sdk::stream::hash_list_url(playlist.as_str(), ".hashes");
    // The playlist's URL with a longer path and the same query: it parses.
    Url::parse(&url).unwrap_or_else(|_| playlist.clone())
}

/// Follows one media playlist: each [`LivePlaylist::refresh`] returns the segments not seen
/// before (by media sequence number), and [`LivePlaylist::next_refresh_in`] says when to
/// reload, as RFC 8216 §6.3.4 asks: after the target duration when the playlist changed, after
/// half of it when it did not. New segments carry their trusted hash when the playlist has a
/// sidecar hash list ([`hash_list_url`]) or the one given with
/// [`LivePlaylist::with_hash_list`] lists them; a list that is absent
/// (404) is not asked for again.
#[derive(Debug)]
pub struct LivePlaylist {
    url: Url,
    hash_list: Url,
    last_seq: Option<u64>,
    target_duration: Duration,
    changed: bool,
    live: bool,
    has_hash_list: bool,
}

impl LivePlaylist {
    /// Follows the media playlist at `url`; nothing is loaded yet.
    pub fn new(url: Url) -> Self {
        Self {
            hash_list: hash_list_url(&url),
            url,
            last_seq: None,
            target_duration: Duration::from_secs(2),
            changed: true,
            live: true,
            has_hash_list: true,
        }
    }

    /// Takes trusted hashes from the hash list at `url` instead of the playlist's sidecar. Its
    /// URIs are resolved against `url` and matched to the segments' URLs (with their query, or
    /// without), so one list at the stream's root can serve every rendition.
    pub fn with_hash_list(mut self, url: Url) -> Self {
        self.hash_list = url;
        self
    }

    /// Reloads the playlist (and its hash list); returns the new segments. If the sequence
    /// numbers went backwards (the stream restarted), every listed segment counts as new.
    /// A hash list that cannot be loaded leaves the segments without hashes (the core then
    /// asks the tracker, or takes them from the CDN).
    pub async fn refresh(&mut self, cdn: &CdnClient) -> Result<Vec<Segment>, HlsError> {
        let body = fetch(cdn, &self.url).await?;
        let playlist = parse_media(&self.url, &body)?;
        let mut fresh = self.apply(playlist);
        if self.has_hash_list && !fresh.is_empty() {
            // Fetched after the playlist: a live list then covers at least its newest segments.
            match self.hash_list(cdn).await {
                Ok(list) => {
                    for segment in &mut fresh {
                        segment.hash = self.trusted_hash(&list, segment);
                    }
                }
                Err(error) => tracing::debug!(%error, url = %self.url, "no hash list"),
            }
        }
        Ok(fresh)
    }

    /// A segment's entry in the hash list: in the playlist's own sidecar, the one naming its URI
    /// exactly as the playlist writes it; in any list, the one whose URI, resolved against the
    /// list's URL, is the segment's URL, with its query or without. So a list written for the
    /// files (e.g. by `segment-hashes`) also serves live URIs such as `segment_005.ts?seq=65`,
    /// and one list at the stream's root naming `240p/segment_000.ts` serves every rendition.
    fn trusted_hash(&self, list: &HashList, segment: &Segment) -> Option<SegmentHash> {
        let sidecar = self.hash_list == hash_list_url(&self.url);
        let mut bare = segment.url.clone();
        bare.set_query(None);
        sidecar
            .then(|| list.get(&segment.uri))
            .flatten()
            .or_else(|| list.get(&self.hash_list.make_relative(&segment.url)?))
            .or_else(|| list.get(&self.hash_list.make_relative(&bare)?))
    }

    async fn hash_list(&mut self, cdn: &CdnClient) -> Result<HashList, HlsError> {
        let url = self.hash_list.clone();
        let body = match cdn.get(url.as_str()).await {
            Ok(body) => body,
            Err(CdnError::Status(StatusCode::NOT_FOUND)) => {
                self.has_hash_list = false;
                return Err(HlsError::NoHashList(url));
            }
            Err(source) => return Err(HlsError::Fetch { url, source }),
        };
        let text = std::str::from_utf8(&body).map_err(|_| HlsError::Parse {
            url: url.clone(),
            problem: "hash list is not UTF-8".into(),
        })?;
        HashList::parse(text).map_err(|error| HlsError::Parse {
            url,
            problem: error.to_string(),
        })
    }

    /// Takes a loaded playlist into account; returns the segments not seen before.
    pub fn apply(&mut self, playlist: MediaPlaylist) -> Vec<Segment> {
        self.target_duration = playlist.target_duration;
        self.live = playlist.live;
        let newest = playlist.segments.last().map(|s| s.seq);
        let restarted = matches!((newest, self.last_seq), (Some(n), Some(l)) if n < l);
        let fresh: Vec<Segment> = playlist
            .segments
            .into_iter()
            .filter(|s| restarted || self.last_seq.is_none_or(|last| s.seq > last))
            .collect();
        self.changed = !fresh.is_empty();
        if let Some(last) = fresh.last() {
            self.last_seq = Some(last.seq);
        }
        fresh
    }

    /// Whether the playlist still grows (no `EXT-X-ENDLIST` seen).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The newest media sequence number seen.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// How long to wait before the next reload.
    pub fn next_refresh_in(&self) -> Duration {
        if self.changed {
            self.target_duration
        } else {
            self.target_duration / 2
        }
    }
}

async fn fetch(cdn: &CdnClient, url: &Url) -> Result<bytes::Bytes, HlsError> {
    cdn.get(url.as_str())
        .await
        .map_err(|source| HlsError::Fetch {
            url: url.clone(),
            source,
        })
}

fn parse(url: &Url, body: &[u8]) -> Result<m3u8_rs::Playlist, HlsError> {
    m3u8_rs::parse_playlist_res(body).map_err(|error| HlsError::Parse {
        url: url.clone(),
        problem: error.map_input(|_| ()).to_string(),
    })
}

fn resolve(base: &Url, uri: &str) -> Result<Url, HlsError> {
    base.join(uri).map_err(|_| HlsError::BadUri {
        url: base.clone(),
        uri: uri.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "#EXTM3U\n\
        #EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=854x480,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
        480p/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=426x240,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
        240p/index.m3u8\n";

    fn live(seq: u64, count: u64) -> MediaPlaylist {
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n"
        );
        for s in seq..seq + count {
            text.push_str(&format!("#EXTINF:2.000,\nsegment_{s:03}.ts\n"));
        }
        let url = Url::parse("http://127.0.0.1/240p/index.m3u8").unwrap();
        parse_media(&url, text.as_bytes()).unwrap()
    }

    #[test]
    fn renditions_are_sorted_by_bandwidth_and_named_by_their_attributes() {
        let url = Url::parse("http://cdn.test/live/master.m3u8?token=abc").unwrap();
        let stream = parse_stream(&url, MASTER.as_bytes(), None).unwrap();
        assert_eq!(stream.renditions.len(), 2);
        let low = &stream.renditions[0];
        assert_eq!(low.bandwidth, Some(100_000));
        assert_eq!(low.url.as_str(), "http://cdn.test/live/240p/index.m3u8");
        let key = "bw=100000;codecs=avc1.64001e,mp4a.40.2;res=426x240";
        let expected = swarm_id::info_hash("http://cdn.test/live/master.m3u8", key);
        assert_eq!(low.info_hash, expected);
        let other_token = Url::parse("http://cdn.test/live/master.m3u8?token=xyz").unwrap();
        let again = parse_stream(&other_token, MASTER.as_bytes(), None).unwrap();
        assert_eq!(
            again.renditions[0].info_hash, expected,
            "tokens do not split swarms"
        );
    }

    #[test]
    fn an_explicit_stream_id_replaces_the_url() {
        let url = Url::parse("http://cdn-a.test/master.m3u8").unwrap();
        let a = parse_stream(&url, MASTER.as_bytes(), Some("event-42")).unwrap();
        let url = Url::parse("http://cdn-b.test/other/master.m3u8").unwrap();
        let b = parse_stream(&url, MASTER.as_bytes(), Some("event-42")).unwrap();
        assert_eq!(a.renditions[1].info_hash, b.renditions[1].info_hash);
    }

    #[test]
    fn a_live_playlist_yields_each_segment_once() {
        let mut playlist =
            LivePlaylist::new(Url::parse("http://127.0.0.1/240p/index.m3u8").unwrap());
        let first: Vec<u64> = playlist.apply(live(10, 3)).iter().map(|s| s.seq).collect();
        assert_eq!(first, [10, 11, 12]);
        assert_eq!(playlist.next_refresh_in(), Duration::from_secs(2));
        let second: Vec<u64> = playlist.apply(live(11, 3)).iter().map(|s| s.seq).collect();
        assert_eq!(second, [13]);
        assert!(playlist.apply(live(11, 3)).is_empty());
        assert_eq!(
            playlist.next_refresh_in(),
            Duration::from_secs(1),
            "unchanged: half"
        );
        let restarted: Vec<u64> = playlist.apply(live(0, 2)).iter().map(|s| s.seq).collect();
        assert_eq!(restarted, [0, 1]);
    }

    #[test]
    fn hashes_are_found_by_uri_or_by_url_relative_to_the_list() {
        let digest = |b: u8| SegmentHash {
            sha256: [b; 32],
            size: u64::from(b),
        };
        let mut list = HashList::default();
        list.insert("segment_005.ts?seq=65", digest(1));
        list.insert("segment_006.ts", digest(2));
        list.insert("240p/segment_007.ts", digest(3));
        let url = Url::parse("http://127.0.0.1/240p/index.m3u8").unwrap();
        let segment = |uri: &str| Segment {
            seq: 0,
            uri: uri.to_owned(),
            url: url.join(uri).unwrap(),
            duration: Duration::from_secs(2),
            hash: None,
        };
        let sidecar = LivePlaylist::new(url.clone());
        assert_eq!(
            sidecar.hash_list.as_str(),
            "http://127.0.0.1/240p/index.m3u8.hashes"
        );
        assert_eq!(
            sidecar.trusted_hash(&list, &segment("segment_005.ts?seq=65")),
            Some(digest(1))
        );
        assert_eq!(
            sidecar.trusted_hash(&list, &segment("segment_006.ts?seq=66")),
            Some(digest(2)),
            "the file's entry serves its live URI"
        );
        assert_eq!(
            sidecar.trusted_hash(&list, &segment("segment_007.ts")),
            None
        );
        let root = LivePlaylist::new(url.clone())
            .with_hash_list(Url::parse("http://127.0.0.1/stream.hashes").unwrap());
        assert_eq!(
            root.trusted_hash(&list, &segment("segment_007.ts?seq=7")),
            Some(digest(3))
        );
        assert_eq!(
            root.trusted_hash(&list, &segment("segment_006.ts")),
            None,
            "names are relative to the list, not to the playlist"
        );
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let url = Url::parse("http://127.0.0.1/x.m3u8").unwrap();
        assert!(matches!(
            parse_media(&url, b"<html>not a playlist</html>"),
            Err(HlsError::Parse { .. })
        ));
        assert!(matches!(
            parse_media(&url, MASTER.as_bytes()),
            Err(HlsError::NotMedia(_))
        ));
    }
}
