//! SSE fan-out: N clients on loopback, each subscribed to one product (all
//! eight granularities) out of 100, while 1,000 candle updates/s spread over
//! those products are published into the hub (as the engine's outputs are).
//!
//! The server (this process) runs the real router and hub; the clients run in
//! a child process (this binary with `--clients`), so the server's memory per
//! idle client is its own RSS growth. Each update carries its publish time
//! (unix µs) in `data-timestamp`; clients compute delivery latency from it.
//!
//! `cargo bench -p spot-host --bench fanout -- 1000 10000` (client counts).
//! Reports; asserts nothing.

mod common;

use common::{cpu_seconds, rss_kb};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spot_host::engine::{CandleUpdate, Cause, Engine, EngineConfig, EngineOutput, Limits, Loader, Sandbox};
use spot_host::http::{self, AppState};
use spot_host::hub::{Hub, HubConfig};
use spot_host::storage::{self, WriterStats};
use spot_wire::{Candle, Fixed, Granularity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PRODUCTS: usize = 100;
const RATE: u64 = 1_000;
const SECONDS: u64 = 10;

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn update(product: &Arc<str>, g: Granularity, sent_us: i64) -> CandleUpdate {
    let p = Fixed::from_int(100);
    let candle = Candle {
        product: 0,
        granularity: g,
        start: 0,
        open: p,
        high: p,
        low: p,
        close: p,
        volume: p,
        last_trade_id: None,
        trades: 1,
        complete: false,
        authoritative: false,
    };
    let element = format!(
        "<spot-candle id=\"{product}-{0}\" data-product=\"{product}\" data-granularity=\"{0}\" \
         data-timestamp=\"{sent_us}\" data-open=\"100\" data-high=\"100\" data-low=\"100\" \
         data-close=\"100\" data-volume=\"100\" data-complete=\"false\"></spot-candle>",
        g.name()
    );
    CandleUpdate {
        product: product.clone(),
        candle,
        element: element.into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--clients") {
        return clients(&args[1], args[2].parse().expect("client count"));
    }
    let counts: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let counts = if counts.is_empty() { vec![1_000, 10_000] } else { counts };
    for n in counts {
        for shape in [Shape::PerTrade, Shape::OneUpdate] {
            server(n, shape);
        }
    }
}

/// How the 1,000 updates/s are grouped into engine outputs.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// 125 trades/s, each one output of eight updates (one per granularity).
    PerTrade,
    /// 1,000 outputs/s of one update each.
    OneUpdate,
}

fn server(n: usize, shape: Shape) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let component = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm32-wasip2/component/spot_guest.wasm");
        let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
        let loaded = Loader::new(sandbox.clone(), None).load_file(&component).expect("component (make components)");
        let engine = Engine::start(sandbox, EngineConfig { clock: None, ..EngineConfig::default() }, loaded)
            .expect("engine");
        let products: Vec<Arc<str>> = (0..PRODUCTS).map(|i| Arc::from(format!("P{i}-USD"))).collect();
        let hub = Hub::new(HubConfig { max_clients: 20_000, ..HubConfig::default() });
        let state = Arc::new(AppState::new(
            storage::pool("postgresql://postgres@127.0.0.1:1/unused", 1).expect("pool"),
            "coinbase".into(),
            spot_host::fleet::Catalog::new(&products.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
            engine.handle(),
            Some(Arc::new(WriterStats::default())),
            hub.clone(),
            spot_host::http::datastar::Datastar::new(""),
        ));
        // Every key has a state, so each client's first event is its snapshot.
        let first: Vec<CandleUpdate> = products
            .iter()
            .flat_map(|p| Granularity::ALL.map(|g| update(p, g, now_us())))
            .collect();
        hub.publish(&EngineOutput { cause: Cause::Trades, updates: first, gaps: vec![], duplicates: 0, ignored: 0 });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(http::serve::serve(listener, state, std::future::pending(), Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rss_before = rss_kb();

        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--clients", &addr.to_string(), &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("client process");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert_eq!(ready, "connected", "clients: {ready}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_kb = rss_kb().saturating_sub(rss_before);

        // 1,000 updates/s. Per trade: one output with the eight updates of its
        // product (what the engine emits), every 8 ms. One update: every
        // millisecond a lone update, cycling products and granularities (the
        // worst case: every update is an event of its own for its clients).
        let (cpu_server, cpu_clients) = (cpu_seconds(std::process::id()), cpu_seconds(child.id()));
        let started = Instant::now();
        let per_output = match shape {
            Shape::PerTrade => 8,
            Shape::OneUpdate => 1,
        };
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * per_output / RATE));
        for i in 0..RATE * SECONDS / per_output {
            tick.tick().await;
            let sent = now_us();
            let p = &products[(i as usize) % PRODUCTS];
            let updates = match shape {
                Shape::PerTrade => Granularity::ALL.iter().map(|&g| update(p, g, sent)).collect(),
                Shape::OneUpdate => vec![update(p, Granularity::ALL[(i as usize / PRODUCTS) % 8], sent)],
            };
            hub.publish(&EngineOutput {
                cause: Cause::Trades,
                updates,
                gaps: vec![],
                duplicates: 0,
                ignored: 0,
            });
        }
        let wall = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (cpu_server, cpu_clients) =
            (cpu_seconds(std::process::id()) - cpu_server, cpu_seconds(child.id()) - cpu_clients);
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = Command::new("kill").args(["-USR1", &child.id().to_string()]).status();
        let report = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        let stats = hub.stats();
        println!(
            "{n:>6} clients, {:<9} {report} | server CPU {:.0}% of one core (clients {:.0}%) | idle memory {:.1} KB/client | events {} skipped {}",
            format!("{shape:?}:"),
            100.0 * cpu_server / wall,
            100.0 * cpu_clients / wall,
            idle_kb as f64 / n as f64,
            stats.events.load(std::sync::atomic::Ordering::Relaxed),
            stats.skipped.load(std::sync::atomic::Ordering::Relaxed),
        );
        hub.close();
        engine.shutdown().await;
    });
}

/// The client process: `n` SSE connections; prints "connected", then on
/// SIGUSR1 the latency percentiles of the updates received.
fn clients(addr: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let addr: std::net::SocketAddr = addr.parse().expect("addr");
        // Each connection records into its own vector (an uncontended lock):
        // the harness shares the machine with the server it measures.
        let mut all = Vec::with_capacity(n);
        let connected = Arc::new(tokio::sync::Semaphore::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        for i in 0..n {
            let lat = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
            all.push(lat.clone());
            let (connected, gate) = (connected.clone(), gate.clone());
            tokio::spawn(async move {
                let mut permit = Some(gate.acquire_owned().await.expect("gate"));
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let req = format!("GET /stream?product=P{}-USD HTTP/1.1\r\nHost: x\r\n\r\n", i % PRODUCTS);
                s.write_all(req.as_bytes()).await.expect("send");
                let mut buf = vec![0u8; 4096];
                let mut first = true;
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    if first {
                        first = false; // headers + snapshot
                        permit.take();
                        connected.add_permits(1);
                        continue;
                    }
                    let now = now_us();
                    let Ok(text) = std::str::from_utf8(&buf[..k]) else {
                        continue;
                    };
                    let mut l = lat.lock().expect("lock");
                    for part in text.split("data-timestamp=\"").skip(1) {
                        if let Some(sent) = part.split('"').next().and_then(|v| v.parse::<i64>().ok()) {
                            l.push(now - sent);
                        }
                    }
                }
            });
        }
        let _ = connected.acquire_many(n as u32).await.expect("connected");
        println!("connected");
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).expect("signal");
        usr1.recv().await;
        let mut l: Vec<i64> = all.iter().flat_map(|v| v.lock().expect("lock").clone()).collect();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{} deliveries, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            l.len(),
            pct(0.5) as f64 / 1e3,
            pct(0.99) as f64 / 1e3,
            l.last().copied().unwrap_or(0) as f64 / 1e3
        );
        let _ = std::io::stdout().flush();
    });
}
