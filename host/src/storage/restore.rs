//! Restart recovery: before the feed starts, the 1-minute candles stored since
//! the start of the current UTC day (the previous day too, shortly after
//! midnight) are read back and given to the component as `restore` candles.
//! The component rebuilds every rollup of the open buckets from them, and the
//! last trade id of each minute lets it recognise the trades that the feed's
//! first snapshot sends again. The feed's gap repair then fills the downtime.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use spot_wire::{Candle, Fixed, Granularity};

use super::StorageError;
use crate::engine::{CandleSource, EngineError, EngineHandle};

/// Why the restore failed (the host does not start the feed without it).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the engine refused the restored candles: {0}")]
    Engine(#[from] EngineError),
}

/// What was restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Unix seconds of the first minute read.
    pub from: i64,
    /// 1m candles given to the component.
    pub candles: usize,
    /// Stored rows that are not valid candles (logged, skipped).
    pub skipped: usize,
}

/// Products read per query (bounds the rows held at once to ~72k).
const PRODUCTS_PER_QUERY: usize = 50;

/// The first minute to restore: the UTC day start of `now - lookback`, so a
/// restart just after midnight still completes the previous day.
pub fn restore_from(now_ms: i64, lookback: Duration) -> i64 {
    let t = now_ms.div_euclid(1000) - lookback.as_secs() as i64;
    Granularity::OneDay.bucket_start(t)
}

/// Read the 1m candles of `products` from `from` (unix s) and apply them.
pub async fn restore(
    pool: &Pool,
    exchange: &str,
    engine: &EngineHandle,
    products: &[String],
    from: i64,
) -> Result<Restored, RestoreError> {
    let ids: HashMap<&str, u32> = products
        .iter()
        .map(String::as_str)
        .zip(engine.register_products(products).await?)
        .collect();
    let client = pool.get().await.map_err(StorageError::from)?;
    let statement = client
        .prepare_cached(
            r#"SELECT product_id, extract(epoch FROM "timestamp")::int8, open::text, high::text,
                      low::text, close::text, volume::text, trades, last_trade_id, complete
               FROM live_candles
               WHERE exchange = $1 AND granularity = 'ONE_MINUTE' AND product_id = ANY($2)
                 AND "timestamp" >= to_timestamp($3::int8)
               ORDER BY product_id, "timestamp""#,
        )
        .await
        .map_err(StorageError::from)?;
    let mut restored = Restored {
        from,
        ..Restored::default()
    };
    for chunk in products.chunks(PRODUCTS_PER_QUERY) {
        let rows = client
            .query(&statement, &[&exchange, &chunk, &from])
            .await
            .map_err(StorageError::from)?;
        let mut candles = Vec::with_capacity(rows.len());
        for row in &rows {
            match candle(row, &ids) {
                Ok(c) => candles.push(c),
                Err(e) => {
                    restored.skipped += 1;
                    tracing::warn!(error = %e, "skipping a stored 1m candle that cannot be restored");
                }
            }
        }
        restored.candles += candles.len();
        if !candles.is_empty() {
            engine.apply_candles(candles, CandleSource::Restore).await?;
        }
    }
    Ok(restored)
}

fn candle(row: &tokio_postgres::Row, ids: &HashMap<&str, u32>) -> Result<Candle, StorageError> {
    let product: &str = row.get(0);
    let bad = |what: &str| StorageError::BadRow(format!("{product}: {what}"));
    let product = *ids.get(product).ok_or_else(|| bad("unknown product"))?;
    let value = |i: usize| -> Result<Fixed, StorageError> {
        let text: &str = row.get(i);
        text.parse().map_err(|e| bad(&format!("{text}: {e}")))
    };
    let last_trade_id: Option<i64> = row.get(8);
    let candle = Candle {
        product,
        granularity: Granularity::OneMinute,
        start: row.get(1),
        open: value(2)?,
        high: value(3)?,
        low: value(4)?,
        close: value(5)?,
        volume: value(6)?,
        last_trade_id: last_trade_id.and_then(|id| u64::try_from(id).ok()),
        trades: u32::try_from(row.get::<_, i32>(7)).unwrap_or(0),
        complete: row.get(9),
        authoritative: true,
    };
    if candle.is_well_formed() {
        Ok(candle)
    } else {
        Err(bad("not a well-formed candle"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_starts_at_the_utc_day_of_now_minus_lookback() {
        let day = 1_704_499_200; // 2024-01-06T00:00:00Z
        let hour = Duration::from_secs(3600);
        assert_eq!(restore_from((day + 5 * 3600) * 1000, hour), day);
        assert_eq!(restore_from((day + 1800) * 1000, hour), day - 86_400);
        assert_eq!(restore_from((day + 3600) * 1000, hour), day);
    }
}
