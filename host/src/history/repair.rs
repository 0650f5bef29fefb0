//! Fetching minutes from REST as authoritative candles: the gaps (trades
//! missed) and the backfill (the horizon never stored), with the gaps first.
//!
//! The component reports every trade-id jump with the minutes it can touch.
//! That covers every way of missing trades: a dropped frame, a reconnect (the
//! re-sent snapshot either reaches back to the last trade seen or leaves a
//! jump), and the downtime before this start (the restore carries the last
//! stored trade id, so the first trade after it shows the jump). A minute is
//! only fetched once it is over plus `settle`: Coinbase's candle for the
//! current minute is still moving, and an authoritative minute takes no more
//! trades.
//!
//! One worker fetches gaps at [`Priority::Repair`], a few fetch the backfill's
//! pieces at [`Priority::Backfill`]: the budget grants the next slot to a gap
//! whenever one waits.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::pending::PendingLog;
use super::stats::HistoryStats;
use super::windows::{Backlog, Pending};
use crate::engine::{CandleSource, EngineHandle, EngineOutput, Products};
use crate::horizon::Horizon;
use crate::rest::{Priority, Rest, RestError};
use crate::storage::repairs::WindowKind;

/// How repairs run.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// Wait this long after a minute ends before asking for it.
    pub settle: Duration,
    /// First retry delay after a throttled or failed request; doubles to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Backfill requests in flight at once (each still waits for the budget).
    pub backfill_workers: usize,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            settle: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            backfill_workers: 4,
        }
    }
}

/// What waits, shared by the listener, the planner and the workers.
#[derive(Default)]
pub(crate) struct Work {
    inner: Mutex<Inner>,
    wake: Notify,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub gaps: Pending,
    pub backlog: Backlog,
    /// Products whose backfill span is known.
    pub planned: HashSet<u32>,
}

impl Inner {
    /// The minutes of `product` waiting for REST, `[from, to]`.
    pub fn busy(&self, product: u32) -> Vec<(i64, i64)> {
        let mut out = self.gaps.of(product);
        out.extend(self.backlog.of(product));
        out
    }
}

impl Work {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tell the workers there is something new.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// What the repair tasks work with.
#[derive(Clone)]
pub(crate) struct Context {
    pub work: Arc<Work>,
    pub engine: EngineHandle,
    pub rest: Arc<Rest>,
    pub stats: Arc<HistoryStats>,
    pub config: RepairConfig,
    pub horizon: Horizon,
    /// Where windows are kept across restarts (`None`: memory only).
    pub log: Option<PendingLog>,
    /// The backfill's end is logged once, by whoever finishes it.
    pub on_backfill_done: Arc<dyn Fn() + Send + Sync>,
}

/// Collect the gaps the component reports. Never waits on anything but the
/// engine, so it never holds the engine up. Ends when the engine's output
/// closes, so gaps found while the engine drains are still recorded.
pub(crate) async fn listen(mut outputs: mpsc::Receiver<Arc<EngineOutput>>, ctx: Context) {
    while let Some(out) = outputs.recv().await {
        if out.gaps.is_empty() {
            continue;
        }
        let oldest = ctx.horizon.start(crate::engine::now_ms());
        let mut remember = Vec::new();
        let mut w = ctx.work.lock();
        for g in &out.gaps {
            ctx.stats.gaps.fetch_add(1, Relaxed);
            tracing::info!(
                product = %g.product,
                first_missing = g.gap.first_missing,
                last_missing = g.gap.last_missing,
                from_minute = g.gap.from_minute,
                to_minute = g.gap.to_minute,
                "trade ids jumped; repair queued"
            );
            let from = g.gap.from_minute.max(oldest);
            if g.gap.to_minute >= from {
                w.gaps.add(g.gap.product, from, g.gap.to_minute);
                remember.push((g.product.to_string(), from, g.gap.to_minute));
            }
        }
        ctx.stats.repairs_pending.store(w.gaps.len() as u64, Relaxed);
        drop(w);
        ctx.work.wake();
        // Written off this task: a slow database must not hold the engine up.
        if let Some(log) = &ctx.log {
            log.add(remember);
        }
    }
}

/// One worker: takes due windows of `kind` and fetches them until `stop`.
pub(crate) async fn work(ctx: Context, kind: WindowKind, mut stop: watch::Receiver<bool>) {
    let settle = ctx.config.settle.as_secs_f64().ceil() as i64;
    let products: Arc<Products> = ctx.engine.products().clone();
    let mut failures: u32 = 0;
    loop {
        // Registered before looking, so a window added meanwhile wakes us.
        let woken = ctx.work.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // A window is due when its last minute ended `settle` ago.
        let now = crate::engine::now_ms().div_euclid(1000);
        let due_before = now - 60 - settle;
        let (job, next_end) = {
            let mut w = ctx.work.lock();
            match kind {
                WindowKind::Gap => (w.gaps.take_due(due_before), w.gaps.next_end()),
                WindowKind::Backfill => {
                    // Pieces that fell out of the horizon while they waited.
                    let (dropped, finished) = w.backlog.drop_before(ctx.horizon.start(now * 1000));
                    ctx.stats.backfill.requests_done.fetch_add(dropped as u64, Relaxed);
                    for product in finished {
                        if w.planned.contains(&product) {
                            ctx.stats.backfill.done.fetch_add(1, Relaxed);
                            if ctx.stats.backfill.finished() {
                                (ctx.on_backfill_done)();
                            }
                        }
                    }
                    (w.backlog.take_due(due_before), w.backlog.next_end())
                }
            }
        };
        let Some((id, from, to)) = job else {
            let wait = match next_end {
                Some(end) => Duration::from_secs((end + 60 + settle - now).clamp(0, 3600) as u64 + 1),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = &mut woken => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        };
        let Some(name) = products.name(id) else { continue };
        let priority = match kind {
            WindowKind::Gap => Priority::Repair,
            WindowKind::Backfill => Priority::Backfill,
        };
        let result = tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                // Abandoned mid-request: it stays in the log for the next start.
                return;
            }
            r = ctx.rest.minutes(&name, id, from, to, priority) => r,
        };
        match result {
            Ok(candles) => {
                failures = 0;
                let n = candles.len() as u64;
                // Counted before the engine applies them, so whoever sees the
                // repaired candles also sees the count.
                match kind {
                    WindowKind::Gap => {
                        ctx.stats.repairs.fetch_add(1, Relaxed);
                        ctx.stats.repaired_minutes.fetch_add(n, Relaxed);
                    }
                    WindowKind::Backfill => {
                        ctx.stats.backfill.minutes.fetch_add(n, Relaxed);
                    }
                }
                if !candles.is_empty() && ctx.engine.apply_candles(candles, CandleSource::Repair).await.is_err() {
                    return;
                }
                match kind {
                    WindowKind::Gap => tracing::info!(product = %name, from, to, minutes = n, "repaired from REST"),
                    WindowKind::Backfill => {
                        tracing::debug!(product = %name, from, to, minutes = n, "backfilled from REST")
                    }
                }
                finish(&ctx, kind, &name, id, from, to).await;
            }
            Err(e) => {
                match kind {
                    WindowKind::Gap => ctx.stats.repair_failures.fetch_add(1, Relaxed),
                    WindowKind::Backfill => ctx.stats.backfill.failures.fetch_add(1, Relaxed),
                };
                if matches!(e, RestError::Throttled(_)) {
                    ctx.stats.rest_throttled.fetch_add(1, Relaxed);
                }
                if e.is_transient() {
                    {
                        let mut w = ctx.work.lock();
                        match kind {
                            WindowKind::Gap => w.gaps.add(id, from, to),
                            WindowKind::Backfill => w.backlog.put_back(id, from, to),
                        }
                    }
                    let delay = ctx
                        .config
                        .backoff_base
                        .saturating_mul(1 << failures.min(16))
                        .min(ctx.config.backoff_cap);
                    failures = failures.saturating_add(1);
                    tracing::warn!(product = %name, kind = kind.name(), error = %e, retry_in = ?delay,
                        "REST candles failed; will retry");
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                } else {
                    tracing::error!(product = %name, kind = kind.name(), from, to, error = %e,
                        "REST refused the candles; these minutes stay as received");
                    finish(&ctx, kind, &name, id, from, to).await;
                }
            }
        }
        ctx.stats
            .repairs_pending
            .store(ctx.work.lock().gaps.len() as u64, Relaxed);
    }
}

/// A window is done (applied, or given up): forget it, count the backfill's progress.
async fn finish(ctx: &Context, kind: WindowKind, name: &str, id: u32, from: i64, to: i64) {
    if kind == WindowKind::Backfill {
        ctx.stats.backfill.requests_done.fetch_add(1, Relaxed);
        let product_done = {
            let mut w = ctx.work.lock();
            w.backlog.finish(id) && w.planned.contains(&id)
        };
        if product_done {
            ctx.stats.backfill.done.fetch_add(1, Relaxed);
            if ctx.stats.backfill.finished() {
                (ctx.on_backfill_done)();
            }
        }
    }
    if let Some(log) = &ctx.log {
        log.done(name, from, to, kind);
    }
}
