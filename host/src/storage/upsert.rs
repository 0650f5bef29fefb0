//! The set-based upsert of candle rows: one statement per batch, the batch's
//! columns bound as arrays and expanded with `UNNEST`.
//!
//! Numbers travel as text and are cast to `numeric` by the server: exact
//! (binding `f64` keeps ~15 digits), and as fast as binary numeric.

use deadpool_postgres::GenericClient;
use spot_wire::Candle;

use super::StorageError;

/// One row to write: the candle of `product`, at `revision`.
#[derive(Debug, Clone, Copy)]
pub struct CandleRow<'a> {
    pub product: &'a str,
    pub candle: &'a Candle,
    /// Orders writes of one key: the stored row only changes for a newer one.
    pub revision: i64,
}

/// The insert's column list, shared by both statements.
macro_rules! insert_into {
    () => {
        r#"INSERT INTO live_candles AS c (exchange, product_id, granularity, "timestamp",
    open, high, low, close, volume, trades, last_trade_id, complete, revision)
"#
    };
}

/// A write changes a stored row only when its revision is newer: a stale write
/// (a retried batch, an instance that is shutting down) never wins.
macro_rules! on_conflict {
    () => {
        r#"
ON CONFLICT (exchange, product_id, granularity, "timestamp") DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, trades = EXCLUDED.trades, last_trade_id = EXCLUDED.last_trade_id,
    complete = EXCLUDED.complete, revision = EXCLUDED.revision, updated_at = now()
WHERE c.revision < EXCLUDED.revision"#
    };
}

/// The batch upsert: the columns bound as arrays, expanded with `UNNEST`.
const UPSERT: &str = concat!(
    insert_into!(),
    r#"SELECT $1, u.product_id, u.granularity::granularity, to_timestamp(u.ts),
    u.open::numeric, u.high::numeric, u.low::numeric, u.close::numeric, u.volume::numeric,
    u.trades, u.last_trade_id, u.complete, u.revision
FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::int4[], $11::int8[], $12::bool[], $13::int8[])
    AS u(product_id, granularity, ts, open, high, low, close, volume, trades, last_trade_id, complete, revision)"#,
    on_conflict!()
);

/// The same write, one row per statement: the baseline the benchmark compares with.
pub const UPSERT_ONE: &str = concat!(
    insert_into!(),
    r#"VALUES ($1, $2, $3::text::granularity, to_timestamp($4::int8), $5::text::numeric, $6::text::numeric,
    $7::text::numeric, $8::text::numeric, $9::text::numeric, $10, $11, $12, $13)"#,
    on_conflict!()
);

/// Write `rows` in one statement. The rows must have distinct keys (PostgreSQL
/// refuses to update one row twice in a statement): the writer coalesces first.
pub async fn upsert<'a, C: GenericClient>(
    client: &C,
    exchange: &str,
    rows: impl ExactSizeIterator<Item = CandleRow<'a>>,
) -> Result<u64, StorageError> {
    let n = rows.len();
    let mut product = Vec::with_capacity(n);
    let mut granularity = Vec::with_capacity(n);
    let mut ts = Vec::with_capacity(n);
    let mut values: [Vec<String>; 5] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut trades = Vec::with_capacity(n);
    let mut last_trade_id = Vec::with_capacity(n);
    let mut complete = Vec::with_capacity(n);
    let mut revision = Vec::with_capacity(n);
    for r in rows {
        let c = r.candle;
        product.push(r.product);
        granularity.push(c.granularity.name());
        ts.push(c.start);
        for (col, v) in values.iter_mut().zip([c.open, c.high, c.low, c.close, c.volume]) {
            col.push(v.to_string());
        }
        trades.push(i32::try_from(c.trades).unwrap_or(i32::MAX));
        last_trade_id.push(stored_trade_id(c.last_trade_id));
        complete.push(c.complete);
        revision.push(r.revision);
    }
    let statement = client.prepare_cached(UPSERT).await?;
    let [open, high, low, close, volume] = &values;
    Ok(client
        .execute(
            &statement,
            &[
                &exchange,
                &product,
                &granularity,
                &ts,
                open,
                high,
                low,
                close,
                volume,
                &trades,
                &last_trade_id,
                &complete,
                &revision,
            ],
        )
        .await?)
}

/// Write one row with one statement (the baseline; the writer never does this).
pub async fn upsert_one<C: GenericClient>(client: &C, exchange: &str, row: CandleRow<'_>) -> Result<u64, StorageError> {
    let c = row.candle;
    let statement = client.prepare_cached(UPSERT_ONE).await?;
    let [open, high, low, close, volume] = [c.open, c.high, c.low, c.close, c.volume].map(|v| v.to_string());
    Ok(client
        .execute(
            &statement,
            &[
                &exchange,
                &row.product,
                &c.granularity.name(),
                &c.start,
                &open,
                &high,
                &low,
                &close,
                &volume,
                &i32::try_from(c.trades).unwrap_or(i32::MAX),
                &stored_trade_id(c.last_trade_id),
                &c.complete,
                &row.revision,
            ],
        )
        .await?)
}

/// Trade ids are stored as BIGINT; Coinbase's fit. One that does not is stored
/// as unknown rather than wrapped into a wrong id.
fn stored_trade_id(id: Option<u64>) -> Option<i64> {
    id.and_then(|id| i64::try_from(id).ok())
}
