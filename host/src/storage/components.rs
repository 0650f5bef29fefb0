//! `components` and `active_component`: the `.wasm` of every component swapped
//! in, and which one each shard runs.

use deadpool_postgres::Pool;

use super::StorageError;

/// The component a shard should run.
#[derive(Debug, Clone)]
pub struct ActiveComponent {
    pub sha256: String,
    /// The `COMPONENT_PATH` component when it was activated.
    pub base_sha256: String,
    pub wasm: Vec<u8>,
}

/// One shard's record.
#[derive(Clone)]
pub struct ComponentStore {
    pool: Pool,
    shard: i32,
}

impl ComponentStore {
    /// The record of shard `shard`.
    pub fn new(pool: Pool, shard: u32) -> Self {
        ComponentStore {
            pool,
            shard: shard as i32,
        }
    }

    /// Keep a component's `.wasm` (once per sha256).
    pub async fn keep(&self, sha256: &str, name: &str, version: &str, wasm: &[u8]) -> Result<(), StorageError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO components (sha256, name, version, wasm) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &name, &version, &wasm],
            )
            .await?;
        Ok(())
    }

    /// Make a kept component the shard's component.
    pub async fn set_active(&self, sha256: &str, base_sha256: &str) -> Result<(), StorageError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO active_component (shard, sha256, base_sha256) VALUES ($1, $2, $3)
                 ON CONFLICT (shard) DO UPDATE SET sha256 = EXCLUDED.sha256,
                     base_sha256 = EXCLUDED.base_sha256, activated_at = now()",
                &[&self.shard, &sha256, &base_sha256],
            )
            .await?;
        Ok(())
    }

    /// The shard's component, if one was ever activated.
    pub async fn active(&self) -> Result<Option<ActiveComponent>, StorageError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT a.sha256, a.base_sha256, c.wasm FROM active_component a
                 JOIN components c USING (sha256) WHERE a.shard = $1",
                &[&self.shard],
            )
            .await?;
        Ok(row.map(|r| ActiveComponent {
            sha256: r.get(0),
            base_sha256: r.get(1),
            wasm: r.get(2),
        }))
    }
}
