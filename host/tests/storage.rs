//! Storage against a real PostgreSQL (a throwaway cluster per test): the
//! migrations, the batch writer (randomized stream, stale writes, an outage),
//! exact numbers, restart recovery through the whole server, and the history API.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use spot_host::engine::{CandleUpdate, Cause, EngineOutput};
use spot_host::server::Server;
use spot_host::storage::upsert::{CandleRow, upsert, upsert_one, upsert_publishing};
use spot_host::storage::{self, EXCHANGE, Writer, WriterConfig};
use spot_testkit::pg::Cluster;
use spot_wire::{Candle, Fixed, Granularity, Trade};
use tokio::sync::mpsc;

async fn migrated_pool(url: &str) -> Pool {
    let pool = storage::pool(url, 4).expect("pool");
    storage::migrate(&pool).await.expect("migrate");
    pool
}

/// A stored row without its bookkeeping (revision, updated_at).
type Row = (
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    i32,
    Option<i64>,
    bool,
);

async fn rows(pool: &Pool) -> Vec<Row> {
    let client = pool.get().await.expect("connection");
    client
        .query(
            r#"SELECT product_id, granularity::text, extract(epoch FROM "timestamp")::int8, open::text,
                      high::text, low::text, close::text, volume::text, trades, last_trade_id, complete
               FROM live_candles ORDER BY 1, 2, 3"#,
            &[],
        )
        .await
        .expect("select")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
                r.get(9),
                r.get(10),
            )
        })
        .collect()
}

fn row_of(product: &str, c: &Candle) -> Row {
    (
        product.to_string(),
        c.granularity.name().to_string(),
        c.start,
        c.open.to_string(),
        c.high.to_string(),
        c.low.to_string(),
        c.close.to_string(),
        c.volume.to_string(),
        c.trades as i32,
        c.last_trade_id.map(|i| i as i64),
        c.complete,
    )
}

fn fx(s: &str) -> Fixed {
    s.parse().expect("decimal")
}

fn candle(granularity: Granularity, start: i64, price: Fixed, volume: Fixed, trades: u32) -> Candle {
    Candle {
        product: 0,
        granularity,
        start: granularity.bucket_start(start),
        open: price,
        high: price,
        low: price,
        close: price,
        volume,
        last_trade_id: Some(trades as u64 * 7),
        trades,
        complete: trades.is_multiple_of(2),
        authoritative: false,
    }
}

fn output(cause: Cause, updates: Vec<(Arc<str>, Candle)>) -> Arc<EngineOutput> {
    Arc::new(EngineOutput {
        more: false,
        cause,
        updates: updates
            .into_iter()
            .map(|(product, candle)| CandleUpdate {
                product,
                candle,
                element: bytes::Bytes::new(),
            })
            .collect(),
        gaps: Vec::new(),
        duplicates: 0,
        ignored: 0,
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

#[tokio::test]
async fn migrations_apply_twice_concurrently_and_revert() {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let pool = migrated_pool(&pg.url("postgres")).await;
    assert!(storage::migrate(&pool).await.expect("second run").is_empty());
    // On a server that loads TimescaleDB (make test's second run) the table
    // is a hypertable; otherwise plain.
    let timescale = storage::timescale::status(&pool.get().await.expect("connection"))
        .await
        .expect("status");
    if pg.timescaledb() {
        assert_eq!(timescale, storage::timescale::Timescale::Hypertable);
    } else {
        assert!(
            matches!(
                timescale,
                storage::timescale::Timescale::Absent | storage::timescale::Timescale::NotPreloaded
            ),
            "{timescale:?}"
        );
    }
    // The Unix-socket URL of deploy/cloud-run.sh reaches the same database.
    let socket = storage::pool(&pg.socket_url("postgres"), 1).expect("socket pool");
    assert!(storage::migrate(&socket).await.expect("over the socket").is_empty());

    // Two server processes migrating one fresh database at the same moment.
    let url = pg.create_database("twice").expect("createdb");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_spot-server"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().expect("thread"), b.join().expect("thread"))
    });
    let (a, b) = (a.expect("run"), b.expect("run"));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let outputs = [a.stdout, b.stdout].map(|o| String::from_utf8_lossy(&o).trim().to_string());
    let mut sorted = outputs.to_vec();
    sorted.sort();
    let all: Vec<i32> = storage::migrate::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(all, (1..=all.len() as i32).collect::<Vec<_>>(), "numbered 1, 2, …");
    assert_eq!(
        sorted,
        [format!("applied: {all:?}"), "applied: []".to_string()],
        "exactly one process applies"
    );

    let pool = storage::pool(&url, 2).expect("pool");
    let client = pool.get().await.expect("connection");
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, all);
    let fillfactor: String = client
        .query_one(
            "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'live_candles'",
            &[],
        )
        .await
        .expect("reloptions")
        .get(0);
    assert_eq!(fillfactor, "fillfactor=70");

    // Down, then up again.
    let mut client = client;
    storage::migrate::revert_all(&mut client).await.expect("revert");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('live_candles', 'trading_pairs', 'pending_repairs', 'components', 'active_component')",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(tables, 0);
    assert_eq!(storage::migrate::migrate(&mut client).await.expect("up again"), all);
}

/// A flush of thousands of rows publishes them as one `fleet_updates` row of
/// arrays, large enough for TOAST: compressed with lz4 where the server has it
/// (pglz took a sixth of PostgreSQL's CPU under a steady feed; uncompressed,
/// the WAL took the arrays whole), otherwise stored uncompressed, and read
/// back whole.
#[tokio::test]
async fn a_large_flush_is_published_with_lz4_and_whole() {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let pool = migrated_pool(&pg.url("postgres")).await;
    let client = pool.get().await.expect("connection");
    let candles: Vec<(String, Candle)> = (0..3_000)
        .map(|i| {
            let c = candle(
                Granularity::OneMinute,
                1_704_499_200 + 60 * (i % 50),
                fx("42000.25"),
                fx("0.5"),
                3,
            );
            (format!("P{}-USD", i / 50), c)
        })
        .collect();
    let rows = candles.iter().map(|(product, candle)| CandleRow {
        product,
        candle,
        revision: 1,
    });
    let published = upsert_publishing(&client, EXCHANGE, "writer-a", rows)
        .await
        .expect("upsert");
    assert_eq!(published.changed, 3_000);
    let id = published.id.expect("a fleet_updates row");
    let row = client
        .query_one(
            "SELECT pg_column_compression(product_id), pg_column_compression(open),
                    cardinality(open), open[3000], product_id[3000]
             FROM fleet_updates WHERE id = $1",
            &[&id],
        )
        .await
        .expect("select");
    let (product_compression, open_compression): (Option<String>, Option<String>) = (row.get(0), row.get(1));
    let (n, open, product): (i32, String, String) = (row.get(2), row.get(3), row.get(4));
    // Debian's PostgreSQL is built with lz4: the setting is accepted.
    let lz4 = client
        .batch_execute("SET default_toast_compression = lz4; RESET default_toast_compression")
        .await
        .is_ok();
    let expected = lz4.then(|| "lz4".to_string());
    assert_eq!(
        (product_compression, open_compression),
        (expected.clone(), expected),
        "lz4 where the server has it, else uncompressed"
    );
    assert_eq!((n, open.as_str(), product.as_str()), (3_000, "42000.25", "P59-USD"));
}

#[tokio::test]
async fn the_writer_stores_the_last_state_of_every_key_and_never_a_stale_one() {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let pool = migrated_pool(&pg.url("postgres")).await;
    let (tx, rx) = mpsc::channel(64);
    let writer = Writer::spawn(
        pool.clone(),
        rx,
        WriterConfig {
            batch_rows: 7,
            interval: Duration::from_millis(1),
            max_statement_rows: 40,
            ..WriterConfig::default()
        },
    );

    // 20 000 updates over 300 keys, in outputs of 1..=60 updates that may
    // repeat a key; restore outputs in between must not be written.
    let products: Vec<Arc<str>> = ["A-USD", "B-USD", "C-EUR"].map(Arc::from).to_vec();
    let mut rng = Rng(0x5eed);
    let mut last: BTreeMap<(String, &'static str, i64), Row> = BTreeMap::new();
    let mut sent = 0;
    while sent < 20_000 {
        let n = 1 + rng.next(60) as usize;
        let updates: Vec<(Arc<str>, Candle)> = (0..n)
            .map(|_| {
                let p = products[rng.next(3) as usize].clone();
                let g = Granularity::ALL[rng.next(8) as usize];
                let start = 1_704_499_200 + g.seconds() * rng.next(12) as i64;
                let price = Fixed::from_units(rng.next(1 << 40) as i128 * 1_000_000_000);
                let volume = Fixed::from_units(rng.next(u64::MAX) as i128 * 1_000_000_000_000);
                (p, candle(g, start, price, volume, rng.next(1000) as u32))
            })
            .collect();
        if rng.next(10) == 0 {
            tx.send(output(Cause::Restore, updates)).await.expect("send");
            continue;
        }
        for (p, c) in &updates {
            last.insert((p.to_string(), c.granularity.name(), c.start), row_of(p, c));
        }
        sent += n;
        tx.send(output(Cause::Trades, updates)).await.expect("send");
        if rng.next(50) == 0 {
            writer.sync().await.expect("sync");
        }
    }
    writer.sync().await.expect("sync");
    let want: Vec<Row> = last.into_values().collect();
    assert_eq!(rows(&pool).await, want);
    let stats = writer.stats();
    assert!(stats.restored.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(stats.pending_max.load(std::sync::atomic::Ordering::Relaxed) <= 300);
    drop(tx);
    writer.finish().await;

    // A write with an older revision changes nothing; a newer one wins.
    let client = pool.get().await.expect("connection");
    let c = candle(Granularity::OneHour, 1_704_499_200, fx("1"), fx("2"), 3);
    let newer = Candle { close: fx("9"), ..c };
    let older = Candle { close: fx("5"), ..c };
    let row = |candle, revision| CandleRow {
        product: "Z-USD",
        candle,
        revision,
    };
    upsert(&client, EXCHANGE, [row(&newer, i64::MAX - 1)].into_iter())
        .await
        .expect("newer");
    assert_eq!(
        upsert(&client, EXCHANGE, [row(&older, 10)].into_iter())
            .await
            .expect("older"),
        0
    );
    // The one-row statement (the benchmark's baseline) obeys the same guard.
    assert_eq!(
        upsert_one(&client, EXCHANGE, row(&older, 11))
            .await
            .expect("older, one row"),
        0
    );
    let close: String = client
        .query_one("SELECT close::text FROM live_candles WHERE product_id = 'Z-USD'", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(close, "9");
}

#[tokio::test]
async fn an_outage_loses_nothing_and_memory_stays_bounded_by_the_keys() {
    common::trace();
    let mut pg = Cluster::temporary().expect("cluster");
    let pool = migrated_pool(&pg.url("postgres")).await;
    let (tx, rx) = mpsc::channel(64);
    let writer = Writer::spawn(
        pool.clone(),
        rx,
        WriterConfig {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..WriterConfig::default()
        },
    );
    let product: Arc<str> = Arc::from("BTC-USD");
    let mut last: BTreeMap<(&'static str, i64), Row> = BTreeMap::new();
    let mut rng = Rng(42);
    // Keys: 8 granularities × 30 buckets = 240 at most.
    let mut send = |n: usize| {
        let updates: Vec<(Arc<str>, Candle)> = (0..n)
            .map(|_| {
                let g = Granularity::ALL[rng.next(8) as usize];
                let start = 1_704_499_200 + g.seconds() * rng.next(30) as i64;
                let c = candle(g, start, Fixed::from_int(rng.next(100_000) as i64), fx("0.5"), 1);
                last.insert((g.name(), c.start), row_of(&product, &c));
                (product.clone(), c)
            })
            .collect();
        output(Cause::Trades, updates)
    };

    for _ in 0..50 {
        tx.send(send(20)).await.expect("send");
    }
    writer.sync().await.expect("sync before the outage");

    pg.stop().expect("stop the database");
    for _ in 0..2_000 {
        tx.send(send(20)).await.expect("send during the outage");
    }
    // The writer notices (its flushes fail) and keeps the rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while writer.stats().healthy() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never noticed the outage"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(writer.stats().last_error().is_some());
    for _ in 0..500 {
        tx.send(send(20)).await.expect("send during the outage");
    }

    pg.start().expect("restart the database");
    writer.sync().await.expect("sync after the outage");
    assert!(writer.stats().healthy());
    let want: Vec<Row> = last.into_values().collect();
    assert_eq!(rows(&pool).await, want);
    let s = writer.stats();
    let max = s.pending_max.load(std::sync::atomic::Ordering::Relaxed);
    assert!(max <= 240, "held {max} keys for 240 distinct ones");
    assert!(s.failures.load(std::sync::atomic::Ordering::Relaxed) > 0);
    drop(tx);
    writer.finish().await;
}

/// Send `trades` (with product ids in the server's registry) in batches of 50.
async fn feed(server: &Server, trades: &[Trade]) {
    let h = server.engine();
    for chunk in trades.chunks(50) {
        h.trades(chunk.to_vec()).await.expect("trades");
    }
}

#[tokio::test]
async fn a_restart_mid_day_stores_what_an_uninterrupted_run_stores() {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let products = common::product_names(3);
    let now = spot_host::engine::now_ms();
    // 40 minutes of trades ending a few minutes ago.
    let trades = common::market_from(now - 40 * 60_000, 3, 1_400, 7);
    assert!(trades.last().expect("trades").time_ms < now);
    let cut = trades.len() * 3 / 5;

    let uninterrupted = pg.create_database("uninterrupted").expect("db");
    let server = Server::start(
        &common::feedless_config(&uninterrupted, &products),
        common::feedless_options(),
    )
    .await
    .expect("start");
    assert_eq!(
        server.engine().register_products(&products).await.expect("ids"),
        vec![0, 1, 2]
    );
    feed(&server, &trades).await;
    server.engine().advance(now).await.expect("advance");
    server.sync().await.expect("sync");
    let uninterrupted_pool = server.pool().clone();
    server.stop().await;

    let interrupted = pg.create_database("interrupted").expect("db");
    let first = Server::start(
        &common::feedless_config(&interrupted, &products),
        common::feedless_options(),
    )
    .await
    .expect("start");
    feed(&first, &trades[..cut]).await;
    first.stop().await;

    let second = Server::start(
        &common::feedless_config(&interrupted, &products),
        common::feedless_options(),
    )
    .await
    .expect("restart");
    assert!(second.restored().candles > 0, "{:?}", second.restored());
    assert_eq!(second.restored().skipped, 0);
    // The feed's first snapshot re-sends trades that were already counted.
    feed(&second, &trades[cut - 100..]).await;
    second.engine().advance(now).await.expect("advance");
    second.sync().await.expect("sync");
    let duplicates = second.engine().stats().snapshot().duplicates;
    assert_eq!(duplicates, 100, "the re-sent trades are recognised");
    let interrupted_pool = second.pool().clone();
    second.stop().await;

    let (a, b) = (rows(&uninterrupted_pool).await, rows(&interrupted_pool).await);
    assert!(a.iter().any(|r| r.1 == "ONE_DAY"));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}

#[tokio::test]
async fn exact_numbers_round_trip_and_the_history_api_validates() {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let products = vec!["TINY-USD".to_string(), "HUGE-USD".to_string()];
    let server = Server::start(
        &common::feedless_config(&pg.url("postgres"), &products),
        common::feedless_options(),
    )
    .await
    .expect("start");
    let ids = server.engine().register_products(&products).await.expect("ids");
    let t0 = 1_704_499_200_000i64; // 2024-01-06T00:00:00Z
    let trade = |product, id, time_ms, price: &str, size: &str| Trade {
        product,
        side: spot_wire::Side::Buy,
        trade_id: id,
        time_ms,
        price: fx(price),
        size: fx(size),
    };
    // A 1e-9 price, and a day volume of 1e11 (over DECIMAL(20,10)'s 1e10).
    let mut trades = vec![
        trade(ids[0], 1, t0 + 1_000, "0.000000001", "12345.000000000000000001"),
        trade(ids[0], 2, t0 + 2_000, "0.000000002", "1"),
    ];
    for i in 0..4u64 {
        trades.push(trade(ids[1], 10 + i, t0 + i as i64 * 120_000, "0.00001", "25000000000"));
    }
    feed(&server, &trades).await;
    server.sync().await.expect("sync");
    let addr = server.addr();

    let day = t0 / 1000;
    let r = common::http::get(
        addr,
        &format!(
            "/api/candles?product=TINY-USD&granularity=ONE_MINUTE&from={day}&to={}",
            day + 60
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let c = &r.json()["candles"][0];
    assert_eq!(c["open"], "0.000000001");
    assert_eq!(c["high"], "0.000000002");
    assert_eq!(c["volume"], "12346.000000000000000001");
    assert_eq!(c["trades"], 2);

    let r = common::http::get(
        addr,
        &format!("/api/candles?product=HUGE-USD&granularity=ONE_DAY&from={day}&to={day}"),
    )
    .await;
    assert_eq!(r.json()["candles"][0]["volume"], "100000000000");

    // The limit cuts the answer and says where to continue.
    let r = common::http::get(
        addr,
        &format!("/api/candles?product=HUGE-USD&from={day}&to={}&limit=3", day + 3600),
    )
    .await;
    let j = r.json();
    assert_eq!(j["candles"].as_array().map(Vec::len), Some(3));
    assert_eq!(j["next_from"], day + 360, "the first bucket left out");
    // Following next_from reads the rest and ends without one, never with
    // an error: also a page that ends exactly at the last candle.
    let mut seen = Vec::new();
    let mut from = day;
    for _ in 0..5 {
        let page = common::http::get(
            addr,
            &format!("/api/candles?product=HUGE-USD&from={from}&to={}&limit=2", day + 3600),
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let j = page.json();
        seen.extend(
            j["candles"]
                .as_array()
                .expect("candles")
                .iter()
                .map(|c| c["timestamp"].as_i64()),
        );
        match j["next_from"].as_i64() {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(seen, [0, 120, 240, 360].map(|s| Some(day + s)), "every candle once");
    let last = common::http::get(
        addr,
        &format!("/api/candles?product=HUGE-USD&from={day}&to={day}&limit=1"),
    )
    .await;
    assert!(last.json().get("next_from").is_none(), "{}", last.body);
    // Any case finds the product; the answer spells it as Coinbase does.
    let r = common::http::get(addr, &format!("/api/candles?product=huge-usd&from={day}&to={day}")).await;
    assert_eq!(r.json()["product"], "HUGE-USD");

    let products_json = common::http::get(addr, "/api/products").await.json();
    assert_eq!(products_json[0]["product_id"], "HUGE-USD");
    assert_eq!(products_json[1]["quote_currency"], "USD");

    // Bad input: 4xx, a short plain message, never the input echoed.
    let long = format!("/api/candles?product=BTC-USD&x={}", "y".repeat(5000));
    for (path, status) in [
        ("/api/candles", 400),
        ("/api/candles?product=TINY-USD&granularity=TEN_MINUTES", 400),
        ("/api/candles?product=TINY-USD&from=10&to=5", 400),
        ("/api/candles?product=TINY-USD&from=yesterday", 400),
        ("/api/candles?product=TINY-USD&limit=100000", 400),
        ("/api/candles?product=TINY-USD&product=HUGE-USD", 400),
        ("/api/candles?product=NOPE-USD", 404),
        ("/api/candles?product=NOPE", 404),
        ("/api/candles?product=%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404),
        (long.as_str(), 414),
    ] {
        let r = common::http::get(addr, path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
        assert!(!r.body.contains('<') && !r.body.contains("NOPE") && !r.body.contains("yesterday"));
    }

    let ready = common::http::get(addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(common::http::get(addr, "/healthz").await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_writer_whose_notify_fails_keeps_writing_and_notifies_those_rows_with_the_next() {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let admin = migrated_pool(&pg.url("postgres")).await;
    // A role that may write candles but may not NOTIFY: every NOTIFY of its
    // writer fails, as one does when the server's notification queue is full.
    admin
        .get()
        .await
        .expect("connection")
        .batch_execute(
            "CREATE ROLE writer LOGIN;
             GRANT ALL ON ALL TABLES IN SCHEMA public TO writer;
             GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO writer;
             REVOKE EXECUTE ON FUNCTION pg_notify(text, text) FROM PUBLIC;",
        )
        .await
        .expect("role");
    let url = pg.url("postgres").replacen("postgres@", "writer@", 1);
    assert!(url.contains("writer@"), "{url}");
    let pool = storage::pool(&url, 2).expect("pool");

    // A listener on a connection of its own, as the fleet's.
    let (client, mut connection) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .expect("listener");
    let (notes, mut notified) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = notes.send(n.payload().to_string());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", storage::outbox::CHANNEL))
        .await
        .expect("listen");

    let (tx, rx) = mpsc::channel(16);
    let writer = Writer::spawn(
        pool.clone(),
        rx,
        WriterConfig {
            publish: Some(Arc::from("writer-1")),
            ..WriterConfig::default()
        },
    );
    let first = candle(Granularity::OneMinute, 1_704_499_200, fx("101.5"), fx("2"), 3);
    tx.send(output(Cause::Trades, vec![(Arc::from("BTC-USD"), first)]))
        .await
        .expect("send");
    writer.sync().await.expect("stored although its NOTIFY failed");
    let s = writer.stats();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&s.notify_failures), 1);
    assert_eq!(count(&s.notifications), 0);
    assert!(s.healthy(), "a failed NOTIFY is not a failed flush");
    assert_eq!(rows(&admin).await, vec![row_of("BTC-USD", &first)]);

    // NOTIFY works again: the next flush's notification names both rows.
    admin
        .get()
        .await
        .expect("connection")
        .batch_execute("GRANT EXECUTE ON FUNCTION pg_notify(text, text) TO writer")
        .await
        .expect("grant");
    let second = candle(Granularity::OneMinute, 1_704_499_260, fx("102"), fx("1"), 4);
    tx.send(output(Cause::Trades, vec![(Arc::from("ETH-USD"), second)]))
        .await
        .expect("send");
    writer.sync().await.expect("sync");
    let payload = tokio::time::timeout(Duration::from_secs(10), notified.recv())
        .await
        .expect("a notification")
        .expect("the listener runs");
    let Some(storage::outbox::Notice::Rows { instance, ids }) = storage::outbox::Notice::parse(&payload) else {
        panic!("not a rows notice: {payload}");
    };
    assert_eq!(instance, "writer-1");
    assert_eq!(ids.len(), 2, "{payload}");
    let read = storage::outbox::read(&client, &ids).await.expect("read back");
    assert_eq!(read.missing, 0);
    let got: Vec<(String, Candle)> = read
        .candles
        .iter()
        .map(|c| (c.product.to_string(), Candle { product: 0, ..c.candle }))
        .collect();
    let published = |c: &Candle| Candle {
        authoritative: false,
        ..*c
    };
    assert_eq!(
        got,
        vec![
            ("BTC-USD".to_string(), published(&first)),
            ("ETH-USD".to_string(), published(&second))
        ]
    );
    drop(tx);
    writer.finish().await;
}

#[tokio::test]
async fn timescaledb_installed_but_not_preloaded_starts_plain_and_converts_once_loaded() {
    common::trace();
    if !spot_testkit::pg::timescaledb_installed().expect("server binaries") {
        eprintln!("TimescaleDB is not installed on this server: skipped (make test installs it from ../shared/vendor)");
        return;
    }
    // Installed but not in shared_preload_libraries, as Debian's server and
    // several hosted ones come: the migrations pass (CREATE EXTENSION would
    // fail there), the table is plain, and the host says how to enable it.
    let mut pg = Cluster::temporary_as(false, false).expect("cluster");
    let pool = migrated_pool(&pg.url("postgres")).await;
    let status = |pool: Pool| async move {
        storage::timescale::status(&pool.get().await.expect("connection"))
            .await
            .expect("status")
    };
    assert_eq!(status(pool.clone()).await, storage::timescale::Timescale::NotPreloaded);
    let advice = storage::timescale::Timescale::NotPreloaded.advice().expect("advice");
    assert!(advice.contains("shared_preload_libraries") && advice.contains("spot-server timescaledb"));
    let client = pool.get().await.expect("connection");
    let c = candle(Granularity::OneHour, 1_704_499_200, fx("42000.5"), fx("3.25"), 7);
    let d = candle(
        Granularity::OneMinute,
        1_704_585_600,
        fx("0.00001234"),
        fx("1000000000"),
        2,
    );
    upsert(
        &client,
        EXCHANGE,
        [(&c, 1), (&d, 2)].into_iter().map(|(candle, revision)| CandleRow {
            product: "BTC-USD",
            candle,
            revision,
        }),
    )
    .await
    .expect("upsert");
    drop(client);
    let before = rows(&pool).await;
    assert_eq!(before.len(), 2);
    let converted = storage::timescale::convert(&pool.get().await.expect("connection")).await;
    assert!(
        matches!(converted, Err(storage::timescale::ConvertError::NotLoaded)),
        "{converted:?}"
    );

    // Enabled later (preloaded, the server restarted): the plain table says
    // so, and converts into a hypertable with its rows.
    pg.stop().expect("stop");
    pg.set_timescaledb(true);
    pg.start().expect("start with TimescaleDB");
    let pool = storage::pool(&pg.url("postgres"), 2).expect("pool");
    assert_eq!(status(pool.clone()).await, storage::timescale::Timescale::Plain);
    let converted = storage::timescale::convert(&pool.get().await.expect("connection"))
        .await
        .expect("convert");
    assert_eq!(converted, storage::timescale::Timescale::Hypertable);
    assert_eq!(rows(&pool).await, before, "the rows are kept");
    let chunks: i64 = pool
        .get()
        .await
        .expect("connection")
        .query_one(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'live_candles'",
            &[],
        )
        .await
        .expect("chunks")
        .get(0);
    assert_eq!(chunks, 2, "the two rows' days are two 1-day chunks");

    // A database created on a server that loads TimescaleDB is a hypertable
    // from its first migration.
    let fresh = migrated_pool(&pg.create_database("fresh").expect("database")).await;
    assert_eq!(status(fresh).await, storage::timescale::Timescale::Hypertable);
}
