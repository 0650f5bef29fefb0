//! The `trading_pairs` table: the products this service knows.

use deadpool_postgres::Pool;

use super::StorageError;
pub use crate::product::TradingPair;

/// Insert or refresh `pairs`.
pub async fn upsert(pool: &Pool, exchange: &str, pairs: &[TradingPair]) -> Result<u64, StorageError> {
    let client = pool.get().await?;
    let ids: Vec<&str> = pairs.iter().map(|p| p.product_id.as_str()).collect();
    let base: Vec<Option<&str>> = pairs.iter().map(|p| p.base_currency.as_deref()).collect();
    let quote: Vec<Option<&str>> = pairs.iter().map(|p| p.quote_currency.as_deref()).collect();
    let status: Vec<Option<&str>> = pairs.iter().map(|p| p.status.as_deref()).collect();
    // Only plain decimals reach the NUMERIC columns.
    let min: Vec<Option<&str>> = pairs
        .iter()
        .map(|p| p.min_size.as_deref().and_then(crate::product::decimal))
        .collect();
    let max: Vec<Option<&str>> = pairs
        .iter()
        .map(|p| p.max_size.as_deref().and_then(crate::product::decimal))
        .collect();
    // What a pair does not say (a `PRODUCTS` entry names no status) keeps
    // what the exchange said before.
    Ok(client
        .execute(
            "INSERT INTO trading_pairs (exchange, product_id, base_currency, quote_currency, status, min_size, max_size)
             SELECT $1, p, b, q, s, mn::numeric, mx::numeric
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(p, b, q, s, mn, mx)
             ON CONFLICT (exchange, product_id) DO UPDATE SET
                base_currency = COALESCE(EXCLUDED.base_currency, trading_pairs.base_currency),
                quote_currency = COALESCE(EXCLUDED.quote_currency, trading_pairs.quote_currency),
                status = COALESCE(EXCLUDED.status, trading_pairs.status),
                min_size = COALESCE(EXCLUDED.min_size, trading_pairs.min_size),
                max_size = COALESCE(EXCLUDED.max_size, trading_pairs.max_size),
                updated_at = now()",
            &[&exchange, &ids, &base, &quote, &status, &min, &max],
        )
        .await?)
}

/// Every stored pair of `exchange`, by id.
pub async fn list(pool: &Pool, exchange: &str) -> Result<Vec<TradingPair>, StorageError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT product_id, base_currency, quote_currency, status, min_size::text, max_size::text
             FROM trading_pairs WHERE exchange = $1 ORDER BY product_id",
            &[&exchange],
        )
        .await?
        .iter()
        .map(|r| TradingPair {
            product_id: r.get(0),
            base_currency: r.get(1),
            quote_currency: r.get(2),
            status: r.get(3),
            min_size: r.get(4),
            max_size: r.get(5),
        })
        .collect())
}
