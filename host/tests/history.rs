//! History that matches the exchange's over the whole horizon (the current
//! and the previous UTC day): the real `spot-server` process, its wall clock
//! moved by libfaketime to the hour under test, against the fake Coinbase
//! (whose trade log, history before the start included, is the truth) and a
//! real PostgreSQL. A first start backfills, a restart fetches nothing that is
//! stored and completes what was open, a swap keeps both days; the audit finds
//! what no trade-id gap shows; the REST budget holds with 900 products.

mod common;

use common::fake::exchange_and_database;
use common::fake::{ADMIN_TOKEN, process_env, stored_equal_log_from, wait_until};
use common::http::{attr, get, request, sse};
use common::process::{Clock, settled, spawn_at};

use std::collections::HashMap;
use std::time::Duration;

use spot_fake_coinbase::{FakeTrade, busiest_window, now_ms};
use spot_wire::{Fixed, Granularity};

const DAY_MS: i64 = 86_400_000;
const GRACE_MS: i64 = 5_000;

/// The first second of the default horizon (two UTC days) at `clock`, unix ms.
fn horizon_start_ms(clock: &Clock) -> i64 {
    (clock.now_ms() - GRACE_MS - DAY_MS).div_euclid(DAY_MS) * DAY_MS
}

/// The stored buckets not complete now: (product, granularity, start).
async fn open_buckets(pool: &deadpool_postgres::Pool) -> Vec<(String, Granularity, i64)> {
    let client = pool.get().await.expect("client");
    client
        .query(
            r#"SELECT product_id, granularity::text, extract(epoch FROM "timestamp")::int8
               FROM live_candles WHERE NOT complete"#,
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| {
            let g: &str = r.get(1);
            (r.get(0), Granularity::from_name(g).expect("granularity"), r.get(2))
        })
        .collect()
}

/// The newest trades of `product` a snapshot holds (not withheld), and how many are before `before_ms`.
fn snapshot_before(log: &[FakeTrade], product: &str, n: usize, before_ms: i64) -> usize {
    log.iter()
        .rev()
        .filter(|t| &*t.product == product && !t.withheld)
        .take(n)
        .filter(|t| t.time_us < before_ms * 1000)
        .count()
}

/// A first start at `secs_of_day` (server clock), a restart once the
/// minute open at the stop is over, and a swap, with a market whose history
/// is longer than one snapshot: a liquid product, a quiet one whose snapshot
/// reaches back to the previous UTC day, and one quiet for days whose
/// snapshot reaches back before the horizon.
async fn history_at(secs_of_day: i64) {
    common::trace();
    let clock = Clock::at(secs_of_day);
    let start = clock.now_ms();
    let horizon = horizon_start_ms(&clock);
    let products: Vec<String> = ["BTC-USD", "QQQ-USD", "OLD-USD"].map(String::from).to_vec();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    // Every 20 s for the whole horizon and before it.
    fake.history("BTC-USD", horizon - 3 * 3_600_000, start - 30_000, 20_000);
    // Every 15 minutes: its 50-trade snapshot spans 12.5 hours.
    fake.history("QQQ-USD", horizon - 3 * 3_600_000, start - 300_000, 900_000);
    // Every 90 minutes for four days, last traded yesterday evening.
    let old_end = horizon + 20 * 3_600_000;
    fake.history("OLD-USD", old_end - 4 * DAY_MS, old_end, 5_400_000);
    let log = fake.log();
    let qqq_from = log
        .iter()
        .rev()
        .filter(|t| &*t.product == "QQQ-USD")
        .take(50)
        .map(|t| t.time_us / 1000)
        .min()
        .expect("QQQ history");
    assert!(
        qqq_from < start.div_euclid(DAY_MS) * DAY_MS,
        "the quiet product's snapshot reaches back into the previous UTC day"
    );
    let past_horizon: usize = products.iter().map(|p| snapshot_before(&log, p, 50, horizon)).sum();
    assert!(past_horizon > 0, "a snapshot reaches back before the horizon");

    let env = process_env(&pg, &fake, &products, &[("COINBASE_REST_RATE", "50"), ("AUDIT", "off")]);

    // First start: the whole horizon, both days, at all 8 granularities.
    let server = spawn_at(&env, Some(clock.offset_s)).await;
    settled(&server).await;
    fake.emit("BTC-USD", 5, clock.now_ms());
    stored_equal_log_from(&pool, &fake, &products, horizon).await;
    assert_eq!(
        server.metric("spot_feed_past_horizon_trades_total").await,
        past_horizon as f64,
        "the snapshots' trades older than the horizon are counted"
    );
    let rows_before: i64 = pool
        .get()
        .await
        .expect("client")
        .query_one(
            r#"SELECT count(*) FROM live_candles WHERE "timestamp" < to_timestamp($1::int8)"#,
            &[&horizon.div_euclid(1000)],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows_before, 0, "nothing older than the horizon is kept");

    // A restart once the minute open at the stop is over: nothing stored is
    // fetched again, and every bucket open at the stop and over by the start
    // ends complete.
    let requests = fake.stats().count(|f| &f.candle_requests);
    let open = open_buckets(&pool).await;
    let stopped_at = clock.now_ms();
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
    clock
        .sleep_until(stopped_at.div_euclid(60_000) * 60_000 + 60_000 + GRACE_MS + 1_000)
        .await;
    let restarted_at = clock.now_ms();
    let server = spawn_at(&env, Some(clock.offset_s)).await;
    settled(&server).await;
    assert_eq!(
        fake.stats().count(|f| &f.candle_requests),
        requests,
        "a restart fetches nothing that is stored"
    );
    let over: Vec<&(String, Granularity, i64)> = open
        .iter()
        .filter(|(_, g, s)| (s + g.seconds()) * 1000 + GRACE_MS <= restarted_at)
        .collect();
    assert!(!over.is_empty(), "the minute open at the stop is over by the start");
    // Stored by another process: poll the API until it says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (p, g, s) in &over {
        loop {
            let body = get(
                server.addr,
                &format!("/api/candles?product={p}&granularity={}&from={s}&to={s}", g.name()),
            )
            .await
            .json();
            if body["candles"][0]["complete"] == true {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{p} {} @{s} was open at the stop and is over, but not complete: {body}",
                g.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut stream = sse(server.addr, "/stream?product=BTC-USD&granularity=ONE_MINUTE", &[], None).await;
    let first = stream.event().await.expect("the stream's first event");
    let el = &first.elements[0];
    let (_, _, minute) = over
        .iter()
        .filter(|(p, g, _)| p == "BTC-USD" && *g == Granularity::OneMinute)
        .copied()
        .max_by_key(|(_, _, s)| *s)
        .expect("BTC's minute open at the stop");
    assert_eq!(
        attr(el, "data-timestamp").as_deref(),
        Some(minute.to_string().as_str()),
        "{el}"
    );
    assert_eq!(attr(el, "data-complete").as_deref(), Some("true"), "{el}");
    drop(stream);
    stored_equal_log_from(&pool, &fake, &products, horizon).await;

    // A swap at this hour keeps both days: then the quiet product trades
    // again past a trade never sent, and the repair of that gap, which reaches
    // back to its last trade yesterday evening, recomputes yesterday's buckets
    // from what the new component holds.
    let wasm = std::fs::read(common::component_path("spot_example_change")).expect("wasm");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = request(
        server.addr,
        "PUT",
        "/admin/component",
        &[("Authorization", &auth), ("Content-Type", "application/wasm")],
        &wasm,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let repairs = server.metric("spot_repair_requests_total").await;
    let t = clock.now_ms() - 70_000;
    fake.withhold("OLD-USD", 1);
    fake.emit("OLD-USD", 1, t);
    fake.emit("OLD-USD", 2, t + 1_000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.metric("spot_repair_requests_total").await <= repairs
        || server.metric("spot_repair_windows_pending").await > 0.0
    {
        assert!(tokio::time::Instant::now() < deadline, "the gap was never repaired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.emit("BTC-USD", 3, clock.now_ms());
    stored_equal_log_from(&pool, &fake, &products, horizon).await;
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_at_01_20_utc_keeps_the_previous_day_its_snapshot_reaches_into() {
    history_at(80 * 60 + 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_at_noon_keeps_a_quiet_products_previous_evening() {
    history_at(12 * 3600 - 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_stopped_midway_resumes_where_it_was() {
    common::trace();
    let clock = Clock::at(6 * 3600);
    let start = clock.now_ms();
    let horizon = horizon_start_ms(&clock);
    let products: Vec<String> = (0..6).map(|i| format!("R{i}-USD")).collect();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    for p in &products {
        // Every 10 minutes: a snapshot reaches back 500 minutes, the rest of
        // the two days is the backfill's (five requests a product).
        fake.history(p, horizon - 3_600_000, start - 120_000, 600_000);
    }
    let env = process_env(&pg, &fake, &products, &[("COINBASE_REST_RATE", "4"), ("AUDIT", "off")]);
    let server = spawn_at(&env, Some(clock.offset_s)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.metric("spot_backfill_products_planned").await < products.len() as f64 {
        assert!(tokio::time::Instant::now() < deadline, "the backfill was never planned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let planned = server.metric("spot_backfill_requests_total").await;
    assert!(planned >= 5.0 * products.len() as f64, "{planned} requests planned");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.metric("spot_backfill_requests_done_total").await < 10.0 {
        assert!(tokio::time::Instant::now() < deadline, "the backfill does not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
    let before = fake.stats().count(|f| &f.candle_requests);
    let server = spawn_at(&env, Some(clock.offset_s)).await;
    let resumed = server.logged("resuming the windows").expect("a resume log line");
    let left = resumed["backfill_requests"].as_f64().unwrap_or(0.0);
    assert!(left > 0.0 && left < planned, "{resumed}");
    settled(&server).await;
    // What the first run had done is not fetched again: only what was left
    // (and at most one request per worker that the stop cut off).
    let after = fake.stats().count(|f| &f.candle_requests) - before;
    assert!(
        after as f64 <= left + 4.0,
        "{after} requests after the restart, {left} were left"
    );
    stored_equal_log_from(&pool, &fake, &products, horizon).await;
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_rate_holds_with_900_products_backfilling_and_gaps_repaired_first() {
    common::trace();
    const RATE: usize = 40;
    // 00:30: one request per product covers the current day (HISTORY_DAYS=1).
    let clock = Clock::at(30 * 60);
    let products: Vec<String> = (0..900).map(|i| format!("P{i}-USD")).collect();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    let rate = RATE.to_string();
    let env = process_env(
        &pg,
        &fake,
        &products,
        &[
            ("COINBASE_REST_RATE", rate.as_str()),
            ("HISTORY_DAYS", "1"),
            ("AUDIT", "off"),
        ],
    );
    let mut server = spawn_at(&env, Some(clock.offset_s)).await;
    server.until_log("feed up").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.metric("spot_backfill_requests_done_total").await < 200.0 {
        assert!(tokio::time::Instant::now() < deadline, "the backfill does not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The page says the history is still being fetched.
    let page = get(server.addr, "/").await.body;
    assert!(
        page.contains("id=\"history-notice\"") && page.contains("of 900 products done"),
        "{page}"
    );
    // Gaps while the backfill runs: three products trade in a minute that is
    // over, one trade of each never sent.
    let gapped = &products[..3];
    let t = clock.now_ms() - 65_000;
    for p in gapped {
        fake.emit(p, 2, t);
        fake.withhold(p, 1);
        fake.emit(p, 1, t + 100);
        fake.emit(p, 2, t + 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.metric("spot_repair_requests_total").await < gapped.len() as f64
        || server.metric("spot_repair_windows_pending").await > 0.0
    {
        assert!(tokio::time::Instant::now() < deadline, "the gaps were never repaired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = server.metric("spot_backfill_requests_pending").await;
    assert!(
        left > 100.0,
        "the gaps waited behind the backfill: {left} backfill requests were left when they were repaired"
    );
    settled(&server).await;
    assert!(
        !get(server.addr, "/").await.body.contains("id=\"history-notice\""),
        "the backfill is done"
    );
    let times = fake.stats().candle_request_times();
    assert!(times.len() >= products.len(), "{} requests", times.len());
    let busiest = busiest_window(&times, Duration::from_secs(1));
    eprintln!(
        "{} requests; busiest second {busiest} (rate {RATE}); {left} backfill requests left when the gaps were repaired",
        times.len()
    );
    assert!(
        busiest <= RATE,
        "{busiest} requests within a second, the rate is {RATE}"
    );
    let horizon = clock.now_ms().div_euclid(DAY_MS) * DAY_MS;
    stored_equal_log_from(&pool, &fake, gapped, horizon).await;
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_what_no_gap_shows_corrects_the_minute_and_counts_the_rest() {
    use spot_host::server::{Options, Server};
    common::trace();
    let products: Vec<String> = ["BTC-USD", "QQQ-USD"].map(String::from).to_vec();
    let (fake, pg) = common::fake::fake_and_database(&products).await;
    let now = now_ms();
    let minute = |ms: i64| ms.div_euclid(60_000) * 60_000;
    fake.history("BTC-USD", minute(now) - 40 * 60_000, minute(now) - 2 * 60_000, 30_000);
    fake.history(
        "QQQ-USD",
        minute(now) - 3 * 3_600_000,
        minute(now) - 15 * 60_000,
        600_000,
    );
    let mut vars: HashMap<&str, String> = common::fake::server_env(&pg, &fake).into_iter().collect();
    vars.insert("COINBASE_REST_RATE", "120".into());
    vars.insert("PRODUCTS", products.join(","));
    let config = spot_host::config::Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let server = Server::start(
        &config,
        Options {
            // The wall clock completes buckets: the audit compares complete ones.
            limits: common::test_limits(),
            bind: Some(([127, 0, 0, 1], 0).into()),
            feed: Some(common::fake::feed_config(&fake)),
            repair: common::fake::repair_config(),
            audit_pause: Duration::from_millis(200),
            ..Options::default()
        },
    )
    .await
    .expect("server");
    common::fake::wait_up(&server).await;
    common::fake::stored_equal_log(&server, &fake, &products).await;
    let audit = server.history_stats().expect("history").clone();
    let since = std::time::Instant::now();
    let granted_before = server_audit_granted(&server).await;

    // A late correction by the exchange: a trade of ten minutes ago changes
    // size in its record, with no trade-id gap anywhere.
    let victim = fake
        .log()
        .into_iter()
        .filter(|t| &*t.product == "BTC-USD" && t.time_us < (minute(now) - 9 * 60_000) * 1000)
        .last()
        .expect("a BTC trade");
    assert!(fake.amend(
        "BTC-USD",
        victim.trade_id,
        victim.size.saturating_add(Fixed::from_int(1))
    ));
    // A trade never sent at the tail of the quiet product: no later trade
    // shows the jump.
    fake.withhold("QQQ-USD", 1);
    fake.emit("QQQ-USD", 1, minute(now) - 4 * 60_000 + 5_000);
    // The exchange's five minutes of twenty minutes ago disagree with its own minutes.
    let five = (minute(now) - 20 * 60_000).div_euclid(300_000) * 300;
    fake.skew_candle("BTC-USD", 300, five, Fixed::from_int(7));

    wait_until("the audit corrected both minutes", Duration::from_secs(60), || {
        audit.audit.totals()[0].corrected >= 2
    })
    .await;
    // The corrected minutes and their rollups equal the log again, and a
    // pass that began after the corrections finds only the exchange's odd hour.
    common::fake::stored_equal_log(&server, &fake, &products).await;
    let wanted = audit.audit.passes().0 + 1;
    wait_until("a pass after the corrections", Duration::from_secs(60), || {
        audit.audit.passes().0 > wanted
    })
    .await;
    let report = get(server.addr(), "/api/audit").await.json();
    let last = &report["last_pass"]["granularities"];
    for g in last.as_array().expect("granularities") {
        let (missing, extra, value) = (g["missing"].as_u64(), g["extra"].as_u64(), g["value"].as_u64());
        let want_value = if g["granularity"] == "FIVE_MINUTES" { 1 } else { 0 };
        assert_eq!(
            (missing, extra, value),
            (Some(0), Some(0), Some(want_value)),
            "{g} in the last pass: {report}"
        );
    }
    for g in &last.as_array().expect("granularities")[..2] {
        assert!(g["checked"].as_u64() > Some(0), "{g}");
    }
    let totals = &report["totals"][0];
    assert_eq!(totals["granularity"], "ONE_MINUTE");
    assert!(totals["value"].as_u64() >= Some(1), "the amended minute: {report}");
    assert!(totals["missing"].as_u64() >= Some(1), "the withheld tail: {report}");
    assert!(totals["corrected"].as_u64() >= Some(2), "{report}");
    // The odd bucket is counted and logged, never written over.
    let stored = spot_host::storage::candles::candles(
        server.pool(),
        "coinbase",
        "BTC-USD",
        Granularity::FiveMinutes,
        five,
        five,
        1,
    )
    .await
    .expect("five minutes");
    let want = fake
        .candles("BTC-USD", 300)
        .into_iter()
        .find(|c| c.start == five)
        .expect("five minutes");
    assert_eq!(
        stored[0].volume,
        want.volume.to_string(),
        "the stored bucket follows its minutes"
    );
    let metrics = get(server.addr(), "/metrics").await.body;
    for line in [
        "spot_audit_corrected_total{granularity=\"ONE_MINUTE\"}",
        "spot_audit_mismatches_total{granularity=\"FIVE_MINUTES\",kind=\"value\"}",
        "spot_audit_last_pass_timestamp_seconds",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}");
    }
    assert!(
        audit
            .audit
            .report(true)
            .recent_mismatches
            .iter()
            .any(|m| m.granularity == "FIVE_MINUTES" && !m.corrected && m.stored.is_some() && m.exchange.is_some()),
        "the bucket's difference is kept with both values"
    );
    // The audit kept to its share: a sixth of the 120 requests a second.
    let granted = server_audit_granted(&server).await - granted_before;
    let per_second = granted / since.elapsed().as_secs_f64();
    assert!(
        per_second <= 120.0 / 6.0 + 0.5,
        "{per_second:.1} audit requests a second"
    );
    server.stop().await;
}

/// REST requests the budget granted to the audit so far (`/metrics`).
async fn server_audit_granted(server: &spot_host::server::Server) -> f64 {
    let body = get(server.addr(), "/metrics").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix("spot_rest_requests_total{priority=\"audit\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
