//! Engine benchmarks. Every figure is a ratio against a baseline measured in the
//! same run, or a time measured here; nothing is asserted.
//!
//! 1. ingest throughput, component vs the same rules compiled natively, batch 1/16/64/256
//! 2. render throughput, component vs native
//! 3. swap pause with 1,000 products holding open buckets at every granularity
//! 4. time to import a full UTC day of 1-minute candles for 1,000 products
//!
//! Run: `make bench` (release build). Rounds: SPOT_BENCH_ROUNDS (default 5).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use spot_host::engine::element;
use spot_host::engine::instance::Instance;
use spot_host::engine::{CandleSource, Engine, EngineConfig, Limits, LoadedComponent, Loader, Product, Sandbox};
use spot_rules::Aggregator;
use spot_wire::{Candle, Fixed, Granularity, Side, Trade, encode_all};

const T0: i64 = 1_704_499_200_000; // a UTC midnight, ms

/// A component built by `make components`.
fn load(sandbox: &Arc<Sandbox>, name: &str) -> Arc<LoadedComponent> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/wasm32-wasip2/component/{name}.wasm"));
    Loader::new(sandbox.clone(), None)
        .load_file(&path)
        .expect("run `make components` first")
}

/// `n` trades over `products`, consecutive ids per product, ~20 trades/s overall.
fn market(products: u32, n: usize) -> Vec<Trade> {
    let mut ids = vec![0u64; products as usize];
    (0..n)
        .map(|i| {
            let p = (i as u32).wrapping_mul(2_654_435_761) % products;
            ids[p as usize] += 1;
            Trade {
                product: p,
                side: Side::Buy,
                trade_id: ids[p as usize],
                time_ms: T0 + i as i64 * 50,
                price: Fixed::from_units(((4_000_000 + (i * 7_919) % 1_000) as i128) * 10i128.pow(16)),
                size: Fixed::from_units(((i * 104_729) % 1_000_000 + 1) as i128 * 10i128.pow(10)),
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rounds() -> usize {
    std::env::var("SPOT_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn fresh(sandbox: &Sandbox, loaded: &LoadedComponent) -> Instance {
    let mut inst = Instance::new(sandbox, loaded).expect("instance");
    inst.configure(EngineConfig::default().settings()).expect("configure");
    inst
}

/// `floor` is a component with the same rules whose `ingest` returns no
/// candle: the least a component that returns its updates could cost.
fn bench_ingest(sandbox: &Sandbox, loaded: &LoadedComponent, floor: &LoadedComponent) {
    println!(
        "1. ingest: component vs native (same rules), ns per trade, median of {} rounds",
        rounds()
    );
    println!("   floor: the same component returning no updates (test-components/ingest-floor)");
    println!("   batch   native   native+packing   component   ratio (component / native)   floor   floor / native");
    let trades = market(100, 100_000);
    // ns per trade through a fresh instance of `component`, in batches.
    let through = |component: &LoadedComponent, trades: &[Trade], batch: usize| {
        let mut inst = fresh(sandbox, component);
        let t = Instant::now();
        for chunk in trades.chunks(batch) {
            std::hint::black_box(inst.ingest(&encode_all(chunk)).expect("ingest"));
        }
        t.elapsed().as_nanos() as f64 / trades.len() as f64
    };
    for batch in [1usize, 16, 64, 256] {
        let n = if batch == 1 { 20_000 } else { trades.len() };
        let (mut nat, mut packed, mut wasm, mut bare) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds() {
            let mut agg = Aggregator::default();
            let t = Instant::now();
            for chunk in trades[..n].chunks(batch) {
                std::hint::black_box(agg.ingest(chunk.to_vec()));
            }
            nat.push(t.elapsed().as_nanos() as f64 / n as f64);

            // The same work natively, with the packing the boundary needs.
            let mut agg = Aggregator::default();
            let t = Instant::now();
            for chunk in trades[..n].chunks(batch) {
                let bytes = encode_all(chunk);
                let decoded = spot_wire::decode_all::<Trade>(&bytes).expect("decode");
                let out = agg.ingest(decoded).encode();
                std::hint::black_box(spot_wire::Outcome::decode(&out).expect("outcome"));
            }
            packed.push(t.elapsed().as_nanos() as f64 / n as f64);

            wasm.push(through(loaded, &trades[..n], batch));
            bare.push(through(floor, &trades[..n], batch));
        }
        let (a, p, b, f) = (median(nat), median(packed), median(wasm), median(bare));
        println!(
            "   {batch:>5} {a:>8.0} {p:>16.0} {b:>11.0} {:>29.2}x {f:>7.0} {:>15.2}x",
            b / a,
            f / a
        );
    }
}

fn bench_render(sandbox: &Sandbox, loaded: &LoadedComponent) {
    let mut agg = Aggregator::default();
    agg.define_products((0..100).map(|i| (i, format!("P{i}-USD"))));
    let out = agg.ingest(market(100, 20_000));
    let candles: Vec<Candle> = out.updates;
    let mut inst = fresh(sandbox, loaded);
    inst.define_products(
        &(0..100)
            .map(|id| Product {
                id,
                name: format!("P{id}-USD"),
            })
            .collect::<Vec<_>>(),
    )
    .expect("define");
    let (mut nat, mut wasm) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        let t = Instant::now();
        for c in &candles {
            std::hint::black_box(spot_rules::render::element(c, agg.name_of(c.product).unwrap_or("?")));
        }
        nat.push(t.elapsed().as_nanos() as f64 / candles.len() as f64);
        let t = Instant::now();
        for chunk in candles.chunks(64) {
            std::hint::black_box(inst.render(&encode_all(chunk)).expect("render"));
        }
        wasm.push(t.elapsed().as_nanos() as f64 / candles.len() as f64);
    }
    // The host's check of every element before it may reach a browser.
    let rendered: Vec<(String, String)> = candles
        .iter()
        .map(|c| {
            let name = agg.name_of(c.product).unwrap_or("?").to_string();
            (spot_rules::render::element(c, &name), name)
        })
        .collect();
    let mut checks = Vec::new();
    for _ in 0..rounds() {
        let t = Instant::now();
        for ((html, name), c) in rendered.iter().zip(&candles) {
            std::hint::black_box(element::check(html.as_bytes(), name, c.granularity.name())).expect("a safe element");
        }
        checks.push(t.elapsed().as_nanos() as f64 / candles.len() as f64);
    }
    let (a, b, k) = (median(nat), median(wasm), median(checks));
    println!(
        "2. render ({} elements, batches of 64): native {a:.0} ns ({:.2} M/s), component {b:.0} ns ({:.2} M/s), ratio {:.2}x; \
         the host's element check {k:.0} ns more ({:.0}% of the component's render)",
        candles.len(),
        1e3 / a,
        1e3 / b,
        b / a,
        100.0 * k / b
    );
}

async fn bench_swap(sandbox: &Arc<Sandbox>, loaded: &Arc<LoadedComponent>, minutes_per_product: i64) {
    let cfg = EngineConfig {
        clock: None,
        ..Default::default()
    };
    let engine = Engine::start(sandbox.clone(), cfg, loaded.clone()).expect("engine");
    let h = engine.handle();
    let names: Vec<String> = (0..1_000).map(|i| format!("P{i}-USD")).collect();
    h.register_products(&names).await.expect("register");
    // Every product trades in each of the last `minutes_per_product` minutes of
    // the day: open buckets at every granularity.
    let end = T0 + 86_400_000 - 1_000;
    let mut ids = vec![0u64; 1_000];
    let mut batch = Vec::new();
    for m in (0..minutes_per_product).rev() {
        for p in 0..1_000u32 {
            ids[p as usize] += 1;
            batch.push(Trade {
                product: p,
                side: Side::Sell,
                trade_id: ids[p as usize],
                time_ms: end - m * 60_000,
                price: Fixed::from_int(100 + p as i64),
                size: Fixed::from_int(1),
            });
        }
        if batch.len() >= 4_000 {
            h.trades(std::mem::take(&mut batch)).await.expect("trades");
        }
    }
    h.trades(batch).await.expect("trades");
    h.barrier().await.expect("barrier");
    let state = h.export_state().await.expect("export");
    // Baseline: handing the state over in place (export + import while the
    // engine waits), measured on the same state.
    let mut in_place = Vec::new();
    let mut source = fresh(sandbox, loaded);
    source.import_state(&state).expect("import");
    for _ in 0..rounds() {
        let mut target = fresh(sandbox, loaded);
        let t = Instant::now();
        let exported = source.export_state().expect("export");
        target.import_state(&exported).expect("import");
        in_place.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The engine: prepared off its thread from checkpoint + journal; the pause
    // is the replay of what arrived meanwhile, with trades flowing throughout.
    // A feed of 20,000 trades/s (Coinbase's whole market is far below that).
    let feeder = {
        let h = h.clone();
        tokio::spawn(async move {
            let mut id = 1_000_000u64;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
            loop {
                tick.tick().await;
                let batch: Vec<Trade> = (0..20)
                    .map(|_| {
                        id += 1;
                        Trade {
                            product: (id % 1_000) as u32,
                            side: Side::Buy,
                            trade_id: id,
                            time_ms: end,
                            price: Fixed::from_int(100),
                            size: Fixed::from_int(1),
                        }
                    })
                    .collect();
                if h.trades(batch).await.is_err() {
                    break;
                }
            }
        })
    };
    let (mut pauses, mut prepares) = (Vec::new(), Vec::new());
    for _ in 0..rounds().max(5) * 2 {
        let r = h.swap(loaded.clone()).await.expect("swap");
        pauses.push(r.pause.as_secs_f64() * 1e3);
        prepares.push(r.prepare.as_secs_f64() * 1e3);
    }
    feeder.abort();
    let max = pauses.iter().cloned().fold(0.0, f64::max);
    println!(
        "3. swap, 1,000 products x {minutes_per_product} minute(s) ({} KB state), 20k trades/s flowing: \
         pause median {:.3} ms, max {max:.3} ms (prepared off-thread in {:.1} ms); \
         in-place export+import would pause {:.2} ms",
        state.len() / 1024,
        median(pauses),
        median(prepares),
        median(in_place)
    );
    engine.shutdown().await;
}

fn bench_day_import(sandbox: &Sandbox, loaded: &LoadedComponent) {
    let mut day = Vec::with_capacity(1_440_000);
    for p in 0..1_000u32 {
        for m in 0..1_440i64 {
            let px = Fixed::from_int(100 + (m % 17));
            day.push(Candle {
                product: p,
                granularity: Granularity::OneMinute,
                start: T0 / 1000 + m * 60,
                open: px,
                high: Fixed::from_int(120),
                low: Fixed::from_int(99),
                close: px,
                volume: Fixed::from_int(3),
                last_trade_id: Some(m as u64 * 10 + 9),
                trades: 10,
                complete: true,
                authoritative: true,
            });
        }
    }
    let mut times = Vec::new();
    let mut native_times = Vec::new();
    for _ in 0..rounds().min(3) {
        let mut inst = fresh(sandbox, loaded);
        let t = Instant::now();
        for chunk in day.chunks(20_000) {
            inst.apply_candles(&encode_all(chunk), CandleSource::Restore)
                .expect("restore");
        }
        times.push(t.elapsed().as_secs_f64());
        let mut agg = Aggregator::default();
        let t = Instant::now();
        for chunk in day.chunks(20_000) {
            std::hint::black_box(
                agg.apply_candles(chunk, spot_rules::CandleSource::Restore)
                    .expect("restore"),
            );
        }
        native_times.push(t.elapsed().as_secs_f64());
    }
    let (w, n) = (median(times), median(native_times));
    println!(
        "4. import a full UTC day of 1m candles, 1,000 products (1.44 M candles): component {:.0} ms, native {:.0} ms, ratio {:.2}x",
        w * 1e3,
        n * 1e3,
        w / n
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let loaded = load(&sandbox, "spot_guest");
    println!("spot engine benchmarks ({}; wasmtime 48, epoch deadline on)", loaded);
    let only = std::env::var("SPOT_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if run("ingest") {
        bench_ingest(&sandbox, &loaded, &load(&sandbox, "spot_test_ingest_floor"));
    }
    if run("render") {
        bench_render(&sandbox, &loaded);
    }
    if run("swap") {
        bench_swap(&sandbox, &loaded, 1).await;
        bench_swap(&sandbox, &loaded, 60).await;
    }
    if run("import") {
        bench_day_import(&sandbox, &loaded);
    }
}
