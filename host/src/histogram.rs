//! A fixed-bucket histogram of atomic counters, for `/metrics`: observing is
//! a few relaxed atomic adds, so the engine and the writer can record every
//! call without a lock or a metrics registry.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds for latencies in seconds: 10 µs to 10 s.
pub const SECONDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Upper bounds for sizes (rows, trades): 1 to 64 Ki.
pub const SIZES: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

/// Counts of observations per bucket, their sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One more than `bounds`: the last counts what is above every bound.
    buckets: Vec<AtomicU64>,
    /// The sum, as f64 bits.
    sum: AtomicU64,
    count: AtomicU64,
}

/// A histogram read at one moment: cumulative counts per bound, as
/// Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations <= bound)`, ascending; `+Inf` is `count`.
    pub cumulative: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    /// Record one value.
    pub fn observe(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        let _ = self
            .sum
            .fetch_update(Relaxed, Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                total += n.load(Relaxed);
                (*b, total)
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum: f64::from_bits(self.sum.load(Relaxed)),
            count: self.count.load(Relaxed),
        }
    }
}

impl Default for Histogram {
    /// A latency histogram ([`SECONDS`]).
    fn default() -> Self {
        Histogram::new(SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new(SIZES);
        for v in [0.5, 1.0, 3.0, 100.0, 1e9] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.sum, 0.5 + 1.0 + 3.0 + 100.0 + 1e9);
        let le = |b: f64| s.cumulative.iter().find(|(x, _)| *x == b).map(|(_, n)| *n);
        assert_eq!(le(1.0), Some(2), "a value equal to a bound counts in it");
        assert_eq!(le(4.0), Some(3));
        assert_eq!(le(64.0), Some(3));
        assert_eq!(le(256.0), Some(4));
        assert_eq!(le(65536.0), Some(4), "1e9 is only in +Inf (the count)");
    }
}
