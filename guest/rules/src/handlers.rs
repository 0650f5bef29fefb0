//! The component's operations on packed bytes, over one per-instance
//! [`Aggregator`]. The wit-bindgen layer (and other components built on these
//! rules) only converts WIT types and calls these.

use std::cell::RefCell;

use spot_wire::{Candle, Granularity, OutcomeSink, OutcomeWriter, TRADE_SIZE, Trade, decode_all};

use crate::{Aggregator, CandleSource, Settings, render};

thread_local! {
    static AGG: RefCell<Aggregator> = RefCell::new(Aggregator::default());
}

fn with<R>(f: impl FnOnce(&mut Aggregator) -> R) -> R {
    AGG.with(|a| f(&mut a.borrow_mut()))
}

/// `configure`.
pub fn configure(settings: Settings) {
    with(|a| a.configure(settings))
}

/// `define-products`.
pub fn define_products(products: impl IntoIterator<Item = (u32, String)>) {
    with(|a| a.define_products(products))
}

/// `ingest`: packed trades in, packed outcome out.
pub fn ingest(trades: &[u8]) -> Result<Vec<u8>, String> {
    // At most one update per granularity per trade (room for 256 trades' worth
    // up front: a large batch of few products needs far less).
    let count = trades.len() / TRADE_SIZE;
    let mut out = OutcomeWriter::with_room_for(count.min(256) * Granularity::ALL.len());
    ingest_into(trades, &mut out)?;
    Ok(out.finish())
}

/// [`ingest`] with the results going to `out`: for components that report
/// them their own way.
pub fn ingest_into(trades: &[u8], out: &mut impl OutcomeSink) -> Result<(), String> {
    let trades = decode_all::<Trade>(trades).map_err(|e| e.to_string())?;
    with(|a| a.ingest_into(trades, out));
    Ok(())
}

/// `apply-candles`: packed 1-minute candles in, packed outcome out.
pub fn apply_candles(candles: &[u8], source: CandleSource) -> Result<Vec<u8>, String> {
    let candles = decode_all::<Candle>(candles).map_err(|e| e.to_string())?;
    let mut out = OutcomeWriter::default();
    with(|a| a.apply_candles_into(&candles, source, &mut out))?;
    Ok(out.finish())
}

/// `advance`.
pub fn advance(now_ms: i64) -> Vec<u8> {
    let mut out = OutcomeWriter::default();
    with(|a| a.advance_into(now_ms, &mut out));
    out.finish()
}

/// `export-state`: packed as the books are walked (the state is never held twice).
pub fn export_state() -> Vec<u8> {
    with(|a| a.export_encoded())
}

/// `import-state`: read as it goes (no intermediate copy of the state).
pub fn import_state(state: &[u8]) -> Result<(), String> {
    with(|a| a.import_encoded(state)).map_err(|e| e.to_string())
}

/// `render`: one element per packed candle (none if the buffer is malformed).
pub fn render(candles: &[u8]) -> Vec<String> {
    render_with(candles, render::element)
}

/// [`render`] with another element: components that keep the default rules
/// but present candles differently pass their own `element(candle, product)`.
pub fn render_with(candles: &[u8], element: impl Fn(&Candle, &str) -> String) -> Vec<String> {
    let Ok(candles) = decode_all::<Candle>(candles) else {
        return Vec::new();
    };
    with(|a| {
        candles
            .iter()
            .map(|c| match a.name_of(c.product) {
                Some(name) => element(c, name),
                None => element(c, &format!("product-{}", c.product)),
            })
            .collect()
    })
}
