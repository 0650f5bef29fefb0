//! The Coinbase market-data feed: products → WebSocket connections →
//! trades to the engine. (What it misses is fetched from REST by
//! [`crate::history`].)
//!
//! - [`shard`]: which products this instance serves, spread over connections;
//! - `connection`: one WebSocket's life (connect, subscribe, read, reconnect),
//!   and where each product's live trades begin;
//! - [`message`]: frame parsing;
//! - [`jwt`]: tokens for a CDP key;
//! - [`pacer`]: the per-IP connection and message limits;
//! - [`stats`]: counters and connection states.

mod connection;
pub mod jwt;
pub mod message;
pub mod pacer;
pub mod shard;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use jwt::Credentials;
use pacer::Pacer;
pub use stats::{ConnState, FeedStats};

use crate::engine::{EngineError, EngineHandle};
use crate::horizon::Horizon;
use crate::product::TradingPair;
use crate::rest::{Rest, RestError};

/// Where the feed connects and how it behaves.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// `COINBASE_WS_URL`.
    pub ws_url: String,
    /// At most this many products per WebSocket connection.
    pub products_per_connection: usize,
    /// Connection attempts per second (the whole process).
    pub connects_per_second: u32,
    /// Subscribe messages per second (the whole process).
    pub messages_per_second: u32,
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
    /// The days kept: an older trade is ignored by the component and counted here.
    pub horizon: Horizon,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            ws_url: "wss://advanced-trade-ws.coinbase.com".into(),
            products_per_connection: 100,
            // Coinbase allows 8/s of each per IP. A connection sends two
            // subscribes, but its second (the keep-alive) waits until every
            // connection has sent its first, so connections go at the
            // message rate: the trades of all flow after one message each.
            connects_per_second: 6,
            messages_per_second: 6,
            watchdog: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
            max_frame_bytes: 64 << 20,
            horizon: Horizon::new(2, Duration::from_secs(5)),
        }
    }
}

/// Where a product's live trades begin in this process, as the feed saw it
/// (told once per product, to [`crate::history`]'s backfill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFrom {
    /// The engine's product id.
    pub product: u32,
    /// A minute start (unix s): every trade after it reached the engine.
    pub minute: i64,
    /// Trades of that minute before the first one seen may never have been
    /// sent: it is repaired once it is over.
    pub partial: bool,
}

/// What the connections share.
pub(crate) struct Shared {
    config: FeedConfig,
    engine: EngineHandle,
    stats: Arc<FeedStats>,
    connects: Pacer,
    messages: Pacer,
    credentials: Option<Arc<Credentials>>,
    /// Where each product's live trades begin is told here (once per product).
    live_from: Option<mpsc::UnboundedSender<LiveFrom>>,
    /// Trades go to the engine once this is true (see [`Feed::release`]).
    open: watch::Receiver<bool>,
    /// When the feed started (each connection's `subscribed` line says how
    /// long after it).
    started: tokio::time::Instant,
}

/// Failure to start the feed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("REST: {0}")]
    Rest(#[from] RestError),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
}

/// The product universe of this instance: `explicit` (PRODUCTS) when given,
/// else the online spot products from REST; then this shard's share.
pub async fn products(
    rest: &Rest,
    explicit: Option<&[String]>,
    shard_index: u32,
    shard_count: u32,
) -> Result<Vec<TradingPair>, FeedError> {
    let all = match explicit {
        Some(p) => p.iter().map(|id| TradingPair::from_id(id)).collect(),
        None => rest.products().await?,
    };
    let ids: Vec<String> = all.iter().map(|p| p.product_id.clone()).collect();
    let mut by_id: HashMap<String, TradingPair> = all.into_iter().map(|p| (p.product_id.clone(), p)).collect();
    Ok(shard::select(&ids, shard_index, shard_count)
        .iter()
        .filter_map(|id| by_id.remove(id))
        .collect())
}

/// The running feed.
pub struct Feed {
    started: tokio::time::Instant,
    stats: Arc<FeedStats>,
    stop: watch::Sender<bool>,
    open: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Feed {
    /// Register `products` with the engine and start their connections.
    /// Returns at once; connections come up in the background. The minute
    /// each product's live trades begin in is sent to `live_from`.
    ///
    /// No trade reaches the engine before [`Feed::release`]: the connections
    /// connect and subscribe (paced, which takes seconds with many of them)
    /// while the engine is restored, and a connection holding trades reads no
    /// further (the exchange's socket buffers, as with the engine's own
    /// backpressure).
    pub async fn start(
        config: FeedConfig,
        credentials: Option<Arc<Credentials>>,
        products: &[String],
        engine: EngineHandle,
        shard: (u32, u32),
        live_from: Option<mpsc::UnboundedSender<LiveFrom>>,
    ) -> Result<Feed, FeedError> {
        let started = tokio::time::Instant::now();
        let (open, opened) = watch::channel(false);
        let groups = shard::spread(products, config.products_per_connection);
        let stats = Arc::new(FeedStats::new(groups.len(), shard.0, shard.1));
        let (stop, stopped) = watch::channel(false);
        // Registered once; the connections use these ids.
        let ids = engine.register_products(products).await?;
        let id_of: HashMap<String, u32> = products.iter().cloned().zip(ids).collect();
        let mut tasks = Vec::new();
        let shared = Arc::new(Shared {
            connects: Pacer::per_second(config.connects_per_second),
            messages: Pacer::per_second(config.messages_per_second),
            config,
            engine: engine.clone(),
            stats: stats.clone(),
            credentials,
            live_from,
            open: opened,
            started,
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
            started,
            stats,
            stop,
            open,
            tasks,
        })
    }

    /// Let trades reach the engine (those held first, in order).
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// When it started.
    pub fn started(&self) -> tokio::time::Instant {
        self.started
    }

    /// The feed's counters.
    pub fn stats(&self) -> &Arc<FeedStats> {
        &self.stats
    }

    /// Close every connection; waits for those tasks.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for mut t in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(Duration::from_secs(2), &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// A feed dropped without [`Feed::stop`] (a start that failed after it)
/// closes its connections all the same.
impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
