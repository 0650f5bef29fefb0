//! [`component!`](crate::component): the whole wit-bindgen layer of a
//! component built on these rules, in one line.

/// Export the `spot:candles` aggregator from the calling crate, with these
/// rules behind it ([`crate::handlers`]) and a name, a version and an element
/// of its own.
///
/// ```ignore
/// spot_rules::component! {
///     name: "my-component",
///     wit: "../wit",                   // the wit/ folder, relative to Cargo.toml
///     element: crate::element::element, // fn(&Candle, &str) -> String
/// }
/// ```
///
/// `element` may be [`crate::render::element`] (the seed's element). An
/// optional `ingest: path::to::fn` (`fn(&[u8]) -> Result<Vec<u8>, String>`)
/// replaces [`crate::handlers::ingest`]; after it, an optional
/// `import_state: path::to::fn` (`fn(&[u8]) -> Result<(), String>`) replaces
/// [`crate::handlers::import_state`] (to read an older state format, say). The
/// calling crate depends on `wit-bindgen` (the bindings are generated in it)
/// and is built for `wasm32-wasip2`.
#[macro_export]
macro_rules! component {
    (name: $name:tt, wit: $wit:tt, element: $element:path $(,)?) => {
        $crate::component! { name: $name, wit: $wit, element: $element, ingest: $crate::handlers::ingest }
    };
    (name: $name:tt, wit: $wit:tt, element: $element:path, ingest: $ingest:path $(,)?) => {
        $crate::component! {
            name: $name, wit: $wit, element: $element, ingest: $ingest,
            import_state: $crate::handlers::import_state
        }
    };
    (name: $name:tt, wit: $wit:tt, element: $element:path, ingest: $ingest:path,
     import_state: $import:path $(,)?) => {
        wit_bindgen::generate!({ world: "aggregation-component", path: $wit });

        struct SpotComponent;

        impl exports::spot::candles::aggregator::Guest for SpotComponent {
            fn info() -> spot::candles::types::ComponentInfo {
                spot::candles::types::ComponentInfo {
                    name: $name.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }
            }
            fn configure(s: spot::candles::types::Settings) {
                $crate::handlers::configure($crate::Settings {
                    grace_ms: s.grace_ms as i64,
                    retention_ms: s.retention_ms as i64,
                })
            }
            fn define_products(products: Vec<spot::candles::types::Product>) {
                $crate::handlers::define_products(products.into_iter().map(|p| (p.id, p.name)))
            }
            fn ingest(trades: Vec<u8>) -> Result<Vec<u8>, String> {
                $ingest(&trades)
            }
            fn apply_candles(candles: Vec<u8>, source: spot::candles::types::CandleSource) -> Result<Vec<u8>, String> {
                let source = match source {
                    spot::candles::types::CandleSource::Repair => $crate::CandleSource::Repair,
                    spot::candles::types::CandleSource::Restore => $crate::CandleSource::Restore,
                };
                $crate::handlers::apply_candles(&candles, source)
            }
            fn advance(now_ms: i64) -> Result<Vec<u8>, String> {
                Ok($crate::handlers::advance(now_ms))
            }
            fn export_state() -> Vec<u8> {
                $crate::handlers::export_state()
            }
            fn import_state(state: Vec<u8>) -> Result<(), String> {
                $import(&state)
            }
            fn render(candles: Vec<u8>) -> Vec<String> {
                $crate::handlers::render_with(&candles, $element)
            }
        }

        export!(SpotComponent);
    };
}
