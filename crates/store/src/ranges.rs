//! A set of u64 as disjoint half-open ranges. Acks mostly arrive in order, so the set of dead
//! sequence numbers collapses into a handful of ranges however many messages there were.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end (exclusive); ranges never touch or overlap.
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub fn new() -> Self {
        RangeSet::default()
    }

    pub fn contains(&self, x: u64) -> bool {
        self.ranges
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x < end)
    }

    pub fn insert(&mut self, x: u64) {
        self.insert_range(x, x + 1);
    }

    /// Adds [start, end), merging with neighbours.
    pub fn insert_range(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Acks in order: the range grows the one that ends where it starts, with nothing after
        // it to swallow. One lookup and an in-place update, nothing removed.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start && (e >= end || self.ranges.range(start + 1..=end).next().is_none()) {
                if end > e {
                    self.ranges.insert(s, end);
                }
                return;
            }
        }
        // Merge with a range that starts before and reaches start.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        // Swallow ranges that start inside [start, end].
        let inside: Vec<(u64, u64)> = self
            .ranges
            .range(start..=end)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in inside {
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }

    /// How many members fall in [start, end).
    pub fn count_in(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        let first = self
            .ranges
            .range(..=start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(start);
        for (&s, &e) in self.ranges.range(first..end) {
            let (lo, hi) = (s.max(start), e.min(end));
            if lo < hi {
                n += hi - lo;
            }
        }
        n
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    pub fn len_ranges(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_counts() {
        let mut s = RangeSet::new();
        for x in [1, 2, 3, 7, 5, 6, 4] {
            s.insert(x);
        }
        assert_eq!(s.len_ranges(), 1);
        assert!(s.contains(1) && s.contains(7) && !s.contains(8) && !s.contains(0));
        s.insert_range(10, 20);
        s.insert_range(15, 25);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(1, 8), (10, 25)]);
        assert_eq!(s.count_in(0, 100), 7 + 15);
        assert_eq!(s.count_in(5, 12), 3 + 2);
        s.insert_range(8, 10);
        assert_eq!(s.len_ranges(), 1);
    }

    #[test]
    fn growing_the_last_range_still_swallows_what_follows() {
        let mut s = RangeSet::new();
        s.insert_range(0, 5);
        s.insert_range(7, 9);
        s.insert_range(5, 6);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 6), (7, 9)]);
        s.insert_range(3, 8);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 9)]);
        s.insert_range(2, 4);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 9)]);
        s.insert_range(9, 10);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 10)]);
    }
}
