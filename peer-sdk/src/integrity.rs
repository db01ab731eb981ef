//! Segment integrity: SHA-256 digests, the sidecar hash list published with a stream, and the
//! names segments go by in the tracker's hash agreement.
//!
//! Sidecar format (`PROTOCOL.md`, "Hash list"): UTF-8 text, first line `#p2pvd-hashes 1`, then one
//! line per segment: `<sha256 as 64 lowercase hex> <size in bytes> <segment URI as in the playlist>`.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use thiserror::Error;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The first line of every hash list.
pub const HASH_LIST_HEADER: &str = "#p2pvd-hashes 1";

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// The trusted digest and size of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHash {
    /// SHA-256 of the whole segment.
    pub sha256: Digest,
    /// Size of the segment in bytes.
    pub size: u64,
}

/// Why a hash list could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HashListError {
    /// The first line is not [`HASH_LIST_HEADER`].
    #[error("not a hash list: the first line must be `{HASH_LIST_HEADER}`")]
    MissingHeader,
    /// A line is not `<hex> <size> <uri>`.
    #[error("line {0}: expected `<64 hex digits> <size> <uri>`")]
    BadLine(usize),
}

/// A parsed sidecar hash list: segment URI to its trusted digest and size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashList {
    entries: HashMap<String, SegmentHash>,
}

impl HashList {
    /// Parses the sidecar text.
    pub fn parse(text: &str) -> Result<HashList, HashListError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, first)) if first.trim_end() == HASH_LIST_HEADER => {}
            _ => return Err(HashListError::MissingHeader),
        }
        let mut entries = HashMap::new();
        for (index, line) in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || HashListError::BadLine(index + 1);
            let mut fields = line.splitn(3, ' ');
            let (Some(hex), Some(size), Some(uri)) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let sha256 = parse_hex_digest(hex).ok_or_else(bad)?;
            let size = size.parse().map_err(|_| bad())?;
            entries.insert(uri.to_owned(), SegmentHash { sha256, size });
        }
        Ok(HashList { entries })
    }

    /// Adds (or replaces) the entry for `uri`.
    pub fn insert(&mut self, uri: impl Into<String>, hash: SegmentHash) {
        self.entries.insert(uri.into(), hash);
    }

    /// The entry for the segment URI as written in the playlist.
    pub fn get(&self, uri: &str) -> Option<SegmentHash> {
        self.entries.get(uri).copied()
    }

    /// Writes the sidecar text, entries in the order of `uris`.
    pub fn render<'a>(&self, uris: impl IntoIterator<Item = &'a str>) -> String {
        let mut out = format!("{HASH_LIST_HEADER}\n");
        for uri in uris {
            if let Some(hash) = self.get(uri) {
                out.push_str(&format!("{} {} {uri}\n", to_hex(&hash.sha256), hash.size));
            }
        }
        out
    }
}

/// Longest segment name the tracker's hash agreement takes, in bytes (`tracker/PROTOCOL.md`).
pub const MAX_TRACKER_SEGMENT_NAME: usize = 256;

/// Most segments in one `hash_query` (the tracker's default `max-scrape-hashes`).
pub const MAX_HASH_QUERY_SEGMENTS: usize = 64;

/// A segment's name in the tracker's hash agreement (`hash_report`, `hash_query`): its URI as
/// the media playlist writes it, without its query string, so that viewers with different
/// tokens agree on one name. `None` when the tracker would refuse it (empty, or longer than
/// [`MAX_TRACKER_SEGMENT_NAME`]).
pub fn tracker_segment_name(uri: &str) -> Option<&str> {
    let name = crate::swarm_id::strip_query(uri);
    (!name.is_empty() && name.len() <= MAX_TRACKER_SEGMENT_NAME).then_some(name)
}

/// Lowercase hex of a digest.
pub fn to_hex(digest: &Digest) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    digest
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Reads a digest written as 64 hex digits (as [`to_hex`] writes it); `None` for anything else.
pub fn parse_hex_digest(hex: &str) -> Option<Digest> {
    // Checked up front: `from_str_radix` alone would also take a sign ("+f").
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_list_round_trips_and_rejects_garbage() {
        let mut list = HashList::default();
        let hash = SegmentHash {
            sha256: sha256(b"segment"),
            size: 7,
        };
        list.insert("seg 1.ts", hash);
        let text = list.render(["seg 1.ts"]);
        assert_eq!(HashList::parse(&text).unwrap().get("seg 1.ts"), Some(hash));
        assert_eq!(HashList::parse("x"), Err(HashListError::MissingHeader));
        let bad = format!("{HASH_LIST_HEADER}\nzz 7 a.ts\n");
        assert_eq!(HashList::parse(&bad), Err(HashListError::BadLine(2)));
    }

    #[test]
    fn tracker_names_drop_the_query_and_respect_the_trackers_limit() {
        assert_eq!(tracker_segment_name("seg-1.ts?token=a"), Some("seg-1.ts"));
        assert_eq!(tracker_segment_name("hi/seg-1.ts"), Some("hi/seg-1.ts"));
        assert_eq!(tracker_segment_name("?seq=1"), None);
        let long = "x".repeat(MAX_TRACKER_SEGMENT_NAME + 1);
        assert_eq!(tracker_segment_name(&long), None);
    }

    #[test]
    fn hex_digests_round_trip_and_nothing_else_parses() {
        let digest = sha256(b"segment");
        assert_eq!(parse_hex_digest(&to_hex(&digest)), Some(digest));
        assert_eq!(
            parse_hex_digest(&to_hex(&digest).to_uppercase()),
            Some(digest)
        );
        assert_eq!(parse_hex_digest(&"+f".repeat(32)), None);
        assert_eq!(parse_hex_digest(&"0".repeat(63)), None);
        assert_eq!(parse_hex_digest(&"é".repeat(32)), None);
    }
}
