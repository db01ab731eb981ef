//! The names recently listed segments go by in the tracker's hash agreement (`hash_report`,
//! `hash_query` in `tracker/PROTOCOL.md`; see [`tracker_segment_name`]).

use std::collections::BTreeMap;

use peer_sdk::SegmentKey;
use peer_sdk::integrity::tracker_segment_name;

/// Segments remembered per rendition behind the newest one. Hashes are agreed on for live
/// segments, which the core keeps only a few segments behind the live edge.
const REMEMBERED: u64 = 64;

/// The tracker name of each recently listed segment.
#[derive(Debug, Default)]
pub struct SegmentNames {
    names: BTreeMap<SegmentKey, String>,
}

impl SegmentNames {
    /// Remembers the segment listed as `uri` (unless the tracker would refuse its name), and
    /// forgets the segments of its rendition more than [`REMEMBERED`] behind the newest one.
    pub fn insert(&mut self, key: SegmentKey, uri: &str) {
        let Some(name) = tracker_segment_name(uri) else {
            return;
        };
        self.names.insert(key, name.to_owned());
        let newest = self
            .names
            .range(key..=last_of(key.rendition))
            .next_back()
            .map_or(key.seq, |(k, _)| k.seq);
        let oldest = SegmentKey {
            rendition: key.rendition,
            seq: newest.saturating_sub(REMEMBERED),
        };
        self.names
            .retain(|k, _| k.rendition != key.rendition || *k >= oldest);
    }

    /// The tracker name of a segment.
    pub fn get(&self, key: SegmentKey) -> Option<&str> {
        self.names.get(&key).map(String::as_str)
    }

    /// The remembered segments of `rendition` named `name` (a looping stream may list one file
    /// under several sequence numbers; they have the same bytes).
    pub fn keys_named<'a>(
        &'a self,
        rendition: u16,
        name: &'a str,
    ) -> impl Iterator<Item = SegmentKey> + 'a {
        let first = SegmentKey { rendition, seq: 0 };
        self.names
            .range(first..=last_of(rendition))
            .filter(move |(_, n)| n.as_str() == name)
            .map(|(key, _)| *key)
    }
}

fn last_of(rendition: u16) -> SegmentKey {
    SegmentKey {
        rendition,
        seq: u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rendition: u16, seq: u64) -> SegmentKey {
        SegmentKey { rendition, seq }
    }

    #[test]
    fn names_drop_the_query_and_old_segments_are_forgotten() {
        let mut names = SegmentNames::default();
        names.insert(key(0, 1), "seg-1.ts?token=abc");
        names.insert(key(1, 1), "hi/seg-1.ts");
        assert_eq!(names.get(key(0, 1)), Some("seg-1.ts"));
        assert_eq!(
            names.keys_named(0, "seg-1.ts").collect::<Vec<_>>(),
            [key(0, 1)]
        );
        assert_eq!(names.keys_named(1, "seg-1.ts").count(), 0);
        names.insert(key(0, 1 + REMEMBERED + 1), "seg-1.ts?seq=66");
        assert_eq!(names.get(key(0, 1)), None, "too far behind the newest");
        assert_eq!(
            names.get(key(1, 1)),
            Some("hi/seg-1.ts"),
            "other renditions stay"
        );
        assert_eq!(
            names.keys_named(0, "seg-1.ts").collect::<Vec<_>>(),
            [key(0, 1 + REMEMBERED + 1)]
        );
    }
}
