//! spot: live OHLCV candles from Coinbase trades, aggregated by a sandboxed,
//! hot-swappable WebAssembly component.
//!
//! Data flow: [`feed`] → [`engine`] (owns the component) → [`storage`] writer + SSE [`hub`];
//! [`history`] fetches what the feed missed or never saw from Coinbase's REST
//! ([`rest`]) into the engine and audits what is stored; the [`fleet`] brings
//! the other instances' candles (read back from PostgreSQL) into the engine
//! for rendering, and tells who is alive; [`http`] serves the page, the
//! stream, the history and health; [`server`] assembles it.

pub mod admin;
pub mod alloc;
pub mod cli;
pub mod config;
pub mod engine;
pub mod errors;
pub mod feed;
pub mod fleet;
pub mod histogram;
pub mod history;
pub mod horizon;
pub mod http;
pub mod hub;
pub mod logs;
pub mod product;
pub mod rest;
pub mod server;
pub mod storage;
