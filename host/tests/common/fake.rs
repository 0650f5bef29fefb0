//! Helpers for tests that run the feed against the fake Coinbase.
#![allow(dead_code)]

use std::time::Duration;

use spot_fake_coinbase::Fake;
use spot_host::feed::FeedConfig;
use spot_host::history::RepairConfig;
use spot_wire::Granularity;

/// Poll a counter-based condition (the feed publishes counters, not events).
pub async fn wait_until(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fake Coinbase trading `products` and a throwaway PostgreSQL cluster.
pub async fn fake_and_database(products: &[String]) -> (Fake, spot_testkit::pg::Cluster) {
    let fake = Fake::start(spot_fake_coinbase::FakeConfig {
        products: products.to_vec(),
        ..spot_fake_coinbase::FakeConfig::default()
    })
    .await
    .expect("fake");
    let pg = spot_testkit::pg::Cluster::temporary().expect("cluster");
    (fake, pg)
}

/// A fake Coinbase that lists exactly `products`, a throwaway PostgreSQL
/// cluster, and a pool on it.
pub async fn exchange_and_database(products: &[String]) -> (Fake, spot_testkit::pg::Cluster, deadpool_postgres::Pool) {
    let fake = Fake::start(spot_fake_coinbase::FakeConfig {
        products: products.to_vec(),
        listing_extras: false,
        hostile_listing: false,
        ..spot_fake_coinbase::FakeConfig::default()
    })
    .await
    .expect("fake");
    let pg = spot_testkit::pg::Cluster::temporary().expect("cluster");
    let pool = spot_host::storage::pool(&pg.url("postgres"), 2).expect("pool");
    (fake, pg, pool)
}

/// The server's environment for `pg` and `fake` (products discovered over
/// the fake's REST), with the default component. The fake answers REST on
/// loopback, so the budget is wide (the backfill of a test's products then
/// takes a moment, not a minute).
pub fn server_env(pg: &spot_testkit::pg::Cluster, fake: &Fake) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", pg.url("postgres")),
        (
            "COMPONENT_PATH",
            super::component_path("spot_guest").display().to_string(),
        ),
        ("COINBASE_WS_URL", fake.ws_url()),
        ("COINBASE_REST_URL", fake.rest_url()),
        ("COINBASE_REST_RATE", "200".into()),
        ("DATASTAR_URL", super::OFFLINE_DATASTAR.into()),
        // Every server a test starts listens on loopback only.
        ("HOST", "127.0.0.1".into()),
    ]
}

/// The bearer token of the processes' admin API in tests.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The environment of a `spot-server` process on `pg` and `fake` ingesting
/// (its share of) `products`, with the admin API on [`ADMIN_TOKEN`] and a
/// data directory of the cluster's; `extra` adds or replaces variables.
pub fn process_env(
    pg: &spot_testkit::pg::Cluster,
    fake: &Fake,
    products: &[String],
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let data = std::env::temp_dir().join(format!("spot-process-{}-{}", std::process::id(), pg.port()));
    let mut env = server_env(pg, fake);
    env.extend([
        ("PRODUCTS", products.join(",")),
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("SPOT_DATA_DIR", data.display().to_string()),
    ]);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// [`server_env`] as the configuration of an in-process server.
pub fn server_config(pg: &spot_testkit::pg::Cluster, fake: &Fake) -> spot_host::config::Config {
    let vars: std::collections::HashMap<&str, String> = server_env(pg, fake).into_iter().collect();
    spot_host::config::Config::from_lookup(|k| vars.get(k).cloned()).expect("config")
}

/// A minute that is over: trades there are repairable at once.
pub fn past_minute(minutes_ago: i64) -> i64 {
    let now = spot_host::engine::now_ms();
    (now - now.rem_euclid(60_000)) - minutes_ago * 60_000
}

/// Feed settings for tests: quick backoff and watchdog.
pub fn feed_config(fake: &Fake) -> FeedConfig {
    FeedConfig {
        ws_url: fake.ws_url(),
        watchdog: Duration::from_secs(2),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..FeedConfig::default()
    }
}

/// Repair settings for tests: repairs as soon as a minute is over, quick retries.
pub fn repair_config() -> RepairConfig {
    RepairConfig {
        settle: Duration::ZERO,
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(200),
        ..RepairConfig::default()
    }
}

/// Wait until `server` is fully up: every feed connection subscribed, and the
/// backfill done (the tests' trades then land on a settled history: a backfill
/// request answered between two trades of one minute would seal it between them).
pub async fn wait_up(server: &spot_host::server::Server) {
    let feed = server.feed_stats().expect("feed").clone();
    let history = server.history_stats().expect("history").clone();
    wait_until("the feed is up and the backfill done", Duration::from_secs(60), || {
        feed.all_started() && history.backfill.finished()
    })
    .await;
}

/// Wait until the stored rows of every granularity equal the fake's log.
pub async fn stored_equal_log(server: &spot_host::server::Server, fake: &Fake, products: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        server.sync().await.expect("sync");
        let diff = stored_differences(server.pool(), fake, products).await;
        if diff.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stored candles differ:\n{}",
            diff.join("\n")
        );
        // The rows change when the feed's next frame or repair lands: poll.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until every stored bucket from `from_ms` on equals the fake's log
/// (the rows are another process's: polled).
pub async fn stored_equal_log_from(pool: &deadpool_postgres::Pool, fake: &Fake, products: &[String], from_ms: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let diff = stored_differences_from(pool, fake, products, from_ms.div_euclid(1000)).await;
        if diff.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stored candles differ from the log:\n{}",
            diff.join("\n")
        );
        // Another process writes the rows: nothing to await but the rows.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the stored rows differ from the candles computed from the fake's
/// full trade log, one line per (product, granularity); empty when equal.
pub async fn stored_differences(pool: &deadpool_postgres::Pool, fake: &Fake, products: &[String]) -> Vec<String> {
    stored_differences_from(pool, fake, products, 0).await
}

/// [`stored_differences`] for the buckets starting at `from` (unix s) or later.
pub async fn stored_differences_from(
    pool: &deadpool_postgres::Pool,
    fake: &Fake,
    products: &[String],
    from: i64,
) -> Vec<String> {
    let mut diff = Vec::new();
    for p in products {
        for g in Granularity::ALL {
            let want: Vec<_> = fake
                .candles(p, g.seconds())
                .into_iter()
                .filter(|c| c.start >= from)
                .collect();
            let have = spot_host::storage::candles::candles(pool, "coinbase", p, g, from, 4_000_000_000, 10_000)
                .await
                .expect("history");
            let same = want.len() == have.len()
                && want
                    .iter()
                    .zip(&have)
                    .all(|(w, h)| w.is_stored_as(h.timestamp, [&h.open, &h.high, &h.low, &h.close, &h.volume]));
            if !same {
                diff.push(format!("{p} {}: stored {have:?}\nwant {want:?}", g.name()));
            }
        }
    }
    diff
}
