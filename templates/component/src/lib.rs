//! {{name}}: a spot aggregation component.
//!
//! It keeps spot's default aggregation rules (so its state is spot's, and it
//! swaps in and out with the state handed over) and renders its own element:
//! see `element.rs`. `wit/spot.wit` is the contract (a copy of the one in the
//! spot checkout it was made from; read its comments).

pub mod element;

// The whole binding layer: the `spot:candles` aggregator exported with the
// default rules, this name and this element. To change the rules too, write
// `fn ingest(trades: &[u8]) -> Result<Vec<u8>, String>` (see
// `spot_rules::handlers::ingest`, which it replaces) and add
// `ingest: crate::my_ingest,` below.
#[cfg(target_arch = "wasm32")]
spot_rules::component! {
    name: "{{name}}",
    wit: "wit",
    element: crate::element::element,
}
