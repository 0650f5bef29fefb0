//! `fake-coinbase`: the fake market-data service on fixed ports, with a
//! synthetic market on the wall clock, for the offline demo.
//!
//! `fake-coinbase [--ws ADDR] [--rest ADDR] [--products N] [--rate TRADES_PER_S]
//! [--history-hours H]`: with a history, every product has traded for the
//! last H hours (about every `products / rate` seconds) before it starts.

use std::net::SocketAddr;

use anyhow::Context;
use spot_fake_coinbase::{Fake, FakeConfig};

/// The demo's products, in order (trading at plausible levels: see the
/// market's `LEVELS`).
const NAMES: &[&str] = &[
    "BTC", "ETH", "SOL", "ADA", "SHIB", "XRP", "DOGE", "AVAX", "LINK", "DOT", "LTC", "BCH", "UNI", "ATOM", "XLM",
    "ETC", "FIL", "APT", "ARB", "OP", "NEAR",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut ws: SocketAddr = "127.0.0.1:8701".parse()?;
    let mut rest: SocketAddr = "127.0.0.1:8702".parse()?;
    let mut products = 5usize;
    let mut rate = 20u64;
    let mut history_hours = 30i64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--ws" => ws = value()?.parse().context("--ws")?,
            "--rest" => rest = value()?.parse().context("--rest")?,
            "--products" => products = value()?.parse().context("--products")?,
            "--rate" => rate = value()?.parse().context("--rate")?,
            "--history-hours" => history_hours = value()?.parse().context("--history-hours")?,
            "-h" | "--help" => {
                println!(
                    "fake-coinbase [--ws 127.0.0.1:8701] [--rest 127.0.0.1:8702] [--products 5] [--rate 20] [--history-hours 30]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let names: Vec<String> = (0..products)
        .map(|i| match NAMES.get(i) {
            Some(n) => format!("{n}-USD"),
            None => format!("T{i}-USD"),
        })
        .collect();
    let fake = Fake::start_on(
        FakeConfig {
            products: names.clone(),
            hostile_listing: false,
            ..FakeConfig::default()
        },
        ws,
        rest,
    )
    .await
    .context("starting the fake")?;
    if history_hours > 0 {
        let now = spot_fake_coinbase::now_ms();
        // The live rate spread over the products, but no busier than one
        // trade per product every 10 s (a day of history stays small).
        let every = (1000 * products.max(1) as i64 / rate.max(1) as i64).max(10_000);
        let made: usize = names
            .iter()
            .map(|p| fake.history(p, now - history_hours * 3_600_000, now, every))
            .sum();
        tracing::info!(hours = history_hours, trades = made, "history made");
    }
    let _market = fake.run_market(rate);
    tracing::info!(ws = %fake.ws_url(), rest = %fake.rest_url(), products = ?names, rate, "fake Coinbase running");
    // Ctrl-C, or SIGTERM from a container runtime: as PID 1 in a container the
    // process gets no default SIGTERM action, so without this `docker stop`
    // waits out its grace period and kills it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    tracing::info!("fake Coinbase stopped");
    Ok(())
}
