//! `Book`: one product's counted trade ids, minutes and rollups.
//!
//! Minutes are the facts; each rollup level is derived from the level below it
//! (5m from 1m, 15m from 5m, ... 1d from 6h, every width a multiple of the one
//! below), so correcting any minute recomputes exactly the buckets that hold it
//! with a handful of merges, and nothing is ever added twice.

use spot_wire::Granularity;

use crate::bucket::{Minute, Ohlcv};
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
            0 => self.minutes.get(start).map(|m| m.ohlcv),
            i => self.rollups[i - 1].get(start).copied(),
        }
    }

    /// Every bucket of `g` with `lo <= start <= hi`, ascending.
    pub fn buckets_between(&self, g: Granularity, lo: i64, hi: i64) -> Vec<(i64, Ohlcv)> {
        let hi = hi.saturating_add(1);
        match g.index() {
            0 => self.minutes.range(lo, hi).iter().map(|(s, m)| (*s, m.ohlcv)).collect(),
            i => self.rollups[i - 1].range(lo, hi).to_vec(),
        }
    }

    /// Merge the buckets of level `level` that fall in `[lo, hi)`.
    fn merge_level(&self, level: usize, lo: i64, hi: i64) -> Option<Ohlcv> {
        if level == 0 {
            Ohlcv::merge(self.minutes.range(lo, hi).iter().map(|(_, m)| &m.ohlcv))
        } else {
            Ohlcv::merge(self.rollups[level - 1].range(lo, hi).iter().map(|(_, o)| o))
        }
    }

    /// Recompute every rollup holding one of `dirty` minutes (sorted, deduplicated),
    /// and report each changed bucket, minutes first, to `emit`.
    pub fn recompute(&mut self, dirty: &[i64], mut emit: impl FnMut(Granularity, i64, &Ohlcv)) {
        for &start in dirty {
            if let Some(m) = self.minutes.get(start) {
                emit(Granularity::OneMinute, start, &m.ohlcv);
            }
        }
        let mut starts: Vec<i64> = dirty.to_vec();
        for g in &Granularity::ALL[1..] {
            let level = g.index();
            for s in starts.iter_mut() {
                *s = g.bucket_start(*s);
            }
            starts.dedup();
            for &start in &starts {
                match self.merge_level(level - 1, start, start + g.seconds()) {
                    Some(o) => {
                        self.rollups[level - 1].put(start, o);
                        emit(*g, start, &o);
                    }
                    None => self.rollups[level - 1].remove(start),
                }
            }
        }
    }

    /// Rebuild every rollup from the minutes (after an import).
    pub fn rebuild_rollups(&mut self) {
        for g in &Granularity::ALL[1..] {
            let level = g.index();
            let mut out: Series<Ohlcv> = Series::default();
            {
                let below: Vec<(i64, Ohlcv)> = if level == 1 {
                    self.minutes.iter().map(|(s, m)| (*s, m.ohlcv)).collect()
                } else {
                    self.rollups[level - 2].iter().copied().collect()
                };
                let mut i = 0;
                while i < below.len() {
                    let start = g.bucket_start(below[i].0);
                    let j = i + below[i..].partition_point(|(s, _)| g.bucket_start(*s) == start);
                    if let Some(o) = Ohlcv::merge(below[i..j].iter().map(|(_, o)| o)) {
                        out.push_last(start, o);
                    }
                    i = j;
                }
            }
            self.rollups[level - 1] = out;
        }
    }

    /// Drop every bucket (all levels) starting before `start` (a UTC day start).
    pub fn prune_before(&mut self, start: i64) {
        self.minutes.prune_before(start);
        for r in self.rollups.iter_mut() {
            r.prune_before(start);
        }
    }
}
