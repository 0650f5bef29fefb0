//! Engine counters (lock-free, read by metrics) and the status report.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use super::loader::LoadedComponent;

/// Counters the engine thread updates and anyone may read.
#[derive(Default, Debug)]
pub struct Stats {
    pub batches: AtomicU64,
    pub trades: AtomicU64,
    pub updates: AtomicU64,
    pub gaps: AtomicU64,
    pub duplicates: AtomicU64,
    pub ignored: AtomicU64,
    pub faults: AtomicU64,
    pub rebuilds: AtomicU64,
    pub quarantined: AtomicU64,
    pub render_failures: AtomicU64,
    /// Elements refused by [`super::element::check`] (sent without them).
    pub unsafe_elements: AtomicU64,
    pub swaps: AtomicU64,
    /// Returns to the previous component (asked for, or after a fault).
    pub rollbacks: AtomicU64,
    /// Rollbacks the engine did on its own: the swapped-in component faulted.
    pub auto_rollbacks: AtomicU64,
    /// The engine's pause of the last swap, ns.
    pub last_swap_pause_ns: AtomicU64,
    pub checkpoints: AtomicU64,
    /// What the last checkpoint held the engine (a snapshot of the journal,
    /// and dropping the entries it covers), µs.
    pub last_checkpoint_us: AtomicU64,
    /// What building the last checkpoint took (off the engine's thread: an
    /// import, a replay and an export), µs.
    pub last_checkpoint_build_us: AtomicU64,
    /// Checkpoint builds started off the engine's thread, and those that came
    /// back (taken or not: the engine may have stopped waiting for one).
    pub checkpoint_builds: AtomicU64,
    pub checkpoint_builds_returned: AtomicU64,
    /// Builds that stopped before their export because the engine had
    /// stopped waiting for them (their memory freed then).
    pub checkpoint_builds_given_up: AtomicU64,
    /// Total wall time spent in component calls applying inputs, ns.
    pub call_nanos: AtomicU64,
    /// The wall time of each such call, seconds.
    pub call_seconds: crate::histogram::Histogram,
    /// Where the trades' time went inside the engine, summed over trades (a
    /// batch's time counts once per trade in it), ns, by [`TradeStage`]:
    /// divided by `trades`, each is a trade's mean time in that stage.
    pub trade_nanos: [AtomicU64; TradeStage::ALL.len()],
    /// Updates of buckets that were already complete, from trades that came
    /// late (a candle-quality signal; repairs are counted by the feed).
    pub late_revisions: AtomicU64,
    /// Other instances' candles rendered for this one's streams.
    pub fleet_rendered: AtomicU64,
    faults_by_kind: Mutex<BTreeMap<&'static str, u64>>,
}

/// A stage of a trade's way through the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStage {
    /// From the feed's read of its frame to its call: parsing, the queue, and
    /// the calls before it.
    Queue = 0,
    /// The component's `ingest` call (and the journal entry, and a
    /// checkpoint when one is due).
    Ingest = 1,
    /// Rendering the changed candles and checking their elements.
    Render = 2,
    /// Handing the output out: the sinks (the hub's mailbox puts and its own
    /// socket writes) and the subscribers' queues (the writer's).
    Publish = 3,
}

impl TradeStage {
    /// Every stage, in the order a trade goes through them.
    pub const ALL: [TradeStage; 4] = [
        TradeStage::Queue,
        TradeStage::Ingest,
        TradeStage::Render,
        TradeStage::Publish,
    ];

    /// The name used in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            TradeStage::Queue => "queue",
            TradeStage::Ingest => "ingest",
            TradeStage::Render => "render",
            TradeStage::Publish => "publish",
        }
    }
}

impl Stats {
    /// Count `took` for each of `trades` trades in `stage`.
    pub(crate) fn trade_time(&self, stage: TradeStage, trades: u64, took: std::time::Duration) {
        self.trade_nanos[stage as usize].fetch_add(trades * took.as_nanos() as u64, Relaxed);
    }

    /// The summed time of `stage` (see [`Stats::trade_nanos`]).
    pub fn trade_nanos(&self, stage: TradeStage) -> u64 {
        self.trade_nanos[stage as usize].load(Relaxed)
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub batches: u64,
    pub trades: u64,
    pub updates: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub faults: u64,
    pub faults_by_kind: BTreeMap<&'static str, u64>,
    pub rebuilds: u64,
    pub quarantined: u64,
    pub render_failures: u64,
    pub unsafe_elements: u64,
    pub swaps: u64,
    pub rollbacks: u64,
    pub auto_rollbacks: u64,
    /// The engine's pause of the last swap, ns.
    pub last_swap_pause_ns: u64,
    pub checkpoints: u64,
    pub last_checkpoint_us: u64,
    pub last_checkpoint_build_us: u64,
    pub checkpoint_builds: u64,
    pub checkpoint_builds_returned: u64,
    pub checkpoint_builds_given_up: u64,
    pub call_nanos: u64,
    pub late_revisions: u64,
    pub fleet_rendered: u64,
}

impl Stats {
    pub(crate) fn count_fault(&self, kind: &'static str) {
        let mut m = self.faults_by_kind.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(kind).or_default() += 1;
    }

    /// Read every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            batches: self.batches.load(Relaxed),
            trades: self.trades.load(Relaxed),
            updates: self.updates.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            ignored: self.ignored.load(Relaxed),
            faults: self.faults.load(Relaxed),
            faults_by_kind: self.faults_by_kind.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            rebuilds: self.rebuilds.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            render_failures: self.render_failures.load(Relaxed),
            unsafe_elements: self.unsafe_elements.load(Relaxed),
            swaps: self.swaps.load(Relaxed),
            rollbacks: self.rollbacks.load(Relaxed),
            auto_rollbacks: self.auto_rollbacks.load(Relaxed),
            last_swap_pause_ns: self.last_swap_pause_ns.load(Relaxed),
            checkpoints: self.checkpoints.load(Relaxed),
            last_checkpoint_us: self.last_checkpoint_us.load(Relaxed),
            last_checkpoint_build_us: self.last_checkpoint_build_us.load(Relaxed),
            checkpoint_builds: self.checkpoint_builds.load(Relaxed),
            checkpoint_builds_returned: self.checkpoint_builds_returned.load(Relaxed),
            checkpoint_builds_given_up: self.checkpoint_builds_given_up.load(Relaxed),
            call_nanos: self.call_nanos.load(Relaxed),
            late_revisions: self.late_revisions.load(Relaxed),
            fleet_rendered: self.fleet_rendered.load(Relaxed),
        }
    }
}

/// Who a component is, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSummary {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub loaded_at: SystemTime,
}

impl ComponentSummary {
    pub(crate) fn of(c: &LoadedComponent) -> Self {
        ComponentSummary {
            name: c.name.clone(),
            version: c.version.clone(),
            sha256: c.sha256.clone(),
            loaded_at: c.loaded_at,
        }
    }
}

/// The engine's state as reported to operators.
#[derive(Debug, Clone)]
pub struct Status {
    pub active: ComponentSummary,
    pub previous: Option<ComponentSummary>,
    /// A working instance exists.
    pub healthy: bool,
    pub last_fault: Option<String>,
    pub journal_entries: usize,
    pub checkpoint_bytes: usize,
    pub stats: StatsSnapshot,
}
