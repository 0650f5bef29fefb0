//! `GET /api/candles` (history from PostgreSQL), `GET /api/products` and
//! `GET /api/audit` (the stored candles against the exchange's).

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::query::{self, BadRequest, Params};
use crate::history::stats::AuditReport;
use crate::product::TradingPair;
use crate::storage::candles::{self, StoredCandle};

/// Rows returned when `limit` is not given, and the most ever returned.
pub const DEFAULT_LIMIT: i64 = 1_000;
pub const MAX_LIMIT: i64 = 5_000;

/// `GET /api/products`: the products the fleet serves, with what the
/// exchange's listing said of them (`trading_pairs`, shared by the fleet).
pub async fn products(State(state): State<Arc<AppState>>) -> Json<Vec<TradingPair>> {
    let served = state.products();
    let mut known: std::collections::HashMap<String, TradingPair> =
        match crate::storage::pairs::list(&state.pool, &state.exchange).await {
            Ok(pairs) => pairs.into_iter().map(|p| (p.product_id.clone(), p)).collect(),
            Err(e) => {
                // The ids alone: the fleet's catalog is in memory.
                tracing::warn!(error = %e, "the trading pairs could not be read; answering with ids only");
                Default::default()
            }
        };
    Json(
        served
            .list
            .iter()
            .map(|id| known.remove(id).unwrap_or_else(|| TradingPair::from_id(id)))
            .collect(),
    )
}

#[derive(Debug, Serialize)]
struct History {
    product: String,
    granularity: &'static str,
    from: i64,
    to: i64,
    candles: Vec<StoredCandle>,
    /// Set when `limit` cut the answer short: the first bucket left out (at
    /// most `to`). Ask again with `from` set to it and the same `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_from: Option<i64>,
}

/// `GET /api/candles?product=P&granularity=G&from=UNIX&to=UNIX&limit=N`.
/// `granularity` defaults to ONE_MINUTE, `to` to now, `from` to `limit`
/// buckets before `to`.
pub async fn candles(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let q = match HistoryQuery::parse(raw.as_deref(), &state) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    // One row more than asked for says whether there is more to read, and
    // where it starts: `next_from` is never past `to` and never empty-handed.
    match candles::candles(
        &state.pool,
        &state.exchange,
        &q.product,
        q.granularity,
        q.from,
        q.to,
        q.limit + 1,
    )
    .await
    {
        Ok(mut candles) => {
            let next_from = (candles.len() as i64 > q.limit)
                .then(|| candles.pop().map(|c| c.timestamp))
                .flatten();
            Json(History {
                product: q.product,
                granularity: q.granularity.name(),
                from: q.from,
                to: q.to,
                candles,
                next_from,
            })
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "history query failed");
            BadRequest::new(StatusCode::SERVICE_UNAVAILABLE, "the candle store is unavailable").into_response()
        }
    }
}

/// `GET /api/audit`: what the audit compared, per granularity: since start,
/// in the pass under way and in the last completed pass, with the latest
/// differences. 404 on an instance without a feed (it audits nothing).
pub async fn audit(State(state): State<Arc<AppState>>) -> Response {
    match &state.history {
        Some(h) => Json::<AuditReport>(h.stats.audit.report(h.audit)).into_response(),
        None => BadRequest::new(StatusCode::NOT_FOUND, "this instance runs no audit").into_response(),
    }
}

/// A checked `/api/candles` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub product: String,
    pub granularity: spot_wire::Granularity,
    /// Unix seconds, `from <= to`.
    pub from: i64,
    pub to: i64,
    /// 1 to [`MAX_LIMIT`].
    pub limit: i64,
}

impl HistoryQuery {
    fn parse(raw: Option<&str>, state: &AppState) -> Result<Self, BadRequest> {
        Self::parse_with(raw, &|p| state.serves(p), crate::engine::now_ms() / 1000)
    }

    /// Parse and check `raw` against whether a product is `served`, with
    /// `now` (unix s) as the default `to`.
    pub fn parse_with(raw: Option<&str>, served: &dyn Fn(&str) -> bool, now: i64) -> Result<Self, BadRequest> {
        let p = Params::parse(raw)?;
        let product = query::served_product(
            p.one("product", "give one product")?
                .ok_or(BadRequest::new(StatusCode::BAD_REQUEST, "product is required"))?,
            served,
        )?;
        let granularity = match p.one("granularity", "give one granularity")? {
            Some(g) => query::granularity(g)?,
            None => spot_wire::Granularity::OneMinute,
        };
        let limit = match p.one("limit", "give one limit")? {
            Some(l) => match l.parse::<i64>() {
                Ok(l) if (1..=MAX_LIMIT).contains(&l) => l,
                _ => {
                    return Err(BadRequest::new(
                        StatusCode::BAD_REQUEST,
                        "limit must be a whole number from 1 to 5000",
                    ));
                }
            },
            None => DEFAULT_LIMIT,
        };
        let to = match p.one("to", "give one to")? {
            Some(t) => query::unix_seconds(t, "to must be unix seconds")?,
            None => now,
        };
        let from = match p.one("from", "give one from")? {
            Some(f) => query::unix_seconds(f, "from must be unix seconds")?,
            None => (to - limit * granularity.seconds()).max(0),
        };
        if from > to {
            return Err(BadRequest::new(StatusCode::BAD_REQUEST, "from must not be after to"));
        }
        Ok(HistoryQuery {
            product,
            granularity,
            from,
            to,
            limit,
        })
    }
}
