//! `components` and `active_component`: the `.wasm` of every component swapped
//! in, and which one each shard runs (a replica keeps no record of its own:
//! it runs the fleet's component, `storage::fleet_ops`).

use deadpool_postgres::Pool;

use super::StorageError;

/// The component a shard should run.
#[derive(Debug, Clone)]
pub struct ActiveComponent {
    pub sha256: String,
    /// The `COMPONENT_PATH` component when it was activated.
    pub base_sha256: String,
    pub wasm: Vec<u8>,
    /// Unix seconds it was activated.
    pub activated_at: i64,
    /// What a rollback returns to.
    pub previous_sha256: Option<String>,
}

/// A kept component.
#[derive(Debug, Clone)]
pub struct KeptComponent {
    pub name: String,
    pub version: String,
    pub wasm: Vec<u8>,
}

/// One shard's record.
#[derive(Clone)]
pub struct ComponentStore {
    pool: Pool,
    /// `None`: a replica, which records nothing of its own.
    shard: Option<i32>,
}

impl ComponentStore {
    /// The record of shard `shard` (`None`: no record).
    pub fn new(pool: Pool, shard: Option<u32>) -> Self {
        ComponentStore {
            pool,
            shard: shard.map(|s| s as i32),
        }
    }

    /// The database pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A kept component by sha256.
    pub async fn get(&self, sha256: &str) -> Result<Option<KeptComponent>, StorageError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT name, version, wasm FROM components WHERE sha256 = $1",
                &[&sha256],
            )
            .await?;
        Ok(row.map(|r| KeptComponent {
            name: r.get(0),
            version: r.get(1),
            wasm: r.get(2),
        }))
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

    /// Make a kept component the shard's component, with the one a rollback
    /// returns to (`previous`, kept too).
    pub async fn set_active(
        &self,
        sha256: &str,
        base_sha256: &str,
        previous: Option<&str>,
    ) -> Result<(), StorageError> {
        let Some(shard) = self.shard else {
            return Ok(());
        };
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO active_component (shard, sha256, base_sha256, previous_sha256)
                 VALUES ($1, $2, $3, (SELECT sha256 FROM components WHERE sha256 = $4))
                 ON CONFLICT (shard) DO UPDATE SET sha256 = EXCLUDED.sha256,
                     base_sha256 = EXCLUDED.base_sha256, previous_sha256 = EXCLUDED.previous_sha256,
                     activated_at = now()",
                &[&shard, &sha256, &base_sha256, &previous],
            )
            .await?;
        Ok(())
    }

    /// The shard's component, if one was ever activated.
    pub async fn active(&self) -> Result<Option<ActiveComponent>, StorageError> {
        let Some(shard) = self.shard else {
            return Ok(None);
        };
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT a.sha256, a.base_sha256, c.wasm, extract(epoch FROM a.activated_at)::int8, a.previous_sha256
                 FROM active_component a JOIN components c USING (sha256) WHERE a.shard = $1",
                &[&shard],
            )
            .await?;
        Ok(row.map(|r| ActiveComponent {
            sha256: r.get(0),
            base_sha256: r.get(1),
            wasm: r.get(2),
            activated_at: r.get(3),
            previous_sha256: r.get(4),
        }))
    }
}
