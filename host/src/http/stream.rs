//! `GET /stream?product=P&granularity=G` (both repeatable; no granularity =
//! all eight): Datastar SSE of the subscribed candles, current state first.
//! Datastar's `datastar` query parameter and `Datastar-Request` and
//! `last-event-id` headers are accepted; a reconnecting client gets the
//! current state again, which is all a candle needs.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::query::{self, BadRequest, Params};
use super::serve::CutConnection;
use crate::hub::{HubError, Key};

/// Parse and check the subscription: every product served, every granularity
/// known, not more pairs than the hub allows.
pub fn subscription(raw: Option<&str>, state: &AppState) -> Result<Vec<Key>, BadRequest> {
    parse_subscription(raw, &|p| state.serves(p), state.hub.config().max_subscriptions)
}

/// [`subscription`] with what it checks against given: whether a product is
/// `served`, and the most pairs (`max`).
pub fn parse_subscription(
    raw: Option<&str>,
    served: &dyn Fn(&str) -> bool,
    max: usize,
) -> Result<Vec<Key>, BadRequest> {
    let p = Params::parse(raw)?;
    let mut products: Vec<Arc<str>> = Vec::new();
    for value in p.all("product") {
        let product = query::served_product(value, served)?;
        if !products.iter().any(|p| **p == *product) {
            products.push(Arc::from(product));
        }
    }
    if products.is_empty() {
        return Err(BadRequest::new(StatusCode::BAD_REQUEST, "product is required"));
    }
    let granularities = query::granularities(&p)?;
    if products.len() * granularities.len() > max {
        return Err(BadRequest::new(StatusCode::BAD_REQUEST, "too many subscriptions"));
    }
    Ok(products
        .iter()
        .flat_map(|p| granularities.iter().map(move |g| (p.clone(), *g)))
        .collect())
}

/// The answer to a subscription the hub refused.
pub fn refused(e: HubError) -> BadRequest {
    match e {
        HubError::Full => BadRequest::new(StatusCode::SERVICE_UNAVAILABLE, "too many clients"),
        HubError::Closed => BadRequest::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

/// The SSE response.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    cut: Option<axum::Extension<CutConnection>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let keys = match subscription(raw.as_deref(), &state) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let subscription = match state.hub.subscribe(keys, cut.map(|c| c.0.0.clone())) {
        Ok(s) => s,
        Err(e) => return refused(e).into_response(),
    };
    let body = Body::from_stream(futures_util::stream::unfold(subscription, |mut s| async move {
        let bytes = s.next().await?;
        Some((Ok::<_, Infallible>(bytes), s))
    }));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    for (name, value) in HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The headers of a stream's response, here and on the raw socket
/// (`sse_socket`, which adds `connection: close`): no caching, and no
/// buffering by a proxy (nginx honours `x-accel-buffering`).
pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];
