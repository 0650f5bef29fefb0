//! A database that is slow or refuses, not only one that is down: another
//! session holding a lock on `live_candles` for 30 s, the connection limit
//! reached, the server switched to read-only (as during a failover). In each,
//! the writer keeps the latest state per key (memory bounded by the keys),
//! `/readyz` says what is wrong, the engine and the streams never wait, and
//! once the database recovers the stored candles equal an uninterrupted run's.

mod common;

use std::time::{Duration, Instant};

use common::http::{attr, get, sse};
use spot_host::server::Server;
use spot_testkit::pg::Cluster;
use spot_wire::{Granularity, Trade};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `LOCK TABLE live_candles IN ACCESS EXCLUSIVE MODE` held for 30 s.
    Lock,
    /// The server's role may open no more connections; its open ones are cut.
    ConnectionLimit,
    /// `default_transaction_read_only = on`, as on a standby after a failover.
    ReadOnly,
}

/// The role the server runs as (a role connection limit binds only non-superusers).
const ROLE: &str = "spot_app";

/// Every stored candle, as text.
async fn rows(url: &str) -> Vec<String> {
    let pool = spot_host::storage::pool(url, 1).expect("pool");
    let client = pool.get().await.expect("connection");
    client
        .query(
            r#"SELECT concat_ws(' ', product_id, granularity::text, extract(epoch FROM "timestamp")::int8,
                      open::text, high::text, low::text, close::text, volume::text, trades, last_trade_id, complete)
               FROM live_candles ORDER BY product_id, granularity, "timestamp""#,
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn feed(server: &Server, trades: &[Trade]) {
    for chunk in trades.chunks(50) {
        server.engine().trades(chunk.to_vec()).await.expect("trades");
    }
}

/// A superuser connection of the test's own.
async fn admin(pg: &Cluster, db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg.url(db), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(connection);
    client
}

async fn under(fault: Fault) {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let products = common::product_names(3);
    let now = spot_host::engine::now_ms();
    let trades = common::market_from(now - 30 * 60_000, 3, 900, 11);
    let half = trades.len() / 2;

    // The reference: an uninterrupted run on a database of its own.
    let clean = pg.create_database("clean").expect("db");
    let server = Server::start(&common::feedless_config(&clean, &products), common::feedless_options())
        .await
        .expect("start");
    server.engine().register_products(&products).await.expect("ids");
    feed(&server, &trades).await;
    server.engine().advance(now).await.expect("advance");
    server.sync().await.expect("sync");
    server.stop().await;
    let want = rows(&clean).await;

    // The server under test runs as a plain role on a migrated database.
    let faulty = pg.create_database("faulty").expect("db");
    spot_host::storage::migrate(&spot_host::storage::pool(&faulty, 1).expect("pool"))
        .await
        .expect("migrate");
    let su = admin(&pg, "faulty").await;
    su.batch_execute(&format!(
        "CREATE ROLE {ROLE} LOGIN;
         GRANT ALL ON SCHEMA public TO {ROLE};
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE};"
    ))
    .await
    .expect("role");
    let url = faulty.replacen("postgres@", &format!("{ROLE}@"), 1);
    let server = Server::start(&common::feedless_config(&url, &products), common::feedless_options())
        .await
        .expect("start");
    server.engine().register_products(&products).await.expect("ids");
    let mut stream = sse(
        server.addr(),
        "/stream?product=P0-USD&granularity=ONE_MINUTE",
        &[],
        None,
    )
    .await;
    feed(&server, &trades[..half]).await;
    server.sync().await.expect("sync");

    // The fault.
    let holder = match fault {
        Fault::Lock => {
            let locker = common::lock_live_candles(&pg.url("faulty")).await;
            Some(tokio::spawn(async move {
                // The lock is what is under test: it is held its 30 s.
                locker
                    .batch_execute("SELECT pg_sleep(30); COMMIT")
                    .await
                    .expect("release");
            }))
        }
        Fault::ConnectionLimit => {
            su.batch_execute(&format!(
                "ALTER ROLE {ROLE} CONNECTION LIMIT 0;
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}';"
            ))
            .await
            .expect("limit");
            None
        }
        Fault::ReadOnly => {
            su.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
                .await
                .expect("read-only");
            su.batch_execute("SELECT pg_reload_conf()").await.expect("reload");
            None
        }
    };
    let started = Instant::now();

    // The engine and the streams never wait for the database.
    feed(&server, &trades[half..]).await;
    tokio::time::timeout(Duration::from_secs(2), server.engine().barrier())
        .await
        .expect("the engine waited for the database")
        .expect("barrier");
    let last = trades
        .iter()
        .filter(|t| t.product == 0)
        .max_by_key(|t| t.trade_id)
        .expect("a trade of P0");
    let minute = Granularity::OneMinute.bucket_start(last.time_ms / 1000);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let event = stream.event().await.expect("the stream stays open");
        if event.elements.iter().any(|el| {
            attr(el, "data-timestamp") == Some(minute.to_string())
                && attr(el, "data-close") == Some(last.price.to_string())
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "the stream waited for the database");
    }

    // /readyz says what is wrong.
    let expect = match fault {
        Fault::Lock => "waiting",
        Fault::ConnectionLimit => "too many connections",
        Fault::ReadOnly => "read-only",
    };
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let r = get(server.addr(), "/readyz").await;
        let detail = r.json()["writer"]["detail"].as_str().unwrap_or_default().to_string();
        if r.status == 503 && detail.contains(expect) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said {expect:?} under {fault:?}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = server.writer_stats().expect("writer").clone();
    assert!(
        stats.pending.load(std::sync::atomic::Ordering::Relaxed) > 0 || stats.in_flight_for().is_some(),
        "the writer holds the rows"
    );

    // The database recovers.
    match fault {
        Fault::Lock => {
            holder.expect("lock holder").await.expect("lock released");
            assert!(started.elapsed() >= Duration::from_secs(29));
        }
        Fault::ConnectionLimit => su
            .batch_execute(&format!("ALTER ROLE {ROLE} CONNECTION LIMIT -1"))
            .await
            .expect("unlimit"),
        Fault::ReadOnly => {
            su.batch_execute("ALTER SYSTEM RESET default_transaction_read_only")
                .await
                .expect("read-write");
            su.batch_execute("SELECT pg_reload_conf()").await.expect("reload");
        }
    }
    server.engine().advance(now).await.expect("advance");
    tokio::time::timeout(Duration::from_secs(60), server.sync())
        .await
        .expect("the writer caught up")
        .expect("sync");
    let held = stats.pending_max.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(held <= want.len(), "held {held} keys for {} distinct ones", want.len());
    assert_eq!(
        rows(&faulty).await,
        want,
        "stored candles equal the uninterrupted run's"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(server.addr(), "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_on_live_candles_for_30_s() {
    under(Fault::Lock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_reached() {
    under(Fault::ConnectionLimit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_switched_to_read_only() {
    under(Fault::ReadOnly).await;
}
