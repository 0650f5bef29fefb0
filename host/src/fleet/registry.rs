//! Liveness: this instance's row in `fleet_instances`, renewed every
//! `heartbeat` with its active component and its writer's last change, and
//! everyone's rows read back on the same beat: the fleet's products go to the
//! [`Catalog`], the members to the [`View`] that `/readyz`, `/metrics` and
//! the admin show. A stop marks the row stopped.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::watch;

use super::catalog::Catalog;
use super::{FleetConfig, Identity, Role};
use crate::engine::EngineHandle;
use crate::storage::instances::{self, Announce, Member};
use crate::storage::{StorageError, WriterStats};

/// The fleet as last read.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub members: Vec<Member>,
    /// Why the last read failed (the members are from the one before).
    pub error: Option<String>,
}

/// One shard as seen from here: its freshest instance.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    pub shard: u32,
    pub instance: String,
    /// Heard from within `stale_after` and not stopped.
    pub live: bool,
    pub stopped: bool,
    pub heartbeat_age_s: f64,
    /// Since its writer last changed a stored candle (`None`: never).
    pub last_update_age_s: Option<f64>,
    pub products: usize,
    pub component: Option<String>,
}

/// One replica as seen from here.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub instance: String,
    pub live: bool,
    pub heartbeat_age_s: f64,
    pub component: Option<String>,
}

impl View {
    /// Each shard's freshest instance, by shard index. `heard` (instance →
    /// unix ms of its last notification here, with `now_ms`) makes the last
    /// update's age fresher than the heartbeat that recorded it.
    pub fn shards(&self, stale_after: Duration, heard: &HashMap<String, i64>, now_ms: i64) -> Vec<ShardStatus> {
        let mut best: std::collections::BTreeMap<u32, &Member> = Default::default();
        for m in self.members.iter().filter(|m| m.role == Role::Ingest.name()) {
            let Some(shard) = m.shard else { continue };
            let fresher = |b: &&Member| (b.stopped, b.heartbeat_age_s) > (m.stopped, m.heartbeat_age_s);
            if best.get(&shard).is_none_or(fresher) {
                best.insert(shard, m);
            }
        }
        best.into_iter()
            .map(|(shard, m)| ShardStatus {
                shard,
                instance: m.instance.clone(),
                live: live(m, stale_after),
                stopped: m.stopped,
                heartbeat_age_s: round(m.heartbeat_age_s),
                last_update_age_s: {
                    let here = heard.get(&m.instance).map(|t| (now_ms - t).max(0) as f64 / 1000.0);
                    match (m.last_update_age_s, here) {
                        (Some(a), Some(b)) => Some(round(a.min(b))),
                        (a, b) => a.or(b).map(round),
                    }
                },
                products: m.products.len(),
                component: m.component.clone(),
            })
            .collect()
    }

    /// The replicas not stopped.
    pub fn replicas(&self, stale_after: Duration) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .filter(|m| m.role == Role::Replica.name() && !m.stopped)
            .map(|m| ReplicaStatus {
                instance: m.instance.clone(),
                live: live(m, stale_after),
                heartbeat_age_s: round(m.heartbeat_age_s),
                component: m.component.clone(),
            })
            .collect()
    }
}

fn live(m: &Member, stale_after: Duration) -> bool {
    !m.stopped && m.heartbeat_age_s <= stale_after.as_secs_f64()
}

fn round(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// The registry: this instance's heartbeat and the fleet's view.
pub struct Registry {
    view: RwLock<Arc<View>>,
}

impl Registry {
    /// The fleet as last read.
    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, view: View) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    }
}

/// What the heartbeat needs.
pub(super) struct Beat {
    pub pool: Pool,
    pub me: Identity,
    pub products: Vec<String>,
    pub engine: EngineHandle,
    pub writer: Option<Arc<WriterStats>>,
    pub catalog: Arc<Catalog>,
    pub config: FleetConfig,
    pub registry: Arc<Registry>,
}

impl Beat {
    fn announce(&self) -> Announce<'_> {
        Announce {
            instance: &self.me.instance,
            role: self.me.role.name(),
            shard: self.me.shard,
            products: &self.products,
        }
    }

    /// Announce this instance and read the fleet once (before serving).
    pub async fn first(&self) -> Result<(), StorageError> {
        let client = self.pool.get().await?;
        instances::announce(&client, &self.announce()).await?;
        drop(client);
        self.read().await
    }

    /// Renew this instance's row and read everyone's.
    async fn beat(&self) -> Result<(), StorageError> {
        let component = match self.engine.status().await {
            Ok(s) => (format!("{} {}", s.active.name, s.active.version), s.active.sha256),
            Err(_) => return Ok(()), // stopping
        };
        let last = self.writer.as_ref().map_or(0, |w| w.last_change_ms.load(Relaxed));
        let client = self.pool.get().await?;
        instances::heartbeat(&client, &self.announce(), (&component.0, &component.1), last).await?;
        drop(client);
        self.read().await
    }

    async fn read(&self) -> Result<(), StorageError> {
        let client = self.pool.get().await?;
        let members = instances::members(&client, self.config.forget_after.as_secs() as i64).await?;
        self.catalog.set_fleet(
            members
                .iter()
                .filter(|m| m.role == Role::Ingest.name())
                .flat_map(|m| m.products.iter().cloned()),
        );
        self.registry.set(View { members, error: None });
        Ok(())
    }

    /// Beat until `stop` (and at once when the active component changes),
    /// then mark this instance stopped.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut active = self.engine.active();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = super::stopped(&mut stop) => break,
                _ = tick.tick() => {}
                changed = active.changed() => if changed.is_err() { break },
            }
            match tokio::time::timeout(self.config.heartbeat * 2, self.beat()).await {
                Ok(Ok(())) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("fleet heartbeat: the database is back");
                    }
                }
                result => {
                    let e = match result {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".to_string(),
                    };
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "fleet heartbeat failed; the fleet view is as last read");
                    }
                    let mut view = (*self.registry.view()).clone();
                    view.error = Some(e);
                    self.registry.set(view);
                }
            }
        }
        let mark = async {
            let client = self.pool.get().await?;
            instances::stopped(&client, &self.me.instance).await
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(1), mark)
            .await
            .unwrap_or(Err(StorageError::Timeout(Duration::from_secs(1))))
        {
            tracing::warn!(error = %e, "could not mark this instance stopped; it will show stale");
        }
    }
}

/// A registry with nothing read yet.
pub(super) fn empty() -> Arc<Registry> {
    Arc::new(Registry {
        view: RwLock::new(Arc::new(View::default())),
    })
}
