//! The Coinbase market-data feed: products → WebSocket connections →
//! trades to the engine, and gap repair from REST.
//!
//! - [`shard`]: which products this instance serves, spread over connections;
//! - [`rest`]: product discovery and 1-minute candles;
//! - `connection`: one WebSocket's life (connect, subscribe, read, reconnect);
//! - [`message`]: frame parsing;
//! - [`jwt`]: tokens for a CDP key;
//! - [`pacer`]: the per-IP connection and message limits;
//! - `repair`: trade-id gaps → REST minutes → authoritative candles;
//! - [`stats`]: counters and connection states.

mod connection;
pub mod jwt;
pub mod message;
pub mod pacer;
mod repair;
pub mod rest;
pub mod shard;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use jwt::Credentials;
use pacer::Pacer;
pub use repair::RepairConfig;
use rest::Rest;
pub use stats::{ConnState, FeedStats};

use crate::engine::{EngineError, EngineHandle};
use crate::storage::repairs::RepairLog;

/// Where the feed connects and how it behaves.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// `COINBASE_WS_URL`.
    pub ws_url: String,
    /// `COINBASE_REST_URL`.
    pub rest_url: String,
    /// At most this many products per WebSocket connection.
    pub products_per_connection: usize,
    /// Connection attempts per second (the whole process).
    pub connects_per_second: u32,
    /// Subscribe messages per second (the whole process).
    pub messages_per_second: u32,
    /// REST requests per second.
    pub rest_per_second: u32,
    /// Reconnect a connection that received nothing for this long.
    pub watchdog: Duration,
    pub connect_timeout: Duration,
    /// Backoff: a random delay up to `min(cap, base · 2^attempt)`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A session that lasted this long resets the backoff.
    pub healthy_after: Duration,
    /// Largest frame or message accepted (snapshots can be large).
    pub max_frame_bytes: usize,
    pub repair: RepairConfig,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            ws_url: "wss://advanced-trade-ws.coinbase.com".into(),
            rest_url: "https://api.coinbase.com".into(),
            products_per_connection: 100,
            // Coinbase allows 8/s of each per IP; a connection sends two
            // subscribes, so connections go at half the message rate.
            connects_per_second: 3,
            messages_per_second: 6,
            rest_per_second: 4,
            watchdog: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
            max_frame_bytes: 64 << 20,
            repair: RepairConfig::default(),
        }
    }
}

/// What the connections share.
pub(crate) struct Shared {
    config: FeedConfig,
    engine: EngineHandle,
    stats: Arc<FeedStats>,
    connects: Pacer,
    messages: Pacer,
    credentials: Option<Arc<Credentials>>,
}

/// Failure to start the feed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("REST: {0}")]
    Rest(#[from] rest::RestError),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("reading the pending repairs: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// The product universe of this instance: `explicit` (PRODUCTS) when given,
/// else the online spot products from REST; then this shard's share.
pub async fn products(
    rest_url: &str,
    explicit: Option<&[String]>,
    shard_index: u32,
    shard_count: u32,
) -> Result<Vec<String>, FeedError> {
    let all = match explicit {
        Some(p) => p.to_vec(),
        None => Rest::new(rest_url, 4)?.products().await?,
    };
    Ok(shard::select(&all, shard_index, shard_count))
}

/// The running feed.
pub struct Feed {
    stats: Arc<FeedStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The gap listener: it ends when the engine's output closes.
    gaps: tokio::task::JoinHandle<()>,
}

impl Feed {
    /// Register `products` with the engine and start their connections and
    /// the repair tasks (resuming the repairs `log` holds). Returns at once;
    /// connections come up in the background.
    pub async fn start(
        config: FeedConfig,
        credentials: Option<Arc<Credentials>>,
        products: &[String],
        engine: EngineHandle,
        shard: (u32, u32),
        log: Option<RepairLog>,
    ) -> Result<Feed, FeedError> {
        let groups = shard::spread(products, config.products_per_connection);
        let stats = Arc::new(FeedStats::new(groups.len(), shard.0, shard.1));
        let rest = Arc::new(Rest::new(&config.rest_url, config.rest_per_second)?);
        let (stop, stopped) = watch::channel(false);
        // Registered once; the connections and the resumed repairs use these ids.
        let ids = engine.register_products(products).await?;
        let id_of: HashMap<String, u32> = products.iter().cloned().zip(ids).collect();
        let mut initial = Vec::new();
        if let Some(log) = &log {
            for r in log.pending().await? {
                if let Some(&id) = id_of.get(&r.product_id) {
                    initial.push((id, r.from_minute, r.to_minute));
                }
            }
            if !initial.is_empty() {
                tracing::info!(windows = initial.len(), "resuming the repairs the last run left");
            }
        }
        // The repair listener subscribes before any trade is sent.
        let outputs = engine.subscribe(1024).await?;
        let tasks_in = repair::RepairTasks {
            outputs,
            engine: engine.clone(),
            rest,
            stats: stats.clone(),
            config: config.repair.clone(),
            log,
            initial,
        };
        let (gaps, worker) = repair::spawn(tasks_in, stopped.clone());
        let mut tasks = vec![worker];
        let shared = Arc::new(Shared {
            connects: Pacer::per_second(config.connects_per_second),
            messages: Pacer::per_second(config.messages_per_second),
            config,
            engine: engine.clone(),
            stats: stats.clone(),
            credentials,
        });
        for (index, group) in groups.into_iter().enumerate() {
            let conn = connection::Connection {
                index,
                ids: group
                    .iter()
                    .filter_map(|p| id_of.get(p).map(|&id| (p.clone(), id)))
                    .collect(),
                products: group,
            };
            tasks.push(tokio::spawn(connection::run(conn, shared.clone(), stopped.clone())));
        }
        tracing::info!(
            products = products.len(),
            connections = stats.connections.len(),
            shard = shard.0,
            shards = shard.1,
            "feed started"
        );
        Ok(Feed {
            stats,
            stop,
            tasks,
            gaps,
        })
    }

    /// The feed's counters.
    pub fn stats(&self) -> &Arc<FeedStats> {
        &self.stats
    }

    /// Close every connection and stop repairing; waits for those tasks.
    /// Returns the gap listener, which keeps recording the gaps the engine
    /// finds while it drains and ends once the engine has stopped: await it
    /// after [`crate::engine::Engine::shutdown`].
    pub async fn stop(self) -> tokio::task::JoinHandle<()> {
        let _ = self.stop.send(true);
        // Connections end at once; a repair in the middle of a REST request
        // is abandoned (its window stays in the repair log for the next start).
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t).await.is_err() {
                t.abort();
            }
        }
        self.gaps
    }
}
