//! End to end, as an operator runs it: the real `spot-server` process (the
//! binary of this package, configured by environment) against the fake
//! Coinbase with a synthetic market and injected faults, a real PostgreSQL
//! and a real SSE client. The truth is the fake's full trade log; then
//! SIGTERM, a restart, more trades, and the same check.

mod common;

use common::fake::{past_minute, stored_differences, wait_until};
use common::http::{Sse, attr, get, shown, sse};
use common::process::{spawn, until_log};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spot_fake_coinbase::{Fake, Fault};
use spot_wire::Granularity;

/// The subscription of every product at every granularity.
fn stream_path(products: &[String]) -> String {
    let q: Vec<String> = products.iter().map(|p| format!("product={p}")).collect();
    format!("/stream?{}", q.join("&"))
}

/// Read events until the last element of every (product, granularity)
/// carries the stored row of its newest bucket.
async fn stream_matches_storage(
    stream: &mut Sse,
    last: &mut BTreeMap<String, String>,
    pool: &deadpool_postgres::Pool,
    products: &[String],
) {
    let mut want = BTreeMap::new();
    for p in products {
        for g in Granularity::ALL {
            let rows = spot_host::storage::candles::candles(pool, "coinbase", p, g, 0, 4_000_000_000, 10_000)
                .await
                .expect("history");
            let row = rows.last().unwrap_or_else(|| panic!("no stored {p} {}", g.name()));
            let id = format!("{p}-{}", g.name());
            want.insert(
                id,
                [
                    row.timestamp.to_string(),
                    row.open.clone(),
                    row.high.clone(),
                    row.low.clone(),
                    row.close.clone(),
                    row.volume.clone(),
                ],
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let differ: Vec<&String> = want
            .iter()
            .filter(|(id, w)| last.get(*id).map(|el| shown(el)).as_ref() != Some(*w))
            .map(|(id, _)| id)
            .collect();
        if differ.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stream's last elements differ from storage: {differ:?}"
        );
        let event = stream.event().await.expect("the stream ended early");
        assert_eq!(event.event, "datastar-patch-elements");
        for el in event.elements {
            let id = attr(&el, "id").expect("element id");
            last.insert(id, el);
        }
    }
}

/// Wait until storage equals the fake's log at all eight granularities.
async fn storage_equals_log(pool: &deadpool_postgres::Pool, fake: &Fake, products: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let diff = stored_differences(pool, fake, products).await;
        if diff.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stored candles differ from the log:\n{}",
            diff.join("\n")
        );
        // Another process writes the rows: nothing to await but the rows.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Let the synthetic market make `n` more trades (at about `rate` a second).
async fn run_market(fake: &Fake, rate: u64, n: usize, mut midway: impl FnMut()) {
    let start = fake.log().len();
    let market = fake.run_market(rate);
    wait_until("half the market's trades", Duration::from_secs(60), || {
        fake.log().len() >= start + n / 2
    })
    .await;
    midway();
    wait_until("the market's trades", Duration::from_secs(60), || {
        fake.log().len() >= start + n
    })
    .await;
    market.abort();
    let _ = market.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_process_stores_and_streams_the_market_through_faults_and_a_restart() {
    let products: Vec<String> = ["BTC-USD", "ETH-USD", "SOL-USD"].map(String::from).to_vec();
    let (fake, pg) = common::fake::fake_and_database(&products).await;
    let data = std::env::temp_dir().join(format!("spot-e2e-{}", std::process::id()));
    let mut env = common::fake::server_env(&pg, &fake);
    env.push(("SPOT_DATA_DIR", data.display().to_string()));
    let pool = spot_host::storage::pool(&pg.url("postgres"), 2).expect("pool");

    // First run: products discovered over REST (the listing's extras skipped).
    let mut server = spawn(&env).await;
    // On a server that loads TimescaleDB (make test's second run), the
    // candles are in a hypertable, and the start says so.
    let ready = server.logged("database ready").expect("the database ready line");
    let timescale = ready["timescaledb"].as_str().unwrap_or_default().to_string();
    assert_eq!(timescale.contains("Hypertable"), pg.timescaledb(), "{ready}");
    assert!(
        server.started["migrations_applied"].as_u64() > Some(0),
        "{}",
        server.started
    );
    assert_eq!(server.started["connections"].as_u64(), Some(1), "{}", server.started);
    // HOST decides the listen address (the admin API's too).
    assert!(
        server.started["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{}",
        server.started
    );
    assert!(
        server.started["component"]
            .as_str()
            .is_some_and(|c| c.starts_with("spot-default ")),
        "{}",
        server.started
    );
    until_log(&mut server.logs, &server.seen, "feed up").await;
    let listed = get(server.addr, "/api/products").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(products.len()), "{listed}");
    // What the exchange's listing says is kept (trading_pairs) and shown.
    assert_eq!(listed[0]["product_id"], "BTC-USD", "{listed}");
    assert_eq!(listed[0]["status"], "online", "{listed}");
    assert_eq!(listed[0]["min_size"], "0.00000001", "{listed}");
    assert_eq!(listed[0]["max_size"], "3400", "{listed}");
    let mut stream = sse(server.addr, &stream_path(&products), &[], None).await;
    assert_eq!(stream.status, 200);
    let mut last = BTreeMap::new();

    // Withheld trades in minutes that are over: a gap, repaired over REST.
    // The backfill (newest first, from the feed's live minute back) has
    // fetched these minutes first: trades that come for them later count
    // (a busy run once fetched minute t after its trades were sent, and the
    // exchange's candle, which has no count, replaced them).
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("spot_backfill_done").await != 1.0 {
        assert!(Instant::now() < deadline, "the backfill never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = past_minute(6);
    for p in &products {
        fake.emit(p, 12, t);
    }
    fake.withhold(&products[2], 3);
    fake.emit(&products[2], 3, t + 65_000);
    fake.emit(&products[2], 4, t + 130_000);
    // The repair lands before the live market, so the newest bucket of every
    // candle is the market's, not a revision of the past.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("spot_repair_requests_total").await < 1.0
        || server.metric("spot_repair_windows_pending").await > 0.0
    {
        assert!(Instant::now() < deadline, "the withheld trades were never repaired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Trades are counted where spot saw them; a minute it took from the
    // exchange's REST candles has no count (null), nor has a bucket holding it.
    storage_equals_log(&pool, &fake, &products).await;
    let trades = |body: serde_json::Value| body["candles"][0]["trades"].clone();
    let at = |p: &str, g: &str, ts: i64| format!("/api/candles?product={p}&granularity={g}&from={ts}&to={ts}");
    let (seen, repaired) = (t / 1000, t / 1000 + 60);
    assert_eq!(
        trades(get(server.addr, &at(&products[0], "ONE_MINUTE", seen)).await.json()),
        12
    );
    let five_seen = seen - seen.rem_euclid(300);
    assert_eq!(
        trades(
            get(server.addr, &at(&products[0], "FIVE_MINUTES", five_seen))
                .await
                .json()
        ),
        12
    );
    assert!(trades(get(server.addr, &at(&products[2], "ONE_MINUTE", repaired)).await.json()).is_null());
    let five = repaired - repaired.rem_euclid(300);
    assert!(trades(get(server.addr, &at(&products[2], "FIVE_MINUTES", five)).await.json()).is_null());

    // A garbage frame, then the live market with a dropped connection midway.
    fake.fault(Fault::Garbage);
    run_market(&fake, 60, 240, || fake.fault(Fault::Drop)).await;
    storage_equals_log(&pool, &fake, &products).await;
    stream_matches_storage(&mut stream, &mut last, &pool, &products).await;
    assert!(server.metric("spot_feed_malformed_frames_total").await >= 1.0);
    assert!(server.metric("spot_feed_reconnects_total").await >= 1.0);
    assert!(
        server.metric("spot_engine_duplicate_trades_total").await >= 1.0,
        "the re-sent snapshot"
    );
    assert!(
        server.metric("spot_candle_late_revisions_total").await >= 1.0,
        "trades of minutes that were over"
    );
    assert!(server.metric("spot_engine_call_seconds_count").await >= 1.0);
    assert!(server.metric("spot_writer_flush_seconds_count").await >= 1.0);
    assert_eq!(server.metric("spot_sse_clients").await, 1.0);

    // SIGTERM: the drain ends the stream and the process exits cleanly.
    let (status, took) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
    stream.until_closed().await;
    eprintln!("SIGTERM to exit: {took:?}");

    // Trades while the service is down, then a restart and more market.
    for p in &products {
        fake.emit(p, 20, spot_fake_coinbase::now_ms());
    }
    let mut server = spawn(&env).await;
    let started = &server.started;
    assert!(
        started["candles_restored"].as_u64() > Some(0),
        "the restart restored open buckets: {started}"
    );
    assert_eq!(started["migrations_applied"].as_u64(), Some(0), "{started}");
    until_log(&mut server.logs, &server.seen, "feed up").await;
    let mut stream = sse(server.addr, &stream_path(&products), &[], None).await;
    let mut last = BTreeMap::new();
    run_market(&fake, 60, 120, || {}).await;
    storage_equals_log(&pool, &fake, &products).await;
    stream_matches_storage(&mut stream, &mut last, &pool, &products).await;
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Run the binary to its end with exactly `env` and `args`.
async fn run_to_end(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_spot-server"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("spot-server did not stop on bad settings")
        .expect("run spot-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_stop_the_start_with_a_clear_error_that_quotes_no_secret() {
    let help = run_to_end(&[], &["--help"]).await;
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for var in [
        "DATABASE_URL",
        "COINBASE_PRIVATE_KEY",
        "SHARD_INDEX",
        "COMPONENT_PATH",
        "LOG_FORMAT",
    ] {
        assert!(text.contains(var), "--help lacks {var}");
    }

    // Nothing listens on port 1: an unreadable component must be reported
    // before any wait for the database.
    let unreachable = "postgresql://spot:hunter2@127.0.0.1:1/spot";
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "DATABASE_URL is required"),
        (
            &[("DATABASE_URL", "postgresql://spot:hunter2@db:notaport/spot")],
            "DATABASE_URL",
        ),
        (
            &[
                ("DATABASE_URL", unreachable),
                ("COMPONENT_PATH", "/nonexistent/spot.wasm"),
            ],
            "COMPONENT_PATH: reading the aggregation component /nonexistent/spot.wasm",
        ),
        (
            &[
                ("DATABASE_URL", unreachable),
                ("COINBASE_API_KEY", "organizations/o/apiKeys/k"),
                (
                    "COINBASE_PRIVATE_KEY",
                    "-----BEGIN EC PRIVATE KEY-----\nhunter2\n-----END EC PRIVATE KEY-----",
                ),
            ],
            "COINBASE_PRIVATE_KEY",
        ),
        (
            &[
                ("DATABASE_URL", unreachable),
                ("SHARD_INDEX", "3"),
                ("SHARD_COUNT", "3"),
            ],
            "SHARD_INDEX",
        ),
    ];
    for (env, says) in cases {
        let out = run_to_end(env, &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} started");
        assert!(err.contains(says), "{env:?}: stderr does not say {says:?}:\n{err}");
        assert!(!err.contains("hunter2"), "{env:?}: a secret in the error:\n{err}");
    }
    // A component that is not one: refused by the loader, before the database.
    let junk = std::env::temp_dir().join(format!("spot-junk-{}.wasm", std::process::id()));
    std::fs::write(&junk, b"\0asm junk").expect("write");
    let junk_path = junk.display().to_string();
    let out = run_to_end(&[("DATABASE_URL", unreachable), ("COMPONENT_PATH", &junk_path)], &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("COMPONENT_PATH: loading the aggregation component"),
        "{err}"
    );
    let _ = std::fs::remove_file(&junk);
}
