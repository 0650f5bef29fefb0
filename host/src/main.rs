//! `spot-server`: settings from flags or the environment (`--help`, README,
//! SPEC §4), then [`spot_host::server::Server`] until SIGTERM or Ctrl-C, then a
//! drain bounded by Cloud Run's 10 s grace period. `spot-server migrate` only
//! applies the migrations; `spot-server timescaledb` makes a plain
//! `live_candles` a hypertable once the server has TimescaleDB loaded.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use spot_host::cli::{Cli, Command, LogFormat};
use spot_host::config::Config;
use spot_host::server::{Options, Server};

/// What the drain may take; SPEC §5 wants an exit within 10 s of SIGTERM.
const DRAIN_LIMIT: Duration = Duration::from_secs(9);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    spot_host::logs::init(format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, with every cause: "configuration: SHARD_INDEX: ...",
            // on stderr, and as a log record for collectors of JSON logs.
            if format == LogFormat::Json {
                tracing::error!(error = format!("{e:#}"), "spot-server failed");
            }
            eprintln!("spot-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.settings.config().context("configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&config).await,
        Command::Migrate => migrate_only(&config).await,
        Command::Timescaledb => timescaledb(&config).await,
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let server = Server::start(config, Options::default()).await?;
    stopped().await;
    let started = std::time::Instant::now();
    tracing::info!("stopping: feed off, draining the engine, flushing the writer, closing the streams");
    if tokio::time::timeout(DRAIN_LIMIT, server.stop()).await.is_err() {
        tracing::error!(
            limit_s = DRAIN_LIMIT.as_secs(),
            "the drain did not finish in time; exiting anyway"
        );
    } else {
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "stopped");
    }
    Ok(())
}

/// `spot-server migrate`: apply the pending migrations and exit.
async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let pool = spot_host::storage::pool(&config.database_url, 1).context("DATABASE_URL")?;
    let applied = spot_host::storage::migrate(&pool)
        .await
        .context("applying migrations")?;
    // The command's result, on stdout (scripts and a test read it).
    println!("applied: {applied:?}");
    Ok(())
}

/// `spot-server timescaledb`: apply the migrations, then make `live_candles`
/// a hypertable if it is a plain table on a server with TimescaleDB loaded.
async fn timescaledb(config: &Config) -> anyhow::Result<()> {
    let pool = spot_host::storage::pool(&config.database_url, 1).context("DATABASE_URL")?;
    spot_host::storage::migrate(&pool)
        .await
        .context("applying migrations")?;
    let client = pool.get().await.context("connecting")?;
    let done = spot_host::storage::timescale::convert(&client)
        .await
        .context("making live_candles a hypertable")?;
    println!("live_candles: {done:?}");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stopped() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
