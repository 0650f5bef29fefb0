//! TimescaleDB: whether `live_candles` is a hypertable, and turning a plain
//! one into one.
//!
//! The first migration makes `live_candles` a hypertable (1-day chunks) when
//! the server has TimescaleDB loaded (`shared_preload_libraries`); installed
//! but not preloaded, as Debian's and several hosted servers come it, the
//! table stays plain (`CREATE EXTENSION` would fail there and stop the start).
//! [`status`] says which, so the host can tell the operator at start, and
//! [`convert`] (`spot-server timescaledb`) makes a plain table a hypertable
//! once TimescaleDB is loaded, keeping its rows.

use deadpool_postgres::GenericClient;

use super::StorageError;

/// Where `live_candles` stands with TimescaleDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timescale {
    /// The server has no TimescaleDB: a plain table, as intended.
    Absent,
    /// Installed but not in `shared_preload_libraries`: a plain table.
    NotPreloaded,
    /// Loaded, but the table is plain (migrated before it was loaded).
    Plain,
    /// A hypertable.
    Hypertable,
}

impl Timescale {
    /// What the operator can do about it, if anything.
    pub fn advice(self) -> Option<&'static str> {
        match self {
            Timescale::Absent | Timescale::Hypertable => None,
            Timescale::NotPreloaded => Some(
                "TimescaleDB is installed on the server but not preloaded, so live_candles is a plain table: \
                 add timescaledb to shared_preload_libraries, restart PostgreSQL, then run `spot-server timescaledb`",
            ),
            Timescale::Plain => Some(
                "TimescaleDB is loaded but live_candles is a plain table (migrated before TimescaleDB was enabled): \
                 run `spot-server timescaledb` to make it a hypertable",
            ),
        }
    }
}

/// Why [`convert`] did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "TimescaleDB is not loaded by the server: add timescaledb to shared_preload_libraries and restart PostgreSQL first"
    )]
    NotLoaded,
    #[error("the server has no TimescaleDB installed")]
    Absent,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where `live_candles` stands.
pub async fn status<C: GenericClient>(client: &C) -> Result<Timescale, StorageError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
                    'timescaledb' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
            &[],
        )
        .await?;
    let (available, preloaded, created): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if !available {
        return Ok(Timescale::Absent);
    }
    if !preloaded {
        return Ok(Timescale::NotPreloaded);
    }
    if !created {
        return Ok(Timescale::Plain);
    }
    let hyper: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                            WHERE hypertable_name = 'live_candles')",
            &[],
        )
        .await?
        .get(0);
    Ok(if hyper { Timescale::Hypertable } else { Timescale::Plain })
}

/// Make `live_candles` a hypertable with 1-day chunks, keeping its rows
/// (they are moved into chunks: the table is locked meanwhile). Nothing to do
/// when it is one already.
pub async fn convert<C: GenericClient>(client: &C) -> Result<Timescale, ConvertError> {
    match status(client).await? {
        Timescale::Absent => return Err(ConvertError::Absent),
        Timescale::NotPreloaded => return Err(ConvertError::NotLoaded),
        Timescale::Hypertable => return Ok(Timescale::Hypertable),
        Timescale::Plain => {}
    }
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS timescaledb;
             SELECT create_hypertable('live_candles', 'timestamp',
                                      chunk_time_interval => INTERVAL '1 day',
                                      if_not_exists => TRUE, migrate_data => TRUE);",
        )
        .await
        .map_err(StorageError::from)?;
    Ok(status(client).await?)
}
