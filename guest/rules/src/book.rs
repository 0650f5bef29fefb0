//! `Book`: one product's counted trade ids, minutes and rollups.
//!
//! Minutes are the facts; each rollup level is derived from the level below it
//! (5m from 1m, 15m from 5m, ... 1d from 6h, every width a multiple of the one
//! below), so correcting any minute recomputes exactly the buckets that hold it
//! with a handful of merges, and nothing is ever added twice. A trade, which can
//! only extend a minute, updates each rollup in place instead (same result, O(1)).

use spot_wire::{Fixed, Granularity};

use crate::bucket::{Applied, Minute, Ohlcv};
use crate::series::Series;
use crate::trade_ids::TradeIds;

/// One product's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    pub name: String,
    pub ids: TradeIds,
    pub minutes: Series<Minute>,
    /// Levels 5m .. 1d (index = granularity index - 1).
    pub rollups: [Series<Ohlcv>; 7],
}

impl Book {
    /// An empty book.
    pub fn new(name: String) -> Self {
        Book {
            name,
            ..Default::default()
        }
    }

    /// The current value of one bucket.
    pub fn get(&self, g: Granularity, start: i64) -> Option<Ohlcv> {
        match g.index() {
            0 => self.minutes.get(start).map(|m| m.ohlcv(start)),
            i => self.rollups[i - 1].get(start).copied(),
        }
    }

    /// Every bucket of `g` with `lo <= start <= hi`, ascending.
    pub fn buckets_between(&self, g: Granularity, lo: i64, hi: i64) -> Vec<(i64, Ohlcv)> {
        let hi = hi.saturating_add(1);
        match g.index() {
            0 => self
                .minutes
                .range(lo, hi)
                .iter()
                .map(|(s, m)| (*s, m.ohlcv(*s)))
                .collect(),
            i => self.rollups[i - 1].range(lo, hi).to_vec(),
        }
    }

    /// Merge the buckets of level `level` that fall in `[lo, hi)`.
    fn merge_level(&self, level: usize, lo: i64, hi: i64) -> Option<Ohlcv> {
        if level == 0 {
            Ohlcv::merge(self.minutes.range(lo, hi).iter().map(|(s, m)| m.ohlcv(*s)))
        } else {
            Ohlcv::merge(self.rollups[level - 1].range(lo, hi).iter().map(|(_, o)| *o))
        }
    }

    /// Count one trade (not counted before) of the minute starting at `minute`,
    /// in the minute and in every rollup holding it.
    pub fn add_trade(&mut self, minute: i64, price: Fixed, size: Fixed, id: u64) -> Applied {
        let m = match self.minutes.get_mut(minute) {
            Some(m) => {
                if m.add_trade(price, size, id) == Applied::Ignored {
                    return Applied::Ignored;
                }
                *m
            }
            None => {
                let m = Minute::from_trade(price, size, id);
                self.minutes.put(minute, m);
                m
            }
        };
        for (level, g) in Granularity::ALL[1..].iter().enumerate() {
            let start = g.bucket_start(minute);
            match self.rollups[level].get_mut(start) {
                Some(r) => r.extend(minute, &m, price, size, id),
                // No rollup yet: this is the first minute in it, and holds one trade.
                None => self.rollups[level].put(start, m.ohlcv(minute)),
            }
        }
        Applied::Counted
    }

    /// Report the current value of every bucket holding one of `dirty` minutes
    /// (sorted, deduplicated), minutes first, each bucket once.
    pub fn touched(&self, dirty: &[i64], mut emit: impl FnMut(Granularity, i64, &Ohlcv)) {
        for &start in dirty {
            if let Some(m) = self.minutes.get(start) {
                emit(Granularity::OneMinute, start, &m.ohlcv(start));
            }
        }
        for (level, g) in Granularity::ALL[1..].iter().enumerate() {
            let mut last = None;
            for &minute in dirty {
                let start = g.bucket_start(minute);
                if last != Some(start) {
                    last = Some(start);
                    if let Some(o) = self.rollups[level].get(start) {
                        emit(*g, start, o);
                    }
                }
            }
        }
    }

    /// Recompute every rollup holding one of `dirty` minutes (sorted, deduplicated),
    /// after minutes were replaced.
    pub fn recompute(&mut self, dirty: &[i64]) {
        let mut starts: Vec<i64> = dirty.to_vec();
        for g in &Granularity::ALL[1..] {
            let level = g.index();
            for s in starts.iter_mut() {
                *s = g.bucket_start(*s);
            }
            starts.dedup();
            for &start in &starts {
                match self.merge_level(level - 1, start, start + g.seconds()) {
                    Some(o) => self.rollups[level - 1].put(start, o),
                    None => self.rollups[level - 1].remove(start),
                }
            }
        }
    }

    /// Rebuild every rollup from the minutes (after an import).
    pub fn rebuild_rollups(&mut self) {
        for g in &Granularity::ALL[1..] {
            let level = g.index();
            let out = if level == 1 {
                rollup(self.minutes.range(i64::MIN, i64::MAX), *g, |s, m: &Minute| m.ohlcv(s))
            } else {
                rollup(self.rollups[level - 2].range(i64::MIN, i64::MAX), *g, |_, o: &Ohlcv| *o)
            };
            self.rollups[level - 1] = out;
        }
        self.minutes.shrink();
    }

    /// Drop every bucket (all levels) starting before `start` (a UTC day start).
    pub fn prune_before(&mut self, start: i64) {
        self.minutes.prune_before(start);
        for r in self.rollups.iter_mut() {
            r.prune_before(start);
        }
    }
}

/// The buckets of `g` made from `below` (one level down, ascending).
fn rollup<T>(below: &[(i64, T)], g: Granularity, ohlcv: impl Fn(i64, &T) -> Ohlcv) -> Series<Ohlcv> {
    let mut out = Series::default();
    let mut i = 0;
    while i < below.len() {
        let start = g.bucket_start(below[i].0);
        let j = i + below[i..].partition_point(|(s, _)| g.bucket_start(*s) == start);
        if let Some(o) = Ohlcv::merge(below[i..j].iter().map(|(s, x)| ohlcv(*s, x))) {
            out.push_last(start, o);
        }
        i = j;
    }
    out.shrink();
    out
}
