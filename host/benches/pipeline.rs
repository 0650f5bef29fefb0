//! Load and soak of the whole pipeline: the fake Coinbase (a child process)
//! → the feed → the engine with the real component → the writer
//! (PostgreSQL) and the hub → 1,000 SSE clients (another child process), at
//! increasing trade rates over 900 products.
//!
//! The fake prices every trade at its frame's creation time in unix µs, so a
//! client reads from each candle's close how long ago the newest trade in it
//! left the exchange: that is the latency from exchange frame to SSE bytes.
//! A rate is sustained when the engine processed at least 97% of what the
//! fake made during the window and the queue did not grow.
//!
//! With `--stored-hours H`, the database holds the last H hours of every
//! product's minutes before the start (restored into the engine): the state
//! a running instance holds, which every checkpoint exports (the breakdown
//! counts them per window, with the last one's hold of the engine and its
//! build off the engine's thread).
//!
//! `cargo bench -p spot-host --bench pipeline -- [--seconds 10] [--rates 10000,25000,...]
//! [--products 900] [--clients 1000] [--publish-writes-us 250] [--stored-hours 0]`.
//! Reports; asserts nothing.

mod common;

use common::{Peer, Scan, cpu_seconds, rss_kb};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use spot_fake_coinbase::{Fake, FakeConfig};
use spot_host::config::Config;
use spot_host::engine::TradeStage;
use spot_host::hub::HubConfig;
use spot_host::server::{Options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The market's frame interval (Coinbase sends many small frames).
const FRAME: Duration = Duration::from_millis(20);

fn now_us() -> i64 {
    spot_fake_coinbase::now_us()
}

/// Busy and total jiffies of the whole machine (all cores).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("P{i}-USD")).collect()
}

struct Settings {
    seconds: u64,
    rates: Vec<u64>,
    products: usize,
    clients: usize,
    /// The hub's `publish_writes` budget, µs (0: streams write every event).
    publish_writes_us: u64,
    /// Hours of every product's minutes stored (and restored) before the start.
    stored_hours: i64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("--fake") => return fake_process(args[1].parse().expect("products")),
        Some("--clients") => {
            return clients_process(
                &args[1],
                args[2].parse().expect("clients"),
                args[3].parse().expect("products"),
            );
        }
        _ => {}
    }
    let mut s = Settings {
        seconds: 10,
        rates: vec![1_000, 10_000, 25_000, 50_000, 100_000, 150_000],
        products: 900,
        clients: 1_000,
        publish_writes_us: HubConfig::default().publish_writes.as_micros() as u64,
        stored_hours: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().map(String::as_str).unwrap_or("");
        match a.as_str() {
            "--seconds" => s.seconds = v.parse().expect("--seconds"),
            "--rates" => s.rates = v.split(',').map(|r| r.parse().expect("--rates")).collect(),
            "--products" => s.products = v.parse().expect("--products"),
            "--clients" => s.clients = v.parse().expect("--clients"),
            "--publish-writes-us" => s.publish_writes_us = v.parse().expect("--publish-writes-us"),
            "--stored-hours" => s.stored_hours = v.parse().expect("--stored-hours"),
            _ => {}
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(drive(s));
}

async fn drive(s: Settings) {
    let pg = spot_testkit::pg::Cluster::temporary().expect("PostgreSQL cluster");
    let mut fake = Peer::spawn(&["--fake", &s.products.to_string()]);
    let ready = fake.read();
    let mut parts = ready.split_whitespace().skip(1);
    let (ws, rest) = (
        parts.next().expect("ws").to_string(),
        parts.next().expect("rest").to_string(),
    );

    if s.stored_hours > 0 {
        // Settled minutes up to the current one (within the horizon: the
        // last 24 hours always are), without trade ids so the fake's count.
        let pool = spot_host::storage::pool(&pg.url("postgres"), 2).expect("pool");
        let now_s = now_us() / 1_000_000 / 60 * 60;
        let minutes = s.stored_hours * 60;
        let first = now_s - minutes * 60;
        common::store_minutes(&pool, s.products, first, minutes, (first, now_s), false).await;
    }
    let component =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/component/spot_guest.wasm");
    let vars = std::collections::HashMap::from([
        ("DATABASE_URL", pg.url("postgres")),
        ("COMPONENT_PATH", component.display().to_string()),
        ("DATASTAR_URL", common::OFFLINE_DATASTAR.to_string()),
        ("COINBASE_WS_URL", ws),
        ("COINBASE_REST_URL", rest),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let rss_idle_start = rss_kb();
    let server = Server::start(
        &config,
        Options {
            bind: Some(([127, 0, 0, 1], 0).into()),
            hub: HubConfig {
                max_clients: s.clients + 1_000,
                publish_writes: Duration::from_micros(s.publish_writes_us),
                ..HubConfig::default()
            },
            component_poll: None,
            ..Options::default()
        },
    )
    .await
    .expect("server");
    let feed = server.feed_stats().expect("feed").clone();
    while !feed.all_started() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let engine = server.engine();
    let mut clients = Peer::spawn(&[
        "--clients",
        &server.addr().to_string(),
        &s.clients.to_string(),
        &s.products.to_string(),
    ]);
    assert_eq!(clients.read(), "connected");
    let probe = probe(server.hub(), s.products);
    println!(
        "pipeline: {} products on {} connections, {} SSE clients, {} s per rate, frames every {} ms; \
         {} hours of minutes stored and restored; server RSS {:.0} MB at start ({:.0} MB before)",
        s.products,
        feed.connections.len(),
        s.clients,
        s.seconds,
        FRAME.as_millis(),
        s.stored_hours,
        rss_kb() as f64 / 1024.0,
        rss_idle_start as f64 / 1024.0,
    );
    println!(
        "| offered/s | made/s | processed/s | sustained | latency to the client's read: p50 | p99 | max | server's part, to a woken stream's event bytes: p50 / p99 | server RSS | CPU (100% = one core): server | fake | clients | rest (PostgreSQL) | machine busy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let me = std::process::id();
    let mut best = None;
    let mut breakdown = Vec::new();
    for rate in &s.rates {
        fake.ask(&format!("rate {rate}"));
        // Warm up: the queue settles at the new rate.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let made0: u64 = fake.ask("made").parse().unwrap_or(0);
        let done0 = engine.stats().trades.load(Relaxed);
        let stages0 = Stages::read(&server);
        clients.ask("reset");
        probe.lock().expect("probe").clear();
        let cpu0 = cpu_seconds(me);
        let (fake0, clients0) = (cpu_seconds(fake.child.id()), cpu_seconds(clients.child.id()));
        let machine0 = machine_jiffies();
        let started = Instant::now();
        let mut rss_max = 0;
        while started.elapsed() < Duration::from_secs(s.seconds) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            rss_max = rss_max.max(rss_kb());
        }
        let wall = started.elapsed().as_secs_f64();
        let made = fake.ask("made").parse::<u64>().unwrap_or(0) - made0;
        let done = engine.stats().trades.load(Relaxed) - done0;
        let stages = Stages::read(&server).since(&stages0);
        let cpu = cpu_seconds(me) - cpu0;
        let cpu_fake = cpu_seconds(fake.child.id()) - fake0;
        let cpu_clients = cpu_seconds(clients.child.id()) - clients0;
        let machine1 = machine_jiffies();
        let busy = (machine1.0 - machine0.0) as f64 / 100.0;
        let busy_share = (machine1.0 - machine0.0) as f64 / (machine1.1 - machine0.1).max(1) as f64;
        let report = clients.ask("report");
        let lat: Vec<f64> = report.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let at = |i: usize| lat.get(i).copied().unwrap_or(f64::NAN);
        let (p50, p99, max, mean) = (at(0), at(1), at(2), at(4));
        breakdown.push(format!("| {rate} | {mean:.2} ms | {} |", stages.row(wall)));
        let (server50, server99) = {
            let mut v = probe.lock().expect("probe");
            (percentile_ms(&mut v, 0.5), percentile_ms(&mut v, 0.99))
        };
        // Sustained: the fake made what was offered, the engine kept up with
        // it, and the trades were not queueing (p99 under a second).
        let sustained =
            made as f64 >= 0.95 * (*rate as f64) * wall && done as f64 >= 0.97 * made as f64 && p99 < 1_000.0;
        let pct = |c: f64| 100.0 * c / wall;
        println!(
            "| {rate} | {:.0} | {:.0} | {} | {p50:.2} ms | {p99:.2} ms | {max:.1} ms | {server50:.2} / {server99:.2} ms | {:.0} MB | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% of {cores} cores |",
            made as f64 / wall,
            done as f64 / wall,
            if sustained { "yes" } else { "no" },
            rss_max as f64 / 1024.0,
            pct(cpu),
            pct(cpu_fake),
            pct(cpu_clients),
            pct((busy - cpu - cpu_fake - cpu_clients).max(0.0)),
            100.0 * busy_share,
        );
        if sustained {
            let rate = done as f64 / wall;
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        } else {
            break;
        }
    }
    fake.ask("rate 0");
    println!(
        "\nwhere the time goes (means, ms): the engine's stages per trade (a call's time counts for each trade \
         in it), then per event the wait in the client's mailbox (from the put, during the publish, to the write \
         by the publisher or the woken stream); the engine thread's time on a core and waiting for one, as shares \
         of the window; the checkpoints in the window (a large state's built off the engine's thread: the last checkpoint \
         imported into a fresh instance, the journal replayed, the state exported; a small one exported on it) with \
         how long the last held the engine and how long it took to build. The rest of the latency: the fake's send and the client's read (loopback, same cores)"
    );
    println!(
        "| offered/s | mean, to the client's read | feed read → call (parse, queue) | ingest | render + check | publish (puts, the publisher's writes) | in the mailbox | engine thread: on a core / waiting | checkpoints (the last's hold / build) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &breakdown {
        println!("{row}");
    }
    match best {
        Some(b) => println!("highest sustained: {b:.0} trades/s end to end"),
        None => println!("no rate was sustained"),
    }
    let w = server.writer_stats().expect("an ingesting server writes");
    println!(
        "writer: {} rows in {} flushes, {} failures; hub: {} events ({} written as published), {} states skipped",
        w.rows_written.load(Relaxed),
        w.flushes.load(Relaxed),
        w.failures.load(Relaxed),
        server.hub().stats().events.load(Relaxed),
        server.hub().stats().published_writes.load(Relaxed),
        server.hub().stats().skipped.load(Relaxed),
    );
    drop(clients);
    server.stop().await;
}

/// Streams inside the server process, one per tenth product's minute candles:
/// what a stream task does up to the socket write. Their samples (µs) measure
/// the server's part of the latency, free of the client process's scheduling
/// on the same two cores. They have no socket, so the hub always wakes them:
/// an upper bound for clients whose events the publisher writes itself.
fn probe(hub: &spot_host::hub::Hub, products: usize) -> Arc<std::sync::Mutex<Vec<i64>>> {
    let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(1 << 20)));
    let scan = Arc::new(Scan::new());
    for p in (0..products).step_by(10) {
        let key = (Arc::<str>::from(format!("P{p}-USD")), spot_wire::Granularity::OneMinute);
        let mut sub = hub.subscribe(vec![key], None).expect("probe subscription");
        let (samples, scan) = (samples.clone(), scan.clone());
        tokio::spawn(async move {
            while let Some(bytes) = sub.next().await {
                let now = now_us();
                scan.trade_latencies(&bytes, now, &mut samples.lock().expect("probe"));
            }
        });
    }
    samples
}

/// The server's counters of where a trade's time goes, and its engine
/// thread's scheduling.
#[derive(Default)]
struct Stages {
    trades: u64,
    /// Per [`TradeStage`], summed over trades (ns).
    stages: Vec<u64>,
    events: u64,
    waited: u64,
    /// `(on a core, waiting for one)`, ns, of the engine's thread.
    engine_thread: (u64, u64),
    /// Checkpoints taken, how long the last one held the engine and how
    /// long it took to build off the engine's thread (µs).
    checkpoints: u64,
    last_checkpoint_us: u64,
    last_checkpoint_build_us: u64,
}

impl Stages {
    fn read(server: &Server) -> Self {
        let engine = server.engine();
        let e = engine.stats();
        let h = server.hub().stats();
        Stages {
            trades: e.trades.load(Relaxed),
            stages: TradeStage::ALL.iter().map(|s| e.trade_nanos(*s)).collect(),
            events: h.events.load(Relaxed),
            waited: h.waited_nanos.load(Relaxed),
            engine_thread: thread_schedule("spot-engine"),
            checkpoints: e.checkpoints.load(Relaxed),
            last_checkpoint_us: e.last_checkpoint_us.load(Relaxed),
            last_checkpoint_build_us: e.last_checkpoint_build_us.load(Relaxed),
        }
    }

    fn since(&self, before: &Stages) -> Stages {
        let d = |a: (u64, u64), b: (u64, u64)| (a.0 - b.0, a.1 - b.1);
        Stages {
            trades: self.trades - before.trades,
            stages: self.stages.iter().zip(&before.stages).map(|(a, b)| a - b).collect(),
            events: self.events - before.events,
            waited: self.waited - before.waited,
            engine_thread: d(self.engine_thread, before.engine_thread),
            checkpoints: self.checkpoints - before.checkpoints,
            last_checkpoint_us: self.last_checkpoint_us,
            last_checkpoint_build_us: self.last_checkpoint_build_us,
        }
    }

    /// The breakdown's cells after the mean (see the table's head).
    fn row(&self, wall: f64) -> String {
        let per = |n: u64, of: u64| format!("{:.2}", n as f64 / of.max(1) as f64 / 1e6);
        let mut cells: Vec<String> = self.stages.iter().map(|n| per(*n, self.trades)).collect();
        cells.push(per(self.waited, self.events));
        let share = |ns: u64| 100.0 * ns as f64 / 1e9 / wall;
        let (on, waiting) = self.engine_thread;
        cells.push(format!("{:.0}% / {:.0}%", share(on), share(waiting)));
        cells.push(if self.checkpoints == 0 {
            "0".into()
        } else {
            format!(
                "{} ({:.2} / {:.0} ms)",
                self.checkpoints,
                self.last_checkpoint_us as f64 / 1e3,
                self.last_checkpoint_build_us as f64 / 1e3
            )
        });
        cells.join(" | ")
    }
}

/// `(on a core, waiting for one)`, ns, of this process's thread named `name`
/// (`/proc/self/task/*/schedstat`; zeros when there is none).
fn thread_schedule(name: &str) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let mut v = stat.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
            return (v.next().unwrap_or(0), v.next().unwrap_or(0));
        }
    }
    (0, 0)
}

/// `--fake PRODUCTS`: the fake Coinbase with price-stamped trades. Prints
/// `ready WS REST`, then answers `rate N` (ok) and `made` (trades so far).
fn fake_process(products: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fake = Fake::start(FakeConfig {
            products: names(products),
            listing_extras: false,
            hostile_listing: false,
            snapshot_trades: 10,
            ..FakeConfig::default()
        })
        .await
        .expect("fake");
        fake.configure_market(|m| {
            m.limit_log(100_000);
            m.stamp_prices(true);
        });
        println!("ready {} {}", fake.ws_url(), fake.rest_url());
        let mut market = common::Market::new(FRAME);
        let mut lines = common::StdinLines::new();
        while let Some(line) = lines.next().await {
            println!("{}", market.answer(&fake, line).unwrap_or_else(|| "?".into()));
        }
    });
}

/// p-th percentile of `v` in ms (sorts it).
fn percentile_ms(v: &mut [i64], p: f64) -> f64 {
    v.sort_unstable();
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .map_or(f64::NAN, |x| *x as f64 / 1e3)
}

/// `--clients ADDR N PRODUCTS`: N SSE clients, client i on product i mod
/// PRODUCTS (all eight granularities). Prints `connected`; answers `reset`
/// (ok) and `report` (latency p50 p99 max in ms since the reset).
fn clients_process(addr: &str, n: usize, products: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let addr: std::net::SocketAddr = addr.parse().expect("addr");
        let latencies = Arc::new(std::sync::Mutex::new(Vec::<i64>::with_capacity(1 << 20)));
        let connected = Arc::new(tokio::sync::Semaphore::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(128));
        let scan = Arc::new(Scan::new());
        for i in 0..n {
            let (lat, connected, gate, scan) = (latencies.clone(), connected.clone(), gate.clone(), scan.clone());
            tokio::spawn(async move {
                let mut permit = Some(gate.acquire_owned().await.expect("gate"));
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let req = format!("GET /stream?product=P{}-USD HTTP/1.1\r\nHost: x\r\n\r\n", i % products);
                s.write_all(req.as_bytes()).await.expect("send");
                // Reads land after a partial element kept from the last one.
                let mut carry: Vec<u8> = Vec::with_capacity(32 * 1024);
                loop {
                    carry.reserve(16 * 1024);
                    match s.read_buf(&mut carry).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if permit.take().is_some() {
                        connected.add_permits(1);
                    }
                    let now = now_us();
                    // Only whole elements: keep a partial one for the next read.
                    let cut = scan.whole(&carry);
                    scan.trade_latencies(&carry[..cut], now, &mut lat.lock().expect("lock"));
                    carry.drain(..cut);
                }
            });
        }
        let _ = connected.acquire_many(n as u32).await.expect("connected");
        println!("connected");
        let mut lines = common::StdinLines::new();
        while let Some(line) = lines.next().await {
            let mut l = latencies.lock().expect("lock");
            if line == "report" {
                let mean = l.iter().sum::<i64>() as f64 / l.len().max(1) as f64 / 1e3;
                println!(
                    "{:.3} {:.3} {:.3} {} {mean:.3}",
                    percentile_ms(&mut l, 0.5),
                    percentile_ms(&mut l, 0.99),
                    percentile_ms(&mut l, 1.0),
                    l.len()
                );
            } else {
                println!("ok");
            }
            l.clear();
        }
    });
}
