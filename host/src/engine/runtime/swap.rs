//! Swap: the new instance is built from a journal snapshot on a builder
//! thread while the engine keeps applying inputs, catches up in rounds, and
//! is switched in between two inputs (only the last replay pauses the engine).
//! A shadow run starts the same way.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Command, Runtime};
use crate::engine::SwapReport;
use crate::engine::error::{EngineError, Fault};
use crate::engine::instance::Instance;
use crate::engine::journal::{Snapshot, apply_all};
use crate::engine::loader::LoadedComponent;
use crate::engine::shadow::Shadow;

/// A swap whose new instance is being built.
pub(super) struct PendingSwap {
    pub(super) component: Arc<LoadedComponent>,
    pub(super) done: oneshot::Sender<Result<SwapReport, EngineError>>,
    /// Catch-up rounds run so far, and the time they took off-thread.
    pub(super) rounds: u32,
    pub(super) prepare: Duration,
    /// Going back to the previous component (counted as a rollback).
    pub(super) rollback: bool,
    /// Not a swap: start a shadow run of this length with the new instance.
    pub(super) shadow: Option<Duration>,
}

/// A swap's builder catches up again while more than this many inputs arrived
/// during its last round...
const CATCH_UP_TAIL: usize = 4;
/// ...at most this many times (under a saturating feed it would not converge);
/// then the engine replays the rest itself.
const CATCH_UP_ROUNDS: u32 = 4;

impl Runtime {
    /// Start a swap: build an instance of `component` from a journal snapshot
    /// on another thread while this one keeps applying inputs.
    pub(super) fn begin_swap(
        &mut self,
        component: Arc<LoadedComponent>,
        done: oneshot::Sender<Result<SwapReport, EngineError>>,
        rollback: bool,
    ) {
        if self.swapping.is_some() {
            let _ = done.send(Err(EngineError::Busy("a swap is already in progress".into())));
            return;
        }
        let snapshot: Snapshot = self.journal.snapshot();
        let (sandbox, settings, target) = (self.sandbox.clone(), self.settings, component.clone());
        let build = move || snapshot.instance(&sandbox, &target, settings);
        let through = self.journal.last_seq();
        match self.spawn_builder(through, build) {
            Ok(()) => {
                self.swapping = Some(PendingSwap {
                    component,
                    done,
                    rounds: 0,
                    prepare: Duration::ZERO,
                    rollback,
                    shadow: None,
                })
            }
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    }

    /// Run `build` on a builder thread; it reports back with `SwapReady`.
    pub(super) fn spawn_builder(
        &self,
        through: u64,
        build: impl FnOnce() -> Result<Instance, Fault> + Send + 'static,
    ) -> Result<(), EngineError> {
        let commands = self.commands.clone();
        std::thread::Builder::new()
            .name("spot-swap".into())
            .spawn(move || {
                let started = Instant::now();
                let result = build();
                if let Some(tx) = commands.upgrade() {
                    let _ = tx.blocking_send(Command::SwapReady {
                        result: result.map(Box::new),
                        through,
                        prepare: started.elapsed(),
                    });
                }
            })
            .map(|_| ())
            .map_err(|e| EngineError::Busy(format!("cannot start the swap builder: {e}")))
    }

    /// The builder is done with a round. If many inputs arrived meanwhile, send
    /// it back to catch up on them; otherwise replay the few left here, between
    /// two inputs, and switch. Only that last replay pauses the engine.
    pub(super) fn finish_swap(&mut self, result: Result<Box<Instance>, Fault>, through: u64, prepare: Duration) {
        let Some(mut pending) = self.swapping.take() else {
            return;
        };
        pending.prepare += prepare;
        let component = pending.component.clone();
        let refuse = |fault: Fault| EngineError::Fault {
            component: component.to_string(),
            fault,
        };
        let mut fresh = match result {
            Ok(inst) => *inst,
            Err(f) => {
                tracing::warn!(component = %component, fault = %f, "swap refused: the new component cannot take the state");
                let _ = pending.done.send(Err(refuse(f)));
                return;
            }
        };
        let tail = self.journal.after(through);
        if tail.len() > CATCH_UP_TAIL && pending.rounds < CATCH_UP_ROUNDS {
            pending.rounds += 1;
            let tail = tail.to_vec();
            let build = move || {
                apply_all(&tail, &mut fresh).map_err(|(_, f)| f)?;
                Ok(fresh)
            };
            match self.spawn_builder(self.journal.last_seq(), build) {
                Ok(()) => self.swapping = Some(pending),
                Err(e) => {
                    let _ = pending.done.send(Err(e));
                }
            }
            return;
        }
        let started = Instant::now();
        if let Err((_, f)) = apply_all(tail, &mut fresh) {
            tracing::warn!(component = %component, fault = %f, "swap refused: the new component failed an input");
            let _ = pending.done.send(Err(refuse(f)));
            return;
        }
        if let Some(run_for) = pending.shadow {
            tracing::info!(component = %component, seconds = run_for.as_secs(), "shadow run started");
            self.shadow = Some(Shadow::new(component.clone(), fresh, run_for));
            let report = SwapReport {
                from: self.active.to_string(),
                to: component.to_string(),
                pause: started.elapsed(),
                prepare: pending.prepare,
            };
            let _ = pending.done.send(Ok(report));
            return;
        }
        let old_instance = self.instance.replace(fresh);
        let pause = started.elapsed();
        let old = std::mem::replace(&mut self.active, component);
        self.previous = Some(old.clone());
        self.swapped_in = !pending.rollback;
        if pending.rollback {
            self.stats.rollbacks.fetch_add(1, Relaxed);
        } else {
            self.stats.swaps.fetch_add(1, Relaxed);
        }
        self.stats.last_swap_pause_ns.store(pause.as_nanos() as u64, Relaxed);
        tracing::info!(from = %old, to = %self.active, pause_us = crate::engine::micros(pause),
            prepare_ms = crate::engine::millis(pending.prepare), rounds = pending.rounds + 1, "component swapped");
        let report = SwapReport {
            from: old.to_string(),
            to: self.active.to_string(),
            pause,
            prepare: pending.prepare,
        };
        let _ = self.active_tx.send(self.active.sha256.clone());
        let _ = pending.done.send(Ok(report));
        // Freeing a large store takes time: not on the engine thread.
        if let Some(old_instance) = old_instance {
            let _ = std::thread::Builder::new()
                .name("spot-drop".into())
                .spawn(move || drop(old_instance));
        }
    }
}
