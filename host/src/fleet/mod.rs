//! The fleet: every instance on one PostgreSQL serves every product.
//!
//! Ingesting instances (shards, `SHARD_INDEX`/`SHARD_COUNT`) each run the feed
//! and the writer for their share; stream-only replicas (`ROLE=replica`) run
//! neither. All of them:
//!
//! - announce themselves and renew it ([`registry`]): the fleet's products
//!   ([`catalog`]) and every shard's liveness come from there;
//! - follow the other instances' candles ([`follow`]): the writers publish
//!   each flush's changed rows (`storage::outbox`), one NOTIFY per flush;
//!   the listener reads them back, and after every (re)connect reads the
//!   current candle of every key, and its own engine renders the elements.
//!
//! The fleet-wide swap is the admin's (`admin::fleet`): it goes through the
//! same database, and the listener hands its notifications over.

pub mod catalog;
pub mod follow;
pub mod registry;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use catalog::{Catalog, Products};
pub use follow::FollowConfig;
pub use registry::{Registry, ReplicaStatus, ShardStatus};
pub use stats::FleetStats;

use crate::engine::EngineHandle;
use crate::storage::WriterStats;

/// What an instance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Feed, engine, writer, history for its shard of the products; serves all.
    Ingest,
    /// No feed and no writer: serves the page, the streams and the API of
    /// every product from PostgreSQL.
    Replica,
}

impl Role {
    /// The `ROLE` value and the stored name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Replica => "replica",
        }
    }

    /// `ingest` or `replica`.
    pub fn from_name(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "replica" => Some(Role::Replica),
            _ => None,
        }
    }
}

/// Who this instance is in the fleet.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Unique per process: role, shard and a random suffix.
    pub instance: Arc<str>,
    pub role: Role,
    /// `(index, count)` of an ingesting shard.
    pub shard: Option<(u32, u32)>,
}

impl Identity {
    /// A fresh identity (a restarted process is a new instance).
    pub fn new(role: Role, shard: Option<(u32, u32)>) -> Self {
        let suffix: u32 = rand::random();
        let instance = match (role, shard) {
            (Role::Ingest, Some((i, _))) => format!("shard{i}-{suffix:08x}"),
            (Role::Ingest, None) => format!("ingest-{suffix:08x}"),
            (Role::Replica, _) => format!("replica-{suffix:08x}"),
        };
        Identity {
            instance: Arc::from(instance),
            role,
            shard: match role {
                Role::Ingest => shard,
                Role::Replica => None,
            },
        }
    }
}

/// The fleet's timings.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Each instance renews its row this often...
    pub heartbeat: Duration,
    /// ...and counts as stale (not live) when not heard from for this long.
    pub stale_after: Duration,
    /// Rows of instances not heard from for this long are deleted.
    pub forget_after: Duration,
    /// The listener's connection check and reconnect delays.
    pub ping: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A fleet swap: every live instance votes within `vote_timeout` or it
    /// aborts; the answer waits `outcome_timeout` for each to have swapped.
    pub vote_timeout: Duration,
    pub outcome_timeout: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(10),
            forget_after: Duration::from_secs(86_400),
            ping: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            vote_timeout: Duration::from_secs(30),
            outcome_timeout: Duration::from_secs(30),
        }
    }
}

/// What [`Fleet::start`] needs.
pub struct FleetParts {
    pub pool: Pool,
    /// The listener's own connection (outside the pool).
    pub pg: tokio_postgres::Config,
    pub me: Identity,
    /// This instance's own products (none for a replica).
    pub products: Vec<String>,
    pub engine: EngineHandle,
    /// The writer's counters (its last change goes into the heartbeat).
    pub writer: Option<Arc<WriterStats>>,
    pub follow: FollowConfig,
    pub config: FleetConfig,
    /// Where the control channel's notifications go (the admin's agent).
    pub control: mpsc::UnboundedSender<String>,
}

/// The running fleet membership.
pub struct Fleet {
    view: FleetView,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What HTTP reads of the fleet (cheap to clone).
#[derive(Clone)]
pub struct FleetView {
    me: Identity,
    config: FleetConfig,
    catalog: Arc<Catalog>,
    registry: Arc<Registry>,
    stats: Arc<FleetStats>,
}

/// The fleet as `/readyz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub instance: String,
    pub role: &'static str,
    pub shards: Vec<ShardStatus>,
    pub replicas: Vec<ReplicaStatus>,
    /// The listener's connection is up, and it has read the fleet once.
    pub listening: bool,
    pub synced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Fleet {
    /// Announce this instance, read the fleet once, then keep the heartbeat
    /// and the listener running.
    pub async fn start(parts: FleetParts) -> anyhow::Result<Fleet> {
        let catalog = Catalog::new(&parts.products);
        let registry = registry::empty();
        let stats = Arc::new(FleetStats::default());
        let (stop, stopped) = watch::channel(false);
        let beat = registry::Beat {
            pool: parts.pool.clone(),
            me: parts.me.clone(),
            products: parts.products.clone(),
            engine: parts.engine.clone(),
            writer: parts.writer.clone(),
            catalog: catalog.clone(),
            config: parts.config.clone(),
            registry: registry.clone(),
        };
        beat.first().await?;
        let follower = follow::Follower::new(
            parts.follow,
            parts.pg,
            parts.me.instance.clone(),
            &parts.products,
            catalog.clone(),
            parts.engine,
            stats.clone(),
            parts.control,
        );
        let tasks = vec![
            tokio::spawn(beat.run(stopped.clone())),
            tokio::spawn(follower.run(stopped)),
        ];
        Ok(Fleet {
            view: FleetView {
                me: parts.me,
                config: parts.config,
                catalog,
                registry,
                stats,
            },
            stop,
            tasks,
        })
    }

    /// What HTTP reads.
    pub fn view(&self) -> &FleetView {
        &self.view
    }

    /// Stop the listener and the heartbeat, and mark this instance stopped.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(2), t).await.is_err() {
                tracing::warn!("a fleet task did not stop in time");
            }
        }
    }
}

impl FleetView {
    /// This instance.
    pub fn me(&self) -> &Identity {
        &self.me
    }

    /// The fleet's products.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The fleet as last read.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The listener's counters.
    pub fn stats(&self) -> &Arc<FleetStats> {
        &self.stats
    }

    /// The timings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Every shard, the replicas and the listener, as of now.
    pub fn status(&self) -> FleetStatus {
        let view = self.registry.view();
        let stale = self.config.stale_after;
        let connected = self.stats.connected.load(std::sync::atomic::Ordering::Relaxed);
        FleetStatus {
            instance: self.me.instance.to_string(),
            role: self.me.role.name(),
            shards: view.shards(stale, &self.stats.heard(), crate::engine::now_ms()),
            replicas: view.replicas(stale),
            listening: connected,
            synced: self.stats.synced.load(std::sync::atomic::Ordering::Relaxed),
            error: view
                .error
                .clone()
                .or_else(|| (!connected).then(|| self.stats.last_error()).flatten()),
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
