//! History that matches the exchange's over the whole horizon: the minutes
//! fetched from REST and given to the engine as authoritative candles.
//!
//! - `windows`: the minutes waiting (gap windows, backfill pieces);
//! - `repair`: gaps the component reports → REST → the engine, and the
//!   backfill's pieces, gaps first;
//! - [`backfill`]: what a product has never stored, planned at start or once
//!   its live trades begin, recorded so a restart fetches only what it lacks;
//! - [`audit`]: stored candles compared with the exchange's, 1m corrected;
//! - [`stats`]: counters and reports.
//!
//! [`History::start`] runs it all beside the feed; every request goes through
//! the process's one [`crate::rest::Budget`].

pub mod audit;
pub mod backfill;
mod pending;
mod repair;
pub mod stats;
mod windows;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tokio::sync::{mpsc, watch};

pub use audit::AuditConfig;
pub use repair::RepairConfig;
pub use stats::HistoryStats;

use crate::engine::{EngineError, EngineHandle};
use crate::feed::LiveFrom;
use crate::horizon::Horizon;
use crate::rest::Rest;
use crate::storage::StorageError;
use crate::storage::coverage::CoverageLog;
use crate::storage::repairs::{RepairLog, WindowKind};
use crate::storage::restore::Restored;

/// How the history runs.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub horizon: Horizon,
    pub repair: RepairConfig,
    /// Fetch what the horizon lacks (the server always does; a test of the
    /// feed alone does not).
    pub backfill: bool,
    /// Compare stored candles with the exchange's (`None`: no audit).
    pub audit: Option<AuditConfig>,
}

/// Where the history is kept across restarts.
#[derive(Clone)]
pub struct HistoryStore {
    pub repairs: RepairLog,
    pub coverage: CoverageLog,
    /// The candles, for the audit.
    pub pool: deadpool_postgres::Pool,
    pub exchange: String,
}

impl HistoryStore {
    /// The tables of `exchange` in the database of `pool`.
    pub fn new(pool: deadpool_postgres::Pool, exchange: &str) -> Self {
        HistoryStore {
            repairs: RepairLog::new(pool.clone(), exchange),
            coverage: CoverageLog::new(pool.clone(), exchange),
            pool,
            exchange: exchange.to_string(),
        }
    }
}

/// Failure to start the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("reading what the last run left: {0}")]
    Storage(#[from] StorageError),
}

/// The running history.
pub struct History {
    stats: Arc<HistoryStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The gap listener: it ends when the engine's output closes.
    gaps: tokio::task::JoinHandle<()>,
    /// The writer of the pending windows' log: it ends after the tasks and
    /// the gap listener, once it has written what they sent.
    log_writer: Option<tokio::task::JoinHandle<()>>,
    audit_enabled: bool,
}

impl History {
    /// Resume the windows `store` holds, plan the backfill of `products`
    /// from what the restore found (`restored`) and from where the feed
    /// reports their live trades begin (`live`), and start repairing.
    pub async fn start(
        config: HistoryConfig,
        rest: Arc<Rest>,
        engine: EngineHandle,
        products: &[String],
        restored: &Restored,
        store: Option<HistoryStore>,
        live: mpsc::UnboundedReceiver<LiveFrom>,
    ) -> Result<History, HistoryError> {
        let stats = Arc::new(HistoryStats::default());
        let ids = engine.register_products(products).await?;
        let id_of: HashMap<&str, u32> = products.iter().map(String::as_str).zip(ids.iter().copied()).collect();
        let work = Arc::new(repair::Work::default());
        let now = crate::engine::now_ms();
        let horizon_start = config.horizon.start(now);
        stats.backfill.products.store(products.len() as u64, Relaxed);
        stats.backfill.started_ms.store(now, Relaxed);
        if let Some(store) = &store {
            let (mut gaps, mut pieces) = (0, 0);
            let pending = store.repairs.pending().await?;
            let mut w = work.lock();
            for r in pending {
                let Some(&id) = id_of.get(r.product_id.as_str()) else {
                    continue;
                };
                match r.kind {
                    WindowKind::Gap => {
                        w.gaps.add(id, r.from_minute.max(horizon_start), r.to_minute);
                        gaps += 1;
                    }
                    WindowKind::Backfill if config.backfill => {
                        w.backlog.add(id, r.from_minute, r.to_minute);
                        stats.backfill.requests.fetch_add(1, Relaxed);
                        pieces += 1;
                    }
                    WindowKind::Backfill => {}
                }
            }
            stats.repairs_pending.store(w.gaps.len() as u64, Relaxed);
            if gaps + pieces > 0 {
                tracing::info!(
                    gaps,
                    backfill_requests = pieces,
                    "resuming the windows the last run left"
                );
            }
        }
        let logged = Arc::new(AtomicBool::new(false));
        let done_stats = stats.clone();
        let on_backfill_done: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if logged.swap(true, Relaxed) {
                return;
            }
            let b = &done_stats.backfill;
            let now = crate::engine::now_ms();
            b.done_ms.store(now, Relaxed);
            tracing::info!(
                products = b.products.load(Relaxed),
                requests = b.requests_done.load(Relaxed),
                minutes = b.minutes.load(Relaxed),
                failures = b.failures.load(Relaxed),
                took_ms = now - b.started_ms.load(Relaxed),
                "backfill done: the horizon is complete for every product"
            );
        });
        let (stop, stopped) = watch::channel(false);
        let (log, log_writer) = match &store {
            Some(s) => {
                let (log, writer) = pending::PendingLog::spawn(s.repairs.clone());
                (Some(log), Some(writer))
            }
            None => (None, None),
        };
        let ctx = repair::Context {
            work: work.clone(),
            engine: engine.clone(),
            rest: rest.clone(),
            stats: stats.clone(),
            config: config.repair.clone(),
            horizon: config.horizon,
            log,
            on_backfill_done,
        };
        // The gap listener subscribes before any trade is sent.
        let outputs = engine.subscribe(1024).await?;
        let gaps = tokio::spawn(repair::listen(outputs, ctx.clone()));
        let mut tasks = vec![tokio::spawn(repair::work(
            ctx.clone(),
            WindowKind::Gap,
            stopped.clone(),
        ))];
        for _ in 0..config.repair.backfill_workers.max(1) {
            tasks.push(tokio::spawn(repair::work(
                ctx.clone(),
                WindowKind::Backfill,
                stopped.clone(),
            )));
        }

        if config.backfill {
            let covered = match &store {
                Some(s) => s.coverage.all().await?,
                None => HashMap::new(),
            };
            let now_minute = now.div_euclid(60_000) * 60;
            let mut now_plans = Vec::new();
            let mut awaiting = HashMap::new();
            let names = engine.products().clone();
            for (p, &id) in products.iter().zip(&ids) {
                let name = names.name(id).unwrap_or_else(|| Arc::from(p.as_str()));
                match backfill::plan(
                    horizon_start,
                    now_minute,
                    covered.get(p).copied(),
                    restored.products.get(p),
                    None,
                ) {
                    Some(plan) => now_plans.push((id, name, plan)),
                    None => {
                        awaiting.insert(id, name);
                    }
                }
            }
            tracing::info!(
                products = products.len(),
                known_from_the_restore = now_plans.len(),
                awaiting_their_first_trades = awaiting.len(),
                resumed_requests = stats.backfill.requests.load(Relaxed),
                horizon_start,
                "backfill started"
            );
            let planner = backfill::Planner {
                ctx: ctx.clone(),
                coverage: store.as_ref().map(|s| s.coverage.clone()),
                covered,
                awaiting,
            };
            planner.enqueue(now_plans).await;
            tasks.push(tokio::spawn(planner.run(
                restored.products.clone(),
                live,
                stopped.clone(),
            )));
        } else {
            let n = products.len() as u64;
            stats.backfill.planned.store(n, Relaxed);
            stats.backfill.done.store(n, Relaxed);
        }

        let audit_enabled = config.audit.is_some() && store.is_some();
        if let (Some(audit), Some(store)) = (config.audit, &store) {
            tasks.push(tokio::spawn(audit::run(
                audit::Auditor {
                    ctx: ctx.clone(),
                    pool: store.pool.clone(),
                    exchange: store.exchange.clone(),
                    config: audit,
                    products: products.iter().cloned().zip(ids.iter().copied()).collect(),
                },
                stopped.clone(),
            )));
        }
        Ok(History {
            stats,
            stop,
            tasks,
            gaps,
            log_writer,
            audit_enabled,
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<HistoryStats> {
        &self.stats
    }

    /// Whether an audit runs.
    pub fn audit_enabled(&self) -> bool {
        self.audit_enabled
    }

    /// Stop fetching; waits for those tasks. Returns the gap listener, which
    /// keeps recording the gaps the engine finds while it drains and ends
    /// once the engine has stopped, then has the log written: await it
    /// after [`crate::engine::Engine::shutdown`].
    pub async fn stop(self) -> tokio::task::JoinHandle<()> {
        let _ = self.stop.send(true);
        // A request in flight is abandoned (its window stays in the log for
        // the next start).
        for mut t in self.tasks {
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        let (gaps, log_writer) = (self.gaps, self.log_writer);
        tokio::spawn(async move {
            let _ = gaps.await;
            if let Some(writer) = log_writer {
                let _ = writer.await;
            }
        })
    }
}
