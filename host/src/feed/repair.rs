//! Gap repair: the minutes where trades were missed, fetched from REST as
//! authoritative 1-minute candles once they are over.
//!
//! The component reports every trade-id jump with the minutes it can touch.
//! That covers every way of missing trades: a dropped frame, a reconnect (the
//! re-sent snapshot either reaches back to the last trade seen or leaves a
//! jump), and the downtime before this start (the restore carries the last
//! stored trade id, so the first trade after it shows the jump). A minute is
//! only repaired once it is over plus `settle`: Coinbase's candle for the
//! current minute is still moving, and an authoritative minute takes no more
//! trades.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::rest::{MAX_BUCKETS, Rest, RestError};
use super::stats::{FeedStats, add, bump};
use crate::engine::{CandleSource, EngineHandle, EngineOutput, Products};
use crate::storage::repairs::RepairLog;

/// Minute windows waiting per product id: `start minute → end minute`
/// (unix seconds, inclusive), merged when they touch.
#[derive(Default)]
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

    /// Take one window (≤ `MAX_BUCKETS` minutes) that ended before `due_before`;
    /// the rest of a longer window stays.
    pub fn take_due(&mut self, due_before: i64) -> Option<(u32, i64, i64)> {
        let (&product, w) = self
            .windows
            .iter_mut()
            .find(|(_, w)| w.values().any(|end| *end < due_before))?;
        let (&from, &to) = w.iter().find(|(_, end)| **end < due_before)?;
        w.remove(&from);
        let last = (from + (MAX_BUCKETS - 1) * 60).min(to);
        if last < to {
            w.insert(last + 60, to);
        }
        if w.is_empty() {
            self.windows.remove(&product);
        }
        Some((product, from, last))
    }

    /// When the next window becomes due (its end), if any.
    pub fn next_end(&self) -> Option<i64> {
        self.windows.values().flat_map(|w| w.values()).min().copied()
    }

    /// Windows waiting.
    pub fn len(&self) -> usize {
        self.windows.values().map(BTreeMap::len).sum()
    }
}

/// How repairs run.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// Wait this long after a minute ends before asking for it.
    pub settle: Duration,
    /// Never reach further back than this (older minutes are past retention).
    pub max_age: Duration,
    /// First retry delay after a throttled or failed request; doubles to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            settle: Duration::from_secs(5),
            max_age: Duration::from_secs(2 * 86_400),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
        }
    }
}

/// The repair tasks' shared state.
pub(crate) struct Repairs {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Repairs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the repair tasks work with.
pub(crate) struct RepairTasks {
    pub outputs: mpsc::Receiver<Arc<EngineOutput>>,
    pub engine: EngineHandle,
    pub rest: Arc<Rest>,
    pub stats: Arc<FeedStats>,
    pub config: RepairConfig,
    /// Where windows are kept across restarts (`None`: memory only).
    pub log: Option<RepairLog>,
    /// Windows left by the previous run: (product id, from, to).
    pub initial: Vec<(u32, i64, i64)>,
}

/// Start listening for gaps and repairing them: the listener (which ends
/// when the engine's output closes, so gaps found while the engine drains
/// are still recorded) and the worker (which ends on `stop`).
pub(crate) fn spawn(
    t: RepairTasks,
    stop: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let mut pending = Pending::default();
    for &(id, from, to) in &t.initial {
        pending.add(id, from, to);
    }
    let repairs = Arc::new(Repairs {
        pending: Mutex::new(pending),
        wake: Notify::new(),
    });
    (
        tokio::spawn(listen(
            t.outputs,
            repairs.clone(),
            t.stats.clone(),
            t.config.clone(),
            t.log.clone(),
        )),
        tokio::spawn(work(repairs, t.engine, t.rest, t.stats, t.config, t.log, stop)),
    )
}

/// Collect the gaps the component reports. Never waits on anything but the
/// engine, so it never holds the engine up.
async fn listen(
    mut outputs: mpsc::Receiver<Arc<EngineOutput>>,
    repairs: Arc<Repairs>,
    stats: Arc<FeedStats>,
    config: RepairConfig,
    log: Option<RepairLog>,
) {
    while let Some(out) = outputs.recv().await {
        if out.gaps.is_empty() {
            continue;
        }
        let oldest = now_s() - config.max_age.as_secs() as i64;
        let mut remember = Vec::new();
        let mut p = repairs.lock();
        for g in &out.gaps {
            bump(&stats.gaps);
            tracing::info!(
                product = %g.product,
                first_missing = g.gap.first_missing,
                last_missing = g.gap.last_missing,
                from_minute = g.gap.from_minute,
                to_minute = g.gap.to_minute,
                "trade ids jumped; repair queued"
            );
            let from = g.gap.from_minute.max(oldest - oldest.rem_euclid(60));
            if g.gap.to_minute >= from {
                p.add(g.gap.product, from, g.gap.to_minute);
                remember.push((g.product.clone(), from, g.gap.to_minute));
            }
        }
        stats
            .repairs_pending
            .store(p.len() as u64, std::sync::atomic::Ordering::Relaxed);
        drop(p);
        repairs.wake.notify_one();
        // Written off this task: a slow database must not hold the engine up.
        if let Some(log) = &log {
            let log = log.clone();
            tokio::spawn(async move {
                for (product, from, to) in remember {
                    if let Err(e) = log.add(&product, from, to).await {
                        tracing::warn!(%product, error = %e,
                            "cannot record a pending repair; a restart before it is done would forget it");
                    }
                }
            });
        }
    }
}

async fn work(
    repairs: Arc<Repairs>,
    engine: EngineHandle,
    rest: Arc<Rest>,
    stats: Arc<FeedStats>,
    config: RepairConfig,
    log: Option<RepairLog>,
    mut stop: watch::Receiver<bool>,
) {
    let forget = |name: Arc<str>, from: i64, to: i64| {
        let log = log.clone();
        async move {
            if let Some(log) = log
                && let Err(e) = log.done(&name, from, to).await
            {
                tracing::warn!(product = %name, error = %e, "cannot clear a done repair; it will run again after a restart");
            }
        }
    };
    let settle = config.settle.as_secs_f64().ceil() as i64;
    let products: Arc<Products> = engine.products().clone();
    let mut failures: u32 = 0;
    loop {
        // A window is due when its last minute ended `settle` ago.
        let due_before = now_s() - 60 - settle;
        let job = repairs.lock().take_due(due_before);
        let Some((id, from, to)) = job else {
            let wait = match repairs.lock().next_end() {
                Some(end) => Duration::from_secs((end + 60 + settle - now_s()).clamp(0, 3600) as u64 + 1),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = repairs.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        };
        let Some(name) = products.name(id) else { continue };
        let result = rest.minutes(&name, id, from, to).await;
        match result {
            Ok(candles) => {
                failures = 0;
                let n = candles.len() as u64;
                // Counted before the engine applies them, so whoever sees the
                // repaired candles also sees the count.
                bump(&stats.repairs);
                add(&stats.repaired_minutes, n);
                if !candles.is_empty() && engine.apply_candles(candles, CandleSource::Repair).await.is_err() {
                    return;
                }
                tracing::info!(product = %name, from, to, minutes = n, "repaired from REST");
                forget(name, from, to).await;
            }
            Err(e) => {
                bump(&stats.repair_failures);
                if matches!(e, RestError::Throttled(_)) {
                    bump(&stats.rest_throttled);
                }
                if e.is_transient() {
                    repairs.lock().add(id, from, to);
                    let delay = config
                        .backoff_base
                        .saturating_mul(1 << failures.min(16))
                        .min(config.backoff_cap);
                    failures = failures.saturating_add(1);
                    tracing::warn!(product = %name, error = %e, retry_in = ?delay, "repair failed; will retry");
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                } else {
                    tracing::error!(product = %name, from, to, error = %e, "repair refused; these minutes stay as received");
                    forget(name, from, to).await;
                }
            }
        }
        stats
            .repairs_pending
            .store(repairs.lock().len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

fn now_s() -> i64 {
    crate::engine::now_ms().div_euclid(1000)
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
        // A long window goes out in pieces of at most MAX_BUCKETS minutes.
        let mut p = Pending::default();
        p.add(3, 0, 60 * 700);
        let (_, a, b) = p.take_due(i64::MAX).unwrap();
        assert_eq!((a, b), (0, 60 * (MAX_BUCKETS - 1)));
        let (_, c, _) = p.take_due(i64::MAX).unwrap();
        assert_eq!(c, 60 * MAX_BUCKETS);
        let (_, _, last) = p.take_due(i64::MAX).unwrap();
        assert_eq!(last, 60 * 700);
        assert_eq!(p.len(), 0);
    }
}
