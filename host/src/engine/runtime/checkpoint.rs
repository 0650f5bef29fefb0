//! Checkpoints keep the journal short: every `checkpoint_every`, or once the
//! journal holds `checkpoint_bytes`, the state is exported and the entries it
//! covers are dropped.
//!
//! The export is built off the engine's thread: a checkpoint thread imports
//! the last checkpoint into a fresh instance of the active component, replays
//! a snapshot of the journal (shared buffers) and exports the state, on CPU
//! that nothing else wants (`SCHED_IDLE`). The
//! engine only takes the snapshot and, when the state comes back (a command,
//! in order with the inputs), drops the entries it covers: what arrived
//! meanwhile stays. An export on the engine's thread held every input behind
//! it for 60-80 ms with a day of 900 products, and for up to seconds when the
//! state had outgrown the last export's buffer (fresh pages to fault in). The
//! cost moves to spare CPU: an import and a replay per checkpoint (1-2 s of a
//! core with a day held at 100k trades/s: at the priority of the streams, it
//! took CPU from them and from the engine), and for that while a second copy
//! of the state (as a swap's build has). A machine with no CPU to spare
//! builds slowly; once the journal has grown by [`BEHIND`] times the size
//! that makes a checkpoint due since the build's snapshot, the engine exports
//! on its own thread after all, and the build stops at its next entry (its
//! copy of the state freed then, not beside the next build's). The replay
//! is the inputs' `ingest` once more: a small state (the last
//! checkpoint and the candles applied since under
//! `EngineConfig::checkpoint_in_place_below`) is exported on the engine's
//! thread instead, in a few milliseconds.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{Command, Runtime};

/// How many times `checkpoint_bytes` the journal may grow by, past what the
/// build's snapshot holds, before the engine stops waiting for the build.
/// Growth, not size, and a restore's entries do not count: a restore puts a
/// whole horizon in the journal (146 MB for a day of 900 products) while a
/// build is out, which is not the build falling behind the inputs. (Counted
/// by size, the first build after every start with a day held was given up
/// for an export on the engine's thread that held it about a second.)
const BEHIND: usize = 3;

/// A checkpoint being built off the engine's thread.
pub(super) struct PendingCheckpoint {
    /// The last entry its snapshot holds (which build this is).
    through: u64,
    /// The journal's epoch when its snapshot was taken.
    epoch: u64,
    /// When the snapshot was taken (the next checkpoint's time counts from it).
    since: Instant,
    /// What taking the snapshot held the engine.
    hold: Duration,
    /// The journal's bytes when the snapshot was taken, and those of the
    /// restore's entries since.
    bytes: usize,
    /// Set when the engine stops waiting for it: the build stops.
    given_up: Arc<AtomicBool>,
}

impl Runtime {
    /// Start a checkpoint when one is due and none is being built.
    pub(super) fn maybe_checkpoint(&mut self) {
        // A swap being prepared replays this journal: keep it whole until then.
        if self.swapping.is_some() {
            return;
        }
        if let Some(pending) = &self.checkpointing {
            let grown = self.journal.bytes().saturating_sub(pending.bytes);
            if grown >= BEHIND.saturating_mul(self.config.checkpoint_bytes) {
                // Its state is not taken when it comes back (`checkpoint_ready`).
                tracing::warn!(
                    journal_bytes = self.journal.bytes(),
                    "the checkpoint thread is far behind (no spare CPU); exporting on the engine's"
                );
                if let Some(p) = self.checkpointing.take() {
                    p.given_up.store(true, Relaxed);
                }
                self.checkpoint_here();
            }
            return;
        }
        if !self
            .journal
            .due(self.config.checkpoint_every, self.config.checkpoint_bytes)
        {
            return;
        }
        if self.journal.state_estimate() < self.config.checkpoint_in_place_below {
            self.checkpoint_here();
            return;
        }
        let started = Instant::now();
        let snapshot = self.journal.snapshot();
        let through = self.journal.last_seq();
        let (sandbox, settings, component) = (self.sandbox.clone(), self.settings, self.active.clone());
        let commands = self.commands.clone();
        let given_up = Arc::new(AtomicBool::new(false));
        let (stop, stats) = (given_up.clone(), self.stats.clone());
        let spawned = std::thread::Builder::new()
            .name("spot-checkpoint".into())
            .spawn(move || {
                idle_priority();
                let started = Instant::now();
                let build = || match snapshot.instance_unless(&sandbox, &component, settings, &stop)? {
                    Some(mut inst) => inst.export_state().map(Some),
                    None => Ok(None),
                };
                // A panic here would leave the engine waiting for this build.
                let state = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)) {
                    Ok(Ok(Some(state))) => Ok(state),
                    Ok(Ok(None)) => {
                        stats.checkpoint_builds_given_up.fetch_add(1, Relaxed);
                        Err("given up".to_string())
                    }
                    Ok(Err(f)) => Err(f.to_string()),
                    Err(_) => Err("the checkpoint thread panicked".to_string()),
                };
                if let Some(tx) = commands.upgrade() {
                    let _ = tx.blocking_send(Command::CheckpointReady {
                        state,
                        through,
                        built: started.elapsed(),
                    });
                }
            });
        match spawned {
            Ok(_) => {
                self.stats.checkpoint_builds.fetch_add(1, Relaxed);
                self.checkpointing = Some(PendingCheckpoint {
                    through,
                    epoch: self.journal.epoch(),
                    since: started,
                    hold: started.elapsed(),
                    bytes: self.journal.bytes(),
                    given_up,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a checkpoint thread; exporting on the engine's");
                self.checkpoint_here();
            }
        }
    }

    /// A restore's entry of `bytes` was journaled: not an input a pending
    /// build falls behind by.
    pub(super) fn restored(&mut self, bytes: usize) {
        if let Some(pending) = self.checkpointing.as_mut() {
            pending.bytes += bytes;
        }
    }

    /// A checkpoint thread is done: its state covers the journal up to
    /// `through`. Kept unless an entry was set aside meanwhile (the state may
    /// hold it; the next one is due at once). When the component could not
    /// build it there, it is exported here.
    pub(super) fn checkpoint_ready(&mut self, state: Result<Vec<u8>, String>, through: u64, built: Duration) {
        self.stats.checkpoint_builds_returned.fetch_add(1, Relaxed);
        // A build the engine stopped waiting for is not the one pending.
        let Some(pending) = self.checkpointing.take_if(|p| p.through == through) else {
            return;
        };
        match state {
            Ok(state) if pending.epoch == self.journal.epoch() => {
                let started = Instant::now();
                self.journal.rebase(state, through, pending.since);
                let hold = pending.hold + started.elapsed();
                self.stats.checkpoints.fetch_add(1, Relaxed);
                self.stats.last_checkpoint_us.store(hold.as_micros() as u64, Relaxed);
                self.stats
                    .last_checkpoint_build_us
                    .store(built.as_micros() as u64, Relaxed);
            }
            Ok(_) => {
                tracing::info!("a checkpoint built from before an entry was set aside is dropped; the next one is due");
            }
            Err(why) => {
                tracing::warn!(component = %self.active, error = %why,
                    "the checkpoint thread could not build the state; exporting on the engine's");
                self.checkpoint_here();
            }
        }
    }

    /// Export the state on the engine's thread: every input waits meanwhile.
    fn checkpoint_here(&mut self) {
        let started = Instant::now();
        let Some(inst) = self.instance.as_mut() else { return };
        match inst.export_state() {
            Ok(state) => {
                self.journal.reset(state);
                let took = started.elapsed().as_micros() as u64;
                self.stats.checkpoints.fetch_add(1, Relaxed);
                self.stats.last_checkpoint_us.store(took, Relaxed);
                self.stats.last_checkpoint_build_us.store(took, Relaxed);
            }
            Err(f) => {
                self.record_fault(&f, "state export failed; rebuilding");
                let _ = self.rebuild();
            }
        }
    }
}

/// Give the calling thread only CPU that no other thread wants
/// (`SCHED_IDLE`); where that is refused, it runs as it is.
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` outlives the call.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_IDLE refused");
    }
}
