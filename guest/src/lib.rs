//! The default spot aggregation component: the thin wit-bindgen layer that puts
//! [`spot_rules`] behind the `spot:candles` world (`wit/spot.wit`).
//!
//! Build: `cargo build -p spot-guest --profile component --target wasm32-wasip2`.

#[cfg(target_arch = "wasm32")]
mod component;
