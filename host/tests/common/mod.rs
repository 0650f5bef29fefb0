//! Shared helpers for the host's integration tests: real compiled components,
//! a deterministic synthetic market, and the native rules as the reference.
#![allow(dead_code)]

pub mod fake;
pub mod http;
pub mod process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spot_host::engine::{Engine, EngineConfig, EngineHandle, EngineOutput, Limits, LoadedComponent, Loader, Sandbox};
use spot_wire::{Fixed, Side, Trade};
use tokio::sync::mpsc;

/// 2024-01-06T00:00:00Z, ms.
pub const T0: i64 = 1_704_499_200_000;

/// Where `make test` puts the compiled components.
pub fn component_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("SPOT_COMPONENT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/component"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the components first (`make components`)",
        path.display()
    );
    path
}

/// Limits small enough that loops and bombs fail fast in tests.
pub fn test_limits() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        call_timeout: Duration::from_millis(100),
        state_timeout: Duration::from_secs(10),
        tick: Duration::from_millis(5),
    }
}

pub fn loader() -> Loader {
    Loader::new(Sandbox::new(test_limits()).expect("sandbox"), None)
}

pub fn load(loader: &Loader, name: &str) -> Arc<LoadedComponent> {
    loader
        .load_file(&component_path(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Engine config for tests: no wall clock (time is told explicitly).
pub fn config() -> EngineConfig {
    EngineConfig {
        clock: None,
        ..EngineConfig::default()
    }
}

pub fn start(loader: &Loader, component: Arc<LoadedComponent>, config: EngineConfig) -> Engine {
    Engine::start(loader.sandbox().clone(), config, component).expect("engine")
}

/// A deterministic market: `n` trades over `products`, consecutive ids per
/// product, times moving forward, prices far from the chaos triggers (666..673).
pub fn market(products: u32, n: usize, seed: u64) -> Vec<Trade> {
    market_from(T0 + 60_000, products, n, seed)
}

/// [`market`] starting at `start_ms` (trades ~1.5 s apart on average).
pub fn market_from(start_ms: i64, products: u32, n: usize, seed: u64) -> Vec<Trade> {
    let mut s = seed | 1;
    let mut next = |m: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % m
    };
    let mut ids = vec![1_000u64; products as usize];
    let mut t = start_ms;
    (0..n)
        .map(|_| {
            let p = next(products as u64) as u32;
            ids[p as usize] += 1;
            t += next(3_000) as i64;
            Trade {
                product: p,
                side: Side::Sell,
                trade_id: ids[p as usize],
                time_ms: t,
                price: Fixed::from_units(((1_000 + next(400)) as i128) * 10i128.pow(16)),
                size: Fixed::from_units(next(1_000_000) as i128 * 10i128.pow(10)),
            }
        })
        .collect()
}

pub fn product_names(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("P{i}-USD")).collect()
}

/// The native rules fed the same inputs: the reference.
pub fn reference(names: &[String], trades: &[Trade], config: &EngineConfig) -> spot_rules::Aggregator {
    let mut agg = spot_rules::Aggregator::new(spot_rules::Settings {
        grace_ms: config.grace.as_millis() as i64,
        retention_ms: config.retention.as_millis() as i64,
    });
    agg.define_products(names.iter().enumerate().map(|(i, n)| (i as u32, n.clone())));
    agg.ingest(trades.to_vec());
    agg
}

/// The engine's state, decoded.
pub async fn engine_state(h: &EngineHandle) -> spot_wire::state::State {
    spot_wire::state::State::decode(&h.export_state().await.expect("export")).expect("decode")
}

/// Everything received so far, without waiting.
pub fn drain(rx: &mut mpsc::Receiver<Arc<EngineOutput>>) -> Vec<Arc<EngineOutput>> {
    let mut out = Vec::new();
    while let Ok(o) = rx.try_recv() {
        out.push(o);
    }
    out
}

/// Where the tests' pages load Datastar from: a port nothing listens on
/// (no test reaches the internet; the server finds it unreachable at once
/// and serves its pages with their own client).
pub const OFFLINE_DATASTAR: &str = "http://127.0.0.1:9/datastar.js";

/// The configuration of an in-process server on `url` that ingests
/// `products`, fed by the test itself (no exchange), with the default component.
pub fn feedless_config(url: &str, products: &[String]) -> spot_host::config::Config {
    let component = component_path("spot_guest");
    let vars = std::collections::HashMap::from([
        ("DATABASE_URL", url.to_string()),
        ("PRODUCTS", products.join(",")),
        ("COMPONENT_PATH", component.display().to_string()),
        ("DATASTAR_URL", OFFLINE_DATASTAR.to_string()),
    ]);
    spot_host::config::Config::from_lookup(|k| vars.get(k).cloned()).expect("config")
}

/// Its options: no feed, no wall clock (time is told), the test limits, a
/// free port on 127.0.0.1.
pub fn feedless_options() -> spot_host::server::Options {
    spot_host::server::Options {
        engine: EngineConfig {
            clock: None,
            ..EngineConfig::default()
        },
        limits: test_limits(),
        bind: Some(([127, 0, 0, 1], 0).into()),
        feed: None,
        ..spot_host::server::Options::default()
    }
}

/// Another session holding `live_candles` (ACCESS EXCLUSIVE) on the database
/// at `url` until its transaction ends (`COMMIT` on the returned client).
pub async fn lock_live_candles(url: &str) -> tokio_postgres::Client {
    let (locker, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("locker");
    tokio::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE live_candles IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    locker
}

/// Log to the test's output (shown for failing tests), filtered by `RUST_LOG`.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}
