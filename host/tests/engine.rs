//! The engine with real compiled components: aggregation, rendering, the
//! sandbox against misbehaving components, recovery, swap, and the cache.

mod common;

use common::*;
use spot_host::engine::{CandleSource, EngineConfig, LoadError, Loader, Sandbox};
use spot_wire::{Fixed, Granularity, Side, Trade};

#[tokio::test]
async fn the_default_component_matches_the_native_rules_and_renders_every_update() {
    let loader = loader();
    let component = load(&loader, "spot_guest");
    assert_eq!(component.name, "spot-default");
    let engine = start(&loader, component, config());
    let h = engine.handle();
    let names = product_names(5);
    let mut rx = h.subscribe(1024).await.unwrap();
    assert_eq!(h.register_products(&names).await.unwrap(), vec![0, 1, 2, 3, 4]);
    let trades = market(5, 2_000, 7);
    for chunk in trades.chunks(37) {
        h.trades(chunk.to_vec()).await.unwrap();
    }
    h.barrier().await.unwrap();

    let want = reference(&names, &trades, &config());
    assert_eq!(engine_state(&h).await, want.export());

    // Every update went out with the element the native renderer gives it.
    let outputs = drain(&mut rx);
    assert!(!outputs.is_empty());
    let mut last = std::collections::BTreeMap::new();
    for out in &outputs {
        for u in &out.updates {
            assert_eq!(u.element, spot_rules::render::element(&u.candle, &u.product).as_bytes());
            last.insert((u.candle.product, u.candle.granularity, u.candle.start), u.candle);
        }
    }
    // The last update of each bucket is its final value.
    for c in want.candles() {
        assert_eq!(last.get(&(c.product, c.granularity, c.start)), Some(&c));
    }
    let stats = h.stats().snapshot();
    assert_eq!(stats.trades, 2_000);
    assert_eq!(stats.faults, 0);
    engine.shutdown().await;
}

#[tokio::test]
async fn repair_and_clock_flow_through_the_engine() {
    let loader = loader();
    let engine = start(&loader, load(&loader, "spot_guest"), config());
    let h = engine.handle();
    let mut rx = h.subscribe(64).await.unwrap();
    h.register_products(&["BTC-USD".to_string()]).await.unwrap();
    let f = |s: &str| s.parse::<Fixed>().unwrap();
    let t = |id, ms, p: &str| Trade {
        product: 0,
        side: Side::Buy,
        trade_id: id,
        time_ms: ms,
        price: f(p),
        size: f("1"),
    };
    h.trades(vec![t(1, T0 + 1_000, "10"), t(5, T0 + 61_000, "11")])
        .await
        .unwrap();
    h.barrier().await.unwrap();
    let out = drain(&mut rx);
    let gaps: Vec<_> = out.iter().flat_map(|o| o.gaps.iter()).collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].gap.first_missing, gaps[0].gap.last_missing), (2, 4));
    assert_eq!(&*gaps[0].product, "BTC-USD");

    let rest = spot_wire::Candle {
        product: 0,
        granularity: Granularity::OneMinute,
        start: T0 / 1000,
        open: f("10"),
        high: f("12"),
        low: f("9"),
        close: f("12"),
        volume: f("3"),
        last_trade_id: None,
        trades: 0,
        complete: false,
        authoritative: true,
    };
    h.apply_candles(vec![rest], CandleSource::Repair).await.unwrap();
    let out = drain(&mut rx);
    let day = out
        .iter()
        .flat_map(|o| o.updates.iter())
        .find(|u| u.candle.granularity == Granularity::OneDay)
        .expect("day update");
    assert_eq!(
        (day.candle.volume, day.candle.high, day.candle.low),
        (f("4"), f("12"), f("9"))
    );

    h.advance(T0 + 86_400_000 + 10_000).await.unwrap();
    h.barrier().await.unwrap();
    let done: Vec<_> = drain(&mut rx).iter().flat_map(|o| o.updates.clone()).collect();
    assert!(done.iter().all(|u| u.candle.complete));
    assert!(done.iter().any(|u| u.candle.granularity == Granularity::OneDay
        && String::from_utf8_lossy(&u.element).contains("data-complete=\"true\"")));
    engine.shutdown().await;
}

/// Each misbehaviour, triggered by a trade price in the chaos component:
/// (price, fault kind, what the reported error says).
const CHAOS: [(i64, &str, &str); 9] = [
    (666, "timeout", "timed out (CPU deadline)"),
    (667, "out_of_memory", "out of memory"),
    // std's panic hook writes the message to stderr first: a denied capability.
    (668, "denied", "called a denied capability: "),
    (674, "aborted", "aborted (panic or failed allocation)"),
    (669, "stack_overflow", "stack overflow"),
    (670, "denied", "wasi:clocks"),
    (671, "denied", "wasi:cli/environment"),
    (672, "refused", "refused the input: chaos: refusing this batch"),
    (673, "malformed", "malformed output"),
];

#[tokio::test]
async fn a_misbehaving_component_costs_only_itself_and_loses_no_trade() {
    let loader = loader();
    let chaos = load(&loader, "spot_test_misbehave");
    let names = product_names(3);
    let trades = market(3, 600, 11);
    for (i, (price, kind, says)) in CHAOS.into_iter().enumerate() {
        // Alternate: a journal since the last checkpoint, and a checkpoint per input.
        let cfg = EngineConfig {
            checkpoint_bytes: if i % 2 == 0 { usize::MAX } else { 1 },
            ..config()
        };
        let engine = start(&loader, chaos.clone(), cfg.clone());
        let h = engine.handle();
        h.register_products(&names).await.unwrap();
        let (before, after) = trades.split_at(300);
        for chunk in before.chunks(50) {
            h.trades(chunk.to_vec()).await.unwrap();
        }
        let poison = Trade {
            product: 1,
            side: Side::Buy,
            trade_id: 1,
            time_ms: T0,
            price: Fixed::from_int(price),
            size: Fixed::from_int(1),
        };
        h.trades(vec![poison]).await.unwrap();
        for chunk in after.chunks(50) {
            h.trades(chunk.to_vec()).await.unwrap();
        }
        h.barrier().await.unwrap();

        let status = h.status().await.unwrap();
        assert!(status.healthy, "{kind}: engine has a working instance");
        assert_eq!(
            status.stats.quarantined, 1,
            "{kind}: the poison batch is set aside once"
        );
        // Twice for the batch itself, once more if it was coalesced with others.
        let faults = status.stats.faults_by_kind.get(kind).copied().unwrap_or(0);
        assert!((2..=3).contains(&faults), "{kind}: {:?}", status.stats.faults_by_kind);
        assert_eq!(
            status.stats.faults_by_kind.len(),
            1,
            "{kind}: {:?}",
            status.stats.faults_by_kind
        );
        let reported = status.last_fault.unwrap_or_default();
        assert!(reported.contains(says), "{kind}: {reported}");
        assert_eq!(
            engine_state(&h).await,
            reference(&names, &trades, &cfg).export(),
            "{kind}: no trade lost or doubled"
        );
        engine.shutdown().await;
    }
}

/// Checkpoints are built on another thread from a snapshot of the journal
/// while inputs keep coming; the journal then keeps only what came after
/// the snapshot, and a rebuild after a fault starts from that checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_built_off_the_engine_thread_are_what_recovery_starts_from() {
    let loader = loader();
    let names = product_names(3);
    let trades = market(3, 1_200, 5);
    // Due every two inputs of 20 trades, built off the thread whatever the
    // state's size. (The engine stops waiting for a build only 6 inputs
    // after its snapshot.)
    let cfg = EngineConfig {
        checkpoint_bytes: 2 * 20 * spot_wire::TRADE_SIZE,
        checkpoint_in_place_below: 0,
        ..config()
    };
    let engine = start(&loader, load(&loader, "spot_test_misbehave"), cfg.clone());
    let h = engine.handle();
    h.register_products(&names).await.unwrap();
    let (before, after) = trades.split_at(600);
    let mut chunks = before.chunks(20);
    // Builds start and come back while inputs come.
    for chunk in chunks.by_ref().take(27) {
        h.trades(chunk.to_vec()).await.unwrap();
        // One input each (queued batches would be applied as one).
        h.barrier().await.unwrap();
    }
    let status = checkpoint_builds_returned(&h).await;
    assert!(status.stats.checkpoint_builds >= 1, "{status:?}");
    let landed = status.stats.checkpoints;
    // Two inputs make one due. Its build is never given up (two inputs are
    // far from 8): it is taken when it comes back.
    for chunk in chunks.by_ref().take(2) {
        h.trades(chunk.to_vec()).await.unwrap();
        h.barrier().await.unwrap();
    }
    let status = checkpoint_builds_returned(&h).await;
    assert_eq!(status.stats.checkpoints, landed + 1, "{status:?}");
    assert!(
        status.journal_entries <= 1,
        "only what came after its snapshot: {status:?}"
    );
    assert!(status.stats.last_checkpoint_build_us > 0);
    assert!(status.checkpoint_bytes > 0);
    // One more input after it.
    for chunk in chunks {
        h.trades(chunk.to_vec()).await.unwrap();
    }
    h.barrier().await.unwrap();
    // A fault: the instance is rebuilt from the last checkpoint and what the
    // journal kept, and the poison is set aside.
    h.trades(vec![Trade {
        product: 1,
        side: Side::Buy,
        trade_id: 1,
        time_ms: T0,
        price: Fixed::from_int(672),
        size: Fixed::from_int(1),
    }])
    .await
    .unwrap();
    for chunk in after.chunks(20) {
        h.trades(chunk.to_vec()).await.unwrap();
    }
    h.barrier().await.unwrap();
    let status = h.status().await.unwrap();
    assert!(status.stats.rebuilds >= 1);
    assert_eq!(status.stats.quarantined, 1);
    assert_eq!(
        engine_state(&h).await,
        reference(&names, &trades, &cfg).export(),
        "no trade lost or doubled across checkpoints built elsewhere"
    );
    engine.shutdown().await;
}

/// A complete 1-minute candle of one trade, as storage gives it back at start.
fn stored_minute(product: u32, start: i64, last_trade_id: Option<u64>) -> spot_wire::Candle {
    spot_wire::Candle {
        product,
        granularity: Granularity::OneMinute,
        start,
        open: Fixed::from_int(10),
        high: Fixed::from_int(11),
        low: Fixed::from_int(9),
        close: Fixed::from_int(10),
        volume: Fixed::from_int(1),
        last_trade_id,
        trades: 1,
        complete: true,
        authoritative: true,
    }
}

/// The engine's status once every checkpoint build it started has come back
/// and been handled (the status is read in order with their commands).
async fn checkpoint_builds_returned(h: &spot_host::engine::EngineHandle) -> spot_host::engine::Status {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let status = h.status().await.unwrap();
        if status.stats.checkpoint_builds_returned == status.stats.checkpoint_builds {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "checkpoint builds still out: {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A checkpoint build slower than the inputs (a component whose import
/// spins): once the journal has grown by 3x the size that makes a checkpoint
/// due since the build's snapshot, the engine stops waiting and exports on
/// its own thread. The builds it stopped
/// waiting for stop early, come back and are not taken: a swap, built from
/// the checkpoint and the journal, still carries every trade exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_build_that_falls_behind_is_replaced_by_an_export_on_the_engine_thread() {
    let loader = loader();
    let names = product_names(3);
    let trades = market(3, 160, 9);
    // Due after every input, built off the thread whatever the state's size:
    // the next input finds the journal grown past 3x while the build spins.
    let cfg = EngineConfig {
        checkpoint_bytes: 1,
        checkpoint_in_place_below: 0,
        ..config()
    };
    let engine = start(&loader, load(&loader, "spot_test_slow_import"), cfg.clone());
    let h = engine.handle();
    h.register_products(&names).await.unwrap();
    let mut chunks = trades.chunks(20);
    for chunk in chunks.by_ref().take(2) {
        h.trades(chunk.to_vec()).await.unwrap();
        h.barrier().await.unwrap();
    }
    // The products' definition started a build (a spin of a few hundred
    // milliseconds at idle priority); the first trades found the journal
    // behind it and were exported with the state on the engine's thread; the
    // next trades started another build.
    let status = h.status().await.unwrap();
    assert_eq!(status.stats.checkpoints, 1, "{status:?}");
    assert_eq!(
        status.stats.last_checkpoint_build_us, status.stats.last_checkpoint_us,
        "exported on the engine's thread, not built: {status:?}"
    );
    assert_eq!(status.journal_entries, 1, "{status:?}");
    // More builds start and are given up; all of them come back late.
    for chunk in chunks {
        h.trades(chunk.to_vec()).await.unwrap();
        h.barrier().await.unwrap();
    }
    let status = checkpoint_builds_returned(&h).await;
    assert!(status.stats.checkpoints >= 4, "{status:?}");
    assert!(status.stats.checkpoint_builds >= 4, "{status:?}");
    // The first was given up while it imported: it stopped there, before
    // its replay and export.
    assert!(status.stats.checkpoint_builds_given_up >= 1, "{status:?}");
    // A swap's new instance is the last checkpoint with the journal replayed.
    h.swap(load(&loader, "spot_guest")).await.unwrap();
    assert_eq!(
        engine_state(&h).await,
        reference(&names, &trades, &cfg).export(),
        "no trade lost or doubled by a build that came back late"
    );
    engine.shutdown().await;
}

/// A restore (the horizon read back at start, in chunks) puts far more in
/// the journal than makes a checkpoint due, while a build is out: that is not
/// the build falling behind the inputs. The build is taken when it comes back,
/// not given up for an export on the engine's thread (which held the engine
/// about a second after every start with a day of 900 products).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_while_a_checkpoint_is_built_does_not_make_the_engine_export_it_itself() {
    let loader = loader();
    let names = product_names(3);
    let trades = market(3, 40, 13);
    // Due once 20 trades' bytes are journaled; the builds spin first.
    let cfg = EngineConfig {
        checkpoint_bytes: 20 * spot_wire::TRADE_SIZE,
        checkpoint_in_place_below: 0,
        ..config()
    };
    let stored = |from: i64, n: i64| -> Vec<spot_wire::Candle> {
        (from..from + n)
            .map(|m| stored_minute((m % 3) as u32, T0 / 1000 - 60 * (1 + m), None))
            .collect()
    };
    let engine = start(&loader, load(&loader, "spot_test_slow_import"), cfg.clone());
    let h = engine.handle();
    h.register_products(&names).await.unwrap();
    h.apply_candles(stored(0, 40), CandleSource::Restore).await.unwrap();
    // The first live input makes a checkpoint due: a build starts.
    h.trades(trades[..20].to_vec()).await.unwrap();
    h.barrier().await.unwrap();
    // The rest of the restore (10x what makes one due) and another input
    // come while it spins.
    h.apply_candles(stored(40, 100), CandleSource::Restore).await.unwrap();
    h.trades(trades[20..].to_vec()).await.unwrap();
    h.barrier().await.unwrap();
    let status = checkpoint_builds_returned(&h).await;
    assert_eq!(status.stats.checkpoint_builds, 1, "{status:?}");
    assert_eq!(status.stats.checkpoint_builds_given_up, 0, "{status:?}");
    assert_eq!(status.stats.checkpoints, 1, "the build was taken: {status:?}");
    assert!(
        status.stats.last_checkpoint_build_us > status.stats.last_checkpoint_us,
        "built off the engine's thread, not exported on it: {status:?}"
    );
    assert_eq!(
        status.journal_entries, 2,
        "what came after its snapshot stays: {status:?}"
    );
    // The checkpoint and what the journal kept are the whole state: a swap
    // builds its instance from them.
    let before = engine_state(&h).await;
    let minutes: usize = before.products.iter().map(|p| p.minutes.len()).sum();
    assert!(minutes > 140, "the restore and the trades: {minutes} minutes");
    h.swap(load(&loader, "spot_guest")).await.unwrap();
    assert_eq!(engine_state(&h).await, before, "nothing lost or doubled");
    engine.shutdown().await;
}

/// A trade of `product` whose price makes the misbehaving component render an
/// element that would run script (`chaos::XSS`).
fn xss_trade(product: u32, trade_id: u64) -> Trade {
    Trade {
        product,
        side: Side::Buy,
        trade_id,
        time_ms: T0 + 3_600_000,
        price: Fixed::from_int(676),
        size: Fixed::from_int(1),
    }
}

#[tokio::test]
async fn elements_that_could_run_script_never_leave_the_engine() {
    let loader = loader();
    let names = product_names(3);
    let trades = market(3, 300, 3);
    let last_id = |p: u32| {
        trades
            .iter()
            .filter(|t| t.product == p)
            .map(|t| t.trade_id)
            .max()
            .unwrap_or(0)
    };

    // The hostile component is the one loaded at start: its elements go out empty.
    let engine = start(&loader, load(&loader, "spot_test_misbehave"), config());
    let h = engine.handle();
    let mut rx = h.subscribe(1024).await.unwrap();
    h.register_products(&names).await.unwrap();
    h.trades(trades.clone()).await.unwrap();
    let poison = xss_trade(1, last_id(1) + 1);
    h.trades(vec![poison]).await.unwrap();
    h.barrier().await.unwrap();
    let mut all = trades.clone();
    all.push(poison);
    assert_eq!(
        engine_state(&h).await,
        reference(&names, &all, &config()).export(),
        "no trade lost"
    );
    let (mut refused, mut passed) = (0, 0);
    for out in drain(&mut rx) {
        for u in &out.updates {
            if u.candle.close == Fixed::from_int(676) {
                assert!(u.element.is_empty(), "a hostile element went out: {:?}", u.element);
                refused += 1;
            } else {
                let g = u.candle.granularity.name();
                spot_host::engine::element::check(&u.element, &u.product, g).unwrap();
                passed += 1;
            }
        }
    }
    assert_eq!(refused, 8, "the poison trade's candle at each granularity");
    assert!(passed > 0);
    let status = h.status().await.unwrap();
    assert!(status.healthy);
    assert_eq!(status.stats.unsafe_elements, 8);
    assert_eq!(
        status.active.name, "spot-test-misbehave",
        "not swapped in: nothing to roll back to"
    );
    engine.shutdown().await;

    // Swapped in over the default one, it passes the golden run (its prices
    // are ordinary), then is rolled back at its first hostile element.
    let engine = start(&loader, load(&loader, "spot_guest"), config());
    let h = engine.handle();
    let mut rx = h.subscribe(1024).await.unwrap();
    h.register_products(&names).await.unwrap();
    h.trades(trades.clone()).await.unwrap();
    h.swap(load(&loader, "spot_test_misbehave")).await.unwrap();
    h.trades(vec![poison]).await.unwrap();
    // (Applied before the next batch arrives: queued batches are coalesced.)
    h.barrier().await.unwrap();
    let after = xss_trade(2, last_id(2) + 1);
    h.trades(vec![after]).await.unwrap();
    h.barrier().await.unwrap();
    let status = h.status().await.unwrap();
    assert_eq!(status.stats.auto_rollbacks, 1);
    assert_eq!(status.active.name, "spot-default");
    assert!(status.last_fault.unwrap_or_default().contains("unsafe element"));
    // After the rollback the same kind of candle is rendered by the default component.
    let outputs = drain(&mut rx);
    let last = outputs.last().expect("outputs");
    assert!(
        last.updates
            .iter()
            .all(|u| u.candle.product == 2 && !u.element.is_empty())
    );
    let mut all = trades.clone();
    all.extend([poison, after]);
    assert_eq!(
        engine_state(&h).await,
        reference(&names, &all, &config()).export(),
        "no trade lost or doubled"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn the_golden_run_refuses_a_component_whose_elements_would_run_script() {
    let loader = loader();
    let hostile = load(&loader, "spot_test_hostile_element");
    let err = spot_host::engine::smoke::golden_run(loader.sandbox(), &hostile).unwrap_err();
    assert!(err.contains("\"data-on-load\" is a Datastar attribute"), "{err}");
    // The same rules with the seed's element pass.
    spot_host::engine::smoke::golden_run(loader.sandbox(), &load(&loader, "spot_guest")).unwrap();
}

#[tokio::test]
async fn components_that_break_the_contract_are_refused_with_the_reason() {
    let loader = loader();
    let err = loader
        .load_file(&component_path("spot_test_wrong_contract"))
        .unwrap_err();
    assert!(
        matches!(err, LoadError::IncompatibleContract { ref found, .. } if found == "1.0.0"),
        "{err}"
    );
    assert!(err.to_string().contains("spot:candles@1.0.0"), "{err}");

    let err = loader
        .load_file(&component_path("spot_test_foreign_import"))
        .unwrap_err();
    assert!(
        matches!(err, LoadError::ForbiddenImport(ref name) if name.starts_with("spot:evil/net")),
        "{err}"
    );

    let err = loader.load_bytes(b"\0asm garbage").unwrap_err();
    assert!(matches!(err, LoadError::Compile(_)), "{err}");

    // A precompiled artefact is never deserialized from outside.
    let wasm = std::fs::read(component_path("spot_guest")).unwrap();
    let cwasm = loader.sandbox().engine().precompile_component(&wasm).unwrap();
    assert!(matches!(loader.load_bytes(&cwasm), Err(LoadError::Precompiled)));

    let err = loader
        .load_file(std::path::Path::new("/nonexistent/x.wasm"))
        .unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
}

#[tokio::test]
async fn swapping_back_and_forth_hands_over_the_state_exactly() {
    let loader = loader();
    let a = load(&loader, "spot_guest");
    let b = load(&loader, "spot_test_misbehave");
    let engine = start(&loader, a.clone(), config());
    let h = engine.handle();
    let names = product_names(4);
    h.register_products(&names).await.unwrap();
    let trades = market(4, 3_000, 5);
    for (i, chunk) in trades.chunks(100).enumerate() {
        h.trades(chunk.to_vec()).await.unwrap();
        if i % 3 == 2 {
            let next = if i % 2 == 0 { b.clone() } else { a.clone() };
            let report = h.swap(next).await.unwrap();
            assert!(report.pause.as_secs() < 5);
        }
    }
    h.barrier().await.unwrap();
    let status = h.status().await.unwrap();
    assert_eq!(status.stats.swaps, 10);
    assert!(status.previous.is_some());
    assert_eq!(engine_state(&h).await, reference(&names, &trades, &config()).export());
    engine.shutdown().await;
}

#[tokio::test]
async fn compiled_components_are_cached_by_content_and_engine() {
    let dir = std::env::temp_dir().join(format!("spot-cache-test-{}", std::process::id()));
    let sandbox = Sandbox::new(test_limits()).unwrap();
    let first = Loader::new(sandbox.clone(), Some(dir.clone()))
        .load_file(&component_path("spot_guest"))
        .unwrap();
    assert!(!first.from_cache);
    let second = Loader::new(sandbox, Some(dir.clone()))
        .load_file(&component_path("spot_guest"))
        .unwrap();
    assert!(second.from_cache);
    assert_eq!(first.sha256, second.sha256);
    // A corrupt artefact is discarded and rebuilt, not trusted.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    let third = Loader::new(Sandbox::new(test_limits()).unwrap(), Some(dir.clone()))
        .load_file(&component_path("spot_guest"))
        .unwrap();
    assert!(!third.from_cache);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_during_a_continuous_feed_lose_and_double_nothing() {
    // Checkpoints stay rare so builders replay long journals and catch up in rounds.
    swaps_during_a_feed(config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_while_checkpoints_are_built_off_the_thread_lose_and_double_nothing() {
    // A checkpoint built elsewhere every few inputs: builds start before a
    // swap and come back while it is prepared or after it switched.
    swaps_during_a_feed(EngineConfig {
        checkpoint_bytes: 4 << 10,
        checkpoint_in_place_below: 0,
        ..config()
    })
    .await;
}

async fn swaps_during_a_feed(cfg: EngineConfig) {
    let loader = loader();
    let a = load(&loader, "spot_guest");
    let b = load(&loader, "spot_test_misbehave");
    let engine = start(&loader, a.clone(), cfg.clone());
    let h = engine.handle();
    let names = product_names(6);
    h.register_products(&names).await.unwrap();
    let trades = market(6, 20_000, 99);
    // Each round starts a swap and streams trades while it is prepared.
    let rounds = 8;
    let mut chunks = trades.chunks(10);
    for round in 0..rounds {
        let next = if round % 2 == 0 { b.clone() } else { a.clone() };
        let swap = tokio::spawn({
            let h = h.clone();
            async move { h.swap(next).await }
        });
        for chunk in chunks.by_ref().take(trades.len() / 10 / rounds) {
            h.trades(chunk.to_vec()).await.unwrap();
        }
        swap.await.unwrap().unwrap();
    }
    for chunk in chunks {
        h.trades(chunk.to_vec()).await.unwrap();
    }
    h.barrier().await.unwrap();
    let status = h.status().await.unwrap();
    assert_eq!(status.stats.swaps, rounds as u64);
    if cfg.checkpoint_in_place_below == 0 {
        assert!(status.stats.checkpoints > 0, "{:?}", status.stats);
    }
    assert_eq!(engine_state(&h).await, reference(&names, &trades, &cfg).export());
    engine.shutdown().await;
}

#[tokio::test]
async fn a_restored_day_is_not_reported_again_as_newly_complete() {
    let loader = loader();
    // A real clock (first tick an hour away): the engine tells the time at start.
    // Retention covers yesterday too: shortly after midnight UTC the restored
    // hour lies in the previous day, which this test is not about dropping.
    let cfg = EngineConfig {
        clock: Some(std::time::Duration::from_secs(3600)),
        retention: std::time::Duration::from_secs(2 * 86_400),
        ..config()
    };
    let engine = start(&loader, load(&loader, "spot_guest"), cfg);
    let h = engine.handle();
    let mut rx = h.subscribe(64).await.unwrap();
    h.register_products(&["BTC-USD".to_string()]).await.unwrap();
    let now = spot_host::engine::now_ms();
    let first = Granularity::OneMinute.bucket_start(now / 1000) - 7_200;
    let stored: Vec<spot_wire::Candle> = (0..60)
        .map(|m| stored_minute(0, first + m * 60, Some(m as u64 + 1)))
        .collect();
    h.apply_candles(stored, CandleSource::Restore).await.unwrap();
    h.advance(now + 1_000).await.unwrap();
    h.barrier().await.unwrap();
    let reported: usize = drain(&mut rx).iter().map(|o| o.updates.len()).sum();
    assert_eq!(reported, 0, "restored buckets were reported again");
    // They are there: the hour restored is in the state.
    assert_eq!(engine_state(&h).await.products[0].minutes.len(), 60);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_past_the_default_hostcall_limit_exports_and_imports() {
    use spot_host::engine::instance::Instance;
    use spot_host::engine::{Limits, Settings};
    use spot_wire::state::{MinuteState, ProductState, State};
    // 1.2 M minutes (~140 MB packed): more than wasmtime lets one call hand
    // the host by default (128 MiB), less than the component may hold.
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let loaded = Loader::new(sandbox.clone(), None)
        .load_file(&component_path("spot_guest"))
        .expect("load");
    let products = (0..500u32)
        .map(|p| ProductState {
            id: p,
            name: format!("P{p}-USD"),
            counted: vec![(1, 2_400)],
            top_time_ms: T0,
            minutes: (0..2_400i64)
                .map(|m| MinuteState {
                    start: T0 / 1000 - 86_400 + m * 60,
                    open: Fixed::from_int(100),
                    high: Fixed::from_int(101 + m % 7),
                    low: Fixed::from_int(99),
                    close: Fixed::from_int(100 + m % 2),
                    volume: Fixed::from_int(3),
                    open_id: m as u64 + 1,
                    close_id: m as u64 + 1,
                    floor_id: 0,
                    trades: 1,
                    sealed: false,
                })
                .collect(),
        })
        .collect();
    let state = State {
        now_ms: T0,
        products,
        extensions: Vec::new(),
    }
    .encode();
    assert!(state.len() > 128 << 20, "{} bytes", state.len());
    let mut inst = Instance::new(&sandbox, &loaded).expect("instance");
    inst.configure(Settings {
        grace_ms: 5_000,
        retention_ms: 86_400_000,
    })
    .expect("configure");
    inst.import_state(&state).expect("import");
    let exported = inst.export_state().expect("export");
    assert!(exported == state, "the exported state differs from the imported one");
}

#[tokio::test]
async fn a_large_batch_goes_out_in_pieces_of_whole_products_and_its_time_is_counted_by_stage() {
    use spot_host::engine::TradeStage;
    let loader = loader();
    let engine = start(&loader, load(&loader, "spot_guest"), config());
    let h = engine.handle();
    let names = product_names(100);
    let mut rx = h.subscribe(1024).await.unwrap();
    h.register_products(&names).await.unwrap();
    // One trade of each of 100 products: 800 updates in one call.
    let mut products = std::collections::HashSet::new();
    let trades: Vec<Trade> = market(100, 2_000, 11)
        .into_iter()
        .filter(|t| products.insert(t.product))
        .collect();
    assert_eq!(trades.len(), 100);
    // The frame was read 50 ms ago: that wait counts for each of its trades.
    let read = std::time::Instant::now() - std::time::Duration::from_millis(50);
    h.trades_received(trades.clone(), read).await.unwrap();
    h.barrier().await.unwrap();

    let outputs = drain(&mut rx);
    assert!(
        outputs.len() >= 3,
        "800 updates in pieces of about 256: {} outputs",
        outputs.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut product_in = std::collections::BTreeMap::new();
    for (i, out) in outputs.iter().enumerate() {
        for u in &out.updates {
            assert!(
                seen.insert((u.candle.product, u.candle.granularity)),
                "an update went out twice"
            );
            // A product's candles are all in one piece (one event per client).
            assert_eq!(*product_in.entry(u.candle.product).or_insert(i), i);
            assert_eq!(u.element, spot_rules::render::element(&u.candle, &u.product).as_bytes());
        }
    }
    assert_eq!(seen.len(), 100 * 8);

    let stats = h.stats();
    let ns = |s| stats.trade_nanos(s);
    assert!(
        ns(TradeStage::Queue) >= 100 * 50_000_000,
        "queue: {} ns",
        ns(TradeStage::Queue)
    );
    for stage in [TradeStage::Ingest, TradeStage::Render, TradeStage::Publish] {
        assert!(ns(stage) > 0, "{} not counted", stage.name());
    }
    engine.shutdown().await;
}
