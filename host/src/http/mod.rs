//! The HTTP server (axum on hyper): the page, the SSE stream, health and
//! readiness, the history API, admin.
//!
//! - [`serve`]: the accept loop (each connection can be cut by the hub);
//! - [`query`]: the raw query-string parsing and validation every route shares;
//! - [`stream`]: `GET /stream` (Datastar SSE from the [`crate::hub`]);
//! - [`sse_socket`]: the same stream written on the raw socket (what clients get);
//! - [`page`]: `GET /`;
//! - [`assets`]: `GET /assets/{name}` (the page's scripts, style, icon, chart library);
//! - [`cors`]: other origins on `/stream` and `/api/*` (`ALLOWED_ORIGINS`);
//! - [`datastar`]: where the page's Datastar client comes from, and whether it can be reached;
//! - [`api`]: `GET /api/candles`, `GET /api/products`, `GET /api/audit`;
//! - [`health`]: `GET /healthz`, `GET /readyz`;
//! - [`metrics`]: `GET /metrics` (Prometheus text).

pub mod admin;
pub mod api;
pub mod assets;
pub mod cors;
pub mod datastar;
pub mod health;
pub mod metrics;
pub mod page;
pub mod query;
pub mod serve;
pub mod sse_socket;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use deadpool_postgres::Pool;

use crate::engine::EngineHandle;
use crate::feed::FeedStats;
use crate::fleet::{Catalog, FleetView, Products};
use crate::history::HistoryStats;
use crate::hub::Hub;
use crate::rest::BudgetStats;
use crate::storage::WriterStats;

/// What the handlers share.
pub struct AppState {
    pub pool: Pool,
    /// The `exchange` column's value.
    pub exchange: String,
    /// The products served: the whole fleet's.
    pub catalog: Arc<Catalog>,
    pub engine: EngineHandle,
    /// The writer's counters (`None` on a replica, which writes nothing).
    pub writer: Option<Arc<WriterStats>>,
    pub hub: Hub,
    /// Where the page loads the Datastar client from, and whether it can.
    pub datastar: datastar::Datastar,
    /// The exchange feeding the fleet when it is not Coinbase (the fake's
    /// URL): the page says so.
    pub source: Option<String>,
    /// The other origins `/stream` and `/api/*` answer.
    pub cors: cors::Cors,
    /// The feed's counters (`None` when running without a feed).
    pub feed: Option<Arc<FeedStats>>,
    /// Repairs, backfill, audit and the REST budget (`None` without a feed).
    pub history: Option<HistoryView>,
    /// Hot swap (`None` when `ADMIN_TOKEN` is unset: no admin routes).
    pub admin: Option<Arc<crate::admin::Admin>>,
    /// The fleet: every shard's liveness, the listener.
    pub fleet: Option<FleetView>,
}

impl AppState {
    /// State for the handlers; `catalog` holds the products served.
    pub fn new(
        pool: Pool,
        exchange: String,
        catalog: Arc<Catalog>,
        engine: EngineHandle,
        writer: Option<Arc<WriterStats>>,
        hub: Hub,
        datastar: datastar::Datastar,
    ) -> Self {
        AppState {
            pool,
            exchange,
            catalog,
            engine,
            writer,
            hub,
            datastar,
            source: None,
            cors: cors::Cors::default(),
            feed: None,
            history: None,
            admin: None,
            fleet: None,
        }
    }

    /// Say on the page that the market data comes from `source`, not Coinbase.
    pub fn with_source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    /// Answer these other origins on `/stream` and `/api/*`.
    pub fn with_cors(mut self, cors: cors::Cors) -> Self {
        self.cors = cors;
        self
    }

    /// Report the fleet in `/readyz` and `/metrics`.
    pub fn with_fleet(mut self, fleet: Option<FleetView>) -> Self {
        self.fleet = fleet;
        self
    }

    /// The products served now, sorted.
    pub fn products(&self) -> Arc<Products> {
        self.catalog.products()
    }

    /// Report the history's counters in `/metrics`, `/readyz` and `/api/audit`.
    pub fn with_history(mut self, history: Option<HistoryView>) -> Self {
        self.history = history;
        self
    }

    /// Serve the admin routes with this admin.
    pub fn with_admin(mut self, admin: Option<Arc<crate::admin::Admin>>) -> Self {
        self.admin = admin;
        self
    }

    /// Report the feed's counters in `/metrics` and `/readyz`.
    pub fn with_feed(mut self, feed: Option<Arc<FeedStats>>) -> Self {
        self.feed = feed;
        self
    }

    /// Whether `product` is served (by any instance of the fleet).
    pub fn serves(&self, product: &str) -> bool {
        self.catalog.contains(product)
    }
}

/// What HTTP shows of the history.
#[derive(Clone)]
pub struct HistoryView {
    pub stats: Arc<HistoryStats>,
    /// Whether an audit runs.
    pub audit: bool,
    /// The REST budget's counters and its rate.
    pub budget: Arc<BudgetStats>,
    pub rest_rate: f64,
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    // Without ADMIN_TOKEN the admin routes do not exist at all.
    let admin = if state.admin.is_some() {
        admin::routes()
    } else {
        Router::new()
    };
    // What other origins may use (ALLOWED_ORIGINS), preflights included.
    let shared = Router::new()
        .route("/stream", get(stream::stream))
        .route("/api/products", get(api::products))
        .route("/api/candles", get(api::candles))
        .route("/api/audit", get(api::audit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors::layer));
    Router::new()
        .merge(admin)
        .merge(shared)
        .route("/", get(page::page))
        .route("/assets/{name}", get(assets::asset))
        .route("/favicon.ico", get(assets::favicon))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .with_state(state)
}
