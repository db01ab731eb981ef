//! The stream model: what a driver knows about the stream it plays, kept without I/O. Media
//! playlists go in as [`Listed`] segments; out come the core's [`SegmentInfo`]s with their media
//! start times, the tracker name of each recent segment (`hash_report` and `hash_query` in
//! `tracker/PROTOCOL.md`), and the trusted hashes of the renditions' hash lists, merged as lists
//! arrive. A hash list that does not exist (404) is remembered and not asked for again.
//!
//! Both runtimes drive one [`StreamModel`]: they fetch playlists and hash lists and feed what
//! they got; the model says when a hash list is worth fetching ([`StreamModel::wants_hash_list`]).

use std::time::Duration;

use crate::integrity::{HashList, SegmentHash, tracker_segment_name};
use crate::io::{SegmentInfo, SegmentKey};
use crate::swarm_id::strip_query;

/// Segments remembered per rendition behind the newest one. Hashes are agreed on for live
/// segments, which the core keeps only a few segments behind the live edge, and players do not
/// ask for older ones.
pub const REMEMBERED: u64 = 64;

/// One segment as a media playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Media sequence number.
    pub seq: u64,
    /// The URI exactly as the playlist writes it (the hash list's key, the tracker name's source).
    pub uri: String,
    /// The absolute URL the player fetches.
    pub url: String,
    /// Playback duration.
    pub duration: Duration,
    /// A trusted hash the driver already has for it (e.g. from a list it matched itself).
    pub hash: Option<SegmentHash>,
}

/// How a hash-list fetch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum HashListFetch {
    /// The list was loaded and parsed.
    Loaded(HashList),
    /// The list does not exist (HTTP 404): it is not asked for again.
    Missing,
    /// Any other failure: the list may be asked for again.
    Failed,
}

/// The hash list of the media playlist at `playlist`: the playlist's path plus `suffix`, keeping
/// the playlist's query, since tokens that authorize the playlist authorize its list
/// (`peer-sdk/PROTOCOL.md`, "Hash list").
pub fn hash_list_url(playlist: &str, suffix: &str) -> String {
    let (without_fragment, _) = playlist.split_once('#').unwrap_or((playlist, ""));
    match without_fragment.split_once('?') {
        Some((path, query)) => format!("{path}{suffix}?{query}"),
        None => format!("{without_fragment}{suffix}"),
    }
}

/// The state of one rendition.
#[derive(Debug, Default)]
struct Rendition {
    /// The newest segment listed so far: sequence number, start, duration.
    last: Option<(u64, Duration, Duration)>,
    /// The latest hash list loaded (a live stream's list follows its window).
    hashes: Option<HashList>,
    /// A hash-list fetch is running.
    hash_list_loading: bool,
    /// The hash list does not exist.
    hash_list_missing: bool,
}

/// A remembered segment.
#[derive(Debug)]
struct Known {
    key: SegmentKey,
    uri: String,
    url: String,
    start: Duration,
    duration: Duration,
    /// The core was given its trusted hash.
    trusted: bool,
}

/// Segments and hash lists of the renditions of one stream, numbered as the core knows them.
#[derive(Debug, Default)]
pub struct StreamModel {
    renditions: Vec<Rendition>,
    /// A few hundred at most ([`REMEMBERED`] per rendition): a list is small and quick enough.
    segments: Vec<Known>,
}

impl StreamModel {
    /// Takes a media playlist's listing of `rendition`; returns the segments not seen before
    /// for the core. Media time runs on from the previous segment of the rendition; a gap
    /// restarts it at `seq × duration`. Sequence numbers that went backwards (the stream
    /// restarted) make every listed segment new.
    pub fn list(&mut self, rendition: u16, listed: Vec<Listed>) -> Vec<SegmentInfo> {
        let state = rendition_in(&mut self.renditions, rendition);
        let newest = listed.iter().map(|s| s.seq).max();
        if let (Some(newest), Some((last, _, _))) = (newest, state.last)
            && newest < last
        {
            state.last = None;
        }
        let mut infos = Vec::new();
        for segment in listed {
            let start = match state.last {
                Some((seq, _, _)) if segment.seq <= seq => continue,
                Some((seq, start, last)) if seq + 1 == segment.seq => start + last,
                _ => segment.duration * u32::try_from(segment.seq).unwrap_or(u32::MAX),
            };
            state.last = Some((segment.seq, start, segment.duration));
            let key = SegmentKey {
                rendition,
                seq: segment.seq,
            };
            let hash = segment
                .hash
                .or_else(|| trusted(state.hashes.as_ref(), &segment.uri));
            infos.push(SegmentInfo {
                key,
                url: segment.url.clone(),
                start,
                duration: segment.duration,
                hash,
            });
            self.segments.retain(|k| k.key != key);
            let known = Known {
                key,
                uri: segment.uri,
                url: segment.url,
                start,
                duration: segment.duration,
                trusted: hash.is_some(),
            };
            self.segments.push(known);
        }
        self.forget_old(rendition);
        infos
    }

    /// Whether to fetch `rendition`'s hash list now: some segment lacks a trusted hash, no
    /// fetch is running and the list is not known to be missing. A `true` counts as the fetch
    /// starting; report its end with [`StreamModel::hash_list_fetched`].
    pub fn wants_hash_list(&mut self, rendition: u16) -> bool {
        let untrusted = self.of(rendition).any(|k| !k.trusted);
        let state = self.rendition_mut(rendition);
        let wanted = untrusted && !state.hash_list_loading && !state.hash_list_missing;
        state.hash_list_loading |= wanted;
        wanted
    }

    /// A hash-list fetch of `rendition` ended; returns the trusted hashes the core lacked.
    pub fn hash_list_fetched(
        &mut self,
        rendition: u16,
        fetch: HashListFetch,
    ) -> Vec<(SegmentKey, SegmentHash)> {
        let state = self.rendition_mut(rendition);
        state.hash_list_loading = false;
        let list = match fetch {
            HashListFetch::Loaded(list) => list,
            HashListFetch::Missing => {
                state.hash_list_missing = true;
                return Vec::new();
            }
            HashListFetch::Failed => return Vec::new(),
        };
        let mut learned = Vec::new();
        for known in &mut self.segments {
            if known.key.rendition == rendition
                && !known.trusted
                && let Some(hash) = trusted(Some(&list), &known.uri)
            {
                known.trusted = true;
                learned.push((known.key, hash));
            }
        }
        self.rendition_mut(rendition).hashes = Some(list);
        learned
    }

    /// The newest sequence number listed for `rendition`.
    pub fn newest(&self, rendition: u16) -> Option<u64> {
        let state = self.renditions.get(usize::from(rendition))?;
        state.last.map(|(seq, _, _)| seq)
    }

    /// The remembered segment the player fetches at `url`.
    pub fn segment_at(&self, url: &str) -> Option<SegmentKey> {
        self.segments.iter().find(|k| k.url == url).map(|k| k.key)
    }

    /// When a remembered segment ends, in the core's media time.
    pub fn segment_end(&self, key: SegmentKey) -> Option<Duration> {
        self.get(key).map(|k| k.start + k.duration)
    }

    /// A remembered segment's name in the tracker's hash agreement, if the tracker takes it.
    pub fn tracker_name(&self, key: SegmentKey) -> Option<&str> {
        tracker_segment_name(&self.get(key)?.uri)
    }

    /// The remembered segments of `rendition` the tracker names `name` (a looping stream may
    /// list one file under several sequence numbers; they have the same bytes).
    pub fn keys_named(&self, rendition: u16, name: &str) -> Vec<SegmentKey> {
        self.of(rendition)
            .filter(|k| tracker_segment_name(&k.uri) == Some(name))
            .map(|k| k.key)
            .collect()
    }

    fn get(&self, key: SegmentKey) -> Option<&Known> {
        self.segments.iter().find(|k| k.key == key)
    }

    /// The remembered segments of `rendition`, in listing order.
    fn of(&self, rendition: u16) -> impl Iterator<Item = &Known> {
        self.segments
            .iter()
            .filter(move |k| k.key.rendition == rendition)
    }

    fn rendition_mut(&mut self, rendition: u16) -> &mut Rendition {
        rendition_in(&mut self.renditions, rendition)
    }

    /// Forgets the segments of `rendition` more than [`REMEMBERED`] behind its newest one.
    fn forget_old(&mut self, rendition: u16) {
        let Some((newest, _, _)) = self.rendition_mut(rendition).last else {
            return;
        };
        let oldest = newest.saturating_sub(REMEMBERED);
        self.segments
            .retain(|k| k.key.rendition != rendition || k.key.seq >= oldest);
    }
}

/// A URI's entry in a hash list: as written, or without its query (a list written for the
/// files serves live URIs such as `segment_005.ts?seq=65`).
fn trusted(hashes: Option<&HashList>, uri: &str) -> Option<SegmentHash> {
    let hashes = hashes?;
    hashes.get(uri).or_else(|| hashes.get(strip_query(uri)))
}

/// The state of `rendition`, added when first seen.
fn rendition_in(renditions: &mut Vec<Rendition>, rendition: u16) -> &mut Rendition {
    let index = usize::from(rendition);
    if renditions.len() <= index {
        renditions.resize_with(index + 1, Rendition::default);
    }
    &mut renditions[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: Duration = Duration::from_secs(2);

    fn key(rendition: u16, seq: u64) -> SegmentKey {
        SegmentKey { rendition, seq }
    }

    fn listed(seqs: std::ops::Range<u64>) -> Vec<Listed> {
        seqs.map(|seq| Listed {
            seq,
            uri: format!("seg-{seq}.ts?seq={seq}"),
            url: format!("http://cdn.test/240p/seg-{seq}.ts?seq={seq}"),
            duration: TWO,
            hash: None,
        })
        .collect()
    }

    fn digest(b: u8) -> SegmentHash {
        SegmentHash {
            sha256: [b; 32],
            size: u64::from(b),
        }
    }

    fn seqs(infos: &[SegmentInfo]) -> Vec<u64> {
        infos.iter().map(|i| i.key.seq).collect()
    }

    #[test]
    fn each_segment_is_new_once_and_media_time_runs_on() {
        let mut model = StreamModel::default();
        let first = model.list(0, listed(10..13));
        assert_eq!(seqs(&first), [10, 11, 12]);
        assert_eq!(
            first[0].start,
            TWO * 10,
            "a first listing starts at seq × duration"
        );
        assert_eq!(first[2].start, TWO * 12);
        let second = model.list(0, listed(11..14));
        assert_eq!(seqs(&second), [13]);
        assert_eq!(second[0].start, TWO * 13);
        assert!(model.list(0, listed(11..14)).is_empty());
        assert_eq!(model.segment_end(key(0, 13)), Some(TWO * 14));
        assert_eq!(model.newest(0), Some(13));
        assert_eq!(model.newest(1), None);
        assert_eq!(
            model.segment_at("http://cdn.test/240p/seg-12.ts?seq=12"),
            Some(key(0, 12))
        );
    }

    #[test]
    fn a_restarted_stream_lists_new_segments() {
        let mut model = StreamModel::default();
        model.list(0, listed(10..13));
        let restarted = model.list(0, listed(0..2));
        assert_eq!(seqs(&restarted), [0, 1]);
        assert_eq!(restarted[0].start, Duration::ZERO);
    }

    #[test]
    fn tracker_names_drop_the_query_and_old_segments_are_forgotten() {
        let mut model = StreamModel::default();
        model.list(0, listed(1..2));
        model.list(1, listed(1..2));
        assert_eq!(model.tracker_name(key(0, 1)), Some("seg-1.ts"));
        assert_eq!(model.keys_named(0, "seg-1.ts"), [key(0, 1)]);
        model.list(0, listed(REMEMBERED + 2..REMEMBERED + 3));
        assert_eq!(model.tracker_name(key(0, 1)), None, "too far behind");
        assert_eq!(
            model.tracker_name(key(1, 1)),
            Some("seg-1.ts"),
            "other renditions stay"
        );
    }

    #[test]
    fn hash_lists_are_merged_and_a_missing_one_is_not_asked_again() {
        let mut model = StreamModel::default();
        model.list(0, listed(5..7));
        assert!(model.wants_hash_list(0));
        assert!(!model.wants_hash_list(0), "one fetch at a time");
        assert!(model.hash_list_fetched(0, HashListFetch::Failed).is_empty());
        assert!(model.wants_hash_list(0), "a failed fetch may be retried");
        let mut list = HashList::default();
        list.insert("seg-5.ts?seq=5", digest(5));
        list.insert("seg-6.ts", digest(6));
        list.insert("seg-7.ts", digest(7));
        let learned = model.hash_list_fetched(0, HashListFetch::Loaded(list));
        assert_eq!(learned, [(key(0, 5), digest(5)), (key(0, 6), digest(6))]);
        let next = model.list(0, listed(7..8));
        assert_eq!(
            next[0].hash,
            Some(digest(7)),
            "later segments use the loaded list"
        );
        assert!(!model.wants_hash_list(0), "every segment is trusted");
        model.list(0, listed(8..9));
        assert!(model.wants_hash_list(0));
        model.hash_list_fetched(0, HashListFetch::Missing);
        model.list(0, listed(9..10));
        assert!(!model.wants_hash_list(0), "a 404 is remembered");
    }

    #[test]
    fn the_hash_list_url_keeps_the_playlist_query() {
        assert_eq!(
            hash_list_url("http://cdn.test/a/index.m3u8?token=x", ".hashes"),
            "http://cdn.test/a/index.m3u8.hashes?token=x"
        );
        assert_eq!(
            hash_list_url("http://cdn.test/a/index.m3u8", ".hashes"),
            "http://cdn.test/a/index.m3u8.hashes"
        );
    }
}
