//! The wit-bindgen layer: the default rules (`spot_rules::handlers`), this crate's element.

use spot_rules::{CandleSource, Settings, handlers};

wit_bindgen::generate!({ world: "aggregation-component", path: "../../wit" });

use exports::spot::candles::aggregator::Guest;
use spot::candles::types::{CandleSource as WitSource, ComponentInfo, Product, Settings as WitSettings};

struct Component;

impl Guest for Component {
    fn info() -> ComponentInfo {
        ComponentInfo {
            name: "spot-example-change".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
    fn configure(s: WitSettings) {
        handlers::configure(Settings {
            grace_ms: s.grace_ms as i64,
            retention_ms: s.retention_ms as i64,
        })
    }
    fn define_products(products: Vec<Product>) {
        handlers::define_products(products.into_iter().map(|p| (p.id, p.name)))
    }
    fn ingest(trades: Vec<u8>) -> Result<Vec<u8>, String> {
        handlers::ingest(&trades)
    }
    fn apply_candles(candles: Vec<u8>, source: WitSource) -> Result<Vec<u8>, String> {
        let source = match source {
            WitSource::Repair => CandleSource::Repair,
            WitSource::Restore => CandleSource::Restore,
        };
        handlers::apply_candles(&candles, source)
    }
    fn advance(now_ms: i64) -> Result<Vec<u8>, String> {
        Ok(handlers::advance(now_ms))
    }
    fn export_state() -> Vec<u8> {
        handlers::export_state()
    }
    fn import_state(state: Vec<u8>) -> Result<(), String> {
        handlers::import_state(&state)
    }
    fn render(candles: Vec<u8>) -> Vec<String> {
        handlers::render_with(&candles, crate::element::element)
    }
}

export!(Component);
