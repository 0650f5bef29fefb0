//! The audit: stored candles that are settled (complete, over for a couple of
//! minutes, nothing pending in them) compared with Coinbase's own REST
//! candles at every granularity, product by product, pass after pass.
//!
//! A trade-id gap is repaired as soon as it shows; a divergence that leaves
//! no gap (a trade never sent at the tail of a quiet product, a late
//! correction by the exchange) only shows here. A missing or differing
//! minute is corrected: applied as authoritative, the component recomputes
//! every rollup holding it. A higher-granularity difference whose minutes all
//! agree is counted and logged with both values, never overwritten: the
//! exchange's own rollups are its business, ours follow from the minutes.
//!
//! The audit asks at [`Priority::Audit`] and never more than its own share of
//! the rate (a sixth by default): repairs and the backfill keep the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deadpool_postgres::Pool;
use spot_wire::{Candle, Fixed, Granularity};
use tokio::sync::watch;

use super::repair::Context;
use super::stats::{AuditCounts, Mismatch};
use crate::engine::CandleSource;
use crate::rest::{ExchangeCandle, MAX_BUCKETS, Priority};
use crate::storage::candles::{self, StoredCandle};

/// How the audit runs.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Compare a bucket once it has been over this long.
    pub settle: Duration,
    /// At most this many audit requests a second (a share of the REST rate).
    pub per_second: f64,
    /// Rest between two passes.
    pub pause: Duration,
}

impl AuditConfig {
    /// A sixth of `rest_per_second`, buckets settled 2 minutes, a minute between passes.
    pub fn share_of(rest_per_second: f64) -> Self {
        AuditConfig {
            settle: Duration::from_secs(120),
            per_second: rest_per_second / 6.0,
            pause: Duration::from_secs(60),
        }
    }
}

/// What the audit works with.
pub(crate) struct Auditor {
    pub ctx: Context,
    pub pool: Pool,
    pub exchange: String,
    pub config: AuditConfig,
    /// (name, engine id) of every product served.
    pub products: Vec<(String, u32)>,
}

/// Pass after pass until `stop`, once the backfill is done (before, the
/// stored history is partial by design).
pub(crate) async fn run(a: Auditor, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs_f64(1.0 / a.config.per_second.max(0.001));
    let mut pace = tokio::time::interval(interval);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !a.ctx.stats.backfill.finished() {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    let stats = &a.ctx.stats.audit;
    loop {
        let started = crate::engine::now_ms();
        stats.begin_pass(started);
        for (product, id) in &a.products {
            let audited = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = a.product(product, *id, &mut pace) => r,
            };
            if let Err(e) = audited {
                tracing::warn!(%product, error = %e, "audit of a product failed; it is checked again next pass");
            }
            stats.product_done();
        }
        let now = crate::engine::now_ms();
        stats.end_pass(now);
        let (passes, _) = stats.passes();
        let totals = stats.totals();
        tracing::info!(
            pass = passes,
            products = a.products.len(),
            took_ms = now - started,
            mismatched = totals.iter().map(AuditCounts::mismatched).sum::<u64>(),
            corrected = totals.iter().map(|c| c.corrected).sum::<u64>(),
            "audit pass complete"
        );
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(a.config.pause) => {}
        }
    }
}

/// Why one comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    #[error("REST: {0}")]
    Rest(#[from] crate::rest::RestError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("a stored value is not a decimal: {0}")]
    Stored(String),
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
}

/// OHLCV of a bucket, as both sides give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Values([Fixed; 5]);

impl Values {
    fn of_exchange(c: &ExchangeCandle) -> Self {
        Values([c.open, c.high, c.low, c.close, c.volume])
    }

    fn of_stored(c: &StoredCandle) -> Result<Self, AuditError> {
        let f = |s: &str| s.parse::<Fixed>().map_err(|_| AuditError::Stored(s.to_string()));
        Ok(Values([
            f(&c.open)?,
            f(&c.high)?,
            f(&c.low)?,
            f(&c.close)?,
            f(&c.volume)?,
        ]))
    }

    fn text(&self) -> String {
        let [o, h, l, c, v] = self.0;
        format!("o {o} h {h} l {l} c {c} v {v}")
    }
}

/// The comparison of one range at one granularity.
#[derive(Debug, Default)]
struct Compared {
    counts: AuditCounts,
    /// (start, kind, stored, exchange) of each difference.
    differences: Vec<(i64, &'static str, Option<Values>, Option<Values>)>,
}

/// Compare `exchange` and `stored` (both within the range), skipping the
/// buckets `skip` says are not settled.
fn compare(exchange: &[ExchangeCandle], stored: &[(i64, Values)], skip: impl Fn(i64) -> bool) -> Compared {
    let mut both: BTreeMap<i64, (Option<Values>, Option<Values>)> = BTreeMap::new();
    for c in exchange {
        both.entry(c.start).or_default().1 = Some(Values::of_exchange(c));
    }
    for (start, v) in stored {
        both.entry(*start).or_default().0 = Some(*v);
    }
    let mut out = Compared::default();
    for (start, (ours, theirs)) in both {
        if skip(start) {
            continue;
        }
        out.counts.checked += 1;
        let kind = match (ours, theirs) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => {
                out.counts.value += 1;
                "value"
            }
            (None, Some(_)) => {
                out.counts.missing += 1;
                "missing"
            }
            (Some(_), None) => {
                out.counts.extra += 1;
                "extra"
            }
            (None, None) => continue,
        };
        out.differences.push((start, kind, ours, theirs));
    }
    out
}

impl Auditor {
    /// Every granularity of one product over the settled part of the horizon.
    async fn product(&self, product: &str, id: u32, pace: &mut tokio::time::Interval) -> Result<(), AuditError> {
        let now = crate::engine::now_ms();
        let horizon_start = self.ctx.horizon.start(now);
        let settled_before = now.div_euclid(1000) - self.config.settle.as_secs() as i64;
        // Minutes waiting for a repair or the backfill: not settled.
        let busy = self.ctx.work.lock().busy(id);
        let pending = |from: i64, to: i64| busy.iter().any(|(f, t)| *f <= to && from <= *t);
        let mut differing_minutes = BTreeSet::new();
        for g in Granularity::ALL {
            let secs = g.seconds();
            // The last bucket of `g` over by `settled_before`.
            let last = g.bucket_start(settled_before) - secs;
            let mut from = g.bucket_start(horizon_start);
            let mut counts = AuditCounts::default();
            while from <= last {
                let to = (from + (MAX_BUCKETS - 1) * secs).min(last);
                pace.tick().await;
                let theirs = self.ctx.rest.candles(product, g, from, to, Priority::Audit).await?;
                let stored =
                    candles::candles(&self.pool, &self.exchange, product, g, from, to, MAX_BUCKETS + 1).await?;
                let ours: Vec<(i64, Values)> = stored
                    .iter()
                    .filter(|c| c.complete)
                    .map(|c| Ok((c.timestamp, Values::of_stored(c)?)))
                    .collect::<Result<_, AuditError>>()?;
                // An incomplete stored bucket in a settled range is one with
                // a pending window: skipped like the windows themselves.
                let incomplete: BTreeSet<i64> = stored.iter().filter(|c| !c.complete).map(|c| c.timestamp).collect();
                let compared = compare(&theirs, &ours, |start| {
                    start < horizon_start
                        || incomplete.contains(&start)
                        || pending(start, start + secs - 60)
                        || (g != Granularity::OneMinute
                            && differing_minutes.range(start..start + secs).next().is_some())
                });
                counts = add(counts, compared.counts);
                let mut corrections: Vec<Candle> = Vec::new();
                let differences = compared.differences.len();
                for (n, (start, kind, stored, exchange)) in compared.differences.into_iter().enumerate() {
                    let correct = g == Granularity::OneMinute && kind != "extra";
                    if g == Granularity::OneMinute {
                        differing_minutes.insert(start);
                    }
                    if correct && let Some(c) = theirs.iter().find(|c| c.start == start) {
                        corrections.push(c.to_minute(id));
                    }
                    // Both values of the first few; then one line for the rest.
                    if n < 3 {
                        tracing::warn!(
                            %product,
                            granularity = g.name(),
                            start,
                            kind,
                            stored = stored.map(|v| v.text()),
                            exchange = exchange.map(|v| v.text()),
                            corrected = correct,
                            "the stored candle differs from the exchange's"
                        );
                    } else if n == 3 {
                        tracing::warn!(
                            %product,
                            granularity = g.name(),
                            more = differences - 3,
                            from,
                            to,
                            "more stored candles differ from the exchange's (counted in /api/audit)"
                        );
                    }
                    self.ctx.stats.audit.mismatch(Mismatch {
                        product: product.to_string(),
                        granularity: g.name(),
                        start,
                        kind,
                        stored: stored.map(|v| v.text()),
                        exchange: exchange.map(|v| v.text()),
                        corrected: correct,
                    });
                }
                if !corrections.is_empty() {
                    counts.corrected += corrections.len() as u64;
                    self.ctx.engine.apply_candles(corrections, CandleSource::Repair).await?;
                }
                from = to + secs;
            }
            self.ctx.stats.audit.record(g, counts);
        }
        Ok(())
    }
}

fn add(mut a: AuditCounts, b: AuditCounts) -> AuditCounts {
    a.checked += b.checked;
    a.missing += b.missing;
    a.extra += b.extra;
    a.value += b.value;
    a.corrected += b.corrected;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(start: i64, close: i64, volume: i64) -> ExchangeCandle {
        let f = Fixed::from_int;
        ExchangeCandle {
            start,
            open: f(1),
            high: f(close.max(1)),
            low: f(1),
            close: f(close),
            volume: f(volume),
        }
    }

    #[test]
    fn differences_are_missing_extra_or_value_and_skipped_buckets_are_not_checked() {
        let theirs = [ex(0, 2, 5), ex(60, 3, 1), ex(120, 4, 1), ex(240, 1, 1)];
        let ours = vec![
            (0, Values::of_exchange(&ex(0, 2, 5))),
            (60, Values::of_exchange(&ex(60, 3, 2))),   // volume differs
            (180, Values::of_exchange(&ex(180, 1, 1))), // the exchange has none
            (300, Values::of_exchange(&ex(300, 1, 1))), // skipped
        ];
        let c = compare(&theirs, &ours, |s| s == 300 || s == 240);
        assert_eq!(
            c.counts,
            AuditCounts {
                checked: 4,
                missing: 1,
                extra: 1,
                value: 1,
                corrected: 0
            }
        );
        let kinds: Vec<(i64, &str)> = c.differences.iter().map(|d| (d.0, d.1)).collect();
        assert_eq!(kinds, [(60, "value"), (120, "missing"), (180, "extra")]);
    }
}
