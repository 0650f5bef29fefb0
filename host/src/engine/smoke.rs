//! The golden run: a fresh instance of a candidate component is given a fixed
//! sequence (products, trades with a duplicate and a jump, a repair, the
//! clock, a state hand-over) and must answer every call, in time, with
//! well-formed candles and elements that pass [`element::check`]. A swap only happens
//! after this passes.

use spot_wire::{Candle, Fixed, Granularity, Outcome, Side, Trade, encode_all};

use super::bindings::{CandleSource, Product, Settings};
use super::element;
use super::instance::Instance;
use super::loader::LoadedComponent;
use super::sandbox::Sandbox;

/// 2024-01-06T00:00:00Z in ms: a fixed day, so the run never depends on today.
const T0: i64 = 1_704_499_200_000;
const NAMES: [&str; 2] = ["GOLD-USD", "SILVER-EUR"];

fn trades() -> Vec<Trade> {
    let mut out = Vec::new();
    let mut id = [500u64, 9_000];
    for i in 0..60i64 {
        let p = (i % 3 == 2) as usize;
        id[p] += if i == 40 { 5 } else { 1 }; // a jump: trades that never came
        out.push(Trade {
            product: p as u32,
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            trade_id: id[p],
            time_ms: T0 + i * 7_000,
            price: Fixed::from_units((100_000 + (i * 37 % 101) as i128) * 10i128.pow(16)),
            size: Fixed::from_units((1 + i as i128 * 13 % 97) * 10i128.pow(15)),
        });
    }
    // A re-sent trade.
    out.push(out[3]);
    out
}

fn check(what: &str, outcome: &Outcome) -> Result<(), String> {
    for c in &outcome.updates {
        if c.product as usize >= NAMES.len() {
            return Err(format!("{what}: an update for unknown product id {}", c.product));
        }
        if !c.is_well_formed() {
            return Err(format!(
                "{what}: malformed {} candle at {}: open {} high {} low {} close {} volume {}",
                c.granularity.name(),
                c.start,
                c.open,
                c.high,
                c.low,
                c.close,
                c.volume
            ));
        }
    }
    Ok(())
}

fn render(inst: &mut Instance, what: &str, updates: &[Candle]) -> Result<(), String> {
    if updates.is_empty() {
        return Ok(());
    }
    let elements = inst
        .render(&encode_all(updates))
        .map_err(|f| format!("{what}: render: {f}"))?;
    for (c, e) in updates.iter().zip(&elements) {
        let (product, g) = (NAMES[c.product as usize], c.granularity.name());
        if let Err(why) = element::check(e.as_bytes(), product, g) {
            let excerpt: String = e.chars().take(120).collect();
            return Err(format!("{what}: the element for {product} {g}: {why}: {excerpt:?}"));
        }
    }
    Ok(())
}

/// Run the golden sequence; `Err` says what went wrong, for the operator.
pub fn golden_run(sandbox: &Sandbox, component: &LoadedComponent) -> Result<(), String> {
    let settings = Settings {
        grace_ms: 5_000,
        retention_ms: 86_400_000,
    };
    let fresh = || -> Result<Instance, String> {
        let mut inst = Instance::new(sandbox, component).map_err(|f| format!("instantiate: {f}"))?;
        inst.configure(settings).map_err(|f| format!("configure: {f}"))?;
        let products: Vec<Product> = NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| Product {
                id: i as u32,
                name: n.to_string(),
            })
            .collect();
        inst.define_products(&products)
            .map_err(|f| format!("define-products: {f}"))?;
        Ok(inst)
    };
    let mut inst = fresh()?;
    let out = inst
        .ingest(&encode_all(&trades()))
        .map_err(|f| format!("ingest: {f}"))?;
    check("ingest", &out)?;
    for g in Granularity::ALL {
        if !out.updates.iter().any(|c| c.granularity == g && c.product == 0) {
            return Err(format!("ingest: no {} update for trades that fall in one", g.name()));
        }
    }
    render(&mut inst, "ingest", &out.updates)?;

    let repair = Candle {
        product: 0,
        granularity: Granularity::OneMinute,
        start: T0 / 1000 + 60,
        open: Fixed::from_int(1000),
        high: Fixed::from_int(1010),
        low: Fixed::from_int(990),
        close: Fixed::from_int(1001),
        volume: Fixed::from_int(3),
        last_trade_id: None,
        trades: 0,
        complete: true,
        authoritative: true,
    };
    let out = inst
        .apply_candles(&encode_all(&[repair]), CandleSource::Repair)
        .map_err(|f| format!("apply-candles: {f}"))?;
    check("apply-candles", &out)?;
    render(&mut inst, "apply-candles", &out.updates)?;

    let out = inst.advance(T0 + 2 * 86_400_000).map_err(|f| format!("advance: {f}"))?;
    check("advance", &out)?;
    render(&mut inst, "advance", &out.updates)?;

    // Hand-over: the state must survive export → import unchanged.
    let mut inst = fresh()?;
    inst.ingest(&encode_all(&trades()))
        .map_err(|f| format!("ingest: {f}"))?;
    let state = inst.export_state().map_err(|f| format!("export-state: {f}"))?;
    let mut next = fresh()?;
    next.import_state(&state).map_err(|f| format!("import-state: {f}"))?;
    let again = next
        .export_state()
        .map_err(|f| format!("export-state after import: {f}"))?;
    if again != state {
        return Err("export-state → import-state → export-state changed the state".into());
    }
    Ok(())
}
