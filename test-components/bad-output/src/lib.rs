//! A component that never traps and never times out, but reports candles
//! whose high is below their low: well-behaved at the boundary, wrong in
//! substance. Validation must refuse it before it reaches live data.

#[cfg(target_arch = "wasm32")]
mod component {
    use spot_rules::{CandleSource, Settings, handlers};
    use spot_wire::Outcome;

    wit_bindgen::generate!({ world: "aggregation-component", path: "../../wit" });

    use exports::spot::candles::aggregator::Guest;
    use spot::candles::types::{CandleSource as WitSource, ComponentInfo, Product, Settings as WitSettings};

    /// High and low swapped in every update that has a range.
    fn mangle(out: Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
        let mut o = Outcome::decode(&out?).map_err(|e| e.to_string())?;
        for c in &mut o.updates {
            std::mem::swap(&mut c.high, &mut c.low);
        }
        Ok(o.encode())
    }

    struct Component;

    impl Guest for Component {
        fn info() -> ComponentInfo {
            ComponentInfo {
                name: "spot-test-bad-output".into(),
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
            mangle(handlers::ingest(&trades))
        }
        fn apply_candles(candles: Vec<u8>, source: WitSource) -> Result<Vec<u8>, String> {
            let source = if matches!(source, WitSource::Repair) {
                CandleSource::Repair
            } else {
                CandleSource::Restore
            };
            mangle(handlers::apply_candles(&candles, source))
        }
        fn advance(now_ms: i64) -> Result<Vec<u8>, String> {
            mangle(Ok(handlers::advance(now_ms)))
        }
        fn export_state() -> Vec<u8> {
            handlers::export_state()
        }
        fn import_state(state: Vec<u8>) -> Result<(), String> {
            handlers::import_state(&state)
        }
        fn render(candles: Vec<u8>) -> Vec<String> {
            handlers::render(&candles)
        }
    }

    export!(Component);
}
