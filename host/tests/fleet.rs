//! The fleet, as an operator runs it: three shard processes and a stream-only
//! replica of the real `spot-server` binary on one PostgreSQL, against the
//! fake Coinbase. Any instance streams every product, equal to the fake's log;
//! a stopped shard shows stale and streams again when it returns; a database
//! outage leaves the replica's streams open and they end on the latest state;
//! one fleet swap (and rollback) reaches every instance, an instance that
//! starts later runs it, and one refusal leaves every instance as it was.

mod common;

use common::fake::{ADMIN_TOKEN, exchange_and_database, process_env};
use common::http::{Sse, attr, get, request, shown, sse};
use common::process::{Process, spawn};

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use spot_fake_coinbase::Fake;
use spot_wire::Granularity;

const SHARDS: u32 = 3;

/// Eight products (8 × 8 pairs: one stream holds them all), spread so that
/// every shard has at least two.
fn products() -> Vec<String> {
    let products: Vec<String> = [
        "BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "XRP-USD", "DOGE-USD", "LINK-USD", "SHIB-USD",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..SHARDS {
        let mine = spot_host::feed::shard::select(&products, i, SHARDS);
        assert!(mine.len() >= 2, "shard {i} has {mine:?}");
    }
    products
}

/// The environment of one instance: every product listed, its shard or role.
fn env(
    pg: &spot_testkit::pg::Cluster,
    fake: &Fake,
    products: &[String],
    role: Role,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut vars: Vec<(&'static str, String)> = vec![("AUDIT", "off".into())];
    match role {
        Role::Shard(i) => vars.extend([("SHARD_INDEX", i.to_string()), ("SHARD_COUNT", SHARDS.to_string())]),
        Role::Replica => vars.push(("ROLE", "replica".into())),
    }
    let mut extra_all: Vec<(&'static str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra_all.extend_from_slice(extra);
    process_env(pg, fake, products, &extra_all)
}

#[derive(Clone, Copy)]
enum Role {
    Shard(u32),
    Replica,
}

/// Start three shards and a replica; wait until each shard's backfill is done.
async fn fleet(
    pg: &spot_testkit::pg::Cluster,
    fake: &Fake,
    products: &[String],
    replica_extra: &[(&'static str, &str)],
) -> (Vec<Process>, Process) {
    let mut shards = Vec::new();
    for i in 0..SHARDS {
        shards.push(spawn(&env(pg, fake, products, Role::Shard(i), &[])).await);
    }
    let replica = spawn(&env(pg, fake, products, Role::Replica, replica_extra)).await;
    assert_eq!(replica.started["role"], "replica", "{}", replica.started);
    assert_eq!(replica.started["products"], 0, "a replica ingests nothing");
    for s in &shards {
        backfilled(s).await;
    }
    (shards, replica)
}

async fn backfilled(server: &Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.metric("spot_backfill_done").await != 1.0 {
        assert!(Instant::now() < deadline, "the backfill never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The subscription of every product at every granularity.
fn stream_path(products: &[String]) -> String {
    let q: Vec<String> = products.iter().map(|p| format!("product={p}")).collect();
    format!("/stream?{}", q.join("&"))
}

/// A stream client and the last element it got of each key.
struct Client {
    stream: Sse,
    last: BTreeMap<String, String>,
}

impl Client {
    async fn open(server: &Process, products: &[String]) -> Client {
        let stream = sse(server.addr, &stream_path(products), &[], None).await;
        assert_eq!(stream.status, 200);
        Client {
            stream,
            last: BTreeMap::new(),
        }
    }

    /// Read until the last element of every key of `products` shows the
    /// newest bucket of the fake's log (start, open, high, low, close, volume).
    async fn ends_on_the_log(&mut self, fake: &Fake, products: &[String], what: &str) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let mut differ = Vec::new();
            for p in products {
                for g in Granularity::ALL {
                    let id = format!("{p}-{}", g.name());
                    let want = fake.candles(p, g.seconds()).last().map(|c| {
                        [
                            c.start.to_string(),
                            c.open.to_string(),
                            c.high.to_string(),
                            c.low.to_string(),
                            c.close.to_string(),
                            c.volume.to_string(),
                        ]
                    });
                    let have = self.last.get(&id).map(|el| shown(el));
                    if want != have {
                        differ.push(format!("{id}: have {have:?}, want {want:?}"));
                    }
                }
            }
            if differ.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the stream's last elements differ from the log:\n{}",
                differ.join("\n")
            );
            let event = self.stream.event().await.expect("the stream ended");
            for el in event.elements {
                let id = attr(&el, "id").expect("element id");
                self.last.insert(id, el);
            }
        }
    }
}

/// A trade now for each of `products`.
fn trade(fake: &Fake, products: &[String], n: usize) {
    let now = spot_fake_coinbase::now_ms();
    for p in products {
        fake.emit(p, n, now);
    }
}

/// `/readyz`'s view of shard `shard` on `server`.
async fn shard_status(server: &Process, shard: u32) -> serde_json::Value {
    let r = get(server.addr, "/readyz").await.json();
    r["fleet"]["shards"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["shard"] == shard).cloned())
        .unwrap_or_else(|| panic!("no shard {shard} in {r}"))
}

/// Wait until `server` reports shard `shard` as `what` says.
async fn shard_until(
    server: &Process,
    shard: u32,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = shard_status(server, shard).await;
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "shard {shard} never {what}: {s}");
        // The registry is read on the heartbeat: nothing else to await.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `server` reports shard `shard` live (or not).
async fn shard_live(server: &Process, shard: u32, live: bool) -> serde_json::Value {
    shard_until(server, shard, &format!("became live={live}"), |s| s["live"] == live).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_streams_every_product_through_a_stopped_shard_and_a_database_outage() {
    common::trace();
    let products = products();
    let (fake, mut pg, _pool) = exchange_and_database(&products).await;
    let (mut shards, replica) = fleet(&pg, &fake, &products, &[]).await;
    let share = |i: u32| spot_host::feed::shard::select(&products, i, SHARDS);

    // Every instance serves every product: the API, the page's picker (each
    // reads the fleet's rows on its heartbeat: the first shard learns of the
    // others within one).
    let mut all = products.clone();
    all.sort();
    for server in shards.iter().chain([&replica]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listed: Vec<String> = get(server.addr, "/api/products")
                .await
                .json()
                .as_array()
                .expect("products")
                .iter()
                .map(|p| p["product_id"].as_str().unwrap_or_default().to_string())
                .collect();
            if listed == all {
                break;
            }
            assert!(Instant::now() < deadline, "{listed:?} is not the fleet's {all:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = get(server.addr, &format!("/?product={}", share(2)[0])).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for p in &products {
            assert!(
                page.body.contains(&format!("<option value=\"{p}\"")),
                "{p} not in the picker"
            );
        }
    }

    // A client of the replica and one of shard 0, subscribed to every
    // product, both end on the fake's log at all 8 granularities.
    trade(&fake, &products, 3);
    let mut on_replica = Client::open(&replica, &products).await;
    let mut on_shard = Client::open(&shards[0], &products).await;
    on_replica.ends_on_the_log(&fake, &products, "replica").await;
    on_shard.ends_on_the_log(&fake, &products, "shard 0").await;
    let candles = get(
        replica.addr,
        &format!("/api/candles?product={}&granularity=ONE_HOUR", share(1)[0]),
    )
    .await;
    assert_eq!(candles.status, 200, "{}", candles.body);
    assert!(!candles.json()["candles"].as_array().expect("candles").is_empty());
    for i in 0..SHARDS {
        shard_until(&replica, i, "showed its last update", |s| {
            s["live"] == true && s["last_update_age_s"].as_f64().is_some()
        })
        .await;
    }

    // Shard 1 stops: the others and the replica go on; the replica reports
    // it stale; its products' clients keep their stream, with no updates.
    let stopped = shards.remove(1);
    let (status, _) = stopped.terminate().await;
    assert!(status.success());
    let s = shard_live(&replica, 1, false).await;
    assert_eq!(s["stopped"], true, "{s}");
    let others: Vec<String> = products.iter().filter(|p| !share(1).contains(p)).cloned().collect();
    trade(&fake, &others, 2);
    on_replica
        .ends_on_the_log(&fake, &products, "replica, shard 1 stopped")
        .await;
    let late = sse(replica.addr, &stream_path(&share(1)), &[], None).await;
    assert_eq!(late.status, 200, "a stopped shard's products are still served");
    drop(late);
    let metrics = get(replica.addr, "/metrics").await.body;
    assert!(metrics.contains("spot_fleet_shard_up{shard=\"1\"} 0"), "{metrics}");

    // Restarted, its products stream again.
    let back = spawn(&env(&pg, &fake, &products, Role::Shard(1), &[])).await;
    backfilled(&back).await;
    shards.insert(1, back);
    shard_live(&replica, 1, true).await;
    trade(&fake, &share(1), 2);
    on_replica
        .ends_on_the_log(&fake, &products, "replica, shard 1 back")
        .await;

    // PostgreSQL stops for 15 s while the market trades: the replica keeps
    // its SSE connections open, resyncs when the database is back, and every
    // element ends on the latest state.
    let connects = replica.metric("spot_fleet_listener_connects_total").await;
    pg.stop().expect("stop PostgreSQL");
    let outage = Instant::now();
    trade(&fake, &products, 2);
    // The outage is what is under test: it lasts its 15 s.
    tokio::time::sleep(Duration::from_secs(15).saturating_sub(outage.elapsed())).await;
    trade(&fake, &products, 1);
    pg.start().expect("start PostgreSQL");
    on_replica
        .ends_on_the_log(&fake, &products, "replica, after the outage")
        .await;
    on_shard
        .ends_on_the_log(&fake, &products, "shard 0, after the outage")
        .await;
    assert!(
        replica.metric("spot_fleet_listener_connects_total").await > connects,
        "the replica's listener reconnected"
    );
    assert!(replica.metric("spot_fleet_resyncs_total").await >= 2.0);

    for s in shards.into_iter().chain([replica]) {
        let (status, _) = s.terminate().await;
        assert!(status.success(), "exit status {status}");
    }
}

/// `GET /admin/component` on `server`.
async fn component(server: &Process) -> serde_json::Value {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = request(server.addr, "GET", "/admin/component", &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Upload `name` to `server` for the whole fleet.
async fn fleet_swap(server: &Process, name: &str) -> common::http::Response {
    let wasm = std::fs::read(common::component_path(name)).expect("wasm");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    request(
        server.addr,
        "PUT",
        "/admin/component?fleet",
        &[("Authorization", &auth), ("Content-Type", "application/wasm")],
        &wasm,
    )
    .await
}

/// Every instance in `report` did `outcome`.
fn all_did(report: &serde_json::Value, n: usize, outcome: &str) {
    let instances = report["fleet"]["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), n, "{report}");
    for i in instances {
        assert_eq!(i["accepted"], true, "{report}");
        assert_eq!(i["outcome"], outcome, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fleet_swap_reaches_every_instance_and_one_refusal_leaves_all_as_they_were() {
    common::trace();
    let products = products();
    let (fake, pg, _pool) = exchange_and_database(&products).await;
    // The replica's component memory cap is small: it refuses a component
    // that needs more (spot-test-hungry), which the shards would take.
    let (mut shards, replica) = fleet(&pg, &fake, &products, &[("COMPONENT_MEMORY_MB", "64")]).await;
    let base = component(&replica).await["active"]["name"].clone();

    // A fleet swap uploaded to shard 0 reaches all four instances.
    let r = fleet_swap(&shards[0], "spot_example_change").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let report = r.json();
    assert_eq!(report["fleet"]["state"], "committed", "{report}");
    all_did(&report, 4, "swapped");
    for s in shards.iter().chain([&replica]) {
        let c = component(s).await;
        assert_eq!(c["active"]["name"], "spot-example-change", "{c}");
        let instances = c["fleet"]["instances"].as_array().expect("instances").clone();
        assert_eq!(instances.iter().filter(|i| i["live"] == true).count(), 4, "{c}");
    }
    // The replica renders other instances' candles with its own new component.
    let mut on_replica = Client::open(&replica, &products).await;
    trade(&fake, &products, 2);
    on_replica
        .ends_on_the_log(&fake, &products, "replica after the fleet swap")
        .await;
    assert!(
        on_replica.last.values().all(|el| attr(el, "data-change").is_some()),
        "every element is the example component's: {:?}",
        on_replica.last.values().next()
    );

    // A fleet rollback, asked of the replica, reaches all four too.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = request(
        replica.addr,
        "POST",
        "/admin/component/rollback?fleet",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    all_did(&r.json(), 4, "swapped");
    for s in shards.iter().chain([&replica]) {
        assert_eq!(component(s).await["active"]["name"], base);
    }

    // Shard 2 is down during the next fleet swap; started afterwards, it runs
    // the fleet's component.
    let down = shards.remove(2);
    let (status, _) = down.terminate().await;
    assert!(status.success());
    let r = fleet_swap(&shards[1], "spot_example_change").await;
    assert_eq!(r.status, 200, "{}", r.body);
    all_did(&r.json(), 3, "swapped");
    let back = spawn(&env(&pg, &fake, &products, Role::Shard(2), &[])).await;
    assert_eq!(
        back.started["component"], "spot-example-change 0.1.0",
        "{}",
        back.started
    );
    shards.push(back);

    // One instance refuses (the replica: too little memory for it): no
    // instance swaps, and the answer says who and why.
    let r = fleet_swap(&shards[0], "spot_test_hungry").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let report = r.json();
    assert_eq!(report["fleet"]["state"], "aborted", "{report}");
    let replica_id = component(&replica).await["fleet"]["instance"].clone();
    let refused: Vec<&serde_json::Value> = report["fleet"]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|i| i["accepted"] == false)
        .collect();
    assert_eq!(refused.len(), 1, "{report}");
    assert_eq!(refused[0]["instance"], replica_id, "{report}");
    assert!(
        refused[0]["reason"].as_str().is_some_and(|r| r.contains("golden run")),
        "{report}"
    );
    let names: HashSet<String> = {
        let mut n = HashSet::new();
        for s in shards.iter().chain([&replica]) {
            n.insert(
                component(s).await["active"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        n
    };
    assert_eq!(
        names,
        HashSet::from(["spot-example-change".to_string()]),
        "nobody swapped"
    );
    let c = component(&shards[0]).await;
    assert_eq!(c["fleet"]["last_operation"]["state"], "aborted", "{c}");

    for s in shards.into_iter().chain([replica]) {
        let (status, _) = s.terminate().await;
        assert!(status.success(), "exit status {status}");
    }
}
