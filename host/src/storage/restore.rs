//! Restart recovery: before the feed's trades flow, the 1-minute candles stored
//! within the horizon (the current and the previous UTC day by default) are
//! read back and given to the component as `restore` candles. The component
//! rebuilds every rollup from them, and the last trade id of each minute lets
//! it recognise the trades that the feed's first snapshot sends again. The gap
//! repair then fills the downtime.
//!
//! A bucket that was open at the stop and is over by the start would stay
//! open forever (the component reports a bucket complete once, when the clock
//! passes its end, and the restore reports nothing): [`complete_the_open`]
//! applies the last stored minute of each such bucket again, as a repair that
//! keeps its trade id, so the component reports it and every bucket holding
//! it with their completion now.

use std::collections::HashMap;
use std::sync::Arc;
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
    /// Per product with stored minutes: what the backfill needs to know.
    pub products: HashMap<String, RestoredProduct>,
    /// Time spent reading (and parsing) the rows, summed over the readers
    /// (they read at once), and in the component.
    pub read: Duration,
    pub applied: Duration,
}

/// What the restore found of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoredProduct {
    /// Its earliest stored minute (unix s).
    pub earliest: i64,
    /// Some minute carried a last trade id: the component knows which of its
    /// trades are counted, so a downtime shows as a jump.
    pub has_trade_id: bool,
}

/// Products read per query (bounds the rows held at once to ~144k for two days).
const PRODUCTS_PER_QUERY: usize = 50;

/// Connections reading at once (a day of 900 products: 2 readers 1.7–1.8 s,
/// 3 readers 1.75–2.15 s, 4 readers 1.66–1.88 s; the two cores are the bound).
const READERS: usize = 4;

/// Read the 1m candles of `products` from `from` (unix s) and apply them.
pub async fn restore(
    pool: &Pool,
    exchange: &str,
    engine: &EngineHandle,
    products: &[String],
    from: i64,
) -> Result<Restored, RestoreError> {
    let ids: HashMap<String, u32> = products
        .iter()
        .cloned()
        .zip(engine.register_products(products).await?)
        .collect();
    let mut restored = Restored {
        from,
        ..Restored::default()
    };
    // Reading and parsing the next products overlaps applying the last: the
    // database, the readers and the engine work at once. Products are
    // independent, so [`READERS`] connections read every READERS-th chunk
    // and the engine applies them in the order they come.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk, StorageError>>(READERS);
    let chunks: Vec<Vec<String>> = products.chunks(PRODUCTS_PER_QUERY).map(<[String]>::to_vec).collect();
    let ids = Arc::new(ids);
    let readers: Vec<_> = (0..READERS.min(chunks.len()).max(1))
        .map(|k| {
            let pool = pool.clone();
            let exchange = exchange.to_string();
            let mine: Vec<Vec<String>> = chunks.iter().skip(k).step_by(READERS).cloned().collect();
            let (tx, ids) = (tx.clone(), ids.clone());
            tokio::spawn(async move {
                let read = async {
                    let client = pool.get().await?;
                    let statement = client
                        .prepare_cached(
                            r#"SELECT product_id, extract(epoch FROM "timestamp")::int8, open, high,
                                  low, close, volume, trades, last_trade_id, complete
                           FROM live_candles
                           WHERE exchange = $1 AND granularity = 'ONE_MINUTE' AND product_id = ANY($2)
                             AND "timestamp" >= to_timestamp($3::int8)"#,
                        )
                        .await?;
                    for chunk in &mine {
                        let reading = std::time::Instant::now();
                        let rows = client.query(&statement, &[&exchange, chunk, &from]).await?;
                        let mut parsed = Chunk::parse(&rows, &ids, chunk);
                        parsed.took = reading.elapsed();
                        if tx.send(Ok(parsed)).await.is_err() {
                            break;
                        }
                    }
                    Ok::<(), StorageError>(())
                };
                if let Err(e) = read.await {
                    let _ = tx.send(Err(e)).await;
                }
            })
        })
        .collect();
    drop(tx);
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        restored.read += chunk.took;
        restored.skipped += chunk.skipped;
        restored.candles += chunk.candles.len();
        restored.products.extend(chunk.products);
        if !chunk.candles.is_empty() {
            let applying = std::time::Instant::now();
            engine.apply_candles(chunk.candles, CandleSource::Restore).await?;
            restored.applied += applying.elapsed();
        }
    }
    for reader in readers {
        let _ = reader.await;
    }
    Ok(restored)
}

/// Buckets stored as open whose end plus `grace` is before `now_ms`: apply
/// the last stored minute of each again as a repair (keeping its trade id),
/// so they end complete: stored, streamed and in the API. Returns how many
/// minutes were applied.
pub async fn complete_the_open(
    pool: &Pool,
    exchange: &str,
    engine: &EngineHandle,
    products: &[String],
    from: i64,
    now_ms: i64,
    grace: Duration,
) -> Result<usize, RestoreError> {
    let ids: HashMap<String, u32> = products
        .iter()
        .cloned()
        .zip(engine.register_products(products).await?)
        .collect();
    let seconds = Granularity::ALL
        .iter()
        .map(|g| format!("WHEN '{}' THEN {}", g.name(), g.seconds()))
        .collect::<Vec<_>>()
        .join(" ");
    let client = pool.get().await.map_err(StorageError::from)?;
    let rows = client
        .query(
            &format!(
                r#"SELECT DISTINCT ON (m.product_id, m."timestamp")
                          m.product_id, extract(epoch FROM m."timestamp")::int8, m.open, m.high,
                          m.low, m.close, m.volume, m.trades, m.last_trade_id, m.complete
                   FROM live_candles b
                   CROSS JOIN LATERAL (SELECT CASE b.granularity::text {seconds} END AS seconds) d
                   JOIN LATERAL (
                       SELECT * FROM live_candles m
                       WHERE m.exchange = b.exchange AND m.product_id = b.product_id
                         AND m.granularity = 'ONE_MINUTE'
                         AND m."timestamp" >= b."timestamp"
                         AND m."timestamp" < b."timestamp" + make_interval(secs => d.seconds)
                       ORDER BY m."timestamp" DESC LIMIT 1) m ON true
                   WHERE b.exchange = $1 AND b.product_id = ANY($2) AND NOT b.complete
                     AND b."timestamp" >= to_timestamp($3::int8)
                     AND extract(epoch FROM b."timestamp")::int8 + d.seconds + $4::int8 <= $5::int8
                   ORDER BY m.product_id, m."timestamp""#
            ),
            &[
                &exchange,
                &products,
                &from,
                &(grace.as_secs_f64().ceil() as i64),
                &now_ms.div_euclid(1000),
            ],
        )
        .await
        .map_err(StorageError::from)?;
    let mut minutes = Vec::with_capacity(rows.len());
    for row in &rows {
        match candle(row, &ids) {
            Ok(c) => minutes.push(c),
            Err(e) => tracing::warn!(error = %e, "skipping a stored 1m candle that cannot be completed"),
        }
    }
    let n = minutes.len();
    if n > 0 {
        engine.apply_candles(minutes, CandleSource::Repair).await?;
    }
    Ok(n)
}

/// One query's candles, parsed.
struct Chunk {
    candles: Vec<Candle>,
    products: Vec<(String, RestoredProduct)>,
    skipped: usize,
    took: Duration,
}

impl Chunk {
    /// Rows of `names` in any order (the database does not sort them: a
    /// sort by product and time took it three times as long as the scan,
    /// text comparisons under the collation). They are sorted here, by
    /// product and time, which is the order the engine is given.
    fn parse(rows: &[tokio_postgres::Row], ids: &HashMap<String, u32>, names: &[String]) -> Chunk {
        let mut candles = Vec::with_capacity(rows.len());
        let mut skipped = 0;
        for row in rows {
            match candle(row, ids) {
                Ok(c) => candles.push(c),
                Err(e) => {
                    skipped += 1;
                    tracing::warn!(error = %e, "skipping a stored 1m candle that cannot be restored");
                }
            }
        }
        candles.sort_unstable_by_key(|c| (c.product, c.start));
        let mut found: HashMap<u32, RestoredProduct> = HashMap::new();
        for run in candles.chunk_by(|a, b| a.product == b.product) {
            found.insert(
                run[0].product,
                RestoredProduct {
                    earliest: run[0].start,
                    has_trade_id: run.iter().any(|c| c.last_trade_id.is_some()),
                },
            );
        }
        let products = names
            .iter()
            .filter_map(|name| Some((name.clone(), *found.get(ids.get(name)?)?)))
            .collect();
        Chunk {
            candles,
            products,
            skipped,
            took: Duration::ZERO,
        }
    }
}

fn candle(row: &tokio_postgres::Row, ids: &HashMap<String, u32>) -> Result<Candle, StorageError> {
    let product: &str = row.get(0);
    let bad = |what: &str| StorageError::BadRow(format!("{product}: {what}"));
    let product = *ids.get(product).ok_or_else(|| bad("unknown product"))?;
    // NUMERIC in its binary form, straight into a Fixed (storage::numeric).
    let value = |i: usize| -> Result<Fixed, StorageError> {
        row.try_get::<_, super::numeric::Numeric>(i)
            .map(|n| n.0)
            .map_err(|e| bad(&format!("column {i}: {e}")))
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
