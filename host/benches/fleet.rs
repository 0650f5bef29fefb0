//! The fleet's path between instances: a shard's engine output → its writer
//! (the upsert, one `fleet_updates` row and one NOTIFY per flush) →
//! PostgreSQL → a replica's listener (LISTEN, read back) → the replica's
//! engine (render) → its hub → an SSE client's read.
//!
//! A shard and a replica run in this process on one PostgreSQL (durable:
//! fsync on, as deployed). Trades go straight into the shard's engine, each
//! priced at the unix µs it was handed over, so a client reads from each
//! candle's close how old the newest trade in it is. Every trade changes 8
//! candles (one per granularity): a rate of N candle updates/s is N/8 trades/s
//! over the products. The clients subscribe to every product's minute.
//! Baseline in the same run: the same clients on the shard itself (engine →
//! hub → client, nothing between). Also reported: notifying commits/s (the
//! shard's NOTIFYs, at most one per flush), rows per flush, and the share of
//! the machine's CPU the database used.
//!
//! `cargo bench -p spot-host --bench fleet -- [--seconds 15] [--rates 1000,10000]
//! [--products 900]`. Reports; asserts nothing.

mod common;

use common::{Scan, cpu_seconds};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spot_host::config::Config;
use spot_host::server::{Options, Server};
use spot_wire::{Fixed, Side, Trade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Products per client (the stream's limit is 64 pairs).
const PER_CLIENT: usize = 64;
/// The driver hands trades over this often.
const TICK: Duration = Duration::from_millis(5);

fn now_us() -> i64 {
    spot_fake_coinbase::now_us()
}

struct Settings {
    seconds: u64,
    rates: Vec<u64>,
    products: usize,
}

fn settings() -> Settings {
    let mut s = Settings {
        seconds: 15,
        rates: vec![1_000, 10_000],
        products: 900,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => s.seconds = v.parse().expect("--seconds N"),
            "--rates" => s.rates = v.split(',').map(|r| r.parse().expect("--rates N,N")).collect(),
            "--products" => s.products = v.parse().expect("--products N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    s
}

/// Latencies (µs) read by the clients of one server while `recording`.
#[derive(Default)]
struct Samples {
    recording: std::sync::atomic::AtomicBool,
    us: Mutex<Vec<i64>>,
}

/// Open streams for every product's minute on `addr`; each element's close
/// (the newest trade's hand-over time) gives a latency sample.
async fn clients(addr: std::net::SocketAddr, products: &[String], samples: Arc<Samples>) {
    let scan = Arc::new(Scan::new());
    for chunk in products.chunks(PER_CLIENT) {
        let q: Vec<String> = chunk.iter().map(|p| format!("product={p}")).collect();
        let path = format!("/stream?{}&granularity=ONE_MINUTE", q.join("&"));
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let (samples, scan) = (samples.clone(), scan.clone());
        tokio::spawn(async move {
            // Reads land after a partial element kept from the last one.
            let mut carry: Vec<u8> = Vec::with_capacity(1 << 16);
            loop {
                carry.reserve(1 << 16);
                match stream.read_buf(&mut carry).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let read_at = now_us();
                let end = scan.whole(&carry);
                if samples.recording.load(Relaxed) {
                    let mut got = Vec::new();
                    scan.trade_latencies(&carry[..end], read_at, &mut got);
                    samples.us.lock().unwrap_or_else(|p| p.into_inner()).extend(got);
                }
                carry.drain(..end);
            }
        });
    }
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// CPU seconds of the cluster's postmaster and every process it started.
fn database_cpu(port: u16) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut postmaster = None;
    let mut parents: HashMap<u32, u32> = HashMap::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("postgres") && cmdline.contains(&format!("-p {port}")) {
            postmaster = Some(pid);
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parents.insert(pid, ppid);
    }
    let Some(postmaster) = postmaster else { return 0.0 };
    parents
        .iter()
        .filter(|(pid, ppid)| **pid == postmaster || **ppid == postmaster)
        .map(|(pid, _)| cpu_seconds(*pid))
        .sum()
}

fn config(pg: &spot_testkit::pg::Cluster, products: &[String], role: &str) -> Config {
    let component =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/component/spot_guest.wasm");
    let vars = HashMap::from([
        ("DATABASE_URL", pg.url("postgres")),
        ("COMPONENT_PATH", component.display().to_string()),
        ("DATASTAR_URL", common::OFFLINE_DATASTAR.to_string()),
        ("PRODUCTS", products.join(",")),
        ("ROLE", role.to_string()),
        // No feed runs here; nothing asks the exchange.
        ("COINBASE_WS_URL", "ws://127.0.0.1:9".to_string()),
        ("COINBASE_REST_URL", "http://127.0.0.1:9".to_string()),
    ]);
    Config::from_lookup(|k| vars.get(k).cloned()).expect("config")
}

fn main() {
    let s = settings();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(s));
}

async fn run(s: Settings) {
    let pg = spot_testkit::pg::Cluster::temporary_with(true).expect("cluster");
    let products: Vec<String> = (0..s.products).map(|i| format!("P{i}-USD")).collect();
    let options = || Options {
        bind: Some(([127, 0, 0, 1], 0).into()),
        feed: None,
        component_poll: None,
        ..Options::default()
    };
    let shard = Server::start(&config(&pg, &products, "ingest"), options())
        .await
        .expect("shard");
    let replica = Server::start(&config(&pg, &products, "replica"), options())
        .await
        .expect("replica");
    let engine = shard.engine();
    let ids = engine.register_products(&products).await.expect("ids");
    // One trade per product first: every key has a state to follow.
    let mut next_id = vec![1u64; products.len()];
    let trade = |p: usize, next_id: &mut Vec<u64>| {
        let t = now_us();
        next_id[p] += 1;
        Trade {
            product: ids[p],
            side: Side::Buy,
            trade_id: next_id[p],
            time_ms: t / 1000,
            price: Fixed::from_units(t as i128 * 1_000_000_000_000_000_000),
            size: Fixed::from_units(1_000_000_000_000_000),
        }
    };
    let first: Vec<Trade> = (0..products.len()).map(|p| trade(p, &mut next_id)).collect();
    engine.trades(first).await.expect("trades");
    shard.sync().await.expect("sync");
    let catalog = replica.fleet().catalog().clone();
    let fleet = replica.fleet().stats().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while catalog.products().list.len() < products.len() || !fleet.synced.load(Relaxed) {
        assert!(Instant::now() < deadline, "the replica never saw the fleet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let on_replica = Arc::new(Samples::default());
    let on_shard = Arc::new(Samples::default());
    clients(replica.addr(), &products, on_replica.clone()).await;
    clients(shard.addr(), &products, on_shard.clone()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "fleet: a shard and a replica on one PostgreSQL (durable), {} products, {} clients on each \
         (every product's minute), {} s per rate; latency from the shard's engine to the client's read",
        products.len(),
        products.len().div_ceil(PER_CLIENT),
        s.seconds
    );
    println!(
        "{:>9} | {:>21} | {:>21} | {:>10} | {:>9} | {:>9} | {:>8}",
        "updates/s", "replica p50 / p99 ms", "shard p50 / p99 ms", "p99 ratio", "NOTIFY/s", "rows/flush", "DB CPU"
    );
    let writer = shard.writer_stats().expect("the shard writes").clone();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for &rate in &s.rates {
        let trades_per_s = rate as f64 / 8.0;
        for samples in [&on_replica, &on_shard] {
            samples.us.lock().unwrap_or_else(|p| p.into_inner()).clear();
            samples.recording.store(true, Relaxed);
        }
        let (notifies, rows, flushes) = (
            writer.notifications.load(Relaxed),
            writer.rows_written.load(Relaxed),
            writer.flushes.load(Relaxed),
        );
        let (db_before, wall) = (database_cpu(pg.port()), Instant::now());
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut owed = 0.0f64;
        let mut last = Instant::now();
        while wall.elapsed() < Duration::from_secs(s.seconds) {
            tick.tick().await;
            owed += trades_per_s * last.elapsed().as_secs_f64();
            last = Instant::now();
            let n = owed.floor() as usize;
            owed -= n as f64;
            let batch: Vec<Trade> = (0..n)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    trade((rng % products.len() as u64) as usize, &mut next_id)
                })
                .collect();
            if !batch.is_empty() {
                engine.trades(batch).await.expect("trades");
            }
        }
        let seconds = wall.elapsed().as_secs_f64();
        let db = database_cpu(pg.port()) - db_before;
        // Let what is in flight arrive before the window closes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut stats = Vec::new();
        for samples in [&on_replica, &on_shard] {
            samples.recording.store(false, Relaxed);
            let mut v = std::mem::take(&mut *samples.us.lock().unwrap_or_else(|p| p.into_inner()));
            v.sort_unstable();
            stats.push((percentile(&v, 0.5), percentile(&v, 0.99)));
        }
        let notified = writer.notifications.load(Relaxed) - notifies;
        let flushed = (writer.flushes.load(Relaxed) - flushes).max(1);
        let rows = writer.rows_written.load(Relaxed) - rows;
        println!(
            "{:>9} | {:>9.1} / {:>9.1} | {:>9.1} / {:>9.1} | {:>9.1}x | {:>9.1} | {:>10.0} | {:>7.1}%",
            rate,
            stats[0].0,
            stats[0].1,
            stats[1].0,
            stats[1].1,
            stats[0].1 / stats[1].1,
            notified as f64 / seconds,
            rows as f64 / flushed as f64,
            db / seconds / 2.0 * 100.0,
        );
    }
    println!(
        "(DB CPU: the database's share of the machine's 2 cores over the window; the p99 ratio is replica / shard.)"
    );
    replica.stop().await;
    shard.stop().await;
}
