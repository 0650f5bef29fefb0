//! PostgreSQL storage: the seed's tables, written in coalesced batches, read
//! back at restart and for the history API.
//!
//! - [`migrate`]: the SQL of `migrations/`, applied at start under an advisory lock;
//! - [`writer`]: engine updates → coalesced, set-based upserts, retried through outages;
//! - [`upsert`]: the statements the writer (and the benchmark) run;
//! - [`restore`]: the horizon's 1m candles → the component, before the feed's trades;
//! - [`numeric`]: `NUMERIC` read in binary straight into a `Fixed` (the restore's reads);
//! - [`candles`]: stored candles for `GET /api/candles` and the audit;
//! - [`repairs`], [`coverage`]: the windows waiting for REST and what the
//!   backfill covered, kept across restarts;
//! - [`pairs`]: the `trading_pairs` table;
//! - [`timescale`]: whether `live_candles` is a TimescaleDB hypertable, and
//!   making a plain one into one;
//! - the fleet: [`outbox`] (each flush's changed rows for the other
//!   instances), [`instances`] (who is alive, what it runs), [`fleet_ops`]
//!   (fleet-wide swaps and the fleet's component).

pub mod candles;
pub mod components;
pub mod coverage;
mod error;
pub mod fleet_ops;
pub mod instances;
pub mod migrate;
pub mod numeric;
pub mod outbox;
pub mod pairs;
pub mod repairs;
pub mod restore;
pub mod timescale;
pub mod upsert;
pub mod writer;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

pub use error::StorageError;
pub use writer::{Writer, WriterConfig, WriterStats};

/// The `exchange` column's value for Coinbase rows.
pub const EXCHANGE: &str = "coinbase";

/// A connection pool for `url` (no TLS: the database is expected on a private
/// network or loopback). Connections are made on first use, so this succeeds
/// while the database is down.
pub fn pool(url: &str, size: usize) -> Result<Pool, StorageError> {
    pool_with(url, size, None)
}

/// [`pool`] whose statements the server cancels after `statement_timeout`
/// (the running server's: a statement stuck behind a lock is cancelled,
/// not left occupying its connection after the caller gave up on it).
pub fn pool_with(url: &str, size: usize, statement_timeout: Option<Duration>) -> Result<Pool, StorageError> {
    let mut config = connect_config(url)?;
    if let Some(t) = statement_timeout {
        config.options(format!("-c statement_timeout={}", t.as_millis()));
    }
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StorageError::Config(e.to_string()))
}

/// The connection settings of `url` (what the pool and the fleet's listener,
/// which needs a connection of its own, connect with).
pub fn connect_config(url: &str) -> Result<tokio_postgres::Config, StorageError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The URL may hold a password: say what is wrong, not the URL.
        StorageError::Config(e.to_string())
    })?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("spot");
    // A listener's connection is idle for long stretches: have the kernel
    // find a peer that went away.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    Ok(config)
}

/// Apply the pending migrations on a connection of `pool`.
pub async fn migrate(pool: &Pool) -> Result<Vec<i32>, StorageError> {
    let mut client = pool.get().await?;
    migrate::migrate(&mut client).await
}

/// Whether the database answers (readiness).
pub async fn ping(pool: &Pool) -> Result<(), StorageError> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cloud_sql_socket_url_is_accepted_and_a_bad_url_is_not_echoed() {
        // deploy/cloud-run.sh: the Cloud SQL connector's Unix socket.
        let url = "postgresql://spot:secret@/spot?host=/cloudsql/proj:region:inst";
        let config: tokio_postgres::Config = url.parse().expect("parse");
        assert!(matches!(
            config.get_hosts(),
            [tokio_postgres::config::Host::Unix(p)] if p.to_str() == Some("/cloudsql/proj:region:inst")
        ));
        assert!(super::pool(url, 1).is_ok());
        let e = super::pool("postgresql://spot:hunter2@db:notaport/spot", 1).expect_err("bad port");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
