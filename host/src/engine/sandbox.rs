//! The wasmtime engine every component runs in, and the limits of its sandbox.
//!
//! - No WASI: the linker gives a component nothing. Imports from the `wasi:`
//!   namespace (Rust std links several even when unused) are stubs that trap
//!   when called; any other import refuses the component at load time.
//! - CPU: epoch interruption. A ticker thread advances the epoch every `tick`;
//!   each call gets a deadline of a number of ticks.
//! - Memory: `StoreLimits` caps linear memory; growing past it traps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

/// Limits applied to every component call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory cap per instance, bytes.
    pub memory_bytes: usize,
    /// CPU deadline for hot-path calls (ingest, apply, advance, render).
    pub call_timeout: Duration,
    /// CPU deadline for state calls (export, import), which scale with state size.
    pub state_timeout: Duration,
    /// Epoch granularity: deadlines are rounded up to whole ticks.
    pub tick: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            call_timeout: Duration::from_millis(250),
            state_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(10),
        }
    }
}

/// What a store holds for the host: only its limits.
pub struct HostState {
    limits: StoreLimits,
}

/// The shared wasmtime engine, its epoch ticker, and the limits.
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    stop: Arc<AtomicBool>,
}

impl Sandbox {
    /// Build the engine and start its epoch ticker.
    pub fn new(limits: Limits) -> anyhow::Result<Arc<Self>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.parallel_compilation(true);
        if std::env::var_os("SPOT_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let tick = limits.tick;
        let stop_ticker = stop.clone();
        std::thread::Builder::new().name("spot-epoch".into()).spawn(move || {
            while !stop_ticker.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })?;
        Ok(Arc::new(Sandbox { engine, limits, stop }))
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh store with the memory cap installed.
    pub fn new_store(&self) -> Store<HostState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .instances(32)
            .tables(32)
            .memories(8)
            .build();
        let mut store = Store::new(&self.engine, HostState { limits });
        store.limiter(|s| &mut s.limits);
        // What one call may hand the host (wasmtime's default is 128 MiB): as
        // much as the component may hold. An exported state of two days of
        // 900 products is ~300 MB; under the default it trapped on export.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        // Nothing runs until a call sets a real deadline.
        store.set_epoch_deadline(1);
        store
    }

    /// Ticks for a deadline of `d` (at least one).
    pub fn ticks(&self, d: Duration) -> u64 {
        let tick = self.limits.tick.as_nanos().max(1);
        (d.as_nanos().div_ceil(tick) as u64).max(1)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
