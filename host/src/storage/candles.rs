//! Stored candles as `GET /api/candles` and the audit read them.
//!
//! A stored bucket is only reported complete when no pending window (a gap
//! being repaired, a backfill piece) overlaps it: until then it may still be
//! partial, whatever the component said when it closed it.

use deadpool_postgres::Pool;
use serde::Serialize;
use spot_wire::Granularity;

use super::StorageError;

/// A stored candle as the API returns it. Prices and volumes are exact decimal
/// strings: a JSON number would be rounded to a double by most clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCandle {
    /// Bucket start, unix seconds.
    pub timestamp: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
    /// The trades counted; `None` (JSON `null`) when unknown: the bucket
    /// holds a minute repaired from the exchange's REST candles, which carry
    /// no count.
    pub trades: Option<i32>,
    /// Over, and nothing pending for any of its minutes.
    pub complete: bool,
}

/// Candles of one product and granularity with `from <= timestamp <= to`
/// (unix seconds), oldest first, at most `limit`.
pub async fn candles(
    pool: &Pool,
    exchange: &str,
    product: &str,
    granularity: Granularity,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<StoredCandle>, StorageError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            r#"SELECT extract(epoch FROM "timestamp")::int8, open::text, high::text, low::text,
                      close::text, volume::text,
                      CASE WHEN c.last_trade_id IS NULL THEN NULL
                           WHEN c.granularity = 'ONE_MINUTE' THEN c.trades
                           WHEN EXISTS (
                               SELECT 1 FROM live_candles m
                               WHERE m.exchange = c.exchange AND m.product_id = c.product_id
                                 AND m.granularity = 'ONE_MINUTE' AND m.last_trade_id IS NULL
                                 AND m."timestamp" >= c."timestamp"
                                 AND m."timestamp" < c."timestamp" + make_interval(secs => $7::int8::float8))
                           THEN NULL
                           ELSE c.trades END,
                      complete
                      AND NOT EXISTS (
                          SELECT 1 FROM pending_repairs r
                          WHERE r.exchange = c.exchange AND r.product_id = c.product_id
                            AND r.from_minute < c."timestamp" + make_interval(secs => $7::int8::float8)
                            AND r.to_minute >= c."timestamp")
               FROM live_candles c
               WHERE exchange = $1 AND product_id = $2 AND granularity = $3::text::granularity
                 AND "timestamp" >= to_timestamp($4::int8) AND "timestamp" <= to_timestamp($5::int8)
               ORDER BY "timestamp" LIMIT $6"#,
        )
        .await?;
    Ok(client
        .query(
            &statement,
            &[
                &exchange,
                &product,
                &granularity.name(),
                &from,
                &to,
                &limit,
                &granularity.seconds(),
            ],
        )
        .await?
        .iter()
        .map(|r| StoredCandle {
            timestamp: r.get(0),
            open: r.get(1),
            high: r.get(2),
            low: r.get(3),
            close: r.get(4),
            volume: r.get(5),
            trades: r.get(6),
            complete: r.get(7),
        })
        .collect())
}
