//! `spot-server`: configuration from the environment (README, SPEC §4), then
//! [`spot_host::server::Server`] until SIGTERM or Ctrl-C, then a drain.
//! `spot-server migrate` only applies the migrations.

use std::time::Duration;

use anyhow::Context;
use spot_host::config::Config;
use spot_host::server::{Options, Server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = Config::from_env().context("configuration")?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("migrate") => return migrate_only(&config).await,
        Some(other) => anyhow::bail!("unknown command {other:?}: use `spot-server [serve|migrate]`"),
    }
    let server = Server::start(&config, Options::default()).await?;
    stopped().await;
    tracing::info!("stopping: draining the engine and the writer");
    // SPEC §5: exit within 10 s of SIGTERM.
    if tokio::time::timeout(Duration::from_secs(9), server.stop())
        .await
        .is_err()
    {
        tracing::error!("drain did not finish within 9 s; exiting anyway");
    }
    Ok(())
}

/// `spot-server migrate`: apply the pending migrations and exit.
async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let pool = spot_host::storage::pool(&config.database_url, 1)?;
    let applied = spot_host::storage::migrate(&pool)
        .await
        .context("applying migrations")?;
    println!("applied: {applied:?}");
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
