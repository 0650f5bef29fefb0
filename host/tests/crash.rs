//! Crashes: the real `spot-server` process killed with SIGKILL (no drain, no
//! final flush, nothing recorded at the stop) mid-flush, mid-swap,
//! mid-repair and mid-backfill, then started again. The stored candles end
//! equal to the fake's log, which is what an uninterrupted run stores, at
//! all 8 granularities: the restore, the trade ids and the REST repair carry
//! it, not a drain that never happened.

mod common;

use common::fake::{ADMIN_TOKEN, exchange_and_database, process_env, stored_equal_log_from};
use common::http::request;
use common::process::{Process, settled, spawn};

use std::time::Duration;

use spot_fake_coinbase::Fake;

const DAY_MS: i64 = 86_400_000;

/// The first second of the default horizon (two UTC days), unix ms.
fn horizon_start_ms() -> i64 {
    (spot_fake_coinbase::now_ms() - 5_000 - DAY_MS).div_euclid(DAY_MS) * DAY_MS
}

/// `n` trades `ago_ms` before now for each product (trade ids rise with
/// time, as on the exchange: later calls trade later).
fn trade_at(fake: &Fake, products: &[String], n: usize, ago_ms: i64) {
    let at = spot_fake_coinbase::now_ms() - ago_ms;
    for p in products {
        fake.emit(p, n, at);
    }
}

/// `n` trades now for each product.
fn trade(fake: &Fake, products: &[String], n: usize) {
    trade_at(fake, products, n, 0);
}

/// Wait until `metric` on `server` reaches `at_least`.
async fn until_metric(server: &Process, metric: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.metric(metric).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{metric} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Up, settled, and storing what the market traded.
async fn running(
    env: &[(&'static str, String)],
    fake: &Fake,
    pool: &deadpool_postgres::Pool,
    products: &[String],
) -> Process {
    let mut server = spawn(env).await;
    server.until_log("feed up").await;
    settled(&server).await;
    // Two minutes ago: a repair test's gap then comes after them in time.
    trade_at(fake, products, 3, 120_000);
    stored_equal_log_from(pool, fake, products, horizon_start_ms()).await;
    server
}

/// Started again: once settled, and after a few more trades, the stored
/// candles equal the log from `from_ms` on; then a clean stop.
async fn ends_on_the_log(
    server: Process,
    fake: &Fake,
    pool: &deadpool_postgres::Pool,
    products: &[String],
    from_ms: i64,
) {
    settled(&server).await;
    trade(fake, products, 2);
    stored_equal_log_from(pool, fake, products, from_ms).await;
    let (status, _) = server.terminate().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_flush() {
    common::trace();
    let products: Vec<String> = ["BTC-USD", "ETH-USD", "SOL-USD"].map(String::from).to_vec();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    let env = process_env(&pg, &fake, &products, &[("AUDIT", "off")]);
    let server = running(&env, &fake, &pool, &products).await;

    // Another session holds the table: the next flush waits in flight, and
    // the process dies under it.
    let locker = common::lock_live_candles(&pg.url("postgres")).await;
    trade(&fake, &products, 10);
    until_metric(&server, "spot_writer_flush_waiting_seconds", 0.2).await;
    server.kill9().await;
    locker.batch_execute("COMMIT").await.expect("unlock");

    let server = spawn(&env).await;
    ends_on_the_log(server, &fake, &pool, &products, horizon_start_ms()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_swap() {
    common::trace();
    let products: Vec<String> = ["BTC-USD", "ETH-USD"].map(String::from).to_vec();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    let env = process_env(&pg, &fake, &products, &[("AUDIT", "off")]);
    let server = running(&env, &fake, &pool, &products).await;

    // The upload is under way (validated, compiled, swapped) when the process
    // dies: it may have swapped or not, and may have recorded it or not.
    let wasm = std::fs::read(common::component_path("spot_example_change")).expect("wasm");
    let addr = server.addr;
    let upload = tokio::spawn(async move {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        request(
            addr,
            "PUT",
            "/admin/component",
            &[("Authorization", &auth), ("Content-Type", "application/wasm")],
            &wasm,
        )
        .await
    });
    trade(&fake, &products, 5);
    tokio::time::sleep(Duration::from_millis(15)).await;
    server.kill9().await;
    upload.abort();

    let server = spawn(&env).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let status = request(server.addr, "GET", "/admin/component", &[("Authorization", &auth)], b"").await;
    let status = status.json();
    let running = status["active"]["name"].as_str().unwrap_or_default().to_string();
    assert!(
        ["spot-default", "spot-example-change"].contains(&running.as_str()),
        "{status}"
    );
    assert_eq!(status["healthy"], true, "{status}");
    ends_on_the_log(server, &fake, &pool, &products, horizon_start_ms()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_repair() {
    common::trace();
    let products: Vec<String> = ["BTC-USD", "ETH-USD"].map(String::from).to_vec();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    let env = process_env(&pg, &fake, &products, &[("AUDIT", "off")]);
    let server = running(&env, &fake, &pool, &products).await;

    // A trade never sent, in a minute that is over: the repair asks REST,
    // which fails for now; the process dies with the repair outstanding.
    fake.fail_candle_requests(&[503; 1000]);
    let t = spot_fake_coinbase::now_ms() - 65_000;
    fake.emit("BTC-USD", 2, t);
    fake.withhold("BTC-USD", 1);
    fake.emit("BTC-USD", 2, t + 500);
    until_metric(&server, "spot_repair_failures_total", 1.0).await;
    assert!(server.metric("spot_repair_windows_pending").await >= 1.0);
    server.kill9().await;
    fake.clear_candle_failures();

    let server = spawn(&env).await;
    ends_on_the_log(server, &fake, &pool, &products, horizon_start_ms()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_backfill() {
    common::trace();
    let products: Vec<String> = (0..4).map(|i| format!("K{i}-USD")).collect();
    let (fake, pg, pool) = exchange_and_database(&products).await;
    let now = spot_fake_coinbase::now_ms();
    let horizon = horizon_start_ms();
    for p in &products {
        // Every 10 minutes over the horizon: most of it is the backfill's.
        fake.history(p, horizon - 3_600_000, now - 120_000, 600_000);
    }
    let env = process_env(&pg, &fake, &products, &[("AUDIT", "off"), ("COINBASE_REST_RATE", "4")]);
    let server = spawn(&env).await;
    until_metric(&server, "spot_backfill_requests_done_total", 4.0).await;
    assert!(
        server.metric("spot_backfill_requests_pending").await > 0.0,
        "still backfilling"
    );
    server.kill9().await;

    let server = spawn(&env).await;
    ends_on_the_log(server, &fake, &pool, &products, horizon).await;
}
