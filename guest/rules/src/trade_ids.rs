//! `TradeIds`: which trade ids of one product have been counted.
//!
//! Coinbase trade ids of a product are consecutive integers, so the counted set is
//! a handful of ranges: one while nothing is missed, one more per hole. A trade id
//! inside a range is a duplicate (a re-sent snapshot); an id more than one above
//! the highest is a jump, reported once so the host can repair those minutes.

/// Holes kept before the oldest are forgotten (treated as counted).
const MAX_RANGES: usize = 256;

/// Counted trade ids as disjoint, non-adjacent, ascending inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradeIds {
    ranges: Vec<(u64, u64)>,
    /// Time (unix ms) of the highest counted trade.
    top_time_ms: i64,
}

/// A jump above the highest counted id, found while inserting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    pub first_missing: u64,
    pub last_missing: u64,
    /// Time of the trade below the jump.
    pub below_time_ms: i64,
}

impl TradeIds {
    /// From exported ranges (assumed sorted and disjoint; re-normalised anyway).
    pub fn from_ranges(mut ranges: Vec<(u64, u64)>, top_time_ms: i64) -> Self {
        ranges.retain(|(lo, hi)| lo <= hi);
        ranges.sort_unstable();
        let mut ids = TradeIds {
            ranges: Vec::with_capacity(ranges.len()),
            top_time_ms,
        };
        for (lo, hi) in ranges {
            ids.insert_range(lo, hi);
        }
        ids
    }

    /// The ranges, for export.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Time of the highest counted trade.
    pub fn top_time_ms(&self) -> i64 {
        self.top_time_ms
    }

    /// Highest counted id.
    pub fn top(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// Has `id` been counted?
    pub fn contains(&self, id: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.0 <= id);
        i > 0 && id <= self.ranges[i - 1].1
    }

    /// Record `id` (not yet counted) at `time_ms`; returns the jump it reveals, if any.
    pub fn insert(&mut self, id: u64, time_ms: i64) -> Option<Jump> {
        let jump = match self.top() {
            Some(top) if id > top.saturating_add(1) => Some(Jump {
                first_missing: top + 1,
                last_missing: id - 1,
                below_time_ms: self.top_time_ms,
            }),
            _ => None,
        };
        if self.top().is_none_or(|top| id > top) {
            self.top_time_ms = time_ms;
        }
        self.insert_range(id, id);
        jump
    }

    /// Declare every id up to and including `w` counted (restart recovery); the
    /// minute of `w` becomes the reference for a jump above it.
    pub fn count_through(&mut self, w: u64, time_ms: i64) {
        if self.top().is_none_or(|top| w >= top) {
            self.top_time_ms = time_ms;
        }
        // A restore declares ever higher watermarks: extend the single range.
        if let [(0, hi)] = self.ranges.as_mut_slice() {
            *hi = (*hi).max(w);
            return;
        }
        self.insert_range(0, w);
    }

    fn insert_range(&mut self, lo: u64, hi: u64) {
        // First range that could touch [lo, hi] (its end reaches lo - 1).
        let a = self.ranges.partition_point(|r| r.1.saturating_add(1) < lo);
        // One past the last range that starts at or before hi + 1.
        let b = self.ranges.partition_point(|r| r.0 <= hi.saturating_add(1));
        if a >= b {
            self.ranges.insert(a, (lo, hi));
        } else {
            let merged = (self.ranges[a].0.min(lo), self.ranges[b - 1].1.max(hi));
            self.ranges.splice(a..b, [merged]);
        }
        if self.ranges.len() > MAX_RANGES {
            // Forget the oldest hole: it was reported when it opened.
            let (lo, _) = self.ranges.remove(0);
            self.ranges[0].0 = lo;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_jumps_and_filled_holes() {
        let mut ids = TradeIds::default();
        assert_eq!(ids.insert(10, 1_000), None);
        assert_eq!(ids.insert(11, 1_001), None);
        assert!(ids.contains(10) && ids.contains(11) && !ids.contains(12));
        let jump = ids.insert(15, 2_000).unwrap();
        assert_eq!(
            (jump.first_missing, jump.last_missing, jump.below_time_ms),
            (12, 14, 1_001)
        );
        assert_eq!(ids.ranges(), &[(10, 11), (15, 15)]);
        // Filling the hole reports nothing and merges the ranges.
        for id in 12..=14 {
            assert_eq!(ids.insert(id, 1_500), None);
        }
        assert_eq!(ids.ranges(), &[(10, 15)]);
        assert_eq!(ids.top_time_ms(), 2_000);
        // An id below everything counted is history, not a jump.
        assert_eq!(ids.insert(3, 10), None);
        ids.count_through(20, 3_000);
        assert_eq!(ids.ranges(), &[(0, 20)]);
        assert_eq!(ids.insert(22, 4_000).map(|j| j.below_time_ms), Some(3_000));
    }

    #[test]
    fn holes_stay_bounded() {
        let mut ids = TradeIds::default();
        for k in 0..1_000u64 {
            ids.insert(k * 3, 0);
        }
        assert!(ids.ranges().len() <= MAX_RANGES);
        assert!(ids.contains(999 * 3));
    }

    proptest! {
        #[test]
        fn contains_matches_a_plain_set(ops in proptest::collection::vec(0u64..200, 0..300)) {
            let mut ids = TradeIds::default();
            let mut set = std::collections::BTreeSet::new();
            for id in ops {
                if !ids.contains(id) {
                    ids.insert(id, 0);
                }
                set.insert(id);
            }
            for id in 0..205 {
                prop_assert_eq!(ids.contains(id), set.contains(&id), "id {}", id);
            }
            let r = ids.ranges();
            for w in r.windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0);
            }
        }
    }
}
