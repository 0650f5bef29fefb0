//! `fleet_instances`: every instance sharing the database announces itself,
//! renews its row every few seconds and marks its stop. Ages are computed by
//! the database's clock, so instances whose clocks differ still agree.

use deadpool_postgres::GenericClient;

use super::StorageError;

/// What an instance says of itself.
#[derive(Debug, Clone)]
pub struct Announce<'a> {
    pub instance: &'a str,
    /// `ingest` or `replica`.
    pub role: &'a str,
    /// `(index, count)` of an ingesting shard.
    pub shard: Option<(u32, u32)>,
    /// The products it ingests (none for a replica).
    pub products: &'a [String],
}

/// One instance's row, as seen now.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub instance: String,
    pub role: String,
    pub shard: Option<u32>,
    pub shard_count: Option<u32>,
    pub products: Vec<String>,
    /// `name version` and sha256 of its active component.
    pub component: Option<String>,
    pub component_sha256: Option<String>,
    /// Seconds since its last heartbeat, and since its writer last changed a
    /// stored row (`None`: never).
    pub heartbeat_age_s: f64,
    pub last_update_age_s: Option<f64>,
    /// Seconds since it started.
    pub up_s: f64,
    /// It said it stopped.
    pub stopped: bool,
}

/// Announce `me` (a fresh row: started now, not stopped).
pub async fn announce<C: GenericClient>(client: &C, me: &Announce<'_>) -> Result<(), StorageError> {
    let (shard, count) = match me.shard {
        Some((i, n)) => (Some(i as i32), Some(n as i32)),
        None => (None, None),
    };
    client
        .execute(
            "INSERT INTO fleet_instances (instance, role, shard, shard_count, products)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (instance) DO UPDATE SET role = EXCLUDED.role, shard = EXCLUDED.shard,
                 shard_count = EXCLUDED.shard_count, products = EXCLUDED.products,
                 started_at = now(), heartbeat_at = now(), stopped_at = NULL",
            &[&me.instance, &me.role, &shard, &count, &me.products],
        )
        .await?;
    Ok(())
}

/// Renew `instance`'s row: alive now, running `component` (`name version`,
/// sha256), its writer's last change at `last_update_ms` (unix ms, 0: none).
/// Announces again if the row is gone (deleted as forgotten while the
/// database was away from it).
pub async fn heartbeat<C: GenericClient>(
    client: &C,
    me: &Announce<'_>,
    component: (&str, &str),
    last_update_ms: i64,
) -> Result<(), StorageError> {
    let last = (last_update_ms > 0).then_some(last_update_ms);
    let n = client
        .execute(
            "UPDATE fleet_instances SET heartbeat_at = now(), stopped_at = NULL,
                 component = $2, component_sha256 = $3,
                 last_update_at = COALESCE(to_timestamp($4::int8 / 1000.0), last_update_at)
             WHERE instance = $1",
            &[&me.instance, &component.0, &component.1, &last],
        )
        .await?;
    if n == 0 {
        announce(client, me).await?;
    }
    Ok(())
}

/// Mark `instance` stopped.
pub async fn stopped<C: GenericClient>(client: &C, instance: &str) -> Result<(), StorageError> {
    client
        .execute(
            "UPDATE fleet_instances SET stopped_at = now() WHERE instance = $1",
            &[&instance],
        )
        .await?;
    Ok(())
}

/// Every instance heard from within `forget_s` seconds (the older rows are
/// deleted first).
pub async fn members<C: GenericClient>(client: &C, forget_s: i64) -> Result<Vec<Member>, StorageError> {
    client
        .execute(
            "DELETE FROM fleet_instances WHERE heartbeat_at < now() - make_interval(secs => $1::int8::float8)",
            &[&forget_s],
        )
        .await?;
    list(client).await
}

/// Every instance's row.
pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<Member>, StorageError> {
    let rows = client
        .query(
            "SELECT instance, role, shard, shard_count, products, component, component_sha256,
                    extract(epoch FROM now() - heartbeat_at)::float8,
                    extract(epoch FROM now() - last_update_at)::float8,
                    extract(epoch FROM now() - started_at)::float8,
                    stopped_at IS NOT NULL
             FROM fleet_instances ORDER BY role, shard, started_at",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Member {
            instance: r.get(0),
            role: r.get(1),
            shard: r.get::<_, Option<i32>>(2).and_then(|s| u32::try_from(s).ok()),
            shard_count: r.get::<_, Option<i32>>(3).and_then(|s| u32::try_from(s).ok()),
            products: r.get(4),
            component: r.get(5),
            component_sha256: r.get(6),
            heartbeat_age_s: r.get::<_, f64>(7).max(0.0),
            last_update_age_s: r.get::<_, Option<f64>>(8).map(|a| a.max(0.0)),
            up_s: r.get::<_, f64>(9).max(0.0),
            stopped: r.get(10),
        })
        .collect())
}

/// The instances alive now: not stopped, heard from within `stale_s`.
pub async fn live<C: GenericClient>(client: &C, stale_s: f64) -> Result<Vec<String>, StorageError> {
    let rows = client
        .query(
            "SELECT instance FROM fleet_instances
             WHERE stopped_at IS NULL AND heartbeat_at >= now() - make_interval(secs => $1::float8)
             ORDER BY instance",
            &[&stale_s],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
