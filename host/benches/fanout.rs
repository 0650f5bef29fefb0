//! SSE fan-out beside the peer an operator would pick instead: nginx with the
//! nchan module, in the same run, with the same clients, payloads and rates.
//!
//! - spot: the real engine (the default component), hub and HTTP server in
//!   this process, fed trades; each trade of a product is one event of its
//!   eight rendered `<spot-candle>` elements to that product's clients.
//! - nchan: Debian's nginx + libnginx-mod-nchan, a private instance (its own
//!   prefix, config and port on 127.0.0.1, stopped by its PID), fed by its
//!   HTTP publisher: one POST per message, the same eight elements, to the
//!   product's channel; subscribers take EventSource with the same event name.
//!
//! Clients (a child process, the same for both): N connections, each on one
//! of 100 products. Every trade is priced at its publish time in unix µs, so
//! `data-close` tells each client how long ago it was published; nchan's
//! messages carry the same. Reported per row: events/s delivered, latency p50
//! and p99 from publish to the client's read, server CPU (spot's process;
//! nginx's workers), server memory per idle client; then the saturation
//! point at 10,000 clients (the highest offered rate each delivers in full
//! with p99 ≤ 100 ms), and the ratio spot / nchan of each.
//!
//! `cargo bench -p spot-host --bench fanout -- 1000 10000` (client counts).
//! `make bench` installs nginx and the module with apt when missing (`make
//! nchan-deps`). Reports; asserts nothing.

mod common;

use common::{Peer, cpu_seconds, rss_kb};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spot_host::engine::{Engine, EngineConfig, EngineHandle, Limits, Loader, Sandbox};
use spot_host::http::{self, AppState};
use spot_host::hub::{Hub, HubConfig};
use spot_host::storage::{self, WriterStats};
use spot_wire::{Candle, Fixed, Granularity, Side, Trade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PRODUCTS: usize = 100;
/// Trades (spot) or messages (nchan) per second in the table's rows: each is
/// one event to each client of its product.
const RATE: u64 = 125;
const SECONDS: u64 = 8;
/// The offered rates tried for the saturation point, messages/s.
const SATURATION_RATES: &[u64] = &[250, 500, 750, 1_000, 1_250, 1_500, 2_000, 3_000];
const SATURATION_SECONDS: u64 = 5;
/// The most a delivery may take at the saturation point.
const P99_BOUND_MS: f64 = 100.0;

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn product(i: usize) -> String {
    format!("P{i}-USD")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--clients") {
        return clients(&args[1], args[2].parse().expect("client count"));
    }
    let counts: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let counts = if counts.is_empty() { vec![1_000, 10_000] } else { counts };
    let nginx = match Nginx::installed() {
        Ok(()) => true,
        Err(e) => {
            println!("nchan: not measured ({e})");
            false
        }
    };
    println!(
        "SSE fan-out, {PRODUCTS} products, each client on one; an event = 8 <spot-candle> elements ({} bytes)",
        message(0, 0).len()
    );
    println!(
        "{:>7} {:<6} {:>12} {:>9} {:>9} {:>10} {:>12}",
        "clients", "server", "events/s", "p50 ms", "p99 ms", "CPU %", "KB/client"
    );
    for &n in &counts {
        let spot = run(Server::Spot, n, &[RATE]).remove(0);
        spot.print(n, "spot");
        if nginx {
            let nchan = run(Server::Nchan, n, &[RATE]).remove(0);
            nchan.print(n, "nchan");
            spot.ratio(&nchan, n);
        }
    }
    // Saturation at 10,000 clients: the highest offered rate delivered in
    // full (≥ 97% of the events) with p99 within the bound.
    let n = 10_000;
    println!(
        "saturation at {n} clients (offered messages/s, each to {} clients):",
        n / PRODUCTS
    );
    let spot = saturation(Server::Spot, n);
    let nchan = nginx.then(|| saturation(Server::Nchan, n));
    match (spot, nchan) {
        (Some(s), Some(Some(c))) => println!(
            "  spot {:.0} events/s at {} msg/s, nchan {:.0} events/s at {} msg/s: spot / nchan {:.2}x",
            s.1.events_per_s,
            s.0,
            c.1.events_per_s,
            c.0,
            s.1.events_per_s / c.1.events_per_s.max(1.0)
        ),
        (s, c) => println!(
            "  spot {}, nchan {}",
            s.map_or("none within the bound".into(), |s| format!(
                "{:.0} events/s at {} msg/s",
                s.1.events_per_s, s.0
            )),
            match c {
                None => "not measured".to_string(),
                Some(None) => "none within the bound".into(),
                Some(Some(c)) => format!("{:.0} events/s at {} msg/s", c.1.events_per_s, c.0),
            }
        ),
    }
}

/// The highest rate of [`SATURATION_RATES`] delivered in full within the
/// bound, and its figures.
fn saturation(server: Server, n: usize) -> Option<(u64, Figures)> {
    let all = run(server, n, SATURATION_RATES);
    let mut best = None;
    for (rate, f) in SATURATION_RATES.iter().zip(all) {
        let offered = *rate as f64 * (n / PRODUCTS) as f64;
        let full = f.events_per_s >= 0.97 * offered;
        println!(
            "  {:<5} {rate:>5} msg/s: {:>9.0} events/s of {offered:.0} offered, p50 {:.2} ms, p99 {:.2} ms, CPU {:.0}%{}{}",
            server.name(),
            f.events_per_s,
            f.p50_ms,
            f.p99_ms,
            f.cpu_percent,
            f.publisher_cpu_percent
                .map(|p| format!(" (+ publisher {p:.0}%)"))
                .unwrap_or_default(),
            if full && f.p99_ms <= P99_BOUND_MS {
                ""
            } else {
                "  (over)"
            }
        );
        if full && f.p99_ms <= P99_BOUND_MS {
            best = Some((*rate, f));
        } else {
            break;
        }
    }
    best
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Spot,
    Nchan,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Spot => "spot",
            Server::Nchan => "nchan",
        }
    }
}

/// One measured rate.
struct Figures {
    events_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Of one core.
    cpu_percent: f64,
    /// nchan's publisher (this process, HTTP POSTs), of one core; spot's
    /// publishing is its engine, counted in `cpu_percent`.
    publisher_cpu_percent: Option<f64>,
    idle_kb_per_client: f64,
}

impl Figures {
    fn print(&self, n: usize, name: &str) {
        println!(
            "{n:>7} {name:<6} {:>12.0} {:>9.2} {:>9.2} {:>10.0} {:>12.1}{}",
            self.events_per_s,
            self.p50_ms,
            self.p99_ms,
            self.cpu_percent,
            self.idle_kb_per_client,
            self.publisher_cpu_percent
                .map(|p| format!("   (+ its publisher {p:.0}%)"))
                .unwrap_or_default()
        );
    }

    /// spot / nchan: above 1 is better for events/s; for latency, CPU and
    /// memory, nchan's / spot's (above 1: spot needs less).
    fn ratio(&self, nchan: &Figures, n: usize) {
        // A zero below (spot's RSS did not grow: its allocator reused memory
        // freed since the start) has no ratio: shown as "none".
        let r = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}x", a / b)
            } else {
                "none".to_string()
            }
        };
        println!(
            "{n:>7} {:<6} {:>12} {:>9} {:>9} {:>10} {:>12}   (spot ahead above 1)",
            "ratio",
            r(self.events_per_s, nchan.events_per_s),
            r(nchan.p50_ms, self.p50_ms),
            r(nchan.p99_ms, self.p99_ms),
            r(nchan.cpu_percent, self.cpu_percent),
            r(nchan.idle_kb_per_client, self.idle_kb_per_client),
        );
    }
}

/// The eight elements of a trade of product `p` priced `price` (what the
/// default component renders), as the lines of one Datastar event's data.
fn message(p: usize, price: i64) -> String {
    let name = product(p);
    Granularity::ALL
        .iter()
        .map(|&g| {
            let px = Fixed::from_int(price);
            let c = Candle {
                product: p as u32,
                granularity: g,
                start: g.bucket_start(price / 1_000_000),
                open: px,
                high: px,
                low: px,
                close: px,
                volume: Fixed::from_int(1),
                last_trade_id: Some(1),
                trades: 1,
                complete: false,
                authoritative: false,
            };
            format!("elements {}", spot_rules::render::element(&c, &name))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Start the server, connect `n` clients, publish at each of `rates` for a
/// while, and measure.
fn run(server: Server, n: usize, rates: &[u64]) -> Vec<Figures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (target, pids, publisher): (String, Vec<u32>, Publisher) = match server {
            Server::Spot => {
                let spot = Spot::start().await;
                let target = format!("spot:{}", spot.addr);
                (target, vec![std::process::id()], Publisher::Spot(spot))
            }
            Server::Nchan => {
                let nginx = Nginx::start().await.expect("nginx");
                let target = format!("nchan:{}", nginx.addr);
                let pids = nginx.pids();
                (target, pids, Publisher::Nchan(nginx))
            }
        };
        let rss = |pids: &[u32]| pids.iter().map(|p| common::rss_of(*p)).sum::<u64>();
        let rss_before = match server {
            Server::Spot => rss_kb(),
            Server::Nchan => rss(&pids),
        };
        let mut clients = Peer::spawn(&["--clients", &target, &n.to_string()]);
        let ready = clients.read();
        assert_eq!(ready, "connected", "clients: {ready}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pids = match &publisher {
            Publisher::Nchan(n) => n.pids(), // workers may have been started since
            Publisher::Spot(_) => pids,
        };
        let idle_kb = match server {
            Server::Spot => rss_kb(),
            Server::Nchan => rss(&pids),
        }
        .saturating_sub(rss_before);

        let mut out = Vec::new();
        for &rate in rates {
            let seconds = if rates.len() > 1 { SATURATION_SECONDS } else { SECONDS };
            let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
            let publisher_before = cpu_seconds(std::process::id());
            assert_eq!(clients.ask("start"), "ok");
            let started = Instant::now();
            publisher.publish(rate, Duration::from_secs(seconds)).await;
            let wall = started.elapsed().as_secs_f64();
            // Let what is in flight arrive, then ask for the figures.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let cpu: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before;
            let publisher_cpu = cpu_seconds(std::process::id()) - publisher_before;
            let report = clients.ask("report");
            let mut f = report.split_whitespace().map(|v| v.parse::<f64>().unwrap_or(0.0));
            let (events, p50_us, p99_us) = (
                f.next().unwrap_or(0.0),
                f.next().unwrap_or(0.0),
                f.next().unwrap_or(0.0),
            );
            out.push(Figures {
                events_per_s: events / wall,
                p50_ms: p50_us / 1e3,
                p99_ms: p99_us / 1e3,
                cpu_percent: 100.0 * cpu / wall,
                publisher_cpu_percent: (server == Server::Nchan).then(|| 100.0 * publisher_cpu / wall),
                idle_kb_per_client: idle_kb as f64 / n as f64,
            });
        }
        drop(clients);
        publisher.stop().await;
        out
    })
}

/// Who gets the messages.
enum Publisher {
    Spot(Spot),
    Nchan(Nginx),
}

impl Publisher {
    /// `rate` messages/s for `length`, each to the next product in turn,
    /// priced at its publish time (µs).
    async fn publish(&self, rate: u64, length: Duration) {
        let every = Duration::from_nanos(1_000_000_000 / rate.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let count = (rate as f64 * length.as_secs_f64()) as u64;
        match self {
            Publisher::Spot(s) => {
                for i in 0..count {
                    tick.tick().await;
                    s.trade(i as usize % PRODUCTS, now_us()).await;
                }
            }
            Publisher::Nchan(n) => n.publish(count, &mut tick).await,
        }
    }

    async fn stop(self) {
        match self {
            Publisher::Spot(s) => s.stop().await,
            Publisher::Nchan(n) => n.stop(),
        }
    }
}

/// spot in this process: the engine with the default component, the hub and
/// the HTTP server.
struct Spot {
    addr: SocketAddr,
    engine: Engine,
    handle: EngineHandle,
    hub: Hub,
    next_id: std::sync::Mutex<Vec<u64>>,
}

impl Spot {
    async fn start() -> Spot {
        let component =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/component/spot_guest.wasm");
        let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
        let loaded = Loader::new(sandbox.clone(), None)
            .load_file(&component)
            .expect("component (make components)");
        let engine = Engine::start(
            sandbox,
            EngineConfig {
                clock: None,
                ..EngineConfig::default()
            },
            loaded,
        )
        .expect("engine");
        let handle = engine.handle();
        let names: Vec<String> = (0..PRODUCTS).map(product).collect();
        handle.register_products(&names).await.expect("products");
        let hub = Hub::new(HubConfig {
            max_clients: 20_000,
            ..HubConfig::default()
        });
        hub.attach(&handle).await.expect("hub");
        let state = Arc::new(AppState::new(
            storage::pool("postgresql://postgres@127.0.0.1:1/unused", 1).expect("pool"),
            "coinbase".into(),
            spot_host::fleet::Catalog::new(&names),
            handle.clone(),
            Some(Arc::new(WriterStats::default())),
            hub.clone(),
            spot_host::http::datastar::Datastar::new(""),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(http::serve::serve(
            listener,
            state,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        let spot = Spot {
            addr,
            engine,
            handle,
            hub,
            next_id: std::sync::Mutex::new(vec![1; PRODUCTS]),
        };
        // Every product has a candle, so each client's first event is its snapshot.
        for p in 0..PRODUCTS {
            spot.trade(p, now_us()).await;
        }
        spot.handle.barrier().await.expect("barrier");
        spot
    }

    /// One trade of product `p` priced `price`.
    async fn trade(&self, p: usize, price: i64) {
        let trade_id = {
            let mut ids = self.next_id.lock().expect("ids");
            ids[p] += 1;
            ids[p]
        };
        let t = Trade {
            product: p as u32,
            side: Side::Buy,
            trade_id,
            time_ms: price / 1000,
            price: Fixed::from_int(price),
            size: Fixed::from_int(1),
        };
        self.handle.trades(vec![t]).await.expect("trades");
    }

    async fn stop(self) {
        self.hub.close();
        self.engine.shutdown().await;
    }
}

/// A private nginx with nchan: its own prefix under target/, a port on
/// 127.0.0.1, stopped by its PID.
struct Nginx {
    addr: SocketAddr,
    dir: PathBuf,
    master: Child,
    publisher: Arc<NchanPublisher>,
}

/// Keep-alive connections to nchan's publisher endpoint.
struct NchanPublisher {
    connections: Vec<tokio::sync::Mutex<tokio::net::TcpStream>>,
}

const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
const NGINX: &str = "/usr/sbin/nginx";

impl Nginx {
    /// Whether nginx and the nchan module are installed (`make bench`
    /// installs them with `make nchan-deps`, as `make test` does Chromium).
    fn installed() -> Result<(), String> {
        if Path::new(NGINX).exists() && Path::new(NCHAN_MODULE).exists() {
            Ok(())
        } else {
            Err(format!(
                "{NGINX} or {NCHAN_MODULE} is missing: `make nchan-deps` installs them"
            ))
        }
    }

    async fn start() -> std::io::Result<Nginx> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/nchan-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp"))?;
        let conf = format!(
            r#"load_module {NCHAN_MODULE};
worker_processes 2;
worker_rlimit_nofile 40000;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location ~ ^/pub/(\w+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 1;
            nchan_message_timeout 30s;
        }}
        location ~ ^/sub/(\w+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_eventsource_event datastar-patch-elements;
        }}
    }}
}}
"#,
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let master = Command::new(NGINX)
            .args([
                "-p",
                &dir.display().to_string(),
                "-c",
                &dir.join("nginx.conf").display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("nginx did not listen"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every channel has a message, as every spot product has a candle.
        let mut connections = Vec::new();
        for _ in 0..8 {
            connections.push(tokio::sync::Mutex::new(tokio::net::TcpStream::connect(addr).await?));
        }
        let publisher = NchanPublisher { connections };
        for p in 0..PRODUCTS {
            publisher.post(p % 8, p, now_us()).await;
        }
        Ok(Nginx {
            addr,
            dir,
            master,
            publisher: Arc::new(publisher),
        })
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        let master = self.master.id();
        let mut pids = vec![master];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u32>().ok());
                if ppid == Some(master) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// `count` messages on `tick`, spread over the keep-alive connections.
    async fn publish(&self, count: u64, tick: &mut tokio::time::Interval) {
        let mut inflight = Vec::new();
        for i in 0..count {
            tick.tick().await;
            let sent = now_us();
            let publisher = self.publisher.clone();
            let c = i as usize % publisher.connections.len();
            inflight.push(tokio::spawn(async move {
                publisher.post(c, i as usize % PRODUCTS, sent).await
            }));
            if inflight.len() >= 256 {
                for h in inflight.drain(..) {
                    let _ = h.await;
                }
            }
        }
        for h in inflight {
            let _ = h.await;
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.master.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl NchanPublisher {
    /// One message to product `p`'s channel over keep-alive connection `c`.
    async fn post(&self, c: usize, p: usize, price: i64) {
        let body = message(p, price);
        let head = format!(
            "POST /pub/P{p} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut s = self.connections[c].lock().await;
        let mut req = head.into_bytes();
        req.extend_from_slice(body.as_bytes());
        s.write_all(&req).await.expect("publish");
        // Read the whole answer (its length is in its head).
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 512];
        loop {
            let k = s.read(&mut chunk).await.expect("publisher answer");
            assert!(k > 0, "nginx closed the publisher connection");
            buf.extend_from_slice(&chunk[..k]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
    }
}

/// The client process: `n` SSE connections to `target` (`spot:ADDR` or
/// `nchan:ADDR`), each on one product; prints "connected", then answers
/// "start" (counting from now: `ok`) and "report" (`events p50_us p99_us` of
/// what arrived since).
fn clients(target: &str, n: usize) {
    let (kind, addr) = target.split_once(':').expect("kind:addr");
    let addr: SocketAddr = addr.parse().expect("addr");
    let nchan = kind == "nchan";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
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
                let p = i % PRODUCTS;
                let req = if nchan {
                    format!("GET /sub/P{p} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
                } else {
                    format!("GET /stream?product={} HTTP/1.1\r\nHost: x\r\n\r\n", product(p))
                };
                s.write_all(req.as_bytes()).await.expect("send");
                let mut buf = vec![0u8; 16384];
                let mut first = true;
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    if first {
                        first = false; // the head (and the snapshot)
                        permit.take();
                        connected.add_permits(1);
                        continue;
                    }
                    let now = now_us();
                    let Ok(text) = std::str::from_utf8(&buf[..k]) else {
                        continue;
                    };
                    // One sample per event: its first element's close.
                    let mut l = lat.lock().expect("lock");
                    for event in text.split("event: ").skip(1) {
                        if let Some(sent) = event
                            .split("data-close=\"")
                            .nth(1)
                            .and_then(|v| v.split('"').next())
                            .and_then(|v| v.parse::<i64>().ok())
                        {
                            l.push(now - sent);
                        }
                    }
                }
            });
        }
        let _ = connected.acquire_many(n as u32).await.expect("connected");
        println!("connected");
        let _ = std::io::stdout().flush();
        let mut lines = common::StdinLines::new();
        while let Some(line) = lines.next().await {
            match line {
                "start" => {
                    for v in &all {
                        v.lock().expect("lock").clear();
                    }
                    println!("ok");
                    let _ = std::io::stdout().flush();
                }
                "report" => {
                    let mut l: Vec<i64> = all.iter().flat_map(|v| v.lock().expect("lock").clone()).collect();
                    l.sort_unstable();
                    let pct = |p: f64| {
                        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                            .copied()
                            .unwrap_or(0)
                    };
                    println!("{} {} {}", l.len(), pct(0.5), pct(0.99));
                    let _ = std::io::stdout().flush();
                }
                _ => {}
            }
        }
    });
}
