//! `Series`: the buckets of one granularity of one product, ordered by start.
//!
//! A sorted `Vec` rather than a map: buckets almost always arrive at the end, a
//! lookup is a binary search, and a day of minutes costs no per-node overhead.

/// Buckets keyed by start (unix seconds), ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series<T> {
    items: Vec<(i64, T)>,
}

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series { items: Vec::new() }
    }
}

impl<T> Series<T> {
    fn find(&self, start: i64) -> Result<usize, usize> {
        // Fast path: the newest bucket.
        match self.items.last() {
            Some((s, _)) if *s == start => Ok(self.items.len() - 1),
            Some((s, _)) if *s < start => Err(self.items.len()),
            _ => self.items.binary_search_by_key(&start, |(s, _)| *s),
        }
    }

    /// The bucket starting at `start`.
    pub fn get(&self, start: i64) -> Option<&T> {
        self.find(start).ok().map(|i| &self.items[i].1)
    }

    /// The bucket starting at `start`, mutable.
    pub fn get_mut(&mut self, start: i64) -> Option<&mut T> {
        match self.find(start) {
            Ok(i) => Some(&mut self.items[i].1),
            Err(_) => None,
        }
    }

    /// Insert or replace the bucket starting at `start`.
    pub fn put(&mut self, start: i64, value: T) {
        match self.find(start) {
            Ok(i) => self.items[i].1 = value,
            Err(i) => {
                self.room_for_one();
                self.items.insert(i, (start, value))
            }
        }
    }

    /// Grow by an eighth (at least 16) rather than doubling: two days of
    /// minutes for 900 products are ~2.6 M buckets, and a doubled vector
    /// holds up to twice what it needs, inside the component's memory cap.
    fn room_for_one(&mut self) {
        if self.items.len() == self.items.capacity() {
            self.items.reserve_exact((self.items.len() / 8).max(16));
        }
    }

    /// Room for `n` more buckets, exactly (bulk loads that know their size).
    pub fn reserve_exact(&mut self, n: usize) {
        self.items.reserve_exact(n);
    }

    /// Start of the newest bucket.
    pub fn last_start(&self) -> Option<i64> {
        self.items.last().map(|(s, _)| *s)
    }

    /// Remove the bucket starting at `start`.
    pub fn remove(&mut self, start: i64) {
        if let Ok(i) = self.find(start) {
            self.items.remove(i);
        }
    }

    /// Buckets with `lo <= start < hi`, ascending.
    pub fn range(&self, lo: i64, hi: i64) -> &[(i64, T)] {
        let a = self.items.partition_point(|(s, _)| *s < lo);
        let b = self.items.partition_point(|(s, _)| *s < hi);
        &self.items[a..b.max(a)]
    }

    /// Drop every bucket starting before `start`.
    pub fn prune_before(&mut self, start: i64) {
        let n = self.items.partition_point(|(s, _)| *s < start);
        self.items.drain(..n);
    }

    /// All buckets, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &(i64, T)> {
        self.items.iter()
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No buckets.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Append a bucket known to start after every other (bulk rebuilds).
    pub fn push_last(&mut self, start: i64, value: T) {
        debug_assert!(self.items.last().is_none_or(|(s, _)| *s < start));
        self.room_for_one();
        self.items.push((start, value));
    }

    /// Give back the room beyond what is held (after a bulk load).
    pub fn shrink(&mut self) {
        self.items.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_whatever_the_insertion_order() {
        let mut s = Series::default();
        for k in [300, 60, 180, 120, 60] {
            s.put(k, k * 10);
        }
        let keys: Vec<i64> = s.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![60, 120, 180, 300]);
        assert_eq!(s.get(60), Some(&600));
        assert_eq!(s.range(100, 300).len(), 2);
        assert_eq!(s.range(400, 300).len(), 0);
        s.prune_before(150);
        assert_eq!(s.len(), 2);
        s.remove(180);
        assert_eq!(s.get(180), None);
    }
}
