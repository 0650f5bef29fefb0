//! Schema migrations: the numbered SQL files of `migrations/`, compiled into the
//! binary, applied at start in order, each in its own transaction, recorded in
//! `schema_migrations`. An advisory lock makes concurrent starts take turns: the
//! second instance waits, then finds nothing left to do.

use tokio_postgres::Client;

use super::StorageError;

/// One migration: `migrations/NNNN_name.up.sql` and its `.down.sql`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

/// `NNNN_name`: the migration's version and name, with its two files.
macro_rules! migrations {
    ($($version:literal $file:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: name_of($file),
            up: include_str!(concat!("../../../migrations/", $file, ".up.sql")),
            down: include_str!(concat!("../../../migrations/", $file, ".down.sql")),
        }),*]
    };
}

/// `schema` of `0001_schema`.
const fn name_of(file: &'static str) -> &'static str {
    let bytes = file.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            return file.split_at(i + 1).1;
        }
        i += 1;
    }
    file
}

/// Every migration, oldest first. A test checks this matches `migrations/`.
pub const MIGRATIONS: &[Migration] = migrations![
    1 "0001_schema",
    2 "0002_pending_repairs",
    3 "0003_components",
    4 "0004_history",
    5 "0005_fleet",
    6 "0006_trading_pair_sizes",
    7 "0007_admin",
    8 "0008_fleet_updates_uncompressed",
    9 "0009_fleet_updates_lz4",
];

/// Any constant shared by every spot instance; "spot" in ASCII.
const LOCK_KEY: i64 = 0x73_70_6f_74;

/// Apply the migrations not applied yet; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, StorageError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = apply_pending(client).await;
    // Unlock even after a failure: the lock is the session's, and a pooled
    // session would otherwise keep it.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> Result<Vec<i32>, StorageError> {
    client
        .batch_execute(
            // The "already exists, skipping" notice would be noise in the log
            // of every start after the first.
            "SET client_min_messages TO warning;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            );
             RESET client_min_messages;",
        )
        .await?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let failed = |source| StorageError::Migration {
            version: m.version,
            name: m.name,
            source,
        };
        let tx = client.transaction().await?;
        tx.batch_execute(m.up).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        applied.push(m.version);
    }
    Ok(applied)
}

/// Undo every applied migration, newest first (tests and operators' rollbacks).
pub async fn revert_all(client: &mut Client) -> Result<(), StorageError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = async {
        for m in MIGRATIONS.iter().rev() {
            let tx = client.transaction().await?;
            tx.batch_execute(m.down)
                .await
                .map_err(|source| StorageError::Migration {
                    version: m.version,
                    name: m.name,
                    source,
                })?;
            tx.execute("DELETE FROM schema_migrations WHERE version = $1", &[&m.version])
                .await?;
            tx.commit().await?;
        }
        Ok::<_, StorageError>(())
    }
    .await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    result?;
    unlocked?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| {
                [
                    format!("{:04}_{}.down.sql", m.version, m.name),
                    format!("{:04}_{}.up.sql", m.version, m.name),
                ]
            })
            .collect();
        assert_eq!(files, listed);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
