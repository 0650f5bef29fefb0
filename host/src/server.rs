//! The server assembled: storage, the engine with its component, the writer,
//! restart recovery, the fleet, the history, the feed and HTTP, started in the
//! order the data needs and stopped in the reverse (SIGTERM drains: stop
//! taking input, flush, close, exit). A replica (`ROLE=replica`) starts no
//! writer, restore, history or feed: its streams come from the fleet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use crate::admin::fleet::{FleetMember, FleetTiming};
use crate::admin::{self, Admin};
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, EngineHandle, Limits, Loader, Sandbox};
use crate::feed::{self, Feed, FeedConfig, FeedStats};
use crate::fleet::{Fleet, FleetConfig, FleetParts, FollowConfig, Identity, Role};
use crate::history::{AuditConfig, History, HistoryConfig, HistoryStats, HistoryStore, RepairConfig};
use crate::horizon::Horizon;
use crate::http::{self, AppState};
use crate::hub::{Hub, HubConfig};
use crate::rest::{Budget, Rest};
use crate::storage::components::ComponentStore;
use crate::storage::pairs::TradingPair;
use crate::storage::restore::{self, Restored};
use crate::storage::{self, Writer, WriterConfig, WriterStats};

/// Tunables that are not environment variables.
#[derive(Debug, Clone)]
pub struct Options {
    pub engine: EngineConfig,
    pub writer: WriterConfig,
    pub limits: Limits,
    pub hub: HubConfig,
    /// Gap repair and backfill (the horizon comes from `HISTORY_DAYS`).
    pub repair: RepairConfig,
    /// The audit's settle and pause (its rate is a sixth of `COINBASE_REST_RATE`).
    pub audit_settle: Duration,
    pub audit_pause: Duration,
    /// How long start-up waits for the database to answer.
    pub database_wait: Duration,
    /// Bind HTTP here instead of `HOST:PORT` (tests use `127.0.0.1:0`).
    pub bind: Option<SocketAddr>,
    /// The feed's tunables (its URLs come from the [`Config`]); `None` runs
    /// without a feed (tests that drive the engine themselves).
    pub feed: Option<FeedConfig>,
    /// Check `COMPONENT_PATH` for a new version this often (`None`: never).
    pub component_poll: Option<Duration>,
    /// The fleet's heartbeat, staleness and listener timings.
    pub fleet: FleetConfig,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            engine: EngineConfig::default(),
            writer: WriterConfig::default(),
            limits: Limits::default(),
            hub: HubConfig::default(),
            repair: RepairConfig::default(),
            audit_settle: Duration::from_secs(120),
            audit_pause: Duration::from_secs(60),
            database_wait: Duration::from_secs(30),
            bind: None,
            feed: Some(FeedConfig::default()),
            component_poll: Some(Duration::from_secs(1)),
            fleet: FleetConfig::default(),
        }
    }
}

/// A running server.
pub struct Server {
    engine: Engine,
    /// `None` on a replica.
    writer: Option<Writer>,
    hub: Hub,
    hub_task: tokio::task::JoinHandle<()>,
    pool: Pool,
    addr: SocketAddr,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_http: oneshot::Sender<()>,
    restored: Restored,
    products: Vec<String>,
    feed: Option<Feed>,
    history: Option<History>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    /// Asks whether the page's Datastar client can be reached.
    datastar_probe: Option<tokio::task::JoinHandle<()>>,
    announce: Option<tokio::task::JoinHandle<()>>,
    admin: Arc<Admin>,
    fleet: Fleet,
    agent: tokio::task::JoinHandle<()>,
    stop_agent: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Start everything; returns once the server takes requests.
    pub async fn start(config: &Config, options: Options) -> anyhow::Result<Server> {
        crate::alloc::keep_freed_memory();
        // What is local is checked first: a bad URL or an unreadable or
        // incompatible component fails at once, not after the database wait.
        let pool = storage::pool_with(&config.database_url, 8, Some(options.writer.statement_timeout))
            .context("DATABASE_URL")?;
        let limits = Limits {
            memory_bytes: config.component_memory.unwrap_or(options.limits.memory_bytes),
            ..options.limits.clone()
        };
        let sandbox = Sandbox::new(limits).context("starting the sandbox")?;
        let loader = Loader::new(sandbox.clone(), Some(config.cache_dir.clone()));
        let path = &config.component_path;
        let base_wasm = std::fs::read(path)
            .with_context(|| format!("COMPONENT_PATH: reading the aggregation component {}", path.display()))?;
        let base = loader
            .load_bytes(&base_wasm)
            .with_context(|| format!("COMPONENT_PATH: loading the aggregation component {}", path.display()))?;
        tracing::info!(component = %base, sha256 = %base.sha256, from_cache = base.from_cache,
            "component loaded");

        wait_for_database(&pool, options.database_wait).await?;
        let applied = storage::migrate(&pool).await.context("applying migrations")?;
        let timescale = match pool.get().await {
            Ok(client) => storage::timescale::status(&client).await.ok(),
            Err(_) => None,
        };
        tracing::info!(?applied, timescaledb = ?timescale, "database ready");
        if let Some(advice) = timescale.and_then(|t| t.advice()) {
            tracing::warn!("{advice}");
        }
        let role = config.role;
        let me = Identity::new(role, Some((config.shard_index, config.shard_count)));
        // A component swapped in before a restart (here, or fleet-wide while
        // this instance was away) is kept, unless the deploy changed
        // COMPONENT_PATH since.
        let components = ComponentStore::new(pool.clone(), me.shard.map(|(i, _)| i));
        let (component, fleet_generation, previous) =
            admin::startup_component(&loader, &components, base.clone(), &base_wasm).await?;
        // The horizon decides how long the component keeps a day.
        let horizon = Horizon::new(config.history_days, options.engine.grace);
        let engine_config = crate::engine::EngineConfig {
            retention: horizon.retention(),
            ..options.engine.clone()
        };
        let engine = Engine::start(sandbox, engine_config, component)?;
        let handle = engine.handle();
        if let Some(previous) = previous {
            handle.remember_previous(previous).await?;
        }
        let admin = Arc::new(Admin::new(
            config.admin_token.as_deref(),
            loader.clone(),
            handle.clone(),
            components,
            base.sha256.clone(),
            FleetMember {
                instance: me.instance.clone(),
                timing: FleetTiming {
                    stale_after: options.fleet.stale_after,
                    vote_timeout: options.fleet.vote_timeout,
                    outcome_timeout: options.fleet.outcome_timeout,
                    agent_every: options.fleet.heartbeat,
                },
            },
        ));
        let watcher = options
            .component_poll
            .map(|every| admin::watch::spawn(admin.clone(), config.component_path.clone(), every, every * 4));

        let exchange = options.writer.exchange.clone();
        // Every REST request of the process draws on this one budget.
        let rest = Arc::new(Rest::new(
            &config.coinbase_rest_url,
            Budget::per_second(config.rest_rate),
        )?);
        let products = match role {
            Role::Ingest => {
                let pairs = resolve_products(config, &rest, &pool, &exchange).await?;
                storage::pairs::upsert(&pool, &exchange, &pairs).await?;
                pairs.into_iter().map(|p| p.product_id).collect()
            }
            Role::Replica => Vec::new(),
        };

        // The writer subscribes before the restore so that nothing the engine
        // emits afterwards is missed; it skips the restore's own output. It
        // publishes every flush to the fleet.
        let writer = match role {
            Role::Ingest => Some(Writer::spawn(
                pool.clone(),
                handle.subscribe(1024).await?,
                WriterConfig {
                    publish: Some(me.instance.clone()),
                    ..options.writer.clone()
                },
            )),
            Role::Replica => None,
        };
        let hub = Hub::new(options.hub.clone());
        let hub_task = hub.attach(&handle).await?;
        // The feed connects and subscribes while the engine is restored (the
        // pacing of many connections takes seconds), holding its trades: none
        // reaches the engine before the restore and the history are there.
        let (live_tx, live_rx) = tokio::sync::mpsc::unbounded_channel();
        let held_feed = match (&options.feed, role) {
            (None, _) | (_, Role::Replica) => None,
            (Some(f), Role::Ingest) => Some(
                Feed::start(
                    FeedConfig {
                        ws_url: config.coinbase_ws_url.clone(),
                        products_per_connection: config.products_per_connection,
                        horizon,
                        ..f.clone()
                    },
                    config.credentials.clone(),
                    &products,
                    handle.clone(),
                    (config.shard_index, config.shard_count),
                    Some(live_tx),
                )
                .await?,
            ),
        };
        let now = crate::engine::now_ms();
        let from = horizon.start(now);
        let restored = match role {
            Role::Ingest => {
                let restoring = std::time::Instant::now();
                let restored = restore::restore(&pool, &exchange, &handle, &products, from).await?;
                let completed =
                    restore::complete_the_open(&pool, &exchange, &handle, &products, from, now, options.engine.grace)
                        .await?;
                tracing::info!(
                    candles = restored.candles,
                    skipped = restored.skipped,
                    products = restored.products.len(),
                    completed_now = completed,
                    from,
                    days = horizon.days(),
                    took_ms = restoring.elapsed().as_millis() as u64,
                    read_ms = restored.read.as_millis() as u64,
                    component_ms = restored.applied.as_millis() as u64,
                    "restored the horizon"
                );
                restored
            }
            Role::Replica => Restored::default(),
        };

        // The fleet: announce this instance, follow the others' candles, and
        // take part in fleet-wide swaps.
        let (control_tx, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let fleet = Fleet::start(FleetParts {
            pool: pool.clone(),
            pg: storage::connect_config(&config.database_url).context("DATABASE_URL")?,
            me: me.clone(),
            products: products.clone(),
            engine: handle.clone(),
            writer: writer.as_ref().map(|w| w.stats().clone()),
            follow: FollowConfig {
                exchange: exchange.clone(),
                horizon,
                ping: options.fleet.ping,
                reconnect_min: options.fleet.reconnect_min,
                reconnect_max: options.fleet.reconnect_max,
            },
            config: options.fleet.clone(),
            control: control_tx,
        })
        .await
        .context("joining the fleet")?;
        let (stop_agent, agent_stop) = tokio::sync::watch::channel(false);
        let agent = tokio::spawn(admin::fleet::agent(
            admin.clone(),
            control_rx,
            fleet_generation,
            agent_stop,
        ));

        // The history starts, and the feed's trades flow, after the restore:
        // the component then knows the last stored trade id of every
        // product, so trades missed while this instance was down show up as
        // a gap and get repaired; the rest of the horizon is backfilled.
        let (feed, history) = match held_feed {
            None => (None, None),
            Some(feed) => {
                let history = History::start(
                    HistoryConfig {
                        horizon,
                        repair: options.repair.clone(),
                        backfill: true,
                        audit: config.audit.then(|| AuditConfig {
                            settle: options.audit_settle,
                            pause: options.audit_pause,
                            ..AuditConfig::share_of(config.rest_rate)
                        }),
                    },
                    rest.clone(),
                    handle.clone(),
                    &products,
                    &restored,
                    Some(HistoryStore::new(pool.clone(), &exchange)),
                    live_rx,
                )
                .await?;
                feed.release();
                (Some(feed), Some(history))
            }
        };

        let datastar = http::datastar::Datastar::new(config.datastar_url.clone());
        let datastar_probe = datastar.spawn_probe();
        let state = Arc::new(
            AppState::new(
                pool.clone(),
                exchange,
                fleet.view().catalog().clone(),
                handle,
                writer.as_ref().map(|w| w.stats().clone()),
                hub.clone(),
                datastar.clone(),
            )
            .with_cors(config.allowed_origins.clone())
            .with_source((config.coinbase_ws_url != crate::config::COINBASE_WS).then(|| config.coinbase_ws_url.clone()))
            .with_feed(feed.as_ref().map(|f| f.stats().clone()))
            .with_history(history.as_ref().map(|h| http::HistoryView {
                stats: h.stats().clone(),
                audit: h.audit_enabled(),
                budget: rest.budget().stats().clone(),
                rest_rate: rest.budget().rate(),
            }))
            .with_admin(config.admin_token.is_some().then(|| admin.clone()))
            .with_fleet(Some(fleet.view().clone())),
        );
        let bind = options
            .bind
            .unwrap_or_else(|| SocketAddr::new(config.host, config.port));
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("listening on {bind}"))?;
        let addr = listener.local_addr()?;
        let (stop_http, stopped) = oneshot::channel::<()>();
        let http = tokio::spawn(http::serve::serve(
            listener,
            state,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(2),
        ));
        let active = engine.handle().status().await?.active;
        let connections = feed.as_ref().map_or(0, |f| f.stats().connections.len());
        tracing::info!(
            %addr,
            role = role.name(),
            instance = %me.instance,
            component = %format!("{} {}", active.name, active.version),
            component_sha256 = %active.sha256,
            migrations_applied = applied.len(),
            candles_restored = restored.candles,
            products = products.len(),
            fleet_products = fleet.view().catalog().products().list.len(),
            shard = config.shard_index,
            shards = config.shard_count,
            connections,
            admin = config.admin_token.is_some(),
            "spot-server started: serving HTTP"
        );
        let announce = feed
            .as_ref()
            .map(|f| tokio::spawn(announce_feed_up(f.stats().clone(), f.started())));
        Ok(Server {
            engine,
            writer,
            hub,
            hub_task,
            pool,
            addr,
            http,
            stop_http,
            restored,
            products,
            feed,
            history,
            watcher,
            datastar_probe,
            announce,
            admin,
            fleet,
            agent,
            stop_agent,
        })
    }

    /// Hot swap (HTTP routes only with `ADMIN_TOKEN`; the file watcher always).
    pub fn admin(&self) -> &Arc<Admin> {
        &self.admin
    }

    /// The feed's counters (`None` without a feed).
    pub fn feed_stats(&self) -> Option<&Arc<FeedStats>> {
        self.feed.as_ref().map(|f| f.stats())
    }

    /// The repair, backfill and audit counters (`None` without a feed).
    pub fn history_stats(&self) -> Option<&Arc<HistoryStats>> {
        self.history.as_ref().map(|h| h.stats())
    }

    /// The HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine (the feed's entry point).
    pub fn engine(&self) -> EngineHandle {
        self.engine.handle()
    }

    /// The writer's counters (`None` on a replica).
    pub fn writer_stats(&self) -> Option<&Arc<WriterStats>> {
        self.writer.as_ref().map(|w| w.stats())
    }

    /// The fleet: this instance, the catalog, every shard's liveness.
    pub fn fleet(&self) -> &crate::fleet::FleetView {
        self.fleet.view()
    }

    /// Wait until every candle update so far is stored and in the hub.
    pub async fn sync(&self) -> anyhow::Result<()> {
        self.engine.handle().barrier().await?;
        // (The hub takes each output on the engine's thread: nothing is queued.)
        if let Some(w) = &self.writer {
            w.sync().await?;
        }
        Ok(())
    }

    /// The database pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What the start-up restore read back.
    pub fn restored(&self) -> &Restored {
        &self.restored
    }

    /// The products served.
    pub fn products(&self) -> &[String] {
        &self.products
    }

    /// The SSE hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Drain and stop: streams end and HTTP stops taking requests, the engine
    /// finishes its queued input, the writer stores what it holds.
    pub async fn stop(self) {
        for task in [&self.watcher, &self.announce, &self.datastar_probe]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        if let Some(f) = self.feed {
            f.stop().await;
        }
        let gaps = match self.history {
            Some(h) => Some(h.stop().await),
            None => None,
        };
        self.stop_agent.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.agent).await;
        self.fleet.stop().await;
        self.hub.close();
        let _ = self.stop_http.send(());
        self.engine.shutdown().await;
        self.admin.finish().await;
        if let Some(gaps) = gaps {
            let _ = tokio::time::timeout(Duration::from_secs(1), gaps).await;
        }
        if let Some(w) = self.writer {
            w.finish().await;
        }
        let _ = self.hub_task.await;
        match tokio::time::timeout(Duration::from_secs(3), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP connections still open at shutdown"),
        }
    }
}

/// `PRODUCTS`, or the exchange's online spot products; this shard's share.
/// When the exchange cannot be asked, the products stored by the previous run.
async fn resolve_products(
    config: &Config,
    rest: &Rest,
    pool: &Pool,
    exchange: &str,
) -> anyhow::Result<Vec<TradingPair>> {
    let (index, count) = (config.shard_index, config.shard_count);
    let found = feed::products(rest, config.products.as_deref(), index, count).await;
    let products = match found {
        Ok(p) => p,
        Err(e) => {
            let stored = storage::pairs::list(pool, exchange).await?;
            let ids: Vec<String> = stored.iter().map(|p| p.product_id.clone()).collect();
            let mine = feed::shard::select(&ids, index, count);
            anyhow::ensure!(!mine.is_empty(), "cannot list the products ({e}) and none are stored");
            tracing::warn!(error = %e, products = mine.len(), "cannot list the products; using the stored ones");
            stored.into_iter().filter(|p| mine.contains(&p.product_id)).collect()
        }
    };
    anyhow::ensure!(!products.is_empty(), "shard {index} of {count} has no products");
    tracing::info!(
        products = products.len(),
        shard = index,
        shards = count,
        "products selected"
    );
    Ok(products)
}

/// Log once when every feed connection has subscribed (what `/readyz` waits
/// for), so an operator sees in the log when the service is fully up.
async fn announce_feed_up(stats: Arc<FeedStats>, started: tokio::time::Instant) {
    while !stats.all_started() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!(
        connections = stats.connections.len(),
        live = stats.live(),
        took_ms = started.elapsed().as_millis() as u64,
        "feed up: every connection subscribed"
    );
}

async fn wait_for_database(pool: &Pool, wait: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut delay = Duration::from_millis(100);
    loop {
        match storage::ping(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "waiting for the database");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("the database did not answer")),
        }
    }
}
