//! Writes the binary seeds of the corpus (`corpus/outcome/`, `corpus/state/`)
//! from the default rules: `cargo run -p spot-fuzz --example seeds`. The
//! text seeds (feed frames, REST answers, elements, query strings) are
//! written by hand.

use spot_wire::{Fixed, Gap, Outcome, Side, Trade};

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let t0 = 1_704_499_200_000; // 2024-01-06T00:00:00Z
    let mut agg = spot_rules::Aggregator::new(spot_rules::Settings {
        grace_ms: 5_000,
        retention_ms: 172_800_000,
    });
    agg.define_products([(0, "BTC-USD".to_string()), (1, "SHIB-USD".to_string())]);
    let trades: Vec<Trade> = (0..40u64)
        .map(|i| Trade {
            product: (i % 2) as u32,
            side: if i % 3 == 0 { Side::Buy } else { Side::Sell },
            trade_id: 1_000 + i / 2 + if i % 7 == 6 { 2 } else { 0 },
            time_ms: t0 + i as i64 * 17_000,
            price: Fixed::from_units(
                (42_000 + i as i128) * 10i128.pow(18) / if i % 2 == 0 { 1 } else { 1_000_000_000 },
            ),
            size: Fixed::from_units(i as i128 * 10i128.pow(15)),
        })
        .collect();
    let outcome: Outcome = agg.ingest(trades);
    let mut with_gap = outcome.clone();
    with_gap.gaps.push(Gap {
        product: 0,
        first_missing: 1_004,
        last_missing: 1_005,
        from_minute: t0 / 1000,
        to_minute: t0 / 1000 + 60,
    });
    with_gap.duplicates = 3;
    std::fs::write(root.join("outcome/ingest.bin"), outcome.encode()).expect("write");
    std::fs::write(root.join("outcome/gap.bin"), with_gap.encode()).expect("write");
    std::fs::write(root.join("outcome/empty.bin"), Outcome::default().encode()).expect("write");
    std::fs::write(root.join("state/two-products.bin"), agg.export_encoded()).expect("write");
    let empty = spot_rules::Aggregator::new(spot_rules::Settings {
        grace_ms: 5_000,
        retention_ms: 3_600_000,
    });
    std::fs::write(root.join("state/empty.bin"), empty.export_encoded()).expect("write");
    println!("seeds written under {}", root.display());
}
