//! The fake's public REST endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{HOSTILE_PRODUCT, Shared};

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .route("/api/v3/brokerage/market/products", get(products))
        .route("/api/v3/brokerage/market/products/{id}/candles", get(candles))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "fake REST server ended");
    }
}

fn product(id: &str, status: &str, kind: &str, alias: &str, disabled: bool, trading_disabled: bool) -> Value {
    let (base, quote) = id.split_once('-').unwrap_or((id, ""));
    json!({
        "product_id": id,
        "price": "1.00",
        "base_increment": "0.00000001",
        "quote_increment": "0.01",
        "base_min_size": "0.00000001",
        "base_max_size": "3400",
        "quote_min_size": "1",
        "quote_max_size": "150000000",
        "base_name": base,
        "quote_name": quote,
        "watched": false,
        "is_disabled": disabled,
        "new": false,
        "status": status,
        "cancel_only": false,
        "limit_only": false,
        "post_only": false,
        "trading_disabled": trading_disabled,
        "auction_mode": false,
        "product_type": kind,
        "quote_currency_id": quote,
        "base_currency_id": base,
        "alias": alias,
        "alias_to": [],
        "view_only": false,
        "product_venue": "CBE",
    })
}

async fn products(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.stats.product_requests.fetch_add(1, Ordering::Relaxed);
    let mut list: Vec<Value> = Vec::new();
    for p in &shared.config.products {
        list.push(product(p, "online", "SPOT", "", false, false));
        if shared.config.listing_extras
            && let Some(base) = p.strip_suffix("-USD")
        {
            // The USDC book is an alias of the USD one: same data.
            list.push(product(&format!("{base}-USDC"), "online", "SPOT", p, false, false));
        }
    }
    if shared.config.listing_extras {
        list.push(product("GONE-USD", "delisted", "SPOT", "", false, false));
        list.push(product("HALT-USD", "online", "SPOT", "", false, true));
        list.push(product("OFF-USD", "online", "SPOT", "", true, false));
        list.push(product("BTC-PERP-INTX", "online", "FUTURE", "", false, false));
    }
    if shared.config.hostile_listing {
        // A hostile id in an otherwise tradable listing: it must never reach
        // a URL path or a page.
        list.push(product(HOSTILE_PRODUCT, "online", "SPOT", "", false, false));
    }
    let n = list.len();
    Json(json!({
        "products": list,
        "num_products": n,
        "pagination": {"prev_cursor": "", "next_cursor": "", "has_next": false, "has_prev": false},
    }))
}

fn problem(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "code": status.as_u16(), "message": message, "details": []})),
    )
        .into_response()
}

async fn candles(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    shared.stats.candle_requests.fetch_add(1, Ordering::Relaxed);
    shared.stats.lock().candle_requests.push(Instant::now());
    let injected = shared.rest_faults.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    if let Some(status) = injected {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return problem(status, "INJECTED", "injected failure");
    }
    let seconds = match q.get("granularity").map(String::as_str) {
        Some("ONE_MINUTE") => 60,
        Some("FIVE_MINUTE") => 300,
        Some("FIFTEEN_MINUTE") => 900,
        Some("THIRTY_MINUTE") => 1800,
        Some("ONE_HOUR") => 3600,
        Some("TWO_HOUR") => 7200,
        Some("SIX_HOUR") => 21600,
        Some("ONE_DAY") => 86400,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "granularity argument is invalid",
            );
        }
    };
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(start), Some(end)) = (num("start"), num("end")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "start and end are required",
        );
    };
    if end < start || (end - start) / seconds + 1 > 350 {
        return problem(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "number of candles requested should be less than 350",
        );
    }
    if !shared.market().products().contains(&id) {
        return problem(StatusCode::NOT_FOUND, "NOT_FOUND", "product not found");
    }
    let limit = num("limit").unwrap_or(350).clamp(1, 350) as usize;
    let mut all = shared.market().candles(&id, seconds);
    {
        let skews = shared.skews.lock().unwrap_or_else(|p| p.into_inner());
        for c in all.iter_mut() {
            if let Some(extra) = skews.get(&(id.clone(), seconds, c.start)) {
                c.volume = c.volume.saturating_add(*extra);
            }
        }
    }
    // Newest first; empty buckets omitted; `end` inclusive.
    let list: Vec<Value> = all
        .iter()
        .rev()
        .filter(|c| c.start >= start && c.start <= end)
        .take(limit)
        .map(|c| {
            json!({
                "start": c.start.to_string(),
                "low": c.low.to_string(),
                "high": c.high.to_string(),
                "open": c.open.to_string(),
                "close": c.close.to_string(),
                "volume": c.volume.to_string(),
            })
        })
        .collect();
    Json(json!({ "candles": list })).into_response()
}
