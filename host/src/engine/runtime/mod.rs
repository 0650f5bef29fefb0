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
//!
//! - this file: the commands and the loop that applies them, in order;
//! - [`recovery`]: faults, rebuilds from checkpoint + journal;
//! - [`checkpoint`]: new checkpoints, built off the thread;
//! - [`swap`]: a new instance built off the thread, then switched between
//!   two inputs (also how a shadow run starts);
//! - [`emit`]: rendering an outcome, checking its elements, handing it out.

mod checkpoint;
mod emit;
mod recovery;
mod swap;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use spot_wire::{Candle, Outcome, Trade, encode_all};
use tokio::sync::{mpsc, oneshot};

use super::bindings::{CandleSource, Product, Settings};
use super::error::{EngineError, Fault};
use super::instance::Instance;
use super::journal::{Entry, Journal};
use super::loader::LoadedComponent;
use super::products::Products;
use super::sandbox::Sandbox;
use super::shadow::{Shadow, ShadowReport};
use super::stats::{ComponentSummary, Stats, Status};
use super::{Cause, EngineConfig, EngineOutput, SwapReport, TradeStage};
use checkpoint::PendingCheckpoint;
use swap::PendingSwap;

/// A consumer called on the engine's thread with every output, in order. It
/// must be quick and never block (the hub: a lock and a few mailbox puts).
pub type OutputSink = Box<dyn Fn(&Arc<EngineOutput>) + Send>;

/// What the engine is asked to do.
pub(crate) enum Command {
    Define(Vec<(u32, Arc<str>)>),
    /// Trades, and when the feed read their frame.
    Trades(Vec<Trade>, Instant),
    Candles {
        candles: Vec<Candle>,
        source: CandleSource,
        done: oneshot::Sender<Result<(), EngineError>>,
    },
    Advance(i64),
    /// Render other instances' candles (see [`Runtime::render_fleet`]).
    Render(Vec<Candle>),
    Subscribe(mpsc::Sender<Arc<EngineOutput>>),
    Attach(OutputSink),
    Swap {
        component: Arc<LoadedComponent>,
        done: oneshot::Sender<Result<SwapReport, EngineError>>,
    },
    /// Swap back to the previous component.
    Rollback(oneshot::Sender<Result<SwapReport, EngineError>>),
    /// What a rollback returns to, when there is nothing yet (the one before
    /// a restart).
    Previous(Arc<LoadedComponent>),
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
        prepare: Duration,
    },
    /// A checkpoint built off the engine thread: the state after the journal's
    /// entries up to `through`.
    CheckpointReady {
        /// The state, or why the thread could not build it.
        state: Result<Vec<u8>, String>,
        through: u64,
        built: Duration,
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
    checkpointing: Option<PendingCheckpoint>,
    shadow: Option<Shadow>,
    /// For swap builders and checkpoint threads to report back without keeping the engine alive.
    commands: mpsc::WeakSender<Command>,
    /// The active component's sha256, for whoever records it.
    active_tx: tokio::sync::watch::Sender<String>,
    /// Outputs that had an element refused (to log the 1st, 2nd, 4th...).
    unsafe_batches: u64,
    /// What the emits since the last reset spent rendering and publishing.
    timing: EmitTiming,
}

/// Time [`Runtime::emit`] spent, summed over calls.
#[derive(Debug, Default, Clone, Copy)]
struct EmitTiming {
    /// Rendering and checking elements.
    render: Duration,
    /// Sinks and subscribers.
    publish: Duration,
}

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
            checkpointing: None,
            shadow: None,
            commands,
            active_tx,
            unsafe_batches: 0,
            timing: EmitTiming::default(),
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
                Command::Trades(first, received) => {
                    // Coalesce queued trade batches into one call: the boundary
                    // crossing is per call, the work per trade.
                    let mut total = first.len();
                    let mut parts = vec![(first, received)];
                    while total < self.config.max_batch {
                        match rx.try_recv() {
                            Ok(Command::Trades(more, received)) => {
                                total += more.len();
                                parts.push((more, received));
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
                Command::Render(candles) => self.render_fleet(candles),
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
                    } else if let Some(running) = &self.shadow {
                        // Never replaced in silence: its findings would be lost.
                        let _ = done.send(Err(EngineError::Busy(format!(
                            "a shadow run of {} is there already: confirm it (POST /admin/component/shadow/confirm) \
                             or stop it (DELETE /admin/component/shadow) first",
                            running.component
                        ))));
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
                Command::Previous(component) => {
                    if self.previous.is_none() && component.sha256 != self.active.sha256 {
                        self.previous = Some(component);
                    }
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
                Command::CheckpointReady { state, through, built } => self.checkpoint_ready(state, through, built),
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

    /// Apply coalesced trade batches (each with when its frame was read) as
    /// one call. If that faults, apply them one by one, so only the batch
    /// that really faults is set aside.
    fn trades(&mut self, parts: Vec<(Vec<Trade>, Instant)>) {
        let started = Instant::now();
        let mut total = 0;
        for (trades, received) in &parts {
            let n = trades.len() as u64;
            total += n;
            self.stats
                .trade_time(TradeStage::Queue, n, started.saturating_duration_since(*received));
        }
        self.timing = EmitTiming::default();
        if parts.len() == 1 {
            let _ = self.input(Entry::Trades(encode_all(&parts[0].0)), Cause::Trades);
        } else {
            let merged: Vec<Trade> = parts.iter().flat_map(|(t, _)| t.iter().copied()).collect();
            self.coalesced(Entry::Trades(encode_all(&merged)), parts);
        }
        let timing = std::mem::take(&mut self.timing);
        let ingest = started.elapsed().saturating_sub(timing.render + timing.publish);
        self.stats.trade_time(TradeStage::Ingest, total, ingest);
        self.stats.trade_time(TradeStage::Render, total, timing.render);
        self.stats.trade_time(TradeStage::Publish, total, timing.publish);
    }

    /// Apply a coalesced batch; on a fault, its parts one by one.
    fn coalesced(&mut self, merged: Entry, parts: Vec<(Vec<Trade>, Instant)>) {
        match self.attempt(&merged) {
            Ok(outcome) => self.applied(merged, outcome, Cause::Trades),
            Err(fault) => {
                self.record_fault(
                    &fault,
                    "coalesced batch failed; rebuilding and applying its parts one by one",
                );
                if self.rebuild().is_ok() {
                    for (part, _) in parts {
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
        // Journaled before it is emitted: emitting may roll the component
        // back, which replays the journal (this input included).
        let before = self.journal.bytes();
        self.journal.push(entry);
        if cause == Cause::Restore {
            self.restored(self.journal.bytes() - before);
        }
        let for_shadow = self.shadow.as_ref().and_then(|_| self.journal.last());
        let out = outcome.map(|outcome| self.emit(outcome, cause)).unwrap_or_default();
        // The shadow takes the input after the active one, and compares
        // with what went out.
        if let (Some(shadow), Some(entry)) = (self.shadow.as_mut(), for_shadow) {
            let products = &self.products;
            shadow.follow(&entry, &out, |id| {
                products
                    .name(id)
                    .map_or_else(|| format!("product {id}"), |n| n.to_string())
            });
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

    fn export(&mut self) -> Result<Vec<u8>, EngineError> {
        let r = match self.instance.as_mut() {
            Some(inst) => inst.export_state(),
            None => Err(Fault::Poisoned),
        };
        r.map_err(|f| self.fault(f))
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
