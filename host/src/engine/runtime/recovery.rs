//! Recovery: a faulted instance is discarded and rebuilt from the checkpoint
//! and the journal of inputs since; a swapped-in component that faults is
//! rolled back.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::Runtime;
use crate::engine::error::{EngineError, Fault};
use crate::engine::instance::Instance;

impl Runtime {
    pub(super) fn record_fault(&mut self, fault: &Fault, what: &str) {
        self.stats.faults.fetch_add(1, Relaxed);
        self.stats.count_fault(fault.kind());
        tracing::warn!(component = %self.active, fault = %fault, kind = fault.kind(), "{what}");
        self.last_fault = Some(format!("{}: {fault}", self.active));
        // A faulted instance is never entered again.
        self.instance = None;
    }

    /// The swapped-in component faulted: make the previous one active again and
    /// rebuild its state from checkpoint + journal (the canonical state format
    /// is the same for both).
    pub(super) fn roll_back_after(&mut self, fault: &Fault) -> Result<(), EngineError> {
        let Some(previous) = self.previous.take() else {
            return self.rebuild();
        };
        let faulty = std::mem::replace(&mut self.active, previous);
        self.previous = Some(faulty.clone());
        self.swapped_in = false;
        self.stats.rollbacks.fetch_add(1, Relaxed);
        self.stats.auto_rollbacks.fetch_add(1, Relaxed);
        tracing::error!(faulty = %faulty, back_to = %self.active, fault = %fault,
            "the swapped-in component faulted; rolled back");
        self.last_fault = Some(format!("{faulty}: {fault}; rolled back to {}", self.active));
        let _ = self.active_tx.send(self.active.sha256.clone());
        self.rebuild()
    }

    /// A fresh instance of the active component from checkpoint + journal.
    /// Journal entries that fault are set aside; gives up only if the component
    /// cannot even take the checkpoint.
    pub(super) fn rebuild(&mut self) -> Result<(), EngineError> {
        self.stats.rebuilds.fetch_add(1, Relaxed);
        let started = Instant::now();
        loop {
            let mut inst = Instance::new(&self.sandbox, &self.active).map_err(|f| self.broken(f))?;
            inst.configure(self.settings).map_err(|f| self.broken(f))?;
            match self.journal.replay_into(&mut inst) {
                Ok(()) => {
                    tracing::info!(component = %self.active, replayed = self.journal.len(),
                        took_ms = started.elapsed().as_secs_f64() * 1e3, "instance rebuilt");
                    self.instance = Some(inst);
                    return Ok(());
                }
                Err((None, f)) => return Err(self.broken(f)),
                Err((Some(i), f)) => {
                    tracing::warn!(component = %self.active, fault = %f, "journal entry failed on replay; set aside");
                    self.stats.quarantined.fetch_add(1, Relaxed);
                    self.journal.remove(i);
                }
            }
        }
    }

    pub(super) fn broken(&mut self, fault: Fault) -> EngineError {
        tracing::error!(component = %self.active, fault = %fault, "component cannot be rebuilt");
        self.last_fault = Some(format!("{}: cannot rebuild: {fault}", self.active));
        EngineError::Broken(format!("{} cannot be rebuilt: {fault}", self.active))
    }
}
