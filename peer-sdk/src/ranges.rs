//! A set of disjoint byte ranges (the bytes of a segment received so far).

use std::ops::Range;

/// Sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// Adds a range, merging with neighbours.
    pub fn insert(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let mut merged = range;
        self.ranges.retain(|r| {
            if r.end < merged.start || r.start > merged.end {
                true
            } else {
                merged = merged.start.min(r.start)..merged.end.max(r.end);
                false
            }
        });
        let at = self.ranges.partition_point(|r| r.start < merged.start);
        self.ranges.insert(at, merged);
    }

    /// Whether every byte of `range` is in the set.
    pub fn contains(&self, range: &Range<u64>) -> bool {
        range.is_empty()
            || self
                .ranges
                .iter()
                .any(|r| r.start <= range.start && range.end <= r.end)
    }

    /// Whether any byte of `range` is in the set.
    pub fn overlaps(&self, range: &Range<u64>) -> bool {
        self.ranges
            .iter()
            .any(|r| r.start < range.end && range.start < r.end)
    }

    /// The parts of `0..size` not in the set.
    pub fn gaps(&self, size: u64) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for r in &self.ranges {
            if r.start > at {
                gaps.push(at..r.start.min(size));
            }
            at = at.max(r.end);
        }
        if at < size {
            gaps.push(at..size);
        }
        gaps.retain(|g| !g.is_empty());
        gaps
    }

    /// Total bytes in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn gaps_and_ranges_partition_the_segment(inserts in prop::collection::vec((0..100u64, 0..30u64), 0..12)) {
            let mut set = RangeSet::default();
            let mut bytes = [false; 130];
            for (start, len) in inserts {
                set.insert(start..start + len);
                for b in &mut bytes[start as usize..(start + len) as usize] { *b = true; }
            }
            let covered = bytes.iter().filter(|b| **b).count() as u64;
            prop_assert_eq!(set.len(), covered);
            let gaps: u64 = set.gaps(130).iter().map(|g| g.end - g.start).sum();
            prop_assert_eq!(gaps + covered, 130);
            for gap in set.gaps(130) { prop_assert!(!set.overlaps(&gap)); }
        }
    }
}
