//! A component for `spot:candles@1.0.0`, which this host does not speak.

wit_bindgen::generate!({ world: "aggregation-component", path: "wit" });

struct Component;

impl exports::spot::candles::aggregator::Guest for Component {
    fn info() -> String {
        "from the future".into()
    }
    fn ingest(trades: Vec<u8>) -> Vec<u8> {
        trades
    }
}

export!(Component);
