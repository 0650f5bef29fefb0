//! `Journal`: the last good state of the active component (a checkpoint) and
//! every input applied since, numbered. Replaying it into a fresh instance of
//! any component of the contract gives the current state: that is how the
//! engine recovers from a fault and how a swap prepares the new component off
//! the engine thread.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use spot_wire::Outcome;

use super::bindings::{CandleSource, Product, Settings};
use super::error::Fault;
use super::instance::Instance;
use super::loader::LoadedComponent;
use super::sandbox::Sandbox;

/// One input as applied to a component.
pub(crate) enum Entry {
    Define(Vec<Product>),
    Trades(Vec<u8>),
    Candles(Vec<u8>, CandleSource),
    Advance(i64),
}

impl Entry {
    fn size(&self) -> usize {
        match self {
            Entry::Define(p) => p.iter().map(|p| p.name.len() + 8).sum(),
            Entry::Trades(b) | Entry::Candles(b, _) => b.len(),
            Entry::Advance(_) => 8,
        }
    }

    /// Of [`Entry::size`], the candles' bytes.
    fn candle_size(&self) -> usize {
        match self {
            Entry::Candles(b, _) => b.len(),
            _ => 0,
        }
    }

    /// Apply to an instance; `None` for inputs that produce no outcome.
    pub(crate) fn apply(&self, inst: &mut Instance) -> Result<Option<Outcome>, Fault> {
        match self {
            Entry::Define(p) => inst.define_products(p).map(|()| None),
            Entry::Trades(b) => inst.ingest(b).map(Some),
            Entry::Candles(b, s) => inst.apply_candles(b, *s).map(Some),
            Entry::Advance(t) => inst.advance(*t).map(Some),
        }
    }
}

/// A journaled input and its sequence number.
#[derive(Clone)]
pub(crate) struct Logged {
    pub seq: u64,
    pub entry: Arc<Entry>,
}

/// A checkpoint and the inputs applied after it.
pub(crate) struct Journal {
    checkpoint: Arc<Vec<u8>>,
    entries: Vec<Logged>,
    bytes: usize,
    /// Of `bytes`, those of candles (a restore or a repair: minutes the
    /// state gains, where trades mostly change minutes it has).
    candle_bytes: usize,
    since: Instant,
    next_seq: u64,
    /// Changes when entries are taken out other than by a checkpoint (set
    /// aside on a replay, or all of them by [`Journal::reset`]): a checkpoint
    /// built from a snapshot of an older epoch may hold what was set aside.
    epoch: u64,
}

/// A copy of the journal that another thread can replay (cheap: shared buffers).
pub(crate) struct Snapshot {
    pub checkpoint: Arc<Vec<u8>>,
    pub entries: Vec<Logged>,
}

impl Snapshot {
    /// A fresh instance of `component`, configured, holding the state this
    /// snapshot gives (the checkpoint imported, every entry replayed).
    pub(crate) fn instance(
        &self,
        sandbox: &Sandbox,
        component: &LoadedComponent,
        settings: Settings,
    ) -> Result<Instance, Fault> {
        let mut inst = Instance::new(sandbox, component)?;
        inst.configure(settings)?;
        replay(&self.checkpoint, &self.entries, &mut inst).map_err(|(_, f)| f)?;
        Ok(inst)
    }

    /// [`Snapshot::instance`], unless `stop` is set before it is done (looked
    /// at after the import and before each entry): then `None`, and the
    /// instance's memory is freed at once.
    pub(crate) fn instance_unless(
        &self,
        sandbox: &Sandbox,
        component: &LoadedComponent,
        settings: Settings,
        stop: &AtomicBool,
    ) -> Result<Option<Instance>, Fault> {
        let mut inst = Instance::new(sandbox, component)?;
        inst.configure(settings)?;
        inst.import_state(&self.checkpoint)?;
        for l in &self.entries {
            if stop.load(Relaxed) {
                return Ok(None);
            }
            l.entry.apply(&mut inst)?;
        }
        Ok((!stop.load(Relaxed)).then_some(inst))
    }
}

/// Apply `entries` in order; on a fault, the index of the failing entry.
pub(crate) fn apply_all(entries: &[Logged], inst: &mut Instance) -> Result<(), (usize, Fault)> {
    for (i, l) in entries.iter().enumerate() {
        l.entry.apply(inst).map_err(|f| (i, f))?;
    }
    Ok(())
}

/// Import `checkpoint`, then apply `entries`; on a fault, the failing entry's
/// index (`None`: the checkpoint itself).
fn replay(checkpoint: &[u8], entries: &[Logged], inst: &mut Instance) -> Result<(), (Option<usize>, Fault)> {
    inst.import_state(checkpoint).map_err(|f| (None, f))?;
    apply_all(entries, inst).map_err(|(i, f)| (Some(i), f))
}

impl Journal {
    /// A journal starting from `checkpoint`.
    pub(crate) fn new(checkpoint: Vec<u8>) -> Self {
        Journal {
            checkpoint: Arc::new(checkpoint),
            entries: Vec::new(),
            bytes: 0,
            candle_bytes: 0,
            since: Instant::now(),
            next_seq: 1,
            epoch: 0,
        }
    }

    /// A new checkpoint covers every entry so far.
    pub(crate) fn reset(&mut self, checkpoint: Vec<u8>) {
        self.checkpoint = Arc::new(checkpoint);
        self.entries.clear();
        self.bytes = 0;
        self.candle_bytes = 0;
        self.since = Instant::now();
        self.epoch += 1;
    }

    /// A checkpoint built elsewhere from a snapshot taken at `since` covers
    /// the entries up to `through`; the ones after stay.
    pub(crate) fn rebase(&mut self, checkpoint: Vec<u8>, through: u64, since: Instant) {
        let covered = self.entries.partition_point(|l| l.seq <= through);
        for l in self.entries.drain(..covered) {
            self.bytes -= l.entry.size();
            self.candle_bytes -= l.entry.candle_size();
        }
        self.checkpoint = Arc::new(checkpoint);
        self.since = since;
    }

    /// See the `epoch` field.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Record an applied input.
    pub(crate) fn push(&mut self, entry: Entry) {
        self.bytes += entry.size();
        self.candle_bytes += entry.candle_size();
        self.entries.push(Logged {
            seq: self.next_seq,
            entry: Arc::new(entry),
        });
        self.next_seq += 1;
    }

    /// The entries' bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Is it time for a new checkpoint?
    pub(crate) fn due(&self, every: std::time::Duration, max_bytes: usize) -> bool {
        self.since.elapsed() >= every || self.bytes >= max_bytes
    }

    pub(crate) fn checkpoint(&self) -> &[u8] {
        &self.checkpoint
    }

    /// About how large the next checkpoint will be: the last one and the
    /// candles applied since (a restore is not checkpointed until it is
    /// whole, so after one the last checkpoint says nothing of the state).
    pub(crate) fn state_estimate(&self) -> usize {
        self.checkpoint.len() + self.candle_bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A replayable copy.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            checkpoint: self.checkpoint.clone(),
            entries: self.entries.clone(),
        }
    }

    /// Entries applied after `seq`, in order (cheap to clone: shared).
    pub(crate) fn after(&self, seq: u64) -> &[Logged] {
        let from = self.entries.partition_point(|l| l.seq <= seq);
        &self.entries[from..]
    }

    /// The newest input, if any.
    pub(crate) fn last(&self) -> Option<Arc<Entry>> {
        self.entries.last().map(|l| l.entry.clone())
    }

    /// Sequence number of the last entry pushed (0: none yet).
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Replay into `inst`; on a fault, returns the index of the failing entry.
    pub(crate) fn replay_into(&self, inst: &mut Instance) -> Result<(), (Option<usize>, Fault)> {
        replay(&self.checkpoint, &self.entries, inst)
    }

    /// Drop the entry at `i` (it faults on replay).
    pub(crate) fn remove(&mut self, i: usize) {
        let l = self.entries.remove(i);
        self.bytes -= l.entry.size();
        self.candle_bytes -= l.entry.candle_size();
        self.epoch += 1;
    }
}
