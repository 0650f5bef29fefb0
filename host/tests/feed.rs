//! The feed against the fake Coinbase over real sockets, with the real
//! compiled component in the engine: reconnects, repairs, stalls, garbage,
//! pacing and JWTs. The truth is the fake's full trade log.

mod common;

use common::fake::{feed_config, past_minute, repair_config, stored_equal_log, wait_until, wait_up};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use spot_fake_coinbase::{Fake, FakeConfig, Fault, JwtKey, busiest_window};
use spot_host::engine::{Engine, EngineHandle, EngineOutput};
use spot_host::feed::{Credentials, Feed, FeedConfig, FeedStats};
use spot_host::history::{History, HistoryConfig, HistoryStats};
use spot_host::rest::{Budget, Rest};
use spot_wire::{Candle, Granularity};
use tokio::sync::{mpsc, watch};

/// The latest candle per (product, granularity, start), from the engine's output.
type Candles = BTreeMap<(String, Granularity, i64), Candle>;

/// Collects the engine's updates; `wait_for` resolves on the output that makes
/// a condition true.
struct Collector {
    state: watch::Receiver<Arc<Candles>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start(engine: &EngineHandle) -> Self {
        let mut rx: mpsc::Receiver<Arc<EngineOutput>> = engine.subscribe(1024).await.expect("subscribe");
        let (tx, state) = watch::channel(Arc::new(Candles::new()));
        let task = tokio::spawn(async move {
            let mut map = Candles::new();
            while let Some(out) = rx.recv().await {
                for u in &out.updates {
                    map.insert((u.product.to_string(), u.candle.granularity, u.candle.start), u.candle);
                }
                let _ = tx.send(Arc::new(map.clone()));
            }
        });
        Collector { state, _task: task }
    }

    /// Wait until the collected candles equal the fake's for `products`, at
    /// every granularity; panics with the differences after `within`.
    async fn wait_equal(&mut self, fake: &Fake, products: &[String], within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let now = self.state.borrow_and_update().clone();
            let diff = differences(&now, fake, products);
            if diff.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, self.state.changed()).await.is_err() {
                panic!("candles differ from the fake's log:\n{}", diff.join("\n"));
            }
        }
    }
}

/// Every mismatch between what the engine emitted and the fake's log.
fn differences(got: &Candles, fake: &Fake, products: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in products {
        for g in Granularity::ALL {
            let want = fake.candles(p, g.seconds());
            let have: Vec<&Candle> = got
                .range((p.clone(), g, i64::MIN)..=(p.clone(), g, i64::MAX))
                .map(|(_, c)| c)
                .collect();
            if want.len() != have.len() {
                out.push(format!("{p} {}: {} candles, want {}", g.name(), have.len(), want.len()));
                continue;
            }
            for (w, h) in want.iter().zip(have) {
                let same = w.start == h.start
                    && w.open == h.open
                    && w.high == h.high
                    && w.low == h.low
                    && w.close == h.close
                    && w.volume == h.volume;
                if !same {
                    out.push(format!("{p} {} @{}: got {h:?}, want {w:?}", g.name(), w.start));
                }
            }
        }
    }
    out
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("P{i}-USD")).collect()
}

struct Setup {
    fake: Fake,
    engine: Engine,
    feed: Feed,
    /// The gap repair (no backfill, no store: these tests are about the feed).
    history: History,
    collector: Collector,
    products: Vec<String>,
}

impl Setup {
    async fn start(fake_config: FakeConfig, tweak: impl FnOnce(&mut FeedConfig), creds: Option<Credentials>) -> Self {
        common::trace();
        let products = fake_config.products.clone();
        let fake = Fake::start(fake_config).await.expect("fake");
        let loader = common::loader();
        let engine = common::start(&loader, common::load(&loader, "spot_guest"), common::config());
        let collector = Collector::start(&engine.handle()).await;
        let mut config = feed_config(&fake);
        tweak(&mut config);
        let rest = Arc::new(Rest::new(&fake.rest_url(), Budget::per_second(4.0)).expect("rest"));
        let (_live_tx, live_rx) = tokio::sync::mpsc::unbounded_channel();
        let history = History::start(
            HistoryConfig {
                horizon: config.horizon,
                repair: repair_config(),
                backfill: false,
                audit: None,
            },
            rest,
            engine.handle(),
            &products,
            &Default::default(),
            None,
            live_rx,
        )
        .await
        .expect("history");
        let feed = Feed::start(config, creds.map(Arc::new), &products, engine.handle(), (0, 1), None)
            .await
            .expect("feed");
        feed.release();
        Setup {
            fake,
            engine,
            feed,
            history,
            collector,
            products,
        }
    }

    fn stats(&self) -> &FeedStats {
        self.feed.stats()
    }

    fn repairs(&self) -> &HistoryStats {
        self.history.stats()
    }

    async fn wait_live(&self, sessions: u64) {
        let stats = self.feed.stats().clone();
        wait_until("every connection live", Duration::from_secs(60), || {
            stats.connections.iter().all(|c| c.sessions.load(Relaxed) >= sessions)
                && stats.live() == stats.connections.len()
        })
        .await;
    }

    async fn stop(self) {
        self.feed.stop().await;
        let gaps = self.history.stop().await;
        self.engine.shutdown().await;
        let _ = gaps.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resends_the_snapshot_and_no_trade_counts_twice() {
    let mut s = Setup::start(
        FakeConfig {
            products: names(3),
            ..FakeConfig::default()
        },
        |_| {},
        None,
    )
    .await;
    s.wait_live(1).await;
    let t = past_minute(5);
    for (i, p) in s.products.iter().enumerate() {
        s.fake.emit(p, 20 + i, t + i as i64 * 1000);
    }
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
        .await;
    let duplicates_before = s.engine.handle().stats().snapshot().duplicates;

    // Dropped without a close frame, then a clean 1001: each comes back with
    // a fresh snapshot of the same trades.
    s.fake.fault(Fault::Drop);
    s.wait_live(2).await;
    s.fake.emit(&s.products[0], 5, t + 30_000);
    s.fake.fault(Fault::Close(1001));
    s.wait_live(3).await;
    s.fake.emit(&s.products[1], 5, t + 61_000);
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
        .await;

    let stats = s.stats();
    assert!(stats.reconnects.load(Relaxed) >= 2);
    assert!(stats.server_closes.load(Relaxed) >= 1, "the 1001 close frame is seen");
    // Two re-sent snapshots of every product's trades were all dropped.
    let duplicates = s.engine.handle().stats().snapshot().duplicates - duplicates_before;
    assert!(
        duplicates >= 2 * 60,
        "only {duplicates} duplicates: the snapshots were not re-sent"
    );
    assert_eq!(s.engine.handle().stats().snapshot().gaps, 0, "nothing was missed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_trades_are_repaired_from_rest_through_throttling() {
    let mut s = Setup::start(
        FakeConfig {
            products: names(2),
            ..FakeConfig::default()
        },
        |_| {},
        None,
    )
    .await;
    s.wait_live(1).await;
    let t = past_minute(8);
    let p = s.products[0].clone();
    s.fake.emit(&p, 10, t);
    s.fake.emit(&s.products[1], 10, t);
    // Five trades that only REST will ever know, spanning two minutes.
    s.fake.withhold(&p, 5);
    s.fake.emit(&p, 3, t + 50_000);
    s.fake.emit(&p, 2, t + 70_000);
    // The first two candle requests are throttled (429, then 401).
    s.fake.fail_candle_requests(&[429, 401]);
    s.fake.emit(&p, 10, t + 130_000);
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(30))
        .await;

    let stats = s.repairs();
    assert!(stats.gaps.load(Relaxed) >= 1);
    assert!(stats.repairs.load(Relaxed) >= 1);
    assert_eq!(stats.rest_throttled.load(Relaxed), 2);
    assert!(stats.repaired_minutes.load(Relaxed) >= 2);
    assert_eq!(
        s.fake.stats().count(|f| &f.candle_requests),
        2 + stats.repairs.load(Relaxed)
    );
    // Trades after the repair still count: the repaired minutes are sealed, later ones are not.
    s.fake.emit(&p, 4, t + 190_000);
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_trips_the_watchdog_and_the_feed_reconnects() {
    let mut s = Setup::start(
        FakeConfig {
            products: names(2),
            ..FakeConfig::default()
        },
        |c| c.watchdog = Duration::from_millis(1500),
        None,
    )
    .await;
    s.wait_live(1).await;
    let t = past_minute(4);
    s.fake.emit(&s.products[0], 5, t);
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
        .await;
    s.fake.fault(Fault::Stall(Duration::from_secs(5)));
    // Trades made during the stall are lost on this connection; the new
    // session's snapshot brings them back.
    s.fake.emit(&s.products[1], 5, t + 1000);
    let stats = s.feed.stats().clone();
    wait_until("the watchdog fires", Duration::from_secs(20), || {
        stats.watchdog_timeouts.load(Relaxed) >= 1
    })
    .await;
    s.wait_live(2).await;
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_and_sequence_jumps_are_counted_and_survived() {
    let mut s = Setup::start(
        FakeConfig {
            products: vec!["BTC-USD".into(), "ETH-USD".into()],
            ..FakeConfig::default()
        },
        |_| {},
        None,
    )
    .await;
    s.wait_live(1).await;
    let t = past_minute(3);
    s.fake.fault(Fault::Garbage);
    s.fake.fault(Fault::SkipSequence(4));
    s.fake.emit("BTC-USD", 8, t);
    s.fake.emit("ETH-USD", 8, t + 500);
    s.collector
        .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
        .await;
    let stats = s.stats();
    assert_eq!(
        stats.malformed_frames.load(Relaxed),
        2,
        "the cut JSON and the bare array"
    );
    assert_eq!(stats.bad_trades.load(Relaxed), 1, "the trade with id x, price NaN");
    assert!(stats.sequence_jumps.load(Relaxed) >= 1);
    assert_eq!(stats.reconnects.load(Relaxed), 0, "none of it costs the connection");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_stay_under_the_per_ip_limits() {
    let s = Setup::start(
        FakeConfig {
            products: names(50),
            ..FakeConfig::default()
        },
        |c| c.products_per_connection = 1,
        None,
    )
    .await;
    assert_eq!(s.stats().connections.len(), 50);
    s.wait_live(1).await;
    // The keep-alive subscribes follow every connection's trades.
    wait_until("both subscribes of every session", Duration::from_secs(60), || {
        s.fake.stats().count(|f| &f.subscribes) >= 100
    })
    .await;
    // Everyone at once: the reconnect storm is paced too.
    s.fake.fault(Fault::Drop);
    s.wait_live(2).await;
    // The keep-alive subscribes follow every connection's trades.
    wait_until("both subscribes of every session", Duration::from_secs(60), || {
        s.fake.stats().count(|f| &f.subscribes) >= 200
    })
    .await;
    let f = s.fake.stats();
    let connects = busiest_window(&f.connect_times(), Duration::from_secs(1));
    let messages = busiest_window(&f.message_times(), Duration::from_secs(1));
    println!("busiest second: {connects} connects, {messages} subscribe messages (limit 8 each)");

    assert!(connects <= 8, "{connects} connections in one second");
    assert!(messages <= 8, "{messages} messages in one second");
    assert_eq!(
        f.count(|f| &f.deadline_closes),
        0,
        "every subscribe beat the 5 s deadline"
    );
    assert_eq!(f.count(|f| &f.subscribes), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_carry_fresh_jwts_for_both_key_types() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use p256::pkcs8::LineEnding;
    let name = "organizations/test/apiKeys/feed";
    let ec = p256::SecretKey::from_slice(&[3u8; 32]).unwrap();
    let ec_private = ec.to_sec1_pem(LineEnding::LF).unwrap().to_string();
    let ec_public = ec.public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
    let mut raw = ed.to_bytes().to_vec();
    raw.extend_from_slice(ed.verifying_key().as_bytes());
    use base64::Engine as _;
    let ed_private = base64::engine::general_purpose::STANDARD.encode(raw);
    let ed_public = ed.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let cases = [
        (
            ec_private,
            JwtKey {
                kid: name.into(),
                algorithm: jsonwebtoken::Algorithm::ES256,
                key: jsonwebtoken::DecodingKey::from_ec_pem(ec_public.as_bytes()).unwrap(),
            },
        ),
        (
            ed_private,
            JwtKey {
                kid: name.into(),
                algorithm: jsonwebtoken::Algorithm::EdDSA,
                key: jsonwebtoken::DecodingKey::from_ed_pem(ed_public.as_bytes()).unwrap(),
            },
        ),
    ];
    for (private, public) in cases {
        let mut s = Setup::start(
            FakeConfig {
                products: names(2),
                jwt_keys: vec![public],
                ..FakeConfig::default()
            },
            |_| {},
            Some(Credentials::new(name, &private).unwrap()),
        )
        .await;
        s.wait_live(1).await;
        // The keep-alive subscribe follows the trades'.
        wait_until("both subscribes of the first session", Duration::from_secs(20), || {
            s.fake.stats().count(|f| &f.subscribes) >= 2
        })
        .await;
        s.fake.fault(Fault::Drop);
        s.wait_live(2).await;
        s.fake.emit(&s.products[0], 3, past_minute(2));
        s.collector
            .wait_equal(&s.fake, &s.products, Duration::from_secs(20))
            .await;
        // The keep-alive subscribe follows the trades'.
        wait_until("both subscribes of the second session", Duration::from_secs(20), || {
            s.fake.stats().count(|f| &f.subscribes) >= 4
        })
        .await;
        let f = s.fake.stats();
        assert_eq!(f.count(|f| &f.auth_failures), 0);
        assert_eq!(
            f.count(|f| &f.jwt_verified),
            4,
            "two subscribes per session, two sessions"
        );
        assert_eq!(f.distinct_nonces(), 4, "a fresh token for every message");
        s.stop().await;
    }

    // A key the exchange does not know: refused, counted, retried, never live.
    let other = p256::SecretKey::from_slice(&[5u8; 32]).unwrap();
    let s = Setup::start(
        FakeConfig {
            products: names(1),
            jwt_keys: vec![JwtKey {
                kid: name.into(),
                algorithm: jsonwebtoken::Algorithm::ES256,
                key: jsonwebtoken::DecodingKey::from_ec_pem(
                    ec.public_key().to_public_key_pem(LineEnding::LF).unwrap().as_bytes(),
                )
                .unwrap(),
            }],
            ..FakeConfig::default()
        },
        |_| {},
        Some(Credentials::new(name, &other.to_sec1_pem(LineEnding::LF).unwrap()).unwrap()),
    )
    .await;
    let stats = s.feed.stats().clone();
    wait_until("two refused sessions", Duration::from_secs(20), || {
        stats.auth_failures.load(Relaxed) >= 2 && stats.reconnects.load(Relaxed) >= 2
    })
    .await;
    assert_eq!(stats.live(), 0);
    assert!(!stats.all_started());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_tradable_spot_products_and_shards_them() {
    let products = names(30);
    let fake = Fake::start(FakeConfig {
        products: products.clone(),
        listing_extras: true,
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let rest = Rest::new(&fake.rest_url(), Budget::per_second(50.0)).expect("rest");
    let listed = spot_host::feed::products(&rest, None, 0, 1).await.expect("discover");
    let ids = |pairs: Vec<spot_host::product::TradingPair>| pairs.into_iter().map(|p| p.product_id).collect::<Vec<_>>();
    // What the listing says of each product is kept.
    let btc = listed.iter().find(|p| p.product_id == products[0]).expect("listed");
    assert_eq!(btc.status.as_deref(), Some("online"));
    assert_eq!(btc.min_size.as_deref(), Some("0.00000001"));
    assert_eq!(btc.max_size.as_deref(), Some("3400"));
    let all = ids(listed);
    let mut want = products.clone();
    want.sort();
    assert_eq!(
        all, want,
        "USDC aliases, delisted, disabled, trading-disabled, futures and malformed ids are skipped"
    );
    let mut union: Vec<String> = Vec::new();
    for i in 0..3 {
        let shard = spot_host::feed::products(&rest, None, i, 3).await.expect("shard");
        assert!(!shard.is_empty());
        union.extend(ids(shard));
    }
    union.sort();
    assert_eq!(union, want, "the shards partition the products");
    // PRODUCTS, when given, is sharded the same way and needs no REST.
    let nowhere = Rest::new("http://127.0.0.1:1", Budget::per_second(1.0)).expect("rest");
    let explicit = spot_host::feed::products(&nowhere, Some(&products), 1, 3)
        .await
        .unwrap();
    assert_eq!(ids(explicit), spot_host::feed::shard::select(&products, 1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_closes_connections_that_do_not_subscribe_in_time() {
    use futures_util::StreamExt;
    let fake = Fake::start(FakeConfig {
        subscribe_deadline: Duration::from_millis(300),
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let (mut ws, _) = tokio_tungstenite::connect_async(fake.ws_url()).await.expect("connect");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("closed in time");
    match first {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008)
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(fake.stats().count(|f| &f.deadline_closes), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_discovers_its_products_and_stores_what_the_feed_brings() {
    use spot_host::server::{Options, Server};
    common::trace();
    let products = names(3);
    let (fake, pg) = common::fake::fake_and_database(&products).await;
    let config = common::fake::server_config(&pg, &fake);
    let options = Options {
        engine: common::config(),
        limits: common::test_limits(),
        bind: Some(([127, 0, 0, 1], 0).into()),
        feed: Some(feed_config(&fake)),
        repair: repair_config(),
        ..Options::default()
    };
    // The exchange traded before the first start: the snapshot holds it.
    let t = past_minute(6);
    for p in &products {
        fake.emit(p, 12, t);
    }
    let server = Server::start(&config, options.clone()).await.expect("start");
    assert_eq!(
        server.products(),
        products.as_slice(),
        "discovered from REST, extras skipped"
    );
    wait_up(&server).await;
    let stats = server.history_stats().expect("history").clone();
    let ready = common::http::get(server.addr(), "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    fake.withhold(&products[2], 3);
    fake.emit(&products[2], 3, t + 65_000);
    fake.emit(&products[2], 4, t + 130_000);

    // Stored rows at every granularity equal the fake's log (the withheld
    // trades came back through a repair).
    stored_equal_log(&server, &fake, &products).await;
    assert!(stats.repairs.load(Relaxed) >= 1);
    let metrics = common::http::get(server.addr(), "/metrics").await.body;
    for name in [
        "spot_feed_trades_total",
        "spot_repair_requests_total",
        "spot_feed_connection_state{shard=\"0\",connection=\"0\"} 3",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    server.stop().await;

    // Down while 80 trades happen: more than the 50 the snapshot re-sends.
    // The restored last trade id makes the rest a gap, repaired from REST.
    fake.emit(&products[0], 80, t + 200_000);
    let server = Server::start(&config, options.clone()).await.expect("restart");
    stored_equal_log(&server, &fake, &products).await;
    assert!(
        server.history_stats().expect("history").repairs.load(Relaxed) >= 1,
        "the downtime was repaired"
    );
    wait_up(&server).await;

    // A gap whose repair cannot happen before the process stops (REST fails)
    // is remembered in the database and done by the next start.
    fake.fail_candle_requests(&[500; 10_000]);
    fake.withhold(&products[1], 2);
    fake.emit(&products[1], 2, t + 250_000);
    fake.emit(&products[1], 3, t + 251_000);
    let stats = server.history_stats().expect("history").clone();
    let log = spot_host::storage::repairs::RepairLog::new(server.pool().clone(), "coinbase");
    wait_until("the repair fails", Duration::from_secs(30), || {
        stats.repair_failures.load(Relaxed) >= 1
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.pending().await.expect("pending").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the window was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
    fake.clear_candle_failures();
    let server = Server::start(&config, options).await.expect("second restart");
    stored_equal_log(&server, &fake, &products).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !log.pending().await.expect("pending").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the done repair is still pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
