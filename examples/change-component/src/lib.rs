//! An example component to swap in: the default aggregation rules, with an
//! element that also carries what a trader looks at first: the change over the
//! candle (`data-change`, close − open, and `data-change-pct`), its range
//! (`data-range`, high − low) and the trades counted (`data-trades`).
//!
//! It keeps the contract's state format (it changes nothing about what is
//! counted), so it can be swapped in and out with the state handed over.
//!
//! Build: `cargo build -p spot-example-change --profile component --target wasm32-wasip2`.

#[cfg(target_arch = "wasm32")]
mod component;
pub mod element;
