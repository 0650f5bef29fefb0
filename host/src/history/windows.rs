//! The minutes waiting for REST: gap windows (merged when they touch) and
//! the backfill's pieces (at most one request each), and which products
//! still have pieces out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::rest::MAX_BUCKETS;

/// Minute windows waiting per product id: `start minute → end minute`
/// (unix seconds, inclusive), merged when they touch.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    windows: BTreeMap<u32, BTreeMap<i64, i64>>,
}

impl Pending {
    /// Add the minutes `[from, to]` of `product`.
    pub fn add(&mut self, product: u32, from: i64, to: i64) {
        let (mut from, mut to) = (from.min(to), from.max(to));
        let w = self.windows.entry(product).or_default();
        // Absorb every window that overlaps or touches [from, to].
        let touching: Vec<i64> = w
            .range(..=to + 60)
            .filter(|(_, end)| **end + 60 >= from)
            .map(|(s, _)| *s)
            .collect();
        for s in touching {
            if let Some(e) = w.remove(&s) {
                from = from.min(s);
                to = to.max(e);
            }
        }
        w.insert(from, to);
    }

    /// Take the first request's worth (≤ `MAX_BUCKETS` minutes) of a window
    /// whose piece ended before `due_before`; the rest stays.
    pub fn take_due(&mut self, due_before: i64) -> Option<(u32, i64, i64)> {
        let piece_end = |from: i64, to: i64| (from + (MAX_BUCKETS - 1) * 60).min(to);
        let (&product, w) = self
            .windows
            .iter_mut()
            .find(|(_, w)| w.iter().any(|(f, t)| piece_end(*f, *t) < due_before))?;
        let (&from, &to) = w.iter().find(|(f, t)| piece_end(**f, **t) < due_before)?;
        w.remove(&from);
        let last = piece_end(from, to);
        if last < to {
            w.insert(last + 60, to);
        }
        if w.is_empty() {
            self.windows.remove(&product);
        }
        Some((product, from, last))
    }

    /// When the next piece becomes due (its last minute's start), if any.
    pub fn next_end(&self) -> Option<i64> {
        self.windows
            .values()
            .flat_map(|w| w.iter())
            .map(|(f, t)| (f + (MAX_BUCKETS - 1) * 60).min(*t))
            .min()
    }

    /// The windows of `product`, `[from, to]`.
    pub fn of(&self, product: u32) -> Vec<(i64, i64)> {
        self.windows
            .get(&product)
            .map(|w| w.iter().map(|(f, t)| (*f, *t)).collect())
            .unwrap_or_default()
    }

    /// Windows waiting.
    pub fn len(&self) -> usize {
        self.windows.values().map(BTreeMap::len).sum()
    }
}

/// Split `[from, to]` (minute starts) into request-sized pieces, newest first.
pub(crate) fn pieces(from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut end = to;
    while end >= from {
        let start = (end - (MAX_BUCKETS - 1) * 60).max(from);
        out.push((start, end));
        end = start - 60;
    }
    out
}

/// The backfill's pieces: each one request, the newest first (the current
/// day's candles come right soonest), and per product the pieces still out.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// (−end, product, from): ordered newest first.
    queue: BTreeSet<(i64, u32, i64)>,
    /// Pieces queued or in flight, per product.
    outstanding: HashMap<u32, usize>,
}

impl Backlog {
    /// Queue a piece of `product`.
    pub fn add(&mut self, product: u32, from: i64, to: i64) {
        if self.queue.insert((-to, product, from)) {
            *self.outstanding.entry(product).or_default() += 1;
        }
    }

    /// Take the newest piece that ended before `due_before`; it stays
    /// outstanding until [`Backlog::finish`] or [`Backlog::put_back`].
    pub fn take_due(&mut self, due_before: i64) -> Option<(u32, i64, i64)> {
        let key = *self.queue.iter().find(|(neg_end, _, _)| -neg_end < due_before)?;
        self.queue.remove(&key);
        Some((key.1, key.2, -key.0))
    }

    /// A taken piece goes back (its request failed and will be retried).
    pub fn put_back(&mut self, product: u32, from: i64, to: i64) {
        self.queue.insert((-to, product, from));
    }

    /// A taken piece is done (applied, or given up). True when it was the
    /// product's last one.
    pub fn finish(&mut self, product: u32) -> bool {
        match self.outstanding.get_mut(&product) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.outstanding.remove(&product);
                true
            }
            None => false,
        }
    }

    /// Drop every queued piece that ends before `start` (out of the horizon
    /// by now); returns how many, and the products whose last piece that was.
    pub fn drop_before(&mut self, start: i64) -> (usize, Vec<u32>) {
        let stale: Vec<(i64, u32, i64)> = self
            .queue
            .iter()
            .filter(|(neg_end, _, _)| -neg_end < start)
            .copied()
            .collect();
        let mut finished = Vec::new();
        for key in &stale {
            self.queue.remove(key);
            if self.finish(key.1) {
                finished.push(key.1);
            }
        }
        (stale.len(), finished)
    }

    /// The queued pieces of `product`, `[from, to]`.
    pub fn of(&self, product: u32) -> Vec<(i64, i64)> {
        self.queue
            .iter()
            .filter(|(_, p, _)| *p == product)
            .map(|(neg_end, _, from)| (*from, -neg_end))
            .collect()
    }

    /// Whether `product` has pieces out.
    pub fn has(&self, product: u32) -> bool {
        self.outstanding.contains_key(&product)
    }

    /// Pieces queued (not in flight).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Pieces queued or in flight.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.outstanding.values().sum()
    }

    /// When the next piece becomes due (its last minute's start), if any.
    pub fn next_end(&self) -> Option<i64> {
        self.queue.iter().map(|(neg_end, _, _)| -neg_end).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_merge_when_they_touch_and_split_at_the_request_limit() {
        let mut p = Pending::default();
        p.add(1, 600, 720);
        p.add(1, 780, 840); // touches 720 + 60
        p.add(1, 1200, 1200);
        p.add(2, 60, 0); // reversed
        assert_eq!(p.len(), 3);
        assert_eq!(p.take_due(700), Some((2, 0, 60)));
        assert_eq!(p.take_due(700), None, "600..840 ends after 700");
        assert_eq!(p.take_due(900), Some((1, 600, 840)));
        assert_eq!(p.next_end(), Some(1200));
        // A long window goes out in pieces of at most MAX_BUCKETS minutes,
        // and its first piece does not wait for the end of the window.
        let mut p = Pending::default();
        p.add(3, 0, 60 * 700);
        let (_, a, b) = p.take_due(60 * MAX_BUCKETS).unwrap();
        assert_eq!((a, b), (0, 60 * (MAX_BUCKETS - 1)));
        assert_eq!(p.take_due(60 * MAX_BUCKETS), None);
        let (_, c, _) = p.take_due(i64::MAX).unwrap();
        assert_eq!(c, 60 * MAX_BUCKETS);
        let (_, _, last) = p.take_due(i64::MAX).unwrap();
        assert_eq!(last, 60 * 700);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn pieces_cover_the_span_newest_first_one_request_each() {
        assert_eq!(pieces(0, 0), [(0, 0)]);
        assert!(pieces(60, 0).is_empty());
        let day = pieces(0, 86_340);
        assert_eq!(day.len(), 5, "1,440 minutes in requests of 300");
        assert_eq!(day[0], (86_340 - 299 * 60, 86_340));
        assert_eq!(day.last().unwrap().0, 0);
        for w in day.windows(2) {
            assert_eq!(w[1].1 + 60, w[0].0, "no minute twice, none left out");
        }
        assert!(day.iter().all(|(f, t)| (t - f) / 60 < MAX_BUCKETS));
    }

    #[test]
    fn the_backlog_goes_newest_first_and_knows_when_a_product_is_done() {
        let mut b = Backlog::default();
        for (from, to) in pieces(0, 60 * 599) {
            b.add(1, from, to);
        }
        b.add(2, 0, 60 * 10);
        assert_eq!(b.outstanding(), 3);
        // Nothing due before the newest piece of product 1 has ended...
        assert_eq!(b.take_due(60 * 10), None);
        // ...then the newest first.
        let first = b.take_due(i64::MAX).unwrap();
        assert_eq!(first, (1, 60 * 300, 60 * 599));
        b.put_back(first.0, first.1, first.2);
        assert_eq!(b.take_due(i64::MAX), Some(first));
        assert!(!b.finish(1));
        assert_eq!(b.take_due(i64::MAX), Some((1, 0, 60 * 299)));
        assert!(b.finish(1), "its last piece");
        assert!(!b.has(1) && b.has(2));
        assert_eq!(b.drop_before(60 * 11), (1, vec![2]));
        assert_eq!((b.queued(), b.outstanding()), (0, 0));
    }
}
