//! `Instance`: one live component instance, its store, and typed calls that
//! enforce the deadline and turn every failure into a [`Fault`].
//!
//! After any fault the instance must not be used again (wasmtime refuses to
//! re-enter a trapped instance anyway); the runtime builds a fresh one.

use spot_wire::{Outcome, Packed};
use wasmtime::Store;

use super::bindings::{AggregationComponent, CandleSource, ComponentInfo, Product, Settings};
use super::error::Fault;
use super::loader::LoadedComponent;
use super::sandbox::{HostState, Sandbox};

/// A live instance of a loaded component.
pub struct Instance {
    store: Store<HostState>,
    bindings: AggregationComponent,
    call_ticks: u64,
    state_ticks: u64,
}

impl Instance {
    /// Instantiate `component` in a fresh store.
    pub fn new(sandbox: &Sandbox, component: &LoadedComponent) -> Result<Self, Fault> {
        let mut store = sandbox.new_store();
        store.set_epoch_deadline(sandbox.ticks(sandbox.limits().call_timeout));
        let bindings = component
            .pre
            .instantiate(&mut store)
            .map_err(|e| Fault::from_wasmtime(&e))?;
        Ok(Instance {
            store,
            bindings,
            call_ticks: sandbox.ticks(sandbox.limits().call_timeout),
            state_ticks: sandbox.ticks(sandbox.limits().state_timeout),
        })
    }

    fn run<R>(
        &mut self,
        ticks: u64,
        f: impl FnOnce(&AggregationComponent, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        self.store.set_epoch_deadline(ticks);
        f(&self.bindings, &mut self.store).map_err(|e| Fault::from_wasmtime(&e))
    }

    fn outcome(r: Result<Result<Vec<u8>, String>, Fault>) -> Result<Outcome, Fault> {
        let bytes = r?.map_err(Fault::Refused)?;
        Outcome::decode(&bytes).map_err(|e| Fault::Malformed(e.to_string()))
    }

    /// `info`.
    pub fn info(&mut self) -> Result<ComponentInfo, Fault> {
        let t = self.call_ticks;
        self.run(t, |b, s| b.spot_candles_aggregator().call_info(s))
    }

    /// `configure`.
    pub fn configure(&mut self, settings: Settings) -> Result<(), Fault> {
        let t = self.call_ticks;
        self.run(t, |b, s| b.spot_candles_aggregator().call_configure(s, settings))
    }

    /// `define-products`.
    pub fn define_products(&mut self, products: &[Product]) -> Result<(), Fault> {
        let t = self.state_ticks;
        self.run(t, |b, s| b.spot_candles_aggregator().call_define_products(s, products))
    }

    /// `ingest` of packed trades.
    pub fn ingest(&mut self, trades: &[u8]) -> Result<Outcome, Fault> {
        let t = self.call_ticks;
        Self::outcome(self.run(t, |b, s| b.spot_candles_aggregator().call_ingest(s, trades)))
    }

    /// `apply-candles` of packed 1-minute candles.
    pub fn apply_candles(&mut self, candles: &[u8], source: CandleSource) -> Result<Outcome, Fault> {
        // Restores carry whole days of minutes: give them the state budget.
        let t = match source {
            CandleSource::Repair => self.call_ticks,
            CandleSource::Restore => self.state_ticks,
        };
        Self::outcome(self.run(t, |b, s| {
            b.spot_candles_aggregator().call_apply_candles(s, candles, source)
        }))
    }

    /// `advance`.
    pub fn advance(&mut self, now_ms: i64) -> Result<Outcome, Fault> {
        let t = self.call_ticks;
        Self::outcome(self.run(t, |b, s| b.spot_candles_aggregator().call_advance(s, now_ms)))
    }

    /// `export-state`.
    pub fn export_state(&mut self) -> Result<Vec<u8>, Fault> {
        let t = self.state_ticks;
        self.run(t, |b, s| b.spot_candles_aggregator().call_export_state(s))
    }

    /// `import-state`.
    pub fn import_state(&mut self, state: &[u8]) -> Result<(), Fault> {
        let t = self.state_ticks;
        self.run(t, |b, s| b.spot_candles_aggregator().call_import_state(s, state))?
            .map_err(Fault::Refused)
    }

    /// `render`: one element per candle, checked against the input count.
    pub fn render(&mut self, candles: &[u8]) -> Result<Vec<String>, Fault> {
        let t = self.call_ticks;
        let out = self.run(t, |b, s| b.spot_candles_aggregator().call_render(s, candles))?;
        let want = candles.len() / spot_wire::Candle::SIZE;
        if out.len() != want {
            return Err(Fault::Malformed(format!(
                "render returned {} elements for {want} candles",
                out.len()
            )));
        }
        Ok(out)
    }
}
