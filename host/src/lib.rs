//! spot: live OHLCV candles from Coinbase trades, aggregated by a sandboxed,
//! hot-swappable WebAssembly component.
//!
//! Data flow: feed → [`engine`] (owns the component) → storage writer + SSE hub.

pub mod engine;
