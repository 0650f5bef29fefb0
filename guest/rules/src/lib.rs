//! spot's aggregation rules, as plain Rust (tested natively, compiled into the
//! default component by `guest/`, and used natively as the benchmark baseline):
//! - [`trade_ids`]: which trade ids of a product are counted, and the jumps;
//! - [`series`]: buckets of one granularity, ordered by start;
//! - [`bucket`]: the OHLCV of a bucket and how minutes merge into rollups;
//! - [`book`]: one product's minutes and rollups;
//! - [`aggregator`]: all products, time, completion, state export/import;
//! - [`render`]: the `<spot-candle>` element;
//! - [`handlers`]: the component's operations on packed bytes, for a wit-bindgen layer;
//! - [`component!`]: that layer, generated in the calling crate.

pub mod aggregator;
pub mod book;
pub mod bucket;
mod component;
pub mod handlers;
pub mod render;
pub mod series;
pub mod trade_ids;

pub use aggregator::{Aggregator, CandleSource, Settings};
