//! Just enough of HLS to follow a stream: the variants of a master playlist (to name their
//! swarms) and the segments of a media playlist. The player parses playlists for playback; this
//! reader only sees the same text as it passes through the loader.

/// One variant stream of a master playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The media playlist URI as written (relative to the master playlist).
    pub uri: String,
    /// `BANDWIDTH`, bits per second.
    pub bandwidth: Option<u64>,
    /// `CODECS`, without quotes.
    pub codecs: Option<String>,
    /// `RESOLUTION`, e.g. `640x360`.
    pub resolution: Option<String>,
}

/// One segment of a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub seq: u64,
    /// The URI as written (relative to the media playlist).
    pub uri: String,
    /// Duration from `#EXTINF`, seconds.
    pub duration: f64,
}

/// A parsed playlist.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// A master playlist's variants, lowest `BANDWIDTH` first (as the native runtime numbers them).
    Master(Vec<Variant>),
    /// A media playlist.
    Media {
        /// Whether more segments will be appended (no `#EXT-X-ENDLIST`).
        live: bool,
        /// The segments, in order.
        segments: Vec<Segment>,
    },
}

/// Reads playlist text; `None` when it is not an HLS playlist (no `#EXTM3U` first line).
pub fn parse(text: &str) -> Option<Playlist> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next()? != "#EXTM3U" {
        return None;
    }
    let mut variants = Vec::new();
    let mut segments = Vec::new();
    let mut pending_variant: Option<Variant> = None;
    let mut pending_duration: Option<f64> = None;
    let mut seq = 0u64;
    let mut live = true;
    for line in lines {
        if let Some(attributes) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            let attribute = |name| attribute(attributes, name);
            pending_variant = Some(Variant {
                uri: String::new(),
                bandwidth: attribute("BANDWIDTH").and_then(|b| b.parse().ok()),
                codecs: attribute("CODECS").map(str::to_owned),
                resolution: attribute("RESOLUTION").map(str::to_owned),
            });
        } else if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = value.trim().parse().unwrap_or(0);
        } else if let Some(value) = line.strip_prefix("#EXTINF:") {
            let number = value.split(',').next().unwrap_or_default().trim();
            pending_duration = Some(decimal(number));
        } else if line == "#EXT-X-ENDLIST" {
            live = false;
        } else if !line.starts_with('#') {
            if let Some(mut variant) = pending_variant.take() {
                variant.uri = line.to_owned();
                variants.push(variant);
            } else if let Some(duration) = pending_duration.take() {
                segments.push(Segment {
                    seq,
                    uri: line.to_owned(),
                    duration: duration.max(0.0),
                });
                seq += 1;
            }
        }
    }
    if variants.is_empty() {
        Some(Playlist::Media { live, segments })
    } else {
        variants.sort_by_key(|v| v.bandwidth);
        Some(Playlist::Master(variants))
    }
}

/// A non-negative decimal number (`2`, `2.000`, `1.5`); 0 for anything else. (Hand-written:
/// the standard float parser costs kilobytes of WebAssembly.)
fn decimal(text: &str) -> f64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return 0.0;
    }
    let mut value = 0.0;
    for b in whole.bytes() {
        value = value * 10.0 + f64::from(b - b'0');
    }
    let mut scale = 0.1;
    for b in fraction.bytes() {
        value += f64::from(b - b'0') * scale;
        scale /= 10.0;
    }
    value
}

/// The value of `name` in an attribute list (`A=1,B="x,y"`), quotes removed.
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                let tail = &quoted[end + 1..];
                (&quoted[..end], tail.strip_prefix(',').unwrap_or(tail))
            }
            None => match after.split_once(',') {
                Some((value, next)) => (value, next),
                None => (after, ""),
            },
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_variants_are_sorted_with_quoted_attributes() {
        let text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=854x480,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
            480p/index.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8\"\n\
            #EXT-X-STREAM-INF:CODECS=\"avc1.64001e,mp4a.40.2\",BANDWIDTH=100000\n\
            240p/index.m3u8?token=a\n";
        let Some(Playlist::Master(variants)) = parse(text) else {
            panic!("not read as a master playlist");
        };
        assert_eq!(variants.len(), 2);
        assert_eq!(variants[0].uri, "240p/index.m3u8?token=a");
        assert_eq!(variants[0].bandwidth, Some(100_000));
        assert_eq!(variants[0].resolution, None);
        assert_eq!(variants[1].codecs.as_deref(), Some("avc1.64001e,mp4a.40.2"));
        assert_eq!(variants[1].resolution.as_deref(), Some("854x480"));
    }

    #[test]
    fn media_segments_count_from_the_media_sequence() {
        let text = "#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-MEDIA-SEQUENCE:65\r\n\
            #EXTINF:2.000,\r\nsegment_005.ts?seq=65\r\n#EXT-X-DISCONTINUITY\r\n\
            #EXTINF:1.5,title\r\nsegment_000.ts?seq=66\r\n";
        let Some(Playlist::Media { live, segments }) = parse(text) else {
            panic!("not read as a media playlist");
        };
        assert!(live);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].seq, 65);
        assert_eq!(segments[1].seq, 66);
        assert_eq!(segments[1].uri, "segment_000.ts?seq=66");
        assert_eq!(segments[1].duration, 1.5);
        assert_eq!(segments[0].duration, 2.0);
        assert_eq!(decimal("x"), 0.0);
        assert_eq!(decimal("-1"), 0.0);
        let vod = "#EXTM3U\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(
            parse(vod),
            Some(Playlist::Media { live: false, .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_playlist_and_never_panics() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("<html>"), None);
        let odd = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=\"unterminated\n#EXTINF:x,\nseg.ts\n";
        assert!(parse(odd).is_some());
    }
}
