//! What can go wrong talking to PostgreSQL.

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

/// An error and what caused it, as one line: tokio-postgres says only "db
/// error" and keeps the server's message ("too many connections for role
/// …", "cannot execute INSERT in a read-only transaction") in its source.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("the server's reason")]
    struct Inner;

    #[test]
    fn the_cause_is_in_the_message() {
        assert_eq!(chain(&Outer(Inner)), "outer: the server's reason");
    }
}
