//! Coinbase's public REST API: the product list (discovery) and candles at
//! every granularity (gap repair, backfill, audit). Every request of the
//! process passes one [`Budget`]; throttling (429, and 401, which Coinbase
//! also uses for it) and server errors are transient.
//!
//! - [`budget`]: the one allowance of requests, granted by priority.

pub mod budget;

use std::time::Duration;

use serde::Deserialize;
use spot_wire::{Candle, Fixed, Granularity};

use crate::product::TradingPair;

pub use budget::{Budget, BudgetStats, Priority};

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

/// Most buckets asked for in one candle request (Coinbase refuses somewhere
/// around 350; reports disagree whether 350 itself passes).
pub const MAX_BUCKETS: i64 = 300;

/// Coinbase's name of a granularity in the candles endpoint (singular, unlike
/// the seed's stored names: `FIVE_MINUTE`, not `FIVE_MINUTES`).
pub fn granularity_name(g: Granularity) -> &'static str {
    match g {
        Granularity::OneMinute => "ONE_MINUTE",
        Granularity::FiveMinutes => "FIVE_MINUTE",
        Granularity::FifteenMinutes => "FIFTEEN_MINUTE",
        Granularity::ThirtyMinutes => "THIRTY_MINUTE",
        Granularity::OneHour => "ONE_HOUR",
        Granularity::TwoHours => "TWO_HOUR",
        Granularity::SixHours => "SIX_HOUR",
        Granularity::OneDay => "ONE_DAY",
    }
}

/// One candle as the exchange reports it (no trade count, no trade ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeCandle {
    /// Bucket start, unix seconds.
    pub start: i64,
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
}

impl ExchangeCandle {
    /// As an authoritative 1-minute candle of product id `id` (sealed: it
    /// carries no trade id, so later trades of that minute are ignored).
    pub fn to_minute(&self, id: u32) -> Candle {
        Candle {
            product: id,
            granularity: Granularity::OneMinute,
            start: self.start,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            last_trade_id: None,
            trades: 0,
            complete: true,
            authoritative: true,
        }
    }
}

/// A client for the public endpoints.
pub struct Rest {
    base: String,
    http: reqwest::Client,
    budget: Budget,
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
    #[serde(default)]
    base_currency_id: String,
    #[serde(default)]
    quote_currency_id: String,
    #[serde(default)]
    base_min_size: String,
    #[serde(default)]
    base_max_size: String,
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
    /// A client for `base` (`https://api.coinbase.com`) whose requests all
    /// draw on `budget`.
    pub fn new(base: &str, budget: Budget) -> Result<Self, RestError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("spot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Unavailable(e.to_string()))?;
        Ok(Rest {
            base: base.trim_end_matches('/').to_string(),
            http,
            budget,
        })
    }

    /// The budget every request draws on.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    async fn get(&self, path: &str, query: &[(&str, String)], priority: Priority) -> Result<bytes::Bytes, RestError> {
        self.budget.acquire(priority).await;
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
    pub async fn products(&self) -> Result<Vec<TradingPair>, RestError> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _page in 0..50 {
            let mut query = vec![("product_type", "SPOT".to_string())];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.clone()));
            }
            let body = self
                .get("/api/v3/brokerage/market/products", &query, Priority::Repair)
                .await?;
            let page = parse_products_page(&body)?;
            for id in page.malformed {
                tracing::warn!(product = ?id, "the product list has a malformed id; skipped");
            }
            out.extend(page.products);
            match page.next_cursor {
                Some(next) if next != cursor => cursor = next,
                _ => break,
            }
        }
        out.sort_by(|a: &TradingPair, b: &TradingPair| a.product_id.cmp(&b.product_id));
        out.dedup_by(|a, b| a.product_id == b.product_id);
        Ok(out)
    }

    /// The candles of `product` at `g` whose start is in `[from, to]` (unix
    /// seconds, at most [`MAX_BUCKETS`] buckets), oldest first. Buckets
    /// without trades are absent: an empty answer is not a failure.
    pub async fn candles(
        &self,
        product: &str,
        g: Granularity,
        from: i64,
        to: i64,
        priority: Priority,
    ) -> Result<Vec<ExchangeCandle>, RestError> {
        let body = self
            .get(
                &format!("/api/v3/brokerage/market/products/{product}/candles"),
                &[
                    ("start", from.to_string()),
                    ("end", to.to_string()),
                    ("granularity", granularity_name(g).to_string()),
                    ("limit", "350".to_string()),
                ],
                priority,
            )
            .await?;
        parse_candles(&body, from, to)
    }

    /// [`Rest::candles`] at one minute, as authoritative candles of product id `id`.
    pub async fn minutes(
        &self,
        product: &str,
        id: u32,
        from: i64,
        to: i64,
        priority: Priority,
    ) -> Result<Vec<Candle>, RestError> {
        Ok(self
            .candles(product, Granularity::OneMinute, from, to, priority)
            .await?
            .iter()
            .map(|c| c.to_minute(id))
            .collect())
    }
}

/// One page of the product list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductsPage {
    /// The tradable spot products with a well-formed id.
    pub products: Vec<TradingPair>,
    /// Tradable ones whose id is not `BASE-QUOTE` (skipped: an id goes into
    /// URL paths, SQL and pages, so it is refused, not escaped everywhere).
    pub malformed: Vec<String>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// Parse one page of `GET /api/v3/brokerage/market/products`.
pub fn parse_products_page(body: &[u8]) -> Result<ProductsPage, RestError> {
    let list: ProductList = serde_json::from_slice(body).map_err(|e| RestError::Malformed(e.to_string()))?;
    let mut page = ProductsPage::default();
    for p in list.products.into_iter().filter(tradable) {
        if crate::product::valid(&p.product_id).is_ok() {
            let text = |s: String| (!s.is_empty()).then_some(s);
            let size = |s: &str| crate::product::decimal(s).map(str::to_string);
            let mut pair = TradingPair::from_id(&p.product_id);
            pair.base_currency = text(p.base_currency_id).or(pair.base_currency);
            pair.quote_currency = text(p.quote_currency_id).or(pair.quote_currency);
            pair.status = text(p.status);
            pair.min_size = size(&p.base_min_size);
            pair.max_size = size(&p.base_max_size);
            page.products.push(pair);
        } else {
            page.malformed.push(p.product_id);
        }
    }
    page.next_cursor = list
        .pagination
        .filter(|p| p.has_next && !p.next_cursor.is_empty())
        .map(|p| p.next_cursor);
    Ok(page)
}

/// The candles of an answer with a start in `[from, to]`, oldest first.
pub fn parse_candles(body: &[u8], from: i64, to: i64) -> Result<Vec<ExchangeCandle>, RestError> {
    let list: CandleList = serde_json::from_slice(body).map_err(|e| RestError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(list.candles.len());
    for c in list.candles {
        let candle = to_candle(&c).ok_or_else(|| RestError::Malformed(format!("candle {:?}", c.start)))?;
        // Newest first, and the window edges are the server's choice: keep ours.
        if candle.start >= from && candle.start <= to {
            out.push(candle);
        }
    }
    out.sort_by_key(|c| c.start);
    out.dedup_by_key(|c| c.start);
    Ok(out)
}

fn tradable(p: &ListedProduct) -> bool {
    p.product_type == "SPOT" && p.status == "online" && !p.is_disabled && !p.trading_disabled && p.alias.is_empty()
}

fn to_candle(c: &RestCandle) -> Option<ExchangeCandle> {
    let f = |s: &str| s.parse::<Fixed>().ok();
    let candle = ExchangeCandle {
        start: c.start.parse().ok()?,
        open: f(&c.open)?,
        high: f(&c.high)?,
        low: f(&c.low)?,
        close: f(&c.close)?,
        volume: f(&c.volume)?,
    };
    candle.to_minute(0).is_well_formed().then_some(candle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_names_are_coinbases_singular_ones() {
        let names: Vec<&str> = Granularity::ALL.iter().map(|g| granularity_name(*g)).collect();
        assert_eq!(
            names,
            [
                "ONE_MINUTE",
                "FIVE_MINUTE",
                "FIFTEEN_MINUTE",
                "THIRTY_MINUTE",
                "ONE_HOUR",
                "TWO_HOUR",
                "SIX_HOUR",
                "ONE_DAY"
            ]
        );
    }

    #[test]
    fn candles_are_sorted_kept_inside_the_window_and_checked() {
        let body = br#"{"candles":[
            {"start":"180","low":"1","high":"3","open":"2","close":"2.5","volume":"10"},
            {"start":"120","low":"1","high":"1","open":"1","close":"1","volume":"0.5"},
            {"start":"60","low":"1","high":"1","open":"1","close":"1","volume":"1"}]}"#;
        let c = parse_candles(body, 100, 200).unwrap();
        assert_eq!(c.iter().map(|c| c.start).collect::<Vec<_>>(), [120, 180]);
        assert_eq!(c[1].close, "2.5".parse().unwrap());
        // High below low is not a candle.
        let bad = br#"{"candles":[{"start":"60","low":"5","high":"1","open":"1","close":"1","volume":"1"}]}"#;
        assert!(matches!(parse_candles(bad, 0, 100), Err(RestError::Malformed(_))));
        assert!(matches!(parse_candles(b"<html>", 0, 1), Err(RestError::Malformed(_))));
        assert!(parse_candles(br#"{"candles":[]}"#, 0, 1).unwrap().is_empty());
    }
}
