//! The `trading_pairs` table: the products this service knows.

use deadpool_postgres::Pool;
use serde::Serialize;

use super::StorageError;

/// One product as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradingPair {
    pub product_id: String,
    pub base_currency: Option<String>,
    pub quote_currency: Option<String>,
    pub status: Option<String>,
}

impl TradingPair {
    /// A pair known only by its id (`BASE-QUOTE`), e.g. from `PRODUCTS`.
    pub fn from_id(id: &str) -> Self {
        let (base, quote) = match id.split_once('-') {
            Some((b, q)) => (Some(b.to_string()), Some(q.to_string())),
            None => (None, None),
        };
        TradingPair {
            product_id: id.to_string(),
            base_currency: base,
            quote_currency: quote,
            status: None,
        }
    }
}

/// Insert or refresh `pairs`.
pub async fn upsert(pool: &Pool, exchange: &str, pairs: &[TradingPair]) -> Result<u64, StorageError> {
    let client = pool.get().await?;
    let ids: Vec<&str> = pairs.iter().map(|p| p.product_id.as_str()).collect();
    let base: Vec<Option<&str>> = pairs.iter().map(|p| p.base_currency.as_deref()).collect();
    let quote: Vec<Option<&str>> = pairs.iter().map(|p| p.quote_currency.as_deref()).collect();
    let status: Vec<Option<&str>> = pairs.iter().map(|p| p.status.as_deref()).collect();
    Ok(client
        .execute(
            "INSERT INTO trading_pairs (exchange, product_id, base_currency, quote_currency, status)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[])
             ON CONFLICT (exchange, product_id) DO UPDATE SET
                base_currency = EXCLUDED.base_currency, quote_currency = EXCLUDED.quote_currency,
                status = EXCLUDED.status, updated_at = now()",
            &[&exchange, &ids, &base, &quote, &status],
        )
        .await?)
}

/// Every stored pair of `exchange`, by id.
pub async fn list(pool: &Pool, exchange: &str) -> Result<Vec<TradingPair>, StorageError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT product_id, base_currency, quote_currency, status FROM trading_pairs
             WHERE exchange = $1 ORDER BY product_id",
            &[&exchange],
        )
        .await?
        .iter()
        .map(|r| TradingPair {
            product_id: r.get(0),
            base_currency: r.get(1),
            quote_currency: r.get(2),
            status: r.get(3),
        })
        .collect())
}
