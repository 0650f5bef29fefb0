//! What can go wrong talking to PostgreSQL.

use crate::errors::chain;

/// A storage failure. The writer retries these; start-up reports them.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("bad DATABASE_URL: {0}")]
    Config(String),
    #[error("database: {}", chain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {}", chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("no answer from the database within {0:?}")]
    Timeout(std::time::Duration),
    #[error("stored row is not a valid candle: {0}")]
    BadRow(String),
}
