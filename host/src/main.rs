//! `spot-server`. For now it loads the aggregation component, starts the
//! engine and runs it on a built-in sample market, printing what comes out; the
//! feed, storage and HTTP server arrive with their issues.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use spot_host::engine::{Engine, EngineConfig, Limits, Loader, Sandbox};
use spot_wire::{Fixed, Side, Trade};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let path = PathBuf::from(
        std::env::var("COMPONENT_PATH").unwrap_or_else(|_| "target/wasm32-wasip2/component/spot_guest.wasm".into()),
    );
    let sandbox = Sandbox::new(Limits::default())?;
    let loader = Loader::new(sandbox.clone(), Some(PathBuf::from("data/component-cache")));
    let component = loader
        .load_file(&path)
        .with_context(|| format!("loading the aggregation component {}", path.display()))?;
    tracing::info!(component = %component, sha256 = %component.sha256, from_cache = component.from_cache,
        compile_ms = component.compile_time.as_secs_f64() * 1e3, "component loaded");

    let engine = Engine::start(
        sandbox,
        EngineConfig {
            clock: None,
            ..Default::default()
        },
        component,
    )?;
    let h = engine.handle();
    let mut updates = h.subscribe(1024).await?;
    let names: Vec<String> = ["BTC-USD", "ETH-USD", "SOL-USD"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    h.register_products(&names).await?;

    // A sample market: 3 products, 30 000 trades over the last 3 hours.
    let now = spot_host::engine::now_ms();
    let n = 30_000i64;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(64);
    for i in 0..n {
        let product = (i % 3) as u32;
        let base = [42_000, 2_500, 150][product as usize];
        batch.push(Trade {
            product,
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            trade_id: 1_000_000 + (i / 3) as u64,
            time_ms: now - 3 * 3_600_000 + i * (3 * 3_600_000 / n),
            price: Fixed::from_units((base * 100 + (i * 7919) % 500) as i128 * 10i128.pow(16)),
            size: Fixed::from_units(((i * 104_729) % 100_000 + 1) as i128 * 10i128.pow(12)),
        });
        if batch.len() == 64 {
            h.trades(std::mem::take(&mut batch)).await?;
        }
    }
    h.trades(batch).await?;
    h.advance(now).await?;
    h.barrier().await?;
    let took = started.elapsed();

    let mut last = std::collections::BTreeMap::new();
    while let Ok(out) = updates.try_recv() {
        for u in &out.updates {
            last.insert((u.product.clone(), u.candle.granularity), u.element.clone());
        }
    }
    for ((_, _), element) in last.iter().filter(|((p, _), _)| &**p == "BTC-USD") {
        println!("{element}");
    }
    let s = h.stats().snapshot();
    println!(
        "{} trades -> {} candle updates in {:.1} ms ({:.0} trades/s through the component); faults: {}",
        s.trades,
        s.updates,
        took.as_secs_f64() * 1e3,
        s.trades as f64 / took.as_secs_f64(),
        s.faults
    );
    engine.shutdown().await;
    Ok(())
}
