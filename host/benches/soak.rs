//! The soak (`make soak`): the whole service for a long run at a steady
//! rate, with clients that come and go and a swap every few minutes, to see
//! whether anything grows that should not.
//!
//! The fake Coinbase (a child process) trades at `--rate` over `--products`;
//! the server runs in this process (its RSS, open file descriptors and CPU
//! are this process's), against a throwaway PostgreSQL; `--clients` SSE
//! clients in another child process each follow one product at all eight
//! granularities, a tenth of them reconnect every minute and one in twenty
//! reads slowly (a small receive buffer, a pause between reads). Every
//! `--swap-minutes` the component is swapped (the example component and the
//! default, in turn). RSS, descriptors and CPU are sampled every 10 s; the
//! report gives each one's least-squares slope per minute over the run
//! (after the first minute's warm-up) and its range, then stops the market
//! and compares every stored candle with the fake's whole log (the audit is
//! off: it would correct what it should show).
//!
//! `cargo bench -p spot-host --bench soak -- [--minutes 30] [--rate 2000]
//! [--products 900] [--clients 1000] [--swap-minutes 5]`. Reports; asserts nothing.

mod common;

use common::{Peer, cpu_seconds, rss_kb};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use spot_fake_coinbase::{Fake, FakeConfig};
use spot_host::config::Config;
use spot_host::hub::HubConfig;
use spot_host::server::{Options, Server};
use spot_wire::Granularity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The market's frame interval.
const FRAME: Duration = Duration::from_millis(20);
/// How often the process is sampled.
const SAMPLE: Duration = Duration::from_secs(10);

struct Settings {
    minutes: u64,
    rate: u64,
    products: usize,
    clients: usize,
    swap_minutes: u64,
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("P{i}-USD")).collect()
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
        minutes: 30,
        rate: 2_000,
        products: 900,
        clients: 1_000,
        swap_minutes: 5,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().map(String::as_str).unwrap_or("");
        match a.as_str() {
            "--minutes" => s.minutes = v.parse().expect("--minutes"),
            "--rate" => s.rate = v.parse().expect("--rate"),
            "--products" => s.products = v.parse().expect("--products"),
            "--clients" => s.clients = v.parse().expect("--clients"),
            "--swap-minutes" => s.swap_minutes = v.parse().expect("--swap-minutes"),
            _ => {}
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(drive(s));
}

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Least-squares slope of `ys` over `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
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
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/component");
    let vars = std::collections::HashMap::from([
        ("DATABASE_URL", pg.url("postgres")),
        ("COMPONENT_PATH", dir.join("spot_guest.wasm").display().to_string()),
        ("DATASTAR_URL", common::OFFLINE_DATASTAR.to_string()),
        ("COINBASE_WS_URL", ws),
        ("COINBASE_REST_URL", rest),
        ("COINBASE_REST_RATE", "50".to_string()),
        ("AUDIT", "off".to_string()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let server = Server::start(
        &config,
        Options {
            bind: Some(([127, 0, 0, 1], 0).into()),
            hub: HubConfig {
                max_clients: s.clients + 1_000,
                ..HubConfig::default()
            },
            component_poll: None,
            ..Options::default()
        },
    )
    .await
    .expect("server");
    let feed = server.feed_stats().expect("feed").clone();
    let history = server.history_stats().expect("history").clone();
    while !feed.all_started() || !history.backfill.finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut clients = Peer::spawn(&[
        "--clients",
        &server.addr().to_string(),
        &s.clients.to_string(),
        &s.products.to_string(),
    ]);
    assert_eq!(clients.read(), "connected");
    fake.ask(&format!("rate {}", s.rate));
    println!(
        "soak: {} min at {} trades/s over {} products, {} SSE clients (a tenth reconnect every minute, \
         one in twenty reads slowly), a swap every {} min; sampled every {} s",
        s.minutes,
        s.rate,
        s.products,
        s.clients,
        s.swap_minutes,
        SAMPLE.as_secs()
    );
    let wasm = [
        std::fs::read(dir.join("spot_example_change.wasm")).expect("example component (make components)"),
        std::fs::read(dir.join("spot_guest.wasm")).expect("default component"),
    ];
    let me = std::process::id();
    let started = Instant::now();
    let (mut t, mut rss, mut fd, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // What the horizon legitimately accumulates: the component's state (its
    // last checkpoint, in the canonical format), every new minute of every product.
    let mut state = Vec::new();
    let (mut swaps, mut swap_failures, mut last_cpu) = (0usize, 0usize, (cpu_seconds(me), Instant::now()));
    let mut next_swap = Duration::from_secs(s.swap_minutes * 60);
    let mut tick = tokio::time::interval(SAMPLE);
    tick.tick().await;
    while started.elapsed() < Duration::from_secs(s.minutes * 60) {
        tick.tick().await;
        let minute = started.elapsed().as_secs_f64() / 60.0;
        let (c, at) = (cpu_seconds(me), Instant::now());
        let share = 100.0 * (c - last_cpu.0) / at.duration_since(last_cpu.1).as_secs_f64();
        last_cpu = (c, at);
        t.push(minute);
        rss.push(rss_kb() as f64 / 1024.0);
        fd.push(fds() as f64);
        cpu.push(share);
        let status = server.engine().status().await.expect("engine status");
        state.push(status.checkpoint_bytes as f64 / (1 << 20) as f64);
        if started.elapsed() >= next_swap {
            next_swap += Duration::from_secs(s.swap_minutes * 60);
            match server.admin().install(wasm[swaps % 2].clone()).await {
                Ok(_) => swaps += 1,
                Err(e) => {
                    swap_failures += 1;
                    println!("swap failed: {e}");
                }
            }
        }
        println!(
            "{minute:>5.1} min: RSS {:>6.1} MB (component state {:>5.1} MB), {:>5} fds, CPU {:>5.1}% of a core, {} clients, {} swaps",
            rss[rss.len() - 1],
            state[state.len() - 1],
            fd[fd.len() - 1],
            share,
            server.hub().stats().clients.load(Relaxed),
            swaps
        );
    }
    fake.ask("rate 0");
    let client_stats = clients.ask("stats");
    drop(clients);
    // Past the first minute's warm-up.
    let from = t.iter().position(|m| *m >= 1.0).unwrap_or(0);
    let range = |v: &[f64]| {
        let v = &v[from..];
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    println!("| what | slope per minute | range after the first minute |");
    println!("|---|---|---|");
    for (name, v, unit) in [
        ("RSS", &rss, "MB"),
        ("component state (what the horizon accumulates)", &state, "MB"),
        ("open fds", &fd, ""),
        ("CPU", &cpu, "% of a core"),
    ] {
        let (lo, hi) = range(v);
        println!(
            "| {name} | {:+.3} {unit}/min | {lo:.1} to {hi:.1} {unit} |",
            slope(&t[from..], &v[from..])
        );
    }
    println!("clients: {client_stats}; swaps: {swaps} ({swap_failures} failed)");

    // Nothing lost: once the engine and the writer are done with what the
    // market made, every stored candle equals the fake's log.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while history.repairs_pending.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.sync().await.expect("sync");
    println!(
        "made {} trades; {}",
        fake.ask("made"),
        fake.ask(&format!("compare {}", pg.url("postgres")))
    );
    server.stop().await;
}

/// `--fake PRODUCTS`: the fake Coinbase keeping its whole log. Prints
/// `ready WS REST`, then answers `rate N`, `made`, and `compare URL` (every
/// stored candle at every granularity against the log).
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
            ..FakeConfig::default()
        })
        .await
        .expect("fake");
        println!("ready {} {}", fake.ws_url(), fake.rest_url());
        let mut market = common::Market::new(FRAME);
        let mut lines = common::StdinLines::new();
        while let Some(line) = lines.next().await {
            let answer = match line.strip_prefix("compare ") {
                Some(url) => compare(&fake, products, url).await,
                None => market.answer(&fake, line).unwrap_or_else(|| "?".into()),
            };
            println!("{answer}");
        }
    });
}

/// Every stored candle against the log, as one line.
async fn compare(fake: &Fake, products: usize, url: &str) -> String {
    let pool = spot_host::storage::pool(url, 1).expect("pool");
    let (mut checked, mut differ, mut first) = (0usize, 0usize, None);
    for p in names(products) {
        for g in Granularity::ALL {
            let want = fake.candles(&p, g.seconds());
            let have = spot_host::storage::candles::candles(&pool, "coinbase", &p, g, 0, 4_000_000_000, 100_000)
                .await
                .expect("stored candles");
            checked += want.len().max(have.len());
            let same = want.len() == have.len()
                && want
                    .iter()
                    .zip(&have)
                    .all(|(w, h)| w.is_stored_as(h.timestamp, [&h.open, &h.high, &h.low, &h.close, &h.volume]));
            if !same {
                differ += 1;
                first.get_or_insert_with(|| {
                    format!("{p} {}: {} stored, {} in the log", g.name(), have.len(), want.len())
                });
            }
        }
    }
    match first {
        None => {
            format!("stored candles equal the fake's log: {checked} candles of {products} products x 8 granularities")
        }
        Some(f) => format!(
            "stored candles DIFFER from the log in {differ} (product, granularity) pairs of {checked} candles; first: {f}"
        ),
    }
}

/// `--clients ADDR N PRODUCTS`: N SSE clients, client i on product i mod
/// PRODUCTS (all eight granularities); every minute the clients of one
/// tenth (i mod 10 = minute mod 10) reconnect; one in twenty reads slowly.
/// Prints `connected`; answers `stats`.
fn clients_process(addr: &str, n: usize, products: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let addr: std::net::SocketAddr = addr.parse().expect("addr");
        let (epoch_tx, epoch) = tokio::sync::watch::channel(0u64);
        let events = Arc::new(AtomicU64::new(0));
        let connects = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(tokio::sync::Semaphore::new(0));
        for i in 0..n {
            let (mut epoch, events, connects, failures, connected) = (
                epoch.clone(),
                events.clone(),
                connects.clone(),
                failures.clone(),
                connected.clone(),
            );
            tokio::spawn(async move {
                let slow = i % 20 == 0;
                let mut first = true;
                loop {
                    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                    if slow {
                        let _ = socket.set_recv_buffer_size(4096);
                    }
                    let Ok(mut s) = socket.connect(addr).await else {
                        failures.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    let req = format!("GET /stream?product=P{}-USD HTTP/1.1\r\nHost: x\r\n\r\n", i % products);
                    if s.write_all(req.as_bytes()).await.is_err() {
                        failures.fetch_add(1, Relaxed);
                        continue;
                    }
                    connects.fetch_add(1, Relaxed);
                    if std::mem::take(&mut first) {
                        connected.add_permits(1);
                    }
                    let mut buf = vec![0u8; 16384];
                    loop {
                        tokio::select! {
                            read = s.read(&mut buf) => match read {
                                Ok(k) if k > 0 => {
                                    events.fetch_add(buf[..k].windows(6).filter(|w| w == b"event:").count() as u64, Relaxed);
                                    if slow {
                                        tokio::time::sleep(Duration::from_millis(200)).await;
                                    }
                                }
                                _ => {
                                    failures.fetch_add(1, Relaxed);
                                    break;
                                }
                            },
                            changed = epoch.changed() => {
                                if changed.is_err() { return; }
                                if *epoch.borrow_and_update() % 10 == i as u64 % 10 {
                                    break;
                                }
                            }
                        }
                    }
                }
            });
        }
        let _ = connected.acquire_many(n as u32).await.expect("connected");
        println!("connected");
        tokio::spawn(async move {
            let mut minute = tokio::time::interval(Duration::from_secs(60));
            minute.tick().await;
            loop {
                minute.tick().await;
                epoch_tx.send_modify(|e| *e += 1);
            }
        });
        let mut lines = common::StdinLines::new();
        while let Some(line) = lines.next().await {
            if line == "stats" {
                println!(
                    "{} connections made, {} events read, {} ended by the server or refused",
                    connects.load(Relaxed),
                    events.load(Relaxed),
                    failures.load(Relaxed)
                );
            } else {
                println!("?");
            }
        }
    });
}
