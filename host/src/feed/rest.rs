//! Coinbase's public REST API: the product list (discovery) and 1-minute
//! candles (gap repair). Every request passes one shared [`Pacer`]; throttling
//! (429, and 401, which Coinbase also uses for it) and server errors back off.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use spot_wire::{Candle, Fixed, Granularity};

use super::pacer::Pacer;

/// A REST request that did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Rate limited (429 or 401): try again later.
    #[error("throttled (HTTP {0})")]
    Throttled(u16),
    /// The server failed (5xx) or could not be reached: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request is wrong (4xx): retrying will not help.
    #[error("refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    /// The answer is not what the API documents.
    #[error("unexpected answer: {0}")]
    Malformed(String),
}

impl RestError {
    /// Worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, RestError::Throttled(_) | RestError::Unavailable(_))
    }
}

/// Largest candle window per request (Coinbase refuses around 350).
pub const MAX_BUCKETS: i64 = 300;

/// A client for the public endpoints.
pub struct Rest {
    base: String,
    http: reqwest::Client,
    pacer: Arc<Pacer>,
}

#[derive(Deserialize)]
struct ProductList {
    #[serde(default)]
    products: Vec<ListedProduct>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_cursor: String,
    #[serde(default)]
    has_next: bool,
}

#[derive(Deserialize)]
struct ListedProduct {
    product_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    product_type: String,
    #[serde(default)]
    is_disabled: bool,
    #[serde(default)]
    trading_disabled: bool,
    #[serde(default)]
    alias: String,
}

#[derive(Deserialize)]
struct CandleList {
    #[serde(default)]
    candles: Vec<RestCandle>,
}

#[derive(Deserialize)]
struct RestCandle {
    start: String,
    low: String,
    high: String,
    open: String,
    close: String,
    volume: String,
}

impl Rest {
    /// A client for `base` (`https://api.coinbase.com`), at most
    /// `per_second` requests in any second.
    pub fn new(base: &str, per_second: u32) -> Result<Self, RestError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("spot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Unavailable(e.to_string()))?;
        Ok(Rest {
            base: base.trim_end_matches('/').to_string(),
            http,
            pacer: Arc::new(Pacer::per_second(per_second)),
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<bytes::Bytes, RestError> {
        self.pacer.acquire().await;
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .header("cache-control", "no-cache")
            .send()
            .await
            .map_err(|e| RestError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| RestError::Unavailable(e.without_url().to_string()))?;
        match status {
            200..=299 => Ok(body),
            401 | 429 => Err(RestError::Throttled(status)),
            500..=599 => Err(RestError::Unavailable(format!("HTTP {status}"))),
            _ => Err(RestError::Refused {
                status,
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
        }
    }

    /// The online spot products that can trade, without the USDC aliases of
    /// USD books (they carry the same data), sorted.
    pub async fn products(&self) -> Result<Vec<String>, RestError> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _page in 0..50 {
            let mut query = vec![("product_type", "SPOT".to_string())];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.clone()));
            }
            let body = self.get("/api/v3/brokerage/market/products", &query).await?;
            let list: ProductList = serde_json::from_slice(&body).map_err(|e| RestError::Malformed(e.to_string()))?;
            for p in list.products.into_iter().filter(tradable) {
                // An id goes into URL paths, SQL and pages: one that does not
                // look like BASE-QUOTE is refused, not escaped everywhere.
                if crate::http::query::product(&p.product_id).is_ok() {
                    out.push(p.product_id);
                } else {
                    tracing::warn!(product = ?p.product_id, "the product list has a malformed id; skipped");
                }
            }
            match list.pagination {
                Some(p) if p.has_next && !p.next_cursor.is_empty() && p.next_cursor != cursor => cursor = p.next_cursor,
                _ => break,
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The 1-minute candles of `product` whose start is in `[from, to]` (unix
    /// seconds, at most [`MAX_BUCKETS`] minutes), as authoritative candles for
    /// product id `id`, oldest first. Minutes without trades are absent.
    pub async fn minutes(&self, product: &str, id: u32, from: i64, to: i64) -> Result<Vec<Candle>, RestError> {
        let body = self
            .get(
                &format!("/api/v3/brokerage/market/products/{product}/candles"),
                &[
                    ("start", from.to_string()),
                    ("end", to.to_string()),
                    ("granularity", "ONE_MINUTE".to_string()),
                    ("limit", "350".to_string()),
                ],
            )
            .await?;
        let list: CandleList = serde_json::from_slice(&body).map_err(|e| RestError::Malformed(e.to_string()))?;
        let mut out = Vec::with_capacity(list.candles.len());
        for c in list.candles {
            let candle = to_candle(&c, id).ok_or_else(|| RestError::Malformed(format!("candle {}", c.start)))?;
            // Newest first, and the window edges are the server's choice: keep ours.
            if candle.start >= from && candle.start <= to {
                out.push(candle);
            }
        }
        out.sort_by_key(|c| c.start);
        out.dedup_by_key(|c| c.start);
        Ok(out)
    }
}

fn tradable(p: &ListedProduct) -> bool {
    p.product_type == "SPOT" && p.status == "online" && !p.is_disabled && !p.trading_disabled && p.alias.is_empty()
}

fn to_candle(c: &RestCandle, id: u32) -> Option<Candle> {
    let f = |s: &str| s.parse::<Fixed>().ok();
    let candle = Candle {
        product: id,
        granularity: Granularity::OneMinute,
        start: c.start.parse().ok()?,
        open: f(&c.open)?,
        high: f(&c.high)?,
        low: f(&c.low)?,
        close: f(&c.close)?,
        volume: f(&c.volume)?,
        last_trade_id: None,
        trades: 0,
        complete: true,
        authoritative: true,
    };
    candle.is_well_formed().then_some(candle)
}
