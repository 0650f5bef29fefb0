//! What history costs, measured on the real `spot-server` process (its wall
//! clock moved by libfaketime to the hour each part needs) against the fake
//! Coinbase and a throwaway PostgreSQL:
//!
//! 1. the backfill of 900 products × a whole UTC day at the default REST
//!    rate, as a ratio to the bound the rate sets (requests ÷ rate);
//! 2. two days of 1-minute candles for 900 products held: the restore's time
//!    and the process's RSS, beside one day and none in the same run;
//! 3. the cold start: from spawning the process to ready with a day of 900
//!    products stored and the component compiled in the cache.
//!
//! `cargo bench -p spot-host --bench history -- [--products 900] [--rate 8]
//! [--only backfill|memory|cold-start]`. Reports; asserts nothing but that the stored
//! candles of the backfilled products equal the fake's.

mod common;
#[path = "../tests/common/mod.rs"]
mod testing;

use std::time::{Duration, Instant};

use spot_fake_coinbase::{Fake, busiest_window};
use testing::fake::exchange_and_database;
use testing::process::{Clock, Process, spawn_at};

const DAY_MS: i64 = 86_400_000;

struct Args {
    products: usize,
    rate: f64,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        products: 900,
        rate: 8.0,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--products" => a.products = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.products),
            "--rate" => a.rate = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.rate),
            "--only" => a.only = it.next(),
            _ => {}
        }
    }
    a
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("P{i}-USD")).collect()
}

fn env(
    pg: &spot_testkit::pg::Cluster,
    fake: &Fake,
    products: &[String],
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = testing::fake::server_env(pg, fake);
    env.retain(|(k, _)| *k != "COINBASE_REST_RATE");
    env.push(("PRODUCTS", products.join(",")));
    env.push(("AUDIT", "off".into()));
    env.extend(extra.iter().cloned());
    env
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

async fn wait_metric(server: &Process, name: &str, want: f64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if server.metric(name).await >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Part 1: a first start at 00:10 (two days kept): the whole previous day
/// and today until the live trades begin are fetched (the backfill runs for
/// minutes; at 23:58 the day would end under it).
async fn backfill(a: &Args) {
    let clock = Clock::at(10 * 60);
    let start = clock.now_ms();
    let day = start.div_euclid(DAY_MS) * DAY_MS - DAY_MS;
    let products = names(a.products);
    let (fake, pg, pool) = exchange_and_database(&products).await;
    // A trade every 5 minutes since yesterday's start, then 50 in the minute
    // before the start: the snapshot's earliest trade is there, so the
    // backfill covers everything before it.
    let burst = start - 110_000;
    for p in &products {
        fake.history(p, day, burst - 60_000, 300_000);
        fake.history(p, burst, burst + 50_000, 1_000);
    }
    let rate = a.rate.to_string();
    let env = env(
        &pg,
        &fake,
        &products,
        &[("COINBASE_REST_RATE", rate), ("HISTORY_DAYS", "2".into())],
    );
    let t0 = Instant::now();
    let mut server = spawn_at(&env, Some(clock.offset_s)).await;
    server.until_log("feed up").await;
    let planned_within = Duration::from_secs(60);
    wait_metric(
        &server,
        "spot_backfill_products_planned",
        a.products as f64,
        planned_within,
    )
    .await;
    let backfill_requests = server.metric("spot_backfill_requests_total").await;
    let bound_s = (backfill_requests / a.rate) * 1.0;
    let done = wait_metric(
        &server,
        "spot_backfill_done",
        1.0,
        Duration::from_secs_f64(bound_s * 2.0 + 120.0),
    )
    .await;
    let took = t0.elapsed().as_secs_f64();
    let requests = fake.stats().count(|f| &f.candle_requests) as f64;
    let repairs = server.metric("spot_repair_requests_total").await;
    let busiest = busiest_window(&fake.stats().candle_request_times(), Duration::from_secs(1));
    let bound = requests / a.rate;
    let sample = &products[..products.len().min(5)];
    let equal = testing::fake::stored_differences_from(&pool, &fake, sample, day.div_euclid(1000))
        .await
        .is_empty();
    println!(
        "1. backfill of {} products x a UTC day (and today's first minutes) at {}/s: {} in {took:.1} s from the process start; \
         {requests:.0} requests ({backfill_requests:.0} backfill, {repairs:.0} repairs of the live minute); \
         bound {bound:.1} s (requests / rate); ratio {:.3}; busiest second {busiest} requests; \
         stored equals the fake's log for {} sampled products: {equal}",
        a.products,
        a.rate,
        if done { "done" } else { "NOT done" },
        took / bound,
        sample.len(),
    );
    let _ = server.terminate().await;
}

/// Part 2: a start at 23:59 holding `days` days of 1m candles per product.
async fn memory_with(products: &[String], days: i64) -> ((f64, f64, f64), f64, f64, (f64, f64), u64) {
    let clock = Clock::at(23 * 3600 + 59 * 60);
    let now = clock.now_ms();
    let day = now.div_euclid(DAY_MS) * DAY_MS;
    let first = day - (days - 1) * DAY_MS;
    let (fake, pg, pool) = exchange_and_database(products).await;
    let minutes = store_days(&pool, products, days, first, now, day).await;
    let env = env(&pg, &fake, products, &[("COINBASE_REST_RATE", "8".into())]);
    let server = spawn_at(&env, Some(clock.offset_s)).await;
    let restored = server
        .logged("restored the horizon")
        .map(|v| {
            (
                v["took_ms"].as_f64().unwrap_or(f64::NAN),
                v["read_ms"].as_f64().unwrap_or(f64::NAN),
                v["component_ms"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
    let pid = server.child.id().expect("pid");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_start = rss_mb(pid);
    // The engine checkpoints every 30 s (a second copy of the state is built
    // off its thread, then exported): the peak.
    let mut peak = at_start;
    for _ in 0..35 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_mb(pid));
    }
    let checkpoint_ms = (
        server.metric("spot_engine_last_checkpoint_seconds").await * 1e3,
        server.metric("spot_engine_last_checkpoint_build_seconds").await * 1e3,
    );
    let _ = server.terminate().await;
    (
        restored,
        at_start,
        peak,
        checkpoint_ms,
        minutes as u64 * products.len() as u64,
    )
}

/// Every minute of every product from `first` to `now` (with trade ids: a
/// restart's case) and the coverage an earlier run would have recorded, in a
/// migrated database; the minutes per product.
async fn store_days(
    pool: &deadpool_postgres::Pool,
    products: &[String],
    days: i64,
    first: i64,
    now: i64,
    day: i64,
) -> i64 {
    let minutes = if days == 0 {
        0
    } else {
        (now.div_euclid(60_000) * 60_000 - first) / 60_000
    };
    let covered = (day.div_euclid(1000) - 86_400, now.div_euclid(1000));
    common::store_minutes(pool, products.len(), first.div_euclid(1000), minutes, covered, true).await;
    minutes
}

/// Part 3: the cold start. A day of 900 products stored, the component
/// compiled into the cache by an earlier start; the time from spawning the
/// process to ready (migrations applied, the day restored, every feed
/// connection subscribed to the fake: `/readyz` answers 200), and its parts
/// from the process's own log.
async fn cold_start(a: &Args) {
    let products = names(a.products);
    let clock = Clock::at(23 * 3600 + 59 * 60);
    let now = clock.now_ms();
    let day = now.div_euclid(DAY_MS) * DAY_MS;
    let (fake, pg, pool) = exchange_and_database(&products).await;
    let minutes = store_days(&pool, &products, 1, day, now, day).await;
    let data = std::env::temp_dir().join(format!("spot-cold-start-{}", std::process::id()));
    let env = env(
        &pg,
        &fake,
        &products,
        &[
            ("COINBASE_REST_RATE", "8".into()),
            ("AUDIT", "off".into()),
            ("SPOT_DATA_DIR", data.display().to_string()),
        ],
    );
    // An earlier start: the compiled component goes into the cache.
    let warm = spawn_at(&env, Some(clock.offset_s)).await;
    let _ = warm.terminate().await;
    let spawned = Instant::now();
    let mut server = spawn_at(&env, Some(clock.offset_s)).await;
    let serving = spawned.elapsed();
    server.until_log("feed up").await;
    let feed_up = spawned.elapsed();
    let client = reqwest::Client::new();
    let url = format!("http://{}/readyz", server.addr);
    while !client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = spawned.elapsed();
    let subscribing = subscribing_ms(&server);
    let restored = server.logged("restored the horizon").unwrap_or_default();
    let component = server.logged("component loaded").unwrap_or_default();
    println!(
        "3. cold start with a day of {} products stored ({} minutes), the component from the cache: \
         ready (/readyz 200) {} ms after the spawn; serving HTTP at {} ms, every connection subscribed at {} ms \
         (the restore {} ms: reading {} ms, in the component {} ms; the component from the cache: {}; \
         the feed's subscribes, at once with the restore: {} ms from its start to the last acknowledgement). Target: 2,000 ms",
        products.len(),
        minutes * products.len() as i64,
        ready.as_millis(),
        serving.as_millis(),
        feed_up.as_millis(),
        restored["took_ms"],
        restored["read_ms"],
        restored["component_ms"],
        component["from_cache"],
        subscribing,
    );
    let _ = server.terminate().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// From the feed's start to its last connection's acknowledgement (the
/// `after_ms` of the server's `subscribed` lines).
fn subscribing_ms(server: &Process) -> i64 {
    server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "subscribed")
        .filter_map(|l| l["after_ms"].as_i64())
        .max()
        .unwrap_or(-1)
}

async fn memory(a: &Args) {
    let products = names(a.products);
    let mut base = None;
    for days in [0, 1, 2] {
        let ((restore_ms, read_ms, component_ms), start_mb, peak_mb, (hold_ms, build_ms), minutes) =
            memory_with(&products, days).await;
        let ratio = base
            .map(|b: f64| format!("{:.1}x", peak_mb / b))
            .unwrap_or_else(|| "baseline".into());
        base.get_or_insert(peak_mb);
        println!(
            "2. {days} day(s) of 1m candles held for {} products ({minutes} minutes): restore {restore_ms:.0} ms (reading {read_ms:.0}, in the component {component_ms:.0}); \
             RSS {start_mb:.0} MB after start, {peak_mb:.0} MB at most over the first checkpoint ({ratio} of none); \
             the last checkpoint held the engine {hold_ms:.2} ms and took {build_ms:.0} ms to build (off its thread when the state is large)",
            products.len()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let run = |name: &str| a.only.as_deref().is_none_or(|o| o == name);
    println!(
        "spot history benchmarks ({} products, REST at {}/s)",
        a.products, a.rate
    );
    if run("memory") {
        memory(&a).await;
    }
    if run("cold-start") {
        cold_start(&a).await;
    }
    if run("backfill") {
        backfill(&a).await;
    }
}
