//! A component that behaves exactly like the default one until a trade's price
//! names a misbehaviour (`Chaos`). The host tests use it to show that every kind
//! of failure costs the component, never the host.

use spot_rules::{CandleSource, Settings, handlers};
use spot_wire::{Outcome, Trade, decode_all};

wit_bindgen::generate!({ world: "aggregation-component", path: "../../wit" });

use exports::spot::candles::aggregator::Guest;
use spot::candles::types::{CandleSource as WitSource, ComponentInfo, Product, Settings as WitSettings};

/// Integer trade prices that trigger a misbehaviour in `ingest`.
mod chaos {
    pub const LOOP: i128 = 666;
    pub const MEMORY_BOMB: i128 = 667;
    pub const PANIC: i128 = 668;
    pub const RECURSION: i128 = 669;
    pub const CLOCK: i128 = 670;
    pub const ENVIRONMENT: i128 = 671;
    pub const REFUSE: i128 = 672;
    pub const GARBAGE: i128 = 673;
    pub const ABORT: i128 = 674;
    /// Not a failure: the batch is counted, but the candles reported for it
    /// have twice their volume (a component whose rules differ, for shadow runs).
    pub const SKEW: i128 = 675;
    /// Not a failure of the call: a candle closing at this price is rendered
    /// as an element that would run script in a browser (the host refuses it).
    pub const XSS: i128 = 676;
}

const UNIT: i128 = 1_000_000_000_000_000_000;

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64, pad: &mut [u8; 64]) -> u64 {
    pad[(n % 64) as usize] = n as u8;
    let mut more = *pad;
    recurse(n + 1, &mut more) + more[0] as u64
}

fn misbehave(price: i128) -> Option<Result<Vec<u8>, String>> {
    match price / UNIT {
        chaos::LOOP => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        chaos::MEMORY_BOMB => {
            // black_box: otherwise the optimiser folds the allocation away.
            let v = std::hint::black_box(vec![1u8; 1 << 30]);
            Some(Ok(vec![v[std::hint::black_box(v.len() - 1)]]))
        }
        chaos::PANIC => panic!("chaos: panic on purpose"),
        chaos::RECURSION => Some(Ok(vec![recurse(0, &mut [0; 64]) as u8])),
        chaos::CLOCK => {
            let t = std::time::SystemTime::now();
            Some(Err(format!("read the clock: {t:?}")))
        }
        chaos::ENVIRONMENT => Some(Err(format!("read the environment: {:?}", std::env::var("HOME")))),
        chaos::REFUSE => Some(Err("chaos: refusing this batch".into())),
        chaos::GARBAGE => Some(Ok(b"not an outcome".to_vec())),
        chaos::ABORT => std::process::abort(),
        _ => None,
    }
}

struct Component;

impl Guest for Component {
    fn info() -> ComponentInfo {
        ComponentInfo {
            name: "spot-test-misbehave".into(),
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
        let mut skew = false;
        if let Ok(decoded) = decode_all::<Trade>(&trades) {
            for t in decoded {
                skew |= t.price.units() / UNIT == chaos::SKEW;
                if let Some(r) = misbehave(t.price.units()) {
                    return r;
                }
            }
        }
        let out = handlers::ingest(&trades)?;
        if !skew {
            return Ok(out);
        }
        let mut o = Outcome::decode(&out).map_err(|e| e.to_string())?;
        for c in &mut o.updates {
            c.volume = c.volume.saturating_add(c.volume);
        }
        Ok(o.encode())
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
        handlers::render_with(&candles, |c, product| {
            if c.close.units() / UNIT == chaos::XSS {
                format!(
                    "<spot-candle id=\"{product}-{}\" data-init=\"alert(document.cookie)\"></spot-candle>",
                    c.granularity.name()
                )
            } else {
                spot_rules::render::element(c, product)
            }
        })
    }
}

export!(Component);
