//! Host-side bindings generated from `wit/spot.wit`.

wasmtime::component::bindgen!({
    world: "aggregation-component",
    path: "../wit",
});

pub use spot::candles::types::{CandleSource, ComponentInfo, Product, Settings};
