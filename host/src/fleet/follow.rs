//! The listener: other instances' candles, read back from PostgreSQL and
//! rendered here for this instance's streams.
//!
//! It holds one connection of its own, outside the pool (a pooled connection
//! never delivers notifications: tokio-postgres hands them out only through
//! `Connection::poll_message`, which a driver task here calls in a loop and
//! forwards, so the connection is always drained). On every (re)connect it
//! LISTENs first, then reads the current candle of every key it follows from
//! `live_candles` (notifications sent while it was away are gone; this is
//! what makes them unnecessary), then follows: each notification names the
//! `fleet_updates` rows of one flush; everything waiting is merged into one
//! read, conflated to the newest state per key, and handed to the engine,
//! whose active component renders the elements ([`crate::engine::Cause::Fleet`]).
//! A key only moves forward: an older bucket, or the same bucket at a revision
//! not newer than the one shown, is dropped. A ping every few seconds finds a
//! connection that died silently. Notifications on the control channel go to
//! the admin's fleet agent as they are.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use spot_wire::Granularity;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use super::catalog::Catalog;
use super::stats::FleetStats;
use crate::engine::{EngineError, EngineHandle};
use crate::horizon::Horizon;
use crate::storage::outbox::{self, Notice, RemoteCandle};
use crate::storage::{StorageError, fleet_ops};

/// How the listener runs.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The `exchange` column.
    pub exchange: String,
    /// Keys are read back from the horizon's start.
    pub horizon: Horizon,
    /// A query on the connection this often finds one that died silently.
    pub ping: Duration,
    /// Reconnect delays: from `reconnect_min`, doubling, capped.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("the connection was lost: {0}")]
    Lost(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// What the driver task forwards.
enum Event {
    Note { channel: String, payload: String },
    Lost(String),
}

/// The newest state shown of a key: (bucket start, revision).
type Shown = HashMap<(Arc<str>, Granularity), (i64, i64)>;

/// The listener's state.
pub struct Follower {
    pub(super) config: FollowConfig,
    pub(super) pg: tokio_postgres::Config,
    /// This instance (its own notifications are skipped).
    pub(super) me: Arc<str>,
    /// This instance's own products (its engine makes their candles).
    pub(super) local: HashSet<String>,
    pub(super) catalog: Arc<Catalog>,
    pub(super) engine: EngineHandle,
    pub(super) stats: Arc<FleetStats>,
    pub(super) control: mpsc::UnboundedSender<String>,
    shown: Shown,
    ids: HashMap<Arc<str>, u32>,
    /// Products read back on this connection.
    followed: HashSet<String>,
}

impl Follower {
    /// A listener; [`Follower::run`] starts it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: FollowConfig,
        pg: tokio_postgres::Config,
        me: Arc<str>,
        local: &[String],
        catalog: Arc<Catalog>,
        engine: EngineHandle,
        stats: Arc<FleetStats>,
        control: mpsc::UnboundedSender<String>,
    ) -> Self {
        Follower {
            config,
            pg,
            me,
            local: local.iter().cloned().collect(),
            catalog,
            engine,
            stats,
            control,
            shown: Shown::default(),
            ids: HashMap::new(),
            followed: HashSet::new(),
        }
    }

    /// Follow until `stop` turns true (or the engine stops), reconnecting
    /// with backoff whenever the connection ends.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut delay = self.config.reconnect_min;
        let mut failures = 0u64;
        loop {
            let began = tokio::time::Instant::now();
            let ended = self.session(&mut stop).await;
            self.stats.connected.store(false, Relaxed);
            match ended {
                Ok(()) => return,
                Err(FollowError::Engine(_)) => return,
                Err(e) => {
                    FleetStats::add(&self.stats.disconnects, 1);
                    failures += 1;
                    if began.elapsed() > Duration::from_secs(10) {
                        delay = self.config.reconnect_min;
                        failures = 1;
                    }
                    // The first failure of a run, then the 2nd, 4th, 8th...
                    if failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, retry_in_ms = delay.as_millis() as u64,
                            "fleet listener: connection ended; reconnecting");
                    }
                    self.stats.set_error(e.to_string());
                }
            }
            tokio::select! {
                _ = super::stopped(&mut stop) => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.config.reconnect_max);
        }
    }

    /// One connection: LISTEN, resync, follow.
    async fn session(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), FollowError> {
        if *stop.borrow() {
            return Ok(());
        }
        let (client, connection) = within(Duration::from_secs(10), self.pg.connect(tokio_postgres::NoTls)).await??;
        let (tx, mut events) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(connection, tx));
        let _driver = AbortOnDrop(driver);
        within(
            self.config.ping,
            client.batch_execute(&format!("LISTEN {}; LISTEN {}", outbox::CHANNEL, fleet_ops::CHANNEL)),
        )
        .await??;
        FleetStats::add(&self.stats.connects, 1);
        self.stats.connected.store(true, Relaxed);
        self.followed.clear();
        self.resync(&client, None).await?;
        if !self.stats.synced.swap(true, Relaxed) {
            tracing::info!(
                products = self.followed.len(),
                "fleet listener: following the fleet's candles"
            );
        }
        // Anything decided while this connection was away: the agent looks.
        let _ = self.control.send("resynced".into());
        let mut catalog = self.catalog.watch();
        let mut ping = tokio::time::interval(self.config.ping);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = super::stopped(stop) => return Ok(()),
                event = events.recv() => {
                    let mut notes = Vec::new();
                    let mut lost = None;
                    // Everything waiting is merged into one read.
                    let mut next = event;
                    loop {
                        match next {
                            Some(Event::Note { channel, payload }) => notes.push((channel, payload)),
                            Some(Event::Lost(e)) => lost = Some(e),
                            None => lost = Some("the driver ended".into()),
                        }
                        if lost.is_some() {
                            break;
                        }
                        match events.try_recv() {
                            Ok(e) => next = Some(e),
                            Err(_) => break,
                        }
                    }
                    self.notes(&client, notes).await?;
                    if let Some(e) = lost {
                        return Err(FollowError::Lost(e));
                    }
                }
                _ = catalog.changed() => {
                    let new: Vec<String> = self
                        .catalog
                        .products()
                        .list
                        .iter()
                        .filter(|p| !self.local.contains(*p) && !self.followed.contains(*p))
                        .cloned()
                        .collect();
                    if !new.is_empty() {
                        self.resync(&client, Some(new)).await?;
                    }
                }
                _ = ping.tick() => {
                    within(self.config.ping, client.simple_query("SELECT 1")).await??;
                }
            }
        }
    }

    /// Act on a run of notifications.
    async fn notes(
        &mut self,
        client: &tokio_postgres::Client,
        notes: Vec<(String, String)>,
    ) -> Result<(), FollowError> {
        let mut ids = Vec::new();
        let mut resync = false;
        let now = crate::engine::now_ms();
        for (channel, payload) in notes {
            if channel == fleet_ops::CHANNEL {
                let _ = self.control.send(payload);
                continue;
            }
            let notice = Notice::parse(&payload);
            if let Some(Notice::Rows { instance, .. } | Notice::Resync { instance }) = &notice {
                self.stats.heard_from(instance, now);
            }
            match notice {
                Some(Notice::Rows { instance, .. } | Notice::Resync { instance }) if *instance == *self.me => {
                    FleetStats::add(&self.stats.own_notifications, 1);
                }
                Some(Notice::Rows { ids: more, .. }) => {
                    FleetStats::add(&self.stats.notifications, 1);
                    ids.extend(more);
                }
                Some(Notice::Resync { instance }) => {
                    FleetStats::add(&self.stats.notifications, 1);
                    tracing::info!(%instance, "fleet listener: a writer missed notifications; reading every key again");
                    resync = true;
                }
                None => {
                    FleetStats::add(&self.stats.malformed, 1);
                    tracing::warn!(
                        channel,
                        "fleet listener: a notification no spot instance writes; skipped"
                    );
                }
            }
        }
        if resync {
            return self.resync(client, None).await;
        }
        if ids.is_empty() {
            return Ok(());
        }
        let read = within(self.config.ping, outbox::read(client, &ids)).await??;
        self.apply(read.candles).await?;
        if read.missing > 0 {
            // This listener fell behind the outbox's keep: read every key.
            tracing::warn!(
                missing = read.missing,
                "fleet listener: notified rows were already deleted; reading every key again"
            );
            return self.resync(client, None).await;
        }
        Ok(())
    }

    /// Read the current candle of every key of `only` (every followed
    /// product of the catalog when `None`) and apply what is newer.
    async fn resync(&mut self, client: &tokio_postgres::Client, only: Option<Vec<String>>) -> Result<(), FollowError> {
        let products: Vec<String> = match only {
            Some(p) => p,
            None => self
                .catalog
                .products()
                .list
                .iter()
                .filter(|p| !self.local.contains(*p))
                .cloned()
                .collect(),
        };
        let from = self.config.horizon.start(crate::engine::now_ms());
        for chunk in products.chunks(500) {
            let candles = within(
                Duration::from_secs(30),
                outbox::current(client, &self.config.exchange, chunk, from),
            )
            .await??;
            self.apply(candles).await?;
        }
        self.followed.extend(products);
        FleetStats::add(&self.stats.resyncs, 1);
        Ok(())
    }

    /// Conflate `candles` to the newest state per key, keep what is newer
    /// than shown, and have the engine render it.
    async fn apply(&mut self, candles: Vec<RemoteCandle>) -> Result<(), FollowError> {
        FleetStats::add(&self.stats.candles_read, candles.len() as u64);
        let mut newest: HashMap<(Arc<str>, Granularity), RemoteCandle> = HashMap::new();
        let mut stale = 0u64;
        for c in candles {
            if self.local.contains(&*c.product) {
                stale += 1;
                continue;
            }
            let key = (c.product.clone(), c.candle.granularity);
            match newest.get(&key) {
                Some(have) if (have.candle.start, have.revision) >= (c.candle.start, c.revision) => stale += 1,
                _ => {
                    newest.insert(key, c);
                }
            }
        }
        let mut out = Vec::with_capacity(newest.len());
        for (key, c) in newest {
            let at = (c.candle.start, c.revision);
            match self.shown.get(&key) {
                Some(shown) if *shown >= at => stale += 1,
                _ => {
                    self.shown.insert(key, at);
                    out.push(c);
                }
            }
        }
        FleetStats::add(&self.stats.candles_stale, stale);
        if out.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = out
            .iter()
            .filter(|c| !self.ids.contains_key(&c.product))
            .map(|c| c.product.to_string())
            .collect();
        names.sort();
        names.dedup();
        if !names.is_empty() {
            let ids = self.engine.register_products(&names).await?;
            for (name, id) in names.into_iter().zip(ids) {
                self.ids.insert(Arc::from(name), id);
            }
        }
        let n = out.len() as u64;
        let candles = out
            .into_iter()
            .filter_map(|c| {
                let id = *self.ids.get(&c.product)?;
                Some(spot_wire::Candle {
                    product: id,
                    ..c.candle
                })
            })
            .collect();
        self.engine.render(candles).await?;
        FleetStats::add(&self.stats.candles_applied, n);
        self.stats
            .last_applied_ms
            .store(crate::engine::now_ms().max(0) as u64, Relaxed);
        Ok(())
    }
}

/// Drive the connection and forward its notifications, always reading.
async fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>, tx: mpsc::UnboundedSender<Event>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
        let event = match message {
            Some(Ok(AsyncMessage::Notification(n))) => Event::Note {
                channel: n.channel().to_string(),
                payload: n.payload().to_string(),
            },
            Some(Ok(_)) => continue,
            Some(Err(e)) => Event::Lost(e.to_string()),
            None => Event::Lost("the server closed the connection".into()),
        };
        let lost = matches!(event, Event::Lost(_));
        if tx.send(event).is_err() || lost {
            return;
        }
    }
}

async fn within<F: std::future::Future>(limit: Duration, f: F) -> Result<F::Output, FollowError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| FollowError::Timeout(limit))
}

/// Aborts the driver when a connection's session ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
