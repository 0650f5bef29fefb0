//! The engine task: the one owner of the active component instance.
//!
//! It takes commands from a bounded channel, in order, on a dedicated thread
//! (component calls are synchronous CPU work and must not block tokio workers),
//! and hands every outcome, with its rendered elements, to each subscriber.
//!
//! Recovery: the runtime keeps the last exported state (a checkpoint) and a
//! journal of every input applied since. When a call faults, the instance is
//! discarded, a fresh one is rebuilt from checkpoint + journal, and the input is
//! tried once more; if it faults again it is set aside (quarantined) and counted.
//! A journal entry that faults during a rebuild is set aside the same way.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spot_wire::{Candle, Outcome, Trade, encode_all};
use tokio::sync::{mpsc, oneshot};

use super::bindings::{CandleSource, Product, Settings};
use super::element;
use super::error::{EngineError, Fault};
use super::instance::Instance;
use super::journal::{Entry, Journal, Snapshot, apply_all};
use super::loader::LoadedComponent;
use super::products::Products;
use super::sandbox::Sandbox;
use super::shadow::{Shadow, ShadowReport};
use super::stats::{ComponentSummary, Stats, Status};
use super::{CandleUpdate, Cause, EngineConfig, EngineOutput, GapReport, SwapReport};

/// A consumer called on the engine's thread with every output, in order. It
/// must be quick and never block (the hub: a lock and a few mailbox puts).
pub type OutputSink = Box<dyn Fn(&Arc<EngineOutput>) + Send>;

/// What the engine is asked to do.
pub(crate) enum Command {
    Define(Vec<(u32, Arc<str>)>),
    Trades(Vec<Trade>),
    Candles {
        candles: Vec<Candle>,
        source: CandleSource,
        done: oneshot::Sender<Result<(), EngineError>>,
    },
    Advance(i64),
    Subscribe(mpsc::Sender<Arc<EngineOutput>>),
    Attach(OutputSink),
    Swap {
        component: Arc<LoadedComponent>,
        done: oneshot::Sender<Result<SwapReport, EngineError>>,
    },
    /// Swap back to the previous component.
    Rollback(oneshot::Sender<Result<SwapReport, EngineError>>),
    /// Run `component` beside the active one for `run_for`, comparing.
    Shadow {
        component: Arc<LoadedComponent>,
        run_for: Duration,
        done: oneshot::Sender<Result<SwapReport, EngineError>>,
    },
    /// The shadow's findings.
    ShadowStatus(oneshot::Sender<Option<ShadowReport>>),
    /// Stop the shadow; returns its component (to swap in, or to drop).
    EndShadow(oneshot::Sender<Option<Arc<LoadedComponent>>>),
    ExportState(oneshot::Sender<Result<Vec<u8>, EngineError>>),
    Status(oneshot::Sender<Status>),
    Barrier(oneshot::Sender<()>),
    /// A swap's new instance, built off the engine thread from a journal snapshot.
    SwapReady {
        result: Result<Box<Instance>, Fault>,
        through: u64,
        prepare: std::time::Duration,
    },
    /// Stop after everything queued before it; later commands are refused.
    Stop,
}

pub(crate) struct Runtime {
    sandbox: Arc<Sandbox>,
    config: EngineConfig,
    settings: Settings,
    active: Arc<LoadedComponent>,
    previous: Option<Arc<LoadedComponent>>,
    /// The active component came in by a swap and has not been rolled back:
    /// a fault sends the engine back to `previous`.
    swapped_in: bool,
    instance: Option<Instance>,
    journal: Journal,
    subscribers: Vec<mpsc::Sender<Arc<EngineOutput>>>,
    sinks: Vec<OutputSink>,
    products: Arc<Products>,
    stats: Arc<Stats>,
    last_fault: Option<String>,
    pending: Option<Command>,
    swapping: Option<PendingSwap>,
    shadow: Option<Shadow>,
    /// For swap builders to report back without keeping the engine alive.
    commands: mpsc::WeakSender<Command>,
    /// The active component's sha256, for whoever records it.
    active_tx: tokio::sync::watch::Sender<String>,
    /// Outputs that had an element refused (to log the 1st, 2nd, 4th...).
    unsafe_batches: u64,
}

/// A swap whose new instance is being built.
struct PendingSwap {
    component: Arc<LoadedComponent>,
    done: oneshot::Sender<Result<SwapReport, EngineError>>,
    /// Catch-up rounds run so far, and the time they took off-thread.
    rounds: u32,
    prepare: Duration,
    /// Going back to the previous component (counted as a rollback).
    rollback: bool,
    /// Not a swap: start a shadow run of this length with the new instance.
    shadow: Option<Duration>,
}

/// A swap's builder catches up again while more than this many inputs arrived
/// during its last round...
const CATCH_UP_TAIL: usize = 4;
/// ...at most this many times (under a saturating feed it would not converge);
/// then the engine replays the rest itself.
const CATCH_UP_ROUNDS: u32 = 4;

impl Runtime {
    /// A runtime with a first instance of `component`, configured and checkpointed.
    pub(crate) fn new(
        sandbox: Arc<Sandbox>,
        config: EngineConfig,
        component: Arc<LoadedComponent>,
        products: Arc<Products>,
        stats: Arc<Stats>,
        commands: mpsc::WeakSender<Command>,
        active_tx: tokio::sync::watch::Sender<String>,
    ) -> Result<Self, EngineError> {
        let settings = config.settings();
        let fault = |fault| EngineError::Fault {
            component: component.to_string(),
            fault,
        };
        let mut inst = Instance::new(&sandbox, &component).map_err(fault)?;
        inst.configure(settings).map_err(fault)?;
        if config.clock.is_some() {
            // Tell the time before any input: a component that has never been
            // told it would report every bucket it holds (a whole restored day)
            // as newly complete on its first `advance`.
            inst.advance(super::now_ms()).map_err(fault)?;
        }
        let checkpoint = inst.export_state().map_err(fault)?;
        let journal = Journal::new(checkpoint);
        Ok(Runtime {
            sandbox,
            config,
            settings,
            active: component,
            previous: None,
            swapped_in: false,
            instance: Some(inst),
            journal,
            subscribers: Vec::new(),
            sinks: Vec::new(),
            products,
            stats,
            last_fault: None,
            pending: None,
            swapping: None,
            shadow: None,
            commands,
            active_tx,
            unsafe_batches: 0,
        })
    }

    /// Process commands until told to stop or every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let cmd = match self.pending.take() {
                Some(c) => c,
                None => match rx.blocking_recv() {
                    Some(c) => c,
                    None => break,
                },
            };
            match cmd {
                Command::Trades(first) => {
                    // Coalesce queued trade batches into one call: the boundary
                    // crossing is per call, the work per trade.
                    let mut parts = vec![first];
                    let mut total = parts[0].len();
                    while total < self.config.max_batch {
                        match rx.try_recv() {
                            Ok(Command::Trades(more)) => {
                                total += more.len();
                                parts.push(more);
                            }
                            Ok(other) => {
                                self.pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.stats.trades.fetch_add(total as u64, Relaxed);
                    self.trades(parts);
                }
                Command::Define(products) => {
                    let products = products
                        .into_iter()
                        .map(|(id, n)| Product {
                            id,
                            name: n.to_string(),
                        })
                        .collect();
                    let _ = self.input(Entry::Define(products), Cause::Trades);
                }
                Command::Candles { candles, source, done } => {
                    let cause = match source {
                        CandleSource::Repair => Cause::Repair,
                        CandleSource::Restore => Cause::Restore,
                    };
                    let r = self.input(Entry::Candles(encode_all(&candles), source), cause);
                    let _ = done.send(r);
                }
                Command::Advance(now) => {
                    let _ = self.input(Entry::Advance(now), Cause::Clock);
                }
                Command::Subscribe(tx) => self.subscribers.push(tx),
                Command::Attach(sink) => self.sinks.push(sink),
                Command::Swap { component, done } => self.begin_swap(component, done, false),
                Command::Shadow {
                    component,
                    run_for,
                    done,
                } => {
                    if self.swapping.is_some() {
                        let _ = done.send(Err(EngineError::Busy("a swap is in progress".into())));
                    } else {
                        self.begin_swap(component, done, false);
                        if let Some(p) = self.swapping.as_mut() {
                            p.shadow = Some(run_for);
                        }
                    }
                }
                Command::ShadowStatus(done) => {
                    let _ = done.send(self.shadow.as_ref().map(Shadow::report));
                }
                Command::EndShadow(done) => {
                    let _ = done.send(self.shadow.take().map(|s| s.component));
                }
                Command::Rollback(done) => match self.previous.clone() {
                    Some(previous) => self.begin_swap(previous, done, true),
                    None => {
                        let _ = done.send(Err(EngineError::Busy("there is no previous component".into())));
                    }
                },
                Command::SwapReady {
                    result,
                    through,
                    prepare,
                } => self.finish_swap(result, through, prepare),
                Command::ExportState(done) => {
                    let _ = done.send(self.export());
                }
                Command::Status(done) => {
                    let _ = done.send(self.status());
                }
                Command::Barrier(done) => {
                    let _ = done.send(());
                }
                Command::Stop => break,
            }
        }
        tracing::info!("engine stopped");
    }

    /// Apply coalesced trade batches as one call. If that faults, apply them one
    /// by one, so only the batch that really faults is set aside.
    fn trades(&mut self, parts: Vec<Vec<Trade>>) {
        if parts.len() == 1 {
            let _ = self.input(Entry::Trades(encode_all(&parts[0])), Cause::Trades);
            return;
        }
        let merged = Entry::Trades(encode_all(&parts.concat()));
        match self.attempt(&merged) {
            Ok(outcome) => self.applied(merged, outcome, Cause::Trades),
            Err(fault) => {
                self.record_fault(
                    &fault,
                    "coalesced batch failed; rebuilding and applying its parts one by one",
                );
                if self.rebuild().is_ok() {
                    for part in parts {
                        let _ = self.input(Entry::Trades(encode_all(&part)), Cause::Trades);
                    }
                }
            }
        }
    }

    fn fault(&self, fault: Fault) -> EngineError {
        EngineError::Fault {
            component: self.active.to_string(),
            fault,
        }
    }

    /// Apply one input, recovering from a fault; emit what it produced.
    fn input(&mut self, entry: Entry, cause: Cause) -> Result<(), EngineError> {
        let result = self.attempt(&entry);
        let outcome = match result {
            Ok(o) => o,
            Err(first) => {
                self.record_fault(&first, "input failed; rebuilding the instance and retrying once");
                if self.swapped_in {
                    self.roll_back_after(&first)?;
                } else {
                    self.rebuild()?;
                }
                match self.attempt(&entry) {
                    Ok(o) => o,
                    Err(second) => {
                        self.record_fault(&second, "input failed twice; set aside");
                        self.stats.quarantined.fetch_add(1, Relaxed);
                        self.rebuild()?;
                        return Err(self.fault(second));
                    }
                }
            }
        };
        self.applied(entry, outcome, cause);
        Ok(())
    }

    /// Record a successfully applied input and emit what it produced.
    fn applied(&mut self, entry: Entry, outcome: Option<Outcome>, cause: Cause) {
        self.stats.batches.fetch_add(1, Relaxed);
        if let Some(shadow) = self.shadow.as_mut() {
            let products = &self.products;
            shadow.follow(&entry, outcome.as_ref(), |id| {
                products
                    .name(id)
                    .map_or_else(|| format!("product {id}"), |n| n.to_string())
            });
        }
        self.journal.push(entry);
        if let Some(outcome) = outcome {
            self.emit(outcome, cause);
        }
        // A restore comes in chunks of a whole horizon: a checkpoint after
        // each would export a growing state again and again (tens of times
        // for two days of 900 products); the next other input takes one.
        if cause != Cause::Restore {
            self.maybe_checkpoint();
        }
    }

    /// One call into the active instance; its time counts as component time.
    fn attempt(&mut self, entry: &Entry) -> Result<Option<Outcome>, Fault> {
        let started = Instant::now();
        let r = match self.instance.as_mut() {
            Some(inst) => entry.apply(inst),
            None => Err(Fault::Poisoned),
        };
        let took = started.elapsed();
        self.stats.call_nanos.fetch_add(took.as_nanos() as u64, Relaxed);
        self.stats.call_seconds.observe(took.as_secs_f64());
        r
    }

    fn record_fault(&mut self, fault: &Fault, what: &str) {
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
    fn roll_back_after(&mut self, fault: &Fault) -> Result<(), EngineError> {
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
    fn rebuild(&mut self) -> Result<(), EngineError> {
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

    fn broken(&mut self, fault: Fault) -> EngineError {
        tracing::error!(component = %self.active, fault = %fault, "component cannot be rebuilt");
        self.last_fault = Some(format!("{}: cannot rebuild: {fault}", self.active));
        EngineError::Broken(format!("{} cannot be rebuilt: {fault}", self.active))
    }

    fn maybe_checkpoint(&mut self) {
        // A swap being prepared replays this journal: keep it whole until then.
        if self.swapping.is_some()
            || !self
                .journal
                .due(self.config.checkpoint_every, self.config.checkpoint_bytes)
        {
            return;
        }
        let started = Instant::now();
        let Some(inst) = self.instance.as_mut() else { return };
        match inst.export_state() {
            Ok(state) => {
                self.journal.reset(state);
                self.stats.checkpoints.fetch_add(1, Relaxed);
                self.stats
                    .last_checkpoint_us
                    .store(started.elapsed().as_micros() as u64, Relaxed);
            }
            Err(f) => {
                self.record_fault(&f, "state export failed; rebuilding");
                let _ = self.rebuild();
            }
        }
    }

    /// Render the outcome's candles and hand it to every subscriber.
    fn emit(&mut self, outcome: Outcome, cause: Cause) {
        self.stats.updates.fetch_add(outcome.updates.len() as u64, Relaxed);
        self.stats.gaps.fetch_add(outcome.gaps.len() as u64, Relaxed);
        self.stats.duplicates.fetch_add(outcome.duplicates as u64, Relaxed);
        self.stats.ignored.fetch_add(outcome.ignored as u64, Relaxed);
        if cause == Cause::Trades {
            let late = outcome.updates.iter().filter(|c| c.complete).count();
            self.stats.late_revisions.fetch_add(late as u64, Relaxed);
        }
        if outcome.updates.is_empty() && outcome.gaps.is_empty() {
            return;
        }
        let elements = if outcome.updates.is_empty() {
            Vec::new()
        } else {
            let packed = encode_all(&outcome.updates);
            match self.instance.as_mut().map(|i| i.render(&packed)) {
                Some(Ok(e)) => e,
                Some(Err(f)) => {
                    self.stats.render_failures.fetch_add(1, Relaxed);
                    self.record_fault(&f, "render failed; candles go out without elements");
                    let _ = self.rebuild();
                    vec![String::new(); outcome.updates.len()]
                }
                None => vec![String::new(); outcome.updates.len()],
            }
        };
        let name = |id: u32| {
            self.products
                .name(id)
                .unwrap_or_else(|| Arc::from(format!("product-{id}")))
        };
        let mut refused: Option<(usize, String)> = None;
        let updates = outcome
            .updates
            .into_iter()
            .zip(elements)
            .map(|(candle, mut element)| {
                let product = name(candle.product);
                // A component is untrusted and its element goes into every
                // viewer's page: only the contract's shape gets through.
                if !element.is_empty() {
                    let g = candle.granularity.name();
                    if let Err(why) = element::check(element.as_bytes(), &product, g) {
                        let (n, _) = refused.get_or_insert_with(|| (0, format!("{product}-{g}: {why}")));
                        *n += 1;
                        element.clear();
                    }
                }
                CandleUpdate {
                    product,
                    candle,
                    // (A String's buffer becomes the Bytes: no copy.)
                    element: Bytes::from(element),
                }
            })
            .collect();
        let gaps = outcome
            .gaps
            .into_iter()
            .map(|gap| GapReport {
                product: name(gap.product),
                gap,
            })
            .collect();
        let out = Arc::new(EngineOutput {
            cause,
            updates,
            gaps,
            duplicates: outcome.duplicates,
            ignored: outcome.ignored,
        });
        // Sinks first: they take the output here, without a hop to another thread.
        for sink in &self.sinks {
            sink(&out);
        }
        // Backpressure: a subscriber that is behind holds the engine (and so the
        // feed) back; subscribers conflate, so they are never behind for long.
        self.subscribers.retain(|s| s.blocking_send(out.clone()).is_ok());
        if let Some((n, first)) = refused {
            self.refused_elements(n, first);
        }
    }

    /// Elements that failed [`element::check`] went out empty (the candles
    /// still reach storage and streams). Logged at the 1st, 2nd, 4th, 8th...
    /// batch with some; a component that came in by a swap is rolled back.
    fn refused_elements(&mut self, n: usize, first: String) {
        let before = self.stats.unsafe_elements.fetch_add(n as u64, Relaxed);
        self.unsafe_batches += 1;
        if self.unsafe_batches.is_power_of_two() {
            tracing::warn!(component = %self.active, refused = n, total = before + n as u64, first = %first,
                "the component rendered elements that may not reach a browser; sent without them");
        }
        if self.swapped_in {
            let fault = Fault::Malformed(format!("unsafe element {first}"));
            if let Err(e) = self.roll_back_after(&fault) {
                tracing::error!(error = %e, "rolling back after unsafe elements failed");
            }
        }
    }

    fn export(&mut self) -> Result<Vec<u8>, EngineError> {
        let r = match self.instance.as_mut() {
            Some(inst) => inst.export_state(),
            None => Err(Fault::Poisoned),
        };
        r.map_err(|f| self.fault(f))
    }

    /// Start a swap: build an instance of `component` from a journal snapshot
    /// on another thread while this one keeps applying inputs.
    fn begin_swap(
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
        let build = move || {
            let mut inst = Instance::new(&sandbox, &target)?;
            inst.configure(settings)?;
            snapshot.replay_into(&mut inst)?;
            Ok(inst)
        };
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
    fn spawn_builder(
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
    fn finish_swap(&mut self, result: Result<Box<Instance>, Fault>, through: u64, prepare: Duration) {
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
        self.stats.last_swap_pause_us.store(pause.as_micros() as u64, Relaxed);
        tracing::info!(from = %old, to = %self.active, pause_us = pause.as_micros() as u64,
            prepare_ms = pending.prepare.as_secs_f64() * 1e3, rounds = pending.rounds + 1, "component swapped");
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

    fn status(&self) -> Status {
        Status {
            active: ComponentSummary::of(&self.active),
            previous: self.previous.as_deref().map(ComponentSummary::of),
            healthy: self.instance.is_some(),
            last_fault: self.last_fault.clone(),
            journal_entries: self.journal.len(),
            checkpoint_bytes: self.journal.checkpoint().len(),
            stats: self.stats.snapshot(),
        }
    }
}
