//! The engine: runs the aggregation component in a sandbox and owns it.
//!
//! - [`sandbox`]: the wasmtime engine, CPU deadline (epoch) and memory cap;
//! - [`loader`]: compile (cached), contract and import checks, smoke call;
//! - [`instance`]: one live instance and its typed, fault-classifying calls;
//! - `runtime`: the engine thread (inputs in order, recovery, swap, fan-out);
//! - `journal`: checkpoint + inputs since, replayed to rebuild or to swap;
//! - [`products`]: product names ↔ ids;
//! - [`element`]: the shape an element must have to reach a browser;
//! - [`smoke`]: the golden run a component passes before a swap;
//! - [`stats`]: counters and status.
//!
//! [`Engine::start`] spawns the engine thread and returns an [`EngineHandle`]
//! that the feed, storage, HTTP and tests use.

mod bindings;
pub mod element;
pub mod error;
pub mod instance;
mod journal;
pub mod loader;
pub mod products;
mod runtime;
pub mod sandbox;
mod shadow;
pub mod smoke;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

pub use bindings::{CandleSource, Product, Settings};
use bytes::Bytes;
pub use error::{EngineError, Fault, LoadError};
pub use loader::{CONTRACT_VERSION, LoadedComponent, Loader};
pub use products::Products;
pub use runtime::OutputSink;
pub use sandbox::{Limits, Sandbox};
pub use shadow::ShadowReport;
use spot_wire::{Candle, Gap, Trade};
pub use stats::{ComponentSummary, Stats, StatsSnapshot, Status, TradeStage};
use tokio::sync::{mpsc, oneshot};

use runtime::{Command, Runtime};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A bucket is complete this long after its end.
    pub grace: Duration,
    /// Minutes are kept this long after their UTC day completes.
    pub retention: Duration,
    /// Capacity of the input queue (commands), the feed's backpressure.
    pub queue: usize,
    /// Queued trade batches are merged into one call up to this many trades.
    pub max_batch: usize,
    /// Export a checkpoint at least this often...
    pub checkpoint_every: Duration,
    /// ...or when the journal since the last one holds this many bytes.
    pub checkpoint_bytes: usize,
    /// A state whose last checkpoint and the candles applied since are smaller
    /// than this is exported on the engine's thread; a larger one is built on another (see
    /// `runtime/checkpoint.rs`). At about 0.5 ms per MB, 8 MB holds the
    /// engine a few ms: less than the replay of the journal that a build
    /// costs the other core (0.4-0.6 s per checkpoint at 100-150k trades/s).
    pub checkpoint_in_place_below: usize,
    /// Tell the component the time this often (`None`: only when asked).
    pub clock: Option<Duration>,
}

impl EngineConfig {
    /// The rules the component is configured with.
    pub fn settings(&self) -> Settings {
        Settings {
            grace_ms: self.grace.as_millis().min(u32::MAX as u128) as u32,
            retention_ms: self.retention.as_millis().min(u32::MAX as u128) as u32,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            grace: Duration::from_secs(5),
            retention: Duration::from_secs(3600),
            queue: 256,
            max_batch: 4096,
            checkpoint_every: Duration::from_secs(30),
            checkpoint_bytes: 32 << 20,
            checkpoint_in_place_below: 8 << 20,
            clock: Some(Duration::from_secs(1)),
        }
    }
}

/// Why an output was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Trades,
    Repair,
    Restore,
    Clock,
    /// Another instance's candles, rendered for this one's streams.
    Fleet,
}

/// One candle update with the element the component rendered for it.
#[derive(Debug, Clone)]
pub struct CandleUpdate {
    pub product: Arc<str>,
    pub candle: Candle,
    /// The `<spot-candle>` element (empty if the component failed to render):
    /// the component's UTF-8, shared by every consumer without copies.
    pub element: Bytes,
}

/// A trade-id jump the component reported.
#[derive(Debug, Clone)]
pub struct GapReport {
    pub product: Arc<str>,
    pub gap: Gap,
}

/// What one input produced (or a piece of it: see `more`); shared by every
/// subscriber.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    pub cause: Cause,
    pub updates: Vec<CandleUpdate>,
    pub gaps: Vec<GapReport>,
    pub duplicates: u32,
    pub ignored: u32,
    /// More pieces of the same input follow (a large outcome of live trades
    /// goes out in pieces); the engine is rendering the next meanwhile.
    pub more: bool,
}

/// The result of a swap.
#[derive(Debug, Clone)]
pub struct SwapReport {
    pub from: String,
    pub to: String,
    /// Time the engine processed nothing (replaying the inputs that arrived
    /// while the new instance was prepared, and the switch).
    pub pause: Duration,
    /// Time spent preparing the new instance off the engine thread.
    pub prepare: Duration,
}

/// A duration in µs, to the ns (a swap's pause is often below 1 µs), for
/// answers and logs.
pub fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e3
}

/// A duration in ms, to the µs (no float noise like 0.45546200000000003).
pub fn millis(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e3).round() / 1e3
}

/// The running engine.
pub struct Engine {
    handle: EngineHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    clock: Option<tokio::task::JoinHandle<()>>,
}

/// A cheap, cloneable way to talk to the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    products: Arc<Products>,
    stats: Arc<Stats>,
    active: tokio::sync::watch::Receiver<String>,
}

impl Engine {
    /// Start the engine thread with `component` active. Must be called inside a
    /// tokio runtime when `config.clock` is set.
    pub fn start(
        sandbox: Arc<Sandbox>,
        config: EngineConfig,
        component: Arc<LoadedComponent>,
    ) -> Result<Self, EngineError> {
        let products = Arc::new(Products::default());
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let (active_tx, active) = tokio::sync::watch::channel(component.sha256.clone());
        let clock_every = config.clock;
        let runtime = Runtime::new(
            sandbox,
            config,
            component,
            products.clone(),
            stats.clone(),
            tx.downgrade(),
            active_tx,
        )?;
        let thread = std::thread::Builder::new()
            .name("spot-engine".into())
            .spawn(move || runtime.run(rx))
            .map_err(|e| EngineError::Broken(format!("cannot start the engine thread: {e}")))?;
        let handle = EngineHandle {
            tx,
            products,
            stats,
            active,
        };
        let clock = clock_every.map(|every| {
            let h = handle.clone();
            tokio::spawn(async move {
                // The runtime told the time at start; the next tick is one period on.
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if h.advance(now_ms()).await.is_err() {
                        break;
                    }
                }
            })
        });
        Ok(Engine {
            handle,
            thread: Some(thread),
            clock,
        })
    }

    /// A handle to the engine.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Finish every queued input, then stop the engine thread and wait for it.
    /// Handles still held elsewhere get [`EngineError::Stopped`] from then on.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.clock.take() {
            c.abort();
        }
        let _ = self.handle.send(Command::Stop).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(c) = self.clock.take() {
            c.abort();
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl EngineHandle {
    async fn send(&self, cmd: Command) -> Result<(), EngineError> {
        self.tx.send(cmd).await.map_err(|_| EngineError::Stopped)
    }

    async fn ask<R>(&self, cmd: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.send(cmd(tx)).await?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Register product names; returns their ids (new ones are told to the component).
    pub async fn register_products(&self, names: &[String]) -> Result<Vec<u32>, EngineError> {
        let (ids, fresh) = self.products.register(names);
        if !fresh.is_empty() {
            self.send(Command::Define(fresh)).await?;
        }
        Ok(ids)
    }

    /// The product registry.
    pub fn products(&self) -> &Arc<Products> {
        &self.products
    }

    /// The active component's sha256; changes on every swap and rollback
    /// (also the engine's own, after a fault).
    pub fn active(&self) -> tokio::sync::watch::Receiver<String> {
        self.active.clone()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Queue a batch of trades (waits while the queue is full).
    pub async fn trades(&self, trades: Vec<Trade>) -> Result<(), EngineError> {
        self.trades_received(trades, std::time::Instant::now()).await
    }

    /// Queue a batch of trades that arrived at `received` (the feed's read of
    /// its frame): the wait from then to the batch's call is counted in
    /// [`Stats::trade_nanos`].
    pub async fn trades_received(&self, trades: Vec<Trade>, received: std::time::Instant) -> Result<(), EngineError> {
        self.send(Command::Trades(trades, received)).await
    }

    /// Apply authoritative 1-minute candles and wait until they are applied.
    pub async fn apply_candles(&self, candles: Vec<Candle>, source: CandleSource) -> Result<(), EngineError> {
        self.ask(|done| Command::Candles { candles, source, done }).await?
    }

    /// Render other instances' candles (their `product` ids registered here)
    /// and hand them to this instance's consumers as a [`Cause::Fleet`]
    /// output: the state does not change, the writer skips them.
    pub async fn render(&self, candles: Vec<Candle>) -> Result<(), EngineError> {
        self.send(Command::Render(candles)).await
    }

    /// Tell the component the time.
    pub async fn advance(&self, now_ms: i64) -> Result<(), EngineError> {
        self.send(Command::Advance(now_ms)).await
    }

    /// Receive every output from now on. The engine waits for a full receiver,
    /// so a subscriber must keep up (or conflate).
    pub async fn subscribe(&self, capacity: usize) -> Result<mpsc::Receiver<Arc<EngineOutput>>, EngineError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.send(Command::Subscribe(tx)).await?;
        Ok(rx)
    }

    /// Call `sink` with every output from now on, on the engine's thread, in
    /// order: no queue and no thread hop between the engine and the sink. For
    /// consumers whose work per output is a few microseconds and never waits.
    pub async fn attach(&self, sink: OutputSink) -> Result<(), EngineError> {
        self.send(Command::Attach(sink)).await
    }

    /// Make `component` active, handing over the state between two inputs.
    pub async fn swap(&self, component: Arc<LoadedComponent>) -> Result<SwapReport, EngineError> {
        self.ask(|done| Command::Swap { component, done }).await?
    }

    /// Make the previous component active again, handing over the state.
    pub async fn rollback(&self) -> Result<SwapReport, EngineError> {
        self.ask(Command::Rollback).await?
    }

    /// Make `component` what a rollback returns to, unless there is one
    /// already (at start: the previous component before the restart).
    pub async fn remember_previous(&self, component: Arc<LoadedComponent>) -> Result<(), EngineError> {
        self.send(Command::Previous(component)).await
    }

    /// Run `component` beside the active one on the same inputs for `run_for`
    /// and compare their candles (see [`EngineHandle::shadow_status`]).
    pub async fn shadow(&self, component: Arc<LoadedComponent>, run_for: Duration) -> Result<SwapReport, EngineError> {
        self.ask(|done| Command::Shadow {
            component,
            run_for,
            done,
        })
        .await?
    }

    /// The shadow run's findings, if there is one.
    pub async fn shadow_status(&self) -> Result<Option<ShadowReport>, EngineError> {
        self.ask(Command::ShadowStatus).await
    }

    /// End the shadow run; its component, if there was one.
    pub async fn end_shadow(&self) -> Result<Option<Arc<LoadedComponent>>, EngineError> {
        self.ask(Command::EndShadow).await
    }

    /// The active component's state in the canonical format.
    pub async fn export_state(&self) -> Result<Vec<u8>, EngineError> {
        self.ask(Command::ExportState).await?
    }

    /// Components, health and counters.
    pub async fn status(&self) -> Result<Status, EngineError> {
        self.ask(Command::Status).await
    }

    /// Wait until every command sent before this one has been processed.
    pub async fn barrier(&self) -> Result<(), EngineError> {
        self.ask(Command::Barrier).await
    }
}
