//! The aggregation rules, natively: examples and properties.

use std::collections::BTreeMap;

use proptest::prelude::*;
use spot_rules::{Aggregator, CandleSource, Settings};
use spot_wire::state::State;
use spot_wire::{Candle, Fixed, Granularity, Side, Trade};

const T0: i64 = 1_704_499_200_000; // 2024-01-06T00:00:00Z in ms

fn fx(units: i64) -> Fixed {
    // Four decimals, positive.
    Fixed::from_units(units as i128 * 100_000_000_000_000)
}

fn trade(product: u32, id: u64, time_ms: i64, price: i64, size: i64) -> Trade {
    Trade {
        product,
        side: Side::Buy,
        trade_id: id,
        time_ms,
        price: fx(price),
        size: fx(size),
    }
}

fn find(cs: &[Candle], product: u32, g: Granularity, start: i64) -> Candle {
    *cs.iter()
        .find(|c| c.product == product && c.granularity == g && c.start == start)
        .unwrap_or_else(|| panic!("no {g:?} candle at {start}"))
}

/// A market: per product consecutive ids whose times never go backwards.
fn market() -> impl Strategy<Value = Vec<Trade>> {
    proptest::collection::vec((0u32..3, 0i64..90_000, 1i64..2_000_000, 1i64..50_000), 1..120).prop_map(|steps| {
        let mut next_id: BTreeMap<u32, (u64, i64)> = BTreeMap::new();
        steps
            .into_iter()
            .map(|(p, dt, price, size)| {
                let e = next_id.entry(p).or_insert((1_000, T0 + 3_000_000));
                e.0 += 1;
                e.1 += dt;
                trade(p, e.0, e.1, price, size)
            })
            .collect()
    })
}

/// (product, granularity index, start) -> (open, high, low, close, volume, trades).
type Buckets = BTreeMap<(u32, u8, i64), (Fixed, Fixed, Fixed, Fixed, Fixed, u32)>;

/// Direct aggregation of a set of distinct trades into one bucket per (product, g, start).
fn direct(trades: &[Trade]) -> Buckets {
    let mut by_bucket: BTreeMap<(u32, u8, i64), Vec<Trade>> = BTreeMap::new();
    for t in trades {
        for g in Granularity::ALL {
            let start = g.bucket_start(t.time_ms.div_euclid(1000));
            by_bucket.entry((t.product, g as u8, start)).or_default().push(*t);
        }
    }
    by_bucket
        .into_iter()
        .map(|(k, mut ts)| {
            ts.sort_by_key(|t| t.trade_id);
            let high = ts.iter().map(|t| t.price).max().unwrap();
            let low = ts.iter().map(|t| t.price).min().unwrap();
            let vol = ts.iter().fold(Fixed::ZERO, |a, t| a.checked_add(t.size).unwrap());
            (
                k,
                (ts[0].price, high, low, ts[ts.len() - 1].price, vol, ts.len() as u32),
            )
        })
        .collect()
}

fn ingest_in_batches(agg: &mut Aggregator, trades: &[Trade], batch: usize) {
    for chunk in trades.chunks(batch.max(1)) {
        agg.ingest(chunk.to_vec());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_duplication_and_batching_do_not_matter(
        trades in market(),
        seed in any::<u64>(),
        batch in 1usize..40,
        dup_every in 1usize..5,
    ) {
        let mut reference = Aggregator::default();
        reference.ingest(trades.clone());

        // Shuffle deterministically and re-send a prefix, like a reconnect snapshot.
        let mut shuffled = trades.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let dups: Vec<Trade> = shuffled.iter().step_by(dup_every).copied().collect();
        shuffled.extend(dups);
        let mut other = Aggregator::default();
        ingest_in_batches(&mut other, &shuffled, batch);
        prop_assert_eq!(other.candles(), reference.candles());
    }

    #[test]
    fn every_bucket_equals_a_direct_aggregation(trades in market()) {
        let mut agg = Aggregator::default();
        let out = agg.ingest(trades.clone());
        prop_assert!(out.gaps.is_empty());
        let want = direct(&trades);
        let got: BTreeMap<_, _> = agg
            .candles()
            .into_iter()
            .map(|c| ((c.product, c.granularity as u8, c.start), (c.open, c.high, c.low, c.close, c.volume, c.trades)))
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn export_import_at_any_point_continues_identically(
        trades in market(),
        cut in 0usize..120,
        batch in 1usize..20,
        advance_at in 0i64..7_200_000,
    ) {
        let cut = cut.min(trades.len());
        let (head, tail) = trades.split_at(cut);
        let now = T0 + 3_000_000 + advance_at;

        let mut straight = Aggregator::default();
        ingest_in_batches(&mut straight, head, batch);
        straight.advance(now);

        let bytes = straight.export().encode();
        // Packed as the books are walked: the same bytes, read back the same.
        prop_assert_eq!(&straight.export_encoded(), &bytes);
        let mut streamed = Aggregator::new(straight.settings());
        streamed.import_encoded(&bytes).unwrap();
        prop_assert_eq!(&streamed, &straight);
        prop_assert!(streamed.import_encoded(&bytes[..bytes.len() - 1]).is_err());
        prop_assert_eq!(&streamed, &straight, "a bad state replaces nothing");
        let mut resumed = Aggregator::new(straight.settings());
        resumed.import(State::decode(&bytes).unwrap());
        prop_assert_eq!(&resumed, &straight);

        for chunk in tail.chunks(batch) {
            let a = straight.ingest(chunk.to_vec());
            let b = resumed.ingest(chunk.to_vec());
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(straight.advance(now + 86_400_000), resumed.advance(now + 86_400_000));
        prop_assert_eq!(straight.candles(), resumed.candles());
    }
}

#[test]
fn an_update_reports_every_granularity_of_the_touched_minute_once() {
    let mut agg = Aggregator::default();
    let out = agg.ingest(vec![trade(1, 10, T0 + 61_000, 5, 1), trade(1, 11, T0 + 62_000, 7, 2)]);
    assert_eq!(out.updates.len(), 8);
    for g in Granularity::ALL {
        let c = find(&out.updates, 1, g, g.bucket_start((T0 + 61_000) / 1000));
        assert_eq!(
            (c.open, c.close, c.high, c.low, c.volume),
            (fx(5), fx(7), fx(7), fx(5), fx(3))
        );
        assert!(!c.complete);
    }
}

#[test]
fn a_jump_in_trade_ids_is_reported_with_the_minutes_it_may_touch() {
    let mut agg = Aggregator::default();
    agg.ingest(vec![trade(4, 100, T0 + 10_000, 1, 1)]);
    let out = agg.ingest(vec![
        trade(4, 105, T0 + 190_000, 1, 1),
        trade(4, 101, T0 + 20_000, 1, 1),
    ]);
    // Sorted by id, 101 follows 100; 105 jumps over 102..=104.
    assert_eq!(out.gaps.len(), 1);
    let g = out.gaps[0];
    assert_eq!((g.product, g.first_missing, g.last_missing), (4, 102, 104));
    assert_eq!((g.from_minute, g.to_minute), (T0 / 1000, T0 / 1000 + 180));
    // A re-sent snapshot changes nothing and reports nothing.
    let before = agg.candles();
    let again = agg.ingest(vec![
        trade(4, 100, T0 + 10_000, 1, 1),
        trade(4, 105, T0 + 190_000, 1, 1),
    ]);
    assert_eq!((again.duplicates, again.updates.len(), again.gaps.len()), (2, 0, 0));
    assert_eq!(agg.candles(), before);
}

#[test]
fn a_repaired_minute_replaces_its_trades_in_every_rollup() {
    let mut agg = Aggregator::default();
    let m0 = T0 / 1000;
    agg.ingest(vec![
        trade(1, 1, T0 + 1_000, 10, 1),
        trade(1, 2, T0 + 61_000, 12, 1),
        // 3 and 4 are missed; 5 lands in minute 2.
        trade(1, 5, T0 + 121_000, 11, 1),
    ]);
    // REST says minute 1 really held more volume and a higher high.
    let rest = Candle {
        product: 1,
        granularity: Granularity::OneMinute,
        start: m0 + 60,
        open: fx(12),
        high: fx(20),
        low: fx(12),
        close: fx(13),
        volume: fx(4),
        last_trade_id: None,
        trades: 0,
        complete: false,
        authoritative: true,
    };
    let out = agg.apply_candles(&[rest], CandleSource::Repair).unwrap();
    assert_eq!(out.updates.len(), 8);
    let day = find(&out.updates, 1, Granularity::OneDay, m0);
    assert_eq!(
        (day.open, day.high, day.low, day.close, day.volume),
        (fx(10), fx(20), fx(10), fx(11), fx(6))
    );
    // Applying the same repair again does not double anything.
    agg.apply_candles(&[rest], CandleSource::Repair).unwrap();
    let five = find(&agg.candles(), 1, Granularity::FiveMinutes, m0);
    assert_eq!(five.volume, fx(6));
    // A late trade of the repaired minute is already in REST's candle.
    let late = agg.ingest(vec![trade(1, 3, T0 + 65_000, 99, 9)]);
    assert_eq!((late.ignored, late.updates.len()), (1, 0));
    assert_eq!(find(&agg.candles(), 1, Granularity::OneDay, m0).volume, fx(6));
}

#[test]
fn buckets_complete_after_grace_and_late_trades_revise_them() {
    let mut agg = Aggregator::new(Settings {
        grace_ms: 2_000,
        retention_ms: 3_600_000,
    });
    let m0 = T0 / 1000;
    agg.ingest(vec![trade(1, 1, T0 + 5_000, 10, 1)]);
    assert!(agg.advance(T0 + 61_000).updates.is_empty(), "still in grace");
    let done = agg.advance(T0 + 62_000);
    assert_eq!(done.updates.len(), 1);
    assert_eq!(
        (done.updates[0].granularity, done.updates[0].complete),
        (Granularity::OneMinute, true)
    );
    assert!(agg.advance(T0 + 62_500).updates.is_empty(), "reported once");
    // A late trade for the completed minute revises it; it is still complete.
    let late = agg.ingest(vec![trade(1, 2, T0 + 59_000, 30, 1)]);
    let m = find(&late.updates, 1, Granularity::OneMinute, m0);
    assert!(m.complete && m.high == fx(30) && m.close == fx(30));
    assert!(!find(&late.updates, 1, Granularity::FiveMinutes, m0).complete);
    // The day completes a grace after midnight.
    let day = agg.advance(T0 + 86_402_000);
    assert!(
        day.updates
            .iter()
            .any(|c| c.granularity == Granularity::OneDay && c.complete)
    );
}

#[test]
fn restore_recognises_trades_already_stored_and_reports_the_downtime() {
    let m0 = T0 / 1000;
    let stored = Candle {
        product: 2,
        granularity: Granularity::OneMinute,
        start: m0,
        open: fx(10),
        high: fx(11),
        low: fx(9),
        close: fx(10),
        volume: fx(5),
        last_trade_id: Some(500),
        trades: 5,
        complete: false,
        authoritative: true,
    };
    let mut agg = Aggregator::default();
    let out = agg.apply_candles(&[stored], CandleSource::Restore).unwrap();
    assert!(out.updates.is_empty(), "restore emits nothing");
    // The snapshot re-sends 499 and 500 (already stored), then 501 is new; 503 jumps.
    let snap = agg.ingest(vec![
        trade(2, 499, T0 + 30_000, 9, 1),
        trade(2, 500, T0 + 40_000, 10, 1),
        trade(2, 501, T0 + 50_000, 12, 1),
        trade(2, 503, T0 + 130_000, 12, 1),
    ]);
    assert_eq!(snap.duplicates, 2);
    assert_eq!(snap.gaps.len(), 1);
    assert_eq!(
        (
            snap.gaps[0].first_missing,
            snap.gaps[0].from_minute,
            snap.gaps[0].to_minute
        ),
        (502, m0, m0 + 120)
    );
    let m = find(&agg.candles(), 2, Granularity::OneMinute, m0);
    assert_eq!(
        (m.open, m.high, m.close, m.volume, m.trades),
        (fx(10), fx(12), fx(12), fx(6), 6)
    );
}

#[test]
fn days_past_retention_are_dropped_and_their_trades_ignored() {
    let mut agg = Aggregator::new(Settings {
        grace_ms: 0,
        retention_ms: 60_000,
    });
    agg.ingest(vec![trade(1, 1, T0 + 1_000, 10, 1)]);
    agg.advance(T0 + 86_400_000 + 59_000);
    assert!(!agg.candles().is_empty(), "kept within retention");
    agg.advance(T0 + 86_400_000 + 60_000);
    assert!(agg.candles().is_empty(), "dropped after retention");
    let out = agg.ingest(vec![trade(1, 2, T0 + 2_000, 10, 1)]);
    assert_eq!((out.ignored, out.updates.len()), (1, 0));
}

#[test]
fn only_one_minute_candles_are_authoritative() {
    let mut agg = Aggregator::default();
    let c = Candle {
        product: 1,
        granularity: Granularity::OneHour,
        start: T0 / 1000,
        open: fx(1),
        high: fx(1),
        low: fx(1),
        close: fx(1),
        volume: fx(1),
        last_trade_id: None,
        trades: 0,
        complete: false,
        authoritative: true,
    };
    assert!(
        agg.apply_candles(&[c], CandleSource::Repair)
            .unwrap_err()
            .contains("ONE_MINUTE")
    );
    let bad = Candle {
        granularity: Granularity::OneMinute,
        high: fx(0),
        ..c
    };
    assert_eq!(agg.apply_candles(&[bad], CandleSource::Repair).unwrap().ignored, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn restoring_many_minutes_at_once_equals_restoring_them_in_small_batches(
        minutes in proptest::collection::btree_map(0i64..1_440, (1i64..1_000, 0i64..1_000, 1u32..50), 1..300),
        chunk in 1usize..10,
    ) {
        let candles: Vec<Candle> = minutes
            .iter()
            .map(|(&m, &(px, vol, n))| Candle {
                product: 3,
                granularity: Granularity::OneMinute,
                start: T0 / 1000 + m * 60,
                open: fx(px),
                high: fx(px + 5),
                low: fx(px),
                close: fx(px + 1),
                volume: fx(vol),
                last_trade_id: Some(m as u64 * 100 + n as u64),
                trades: n,
                complete: false,
                authoritative: true,
            })
            .collect();
        let mut bulk = Aggregator::default();
        bulk.apply_candles(&candles, CandleSource::Restore).unwrap();
        let mut piecemeal = Aggregator::default();
        for c in candles.chunks(chunk) {
            piecemeal.apply_candles(c, CandleSource::Restore).unwrap();
        }
        prop_assert_eq!(bulk.candles(), piecemeal.candles());
        // The day equals the direct aggregation of its minutes.
        let day = bulk.candles().into_iter().find(|c| c.granularity == Granularity::OneDay).unwrap();
        let vol = candles.iter().fold(Fixed::ZERO, |a, c| a.checked_add(c.volume).unwrap());
        prop_assert_eq!((day.open, day.close, day.volume), (candles[0].open, candles[candles.len() - 1].close, vol));
    }
}
