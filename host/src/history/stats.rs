//! The history's counters, read by `/metrics`, `/readyz`, `/api/audit` and tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::Serialize;
use spot_wire::Granularity;

/// Gap repair, backfill and audit counters.
#[derive(Debug, Default)]
pub struct HistoryStats {
    /// Trade-id gaps reported by the component (repair requests).
    pub gaps: AtomicU64,
    /// Repair requests that succeeded, and the minutes they applied.
    pub repairs: AtomicU64,
    pub repaired_minutes: AtomicU64,
    /// Repair requests that failed (and will be retried unless refused).
    pub repair_failures: AtomicU64,
    /// Repair windows waiting (or in flight).
    pub repairs_pending: AtomicU64,
    /// 429/401 answers to any request.
    pub rest_throttled: AtomicU64,
    pub backfill: BackfillStats,
    pub audit: AuditStats,
}

/// The backfill's progress.
#[derive(Debug, Default)]
pub struct BackfillStats {
    /// Products served.
    pub products: AtomicU64,
    /// Products whose span to fetch is known (at start, or once their live
    /// trades began).
    pub planned: AtomicU64,
    /// Products with nothing left to fetch.
    pub done: AtomicU64,
    /// Requests planned (pieces of ≤ 300 minutes), done, and failed (retried).
    pub requests: AtomicU64,
    pub requests_done: AtomicU64,
    pub failures: AtomicU64,
    /// Minutes with trades the exchange returned and the engine applied.
    pub minutes: AtomicU64,
    /// When the backfill began and (once) ended, unix ms (0: not yet).
    pub started_ms: AtomicI64,
    pub done_ms: AtomicI64,
}

impl BackfillStats {
    /// Every product planned and none with anything left.
    pub fn finished(&self) -> bool {
        let products = self.products.load(Relaxed);
        self.planned.load(Relaxed) == products && self.done.load(Relaxed) == products
    }

    /// What `/readyz` shows.
    pub fn progress(&self) -> BackfillProgress {
        let requests = self.requests.load(Relaxed);
        let done = self.requests_done.load(Relaxed);
        BackfillProgress {
            done: self.finished(),
            products: self.products.load(Relaxed),
            products_planned: self.planned.load(Relaxed),
            products_done: self.done.load(Relaxed),
            requests_done: done,
            requests_pending: requests.saturating_sub(done),
            minutes: self.minutes.load(Relaxed),
        }
    }
}

/// The backfill's progress as `/readyz` shows it (it never makes an
/// instance unready: it serves while it backfills).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackfillProgress {
    pub done: bool,
    pub products: u64,
    pub products_planned: u64,
    pub products_done: u64,
    pub requests_done: u64,
    pub requests_pending: u64,
    pub minutes: u64,
}

/// What the audit compared, per granularity.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct AuditCounts {
    /// Buckets compared (stored, exchange's, or both).
    pub checked: u64,
    /// The exchange has it, the store does not.
    pub missing: u64,
    /// The store has it, the exchange does not.
    pub extra: u64,
    /// Both have it with other values.
    pub value: u64,
    /// Corrected from the exchange's candle (1m only).
    pub corrected: u64,
}

impl AuditCounts {
    /// Buckets that differed in any way.
    pub fn mismatched(&self) -> u64 {
        self.missing + self.extra + self.value
    }

    fn add(&mut self, o: &AuditCounts) {
        self.checked += o.checked;
        self.missing += o.missing;
        self.extra += o.extra;
        self.value += o.value;
        self.corrected += o.corrected;
    }
}

/// One difference, as logged (a few are kept for `/api/audit`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    pub product: String,
    pub granularity: &'static str,
    pub start: i64,
    /// `missing`, `extra` or `value`.
    pub kind: &'static str,
    /// `o h l c v` of each side, when it has the bucket.
    pub stored: Option<String>,
    pub exchange: Option<String>,
    pub corrected: bool,
}

/// The audit's findings: totals since start, the pass under way, the last
/// completed pass.
#[derive(Debug, Default)]
pub struct AuditStats {
    inner: Mutex<AuditInner>,
}

#[derive(Debug, Default, Clone)]
struct AuditInner {
    total: [AuditCounts; 8],
    current: [AuditCounts; 8],
    last: Option<Pass>,
    passes: u64,
    pass_started_ms: i64,
    products_done: u64,
    recent: Vec<Mismatch>,
}

/// A completed pass.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Pass {
    pub started_at: i64,
    pub completed_at: i64,
    pub products: u64,
    pub granularities: Vec<GranularityCounts>,
}

/// Counts of one granularity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GranularityCounts {
    pub granularity: &'static str,
    #[serde(flatten)]
    pub counts: AuditCounts,
}

/// What `GET /api/audit` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    pub enabled: bool,
    /// Passes completed since start.
    pub passes: u64,
    /// Unix seconds of the end of the last completed pass.
    pub last_pass_completed_at: Option<i64>,
    pub last_pass: Option<Pass>,
    /// The pass under way: products done so far and what they showed.
    pub current: Option<CurrentPass>,
    /// Since start.
    pub totals: Vec<GranularityCounts>,
    /// The latest differences (at most 20).
    pub recent_mismatches: Vec<Mismatch>,
}

/// The pass under way.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CurrentPass {
    pub started_at: i64,
    pub products_done: u64,
    pub granularities: Vec<GranularityCounts>,
}

const RECENT: usize = 20;

fn by_granularity(c: &[AuditCounts; 8]) -> Vec<GranularityCounts> {
    Granularity::ALL
        .iter()
        .map(|g| GranularityCounts {
            granularity: g.name(),
            counts: c[g.index()],
        })
        .collect()
}

impl AuditStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuditInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pass begins at `now_ms`.
    pub fn begin_pass(&self, now_ms: i64) {
        let mut i = self.lock();
        i.current = Default::default();
        i.pass_started_ms = now_ms;
        i.products_done = 0;
    }

    /// One product's comparison at `g`.
    pub fn record(&self, g: Granularity, counts: AuditCounts) {
        let mut i = self.lock();
        i.total[g.index()].add(&counts);
        i.current[g.index()].add(&counts);
    }

    /// One difference, kept among the recent ones.
    pub fn mismatch(&self, m: Mismatch) {
        let mut i = self.lock();
        if i.recent.len() == RECENT {
            i.recent.remove(0);
        }
        i.recent.push(m);
    }

    /// A product of the pass is done.
    pub fn product_done(&self) {
        self.lock().products_done += 1;
    }

    /// The pass is complete at `now_ms`.
    pub fn end_pass(&self, now_ms: i64) {
        let mut i = self.lock();
        i.passes += 1;
        i.last = Some(Pass {
            started_at: i.pass_started_ms.div_euclid(1000),
            completed_at: now_ms.div_euclid(1000),
            products: i.products_done,
            granularities: by_granularity(&i.current),
        });
        i.pass_started_ms = 0;
    }

    /// Totals since start, per granularity (index = granularity index).
    pub fn totals(&self) -> [AuditCounts; 8] {
        self.lock().total
    }

    /// Passes completed, and the end of the last one (unix s).
    pub fn passes(&self) -> (u64, Option<i64>) {
        let i = self.lock();
        (i.passes, i.last.as_ref().map(|p| p.completed_at))
    }

    /// The whole report.
    pub fn report(&self, enabled: bool) -> AuditReport {
        let i = self.lock().clone();
        AuditReport {
            enabled,
            passes: i.passes,
            last_pass_completed_at: i.last.as_ref().map(|p| p.completed_at),
            last_pass: i.last,
            current: (i.pass_started_ms != 0).then(|| CurrentPass {
                started_at: i.pass_started_ms.div_euclid(1000),
                products_done: i.products_done,
                granularities: by_granularity(&i.current),
            }),
            totals: by_granularity(&i.total),
            recent_mismatches: i.recent,
        }
    }
}
