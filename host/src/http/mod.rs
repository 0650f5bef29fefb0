//! The HTTP server (axum): health and readiness, the history API; the page,
//! the SSE stream and admin arrive with their issues.
//!
//! - [`query`]: the raw query-string parsing and validation every route shares;
//! - [`api`]: `GET /api/candles`, `GET /api/products`;
//! - [`health`]: `GET /healthz`, `GET /readyz`.

pub mod api;
pub mod health;
pub mod query;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use deadpool_postgres::Pool;

use crate::engine::EngineHandle;
use crate::storage::WriterStats;

/// What the handlers share.
pub struct AppState {
    pub pool: Pool,
    /// The `exchange` column's value.
    pub exchange: String,
    /// The products this instance serves, sorted.
    pub products: Vec<String>,
    product_set: HashSet<String>,
    pub engine: EngineHandle,
    pub writer: Arc<WriterStats>,
}

impl AppState {
    /// State for the handlers; `products` are the ones this instance serves.
    pub fn new(
        pool: Pool,
        exchange: String,
        mut products: Vec<String>,
        engine: EngineHandle,
        writer: Arc<WriterStats>,
    ) -> Self {
        products.sort();
        products.dedup();
        let product_set = products.iter().cloned().collect();
        AppState {
            pool,
            exchange,
            products,
            product_set,
            engine,
            writer,
        }
    }

    /// Whether this instance serves `product`.
    pub fn serves(&self, product: &str) -> bool {
        self.product_set.contains(product)
    }
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/products", get(api::products))
        .route("/api/candles", get(api::candles))
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` resolves, then let the open
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
