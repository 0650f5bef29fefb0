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

/// The rows: the batch's columns bound as arrays (`$2..$13`, after the
/// exchange `$1`), expanded with `UNNEST`.
macro_rules! unnest_rows {
    () => {
        r#"SELECT $1, u.product_id, u.granularity::granularity, to_timestamp(u.ts),
    u.open::numeric, u.high::numeric, u.low::numeric, u.close::numeric, u.volume::numeric,
    u.trades, u.last_trade_id, u.complete, u.revision
FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::int4[], $11::int8[], $12::bool[], $13::int8[])
    AS u(product_id, granularity, ts, open, high, low, close, volume, trades, last_trade_id, complete, revision)"#
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
const UPSERT: &str = concat!(insert_into!(), unnest_rows!(), on_conflict!());

/// The same write, one row per statement: the baseline the benchmark compares with.
pub const UPSERT_ONE: &str = concat!(
    insert_into!(),
    r#"VALUES ($1, $2, $3::text::granularity, to_timestamp($4::int8), $5::text::numeric, $6::text::numeric,
    $7::text::numeric, $8::text::numeric, $9::text::numeric, $10, $11, $12, $13)"#,
    on_conflict!()
);

/// The batch upsert that also publishes what it changed to the fleet: the
/// rows the upsert really changed (a stale revision changes nothing) go into
/// one `fleet_updates` row, in the same statement and so the same
/// transaction; its id comes back (none when nothing changed).
const UPSERT_PUBLISH: &str = concat!(
    "WITH written AS (\n",
    insert_into!(),
    unnest_rows!(),
    on_conflict!(),
    r#"
RETURNING c.product_id, c.granularity, c."timestamp", c.open, c.high, c.low, c.close, c.volume,
    c.trades, c.last_trade_id, c.complete, c.revision)
INSERT INTO fleet_updates (instance, product_id, granularity, ts, open, high, low, close, volume,
    trades, last_trade_id, complete, revision)
SELECT $14, array_agg(product_id), array_agg(granularity::text),
    array_agg(extract(epoch FROM "timestamp")::int8), array_agg(open::text), array_agg(high::text),
    array_agg(low::text), array_agg(close::text), array_agg(volume::text), array_agg(trades),
    array_agg(last_trade_id), array_agg(complete), array_agg(revision)
FROM written HAVING count(*) > 0
RETURNING id, cardinality(product_id)"#
);

/// The batch's columns, as the statements bind them.
struct Columns<'a> {
    product: Vec<&'a str>,
    granularity: Vec<&'static str>,
    ts: Vec<i64>,
    values: [Vec<String>; 5],
    trades: Vec<i32>,
    last_trade_id: Vec<Option<i64>>,
    complete: Vec<bool>,
    revision: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn of(rows: impl ExactSizeIterator<Item = CandleRow<'a>>) -> Self {
        let n = rows.len();
        let mut c = Columns {
            product: Vec::with_capacity(n),
            granularity: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            values: std::array::from_fn(|_| Vec::with_capacity(n)),
            trades: Vec::with_capacity(n),
            last_trade_id: Vec::with_capacity(n),
            complete: Vec::with_capacity(n),
            revision: Vec::with_capacity(n),
        };
        for r in rows {
            let k = r.candle;
            c.product.push(r.product);
            c.granularity.push(k.granularity.name());
            c.ts.push(k.start);
            for (col, v) in c.values.iter_mut().zip([k.open, k.high, k.low, k.close, k.volume]) {
                col.push(v.to_string());
            }
            c.trades.push(i32::try_from(k.trades).unwrap_or(i32::MAX));
            c.last_trade_id.push(stored_trade_id(k.last_trade_id));
            c.complete.push(k.complete);
            c.revision.push(r.revision);
        }
        c
    }

    /// The parameters `$2..$13` (after the exchange).
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 12] {
        let [open, high, low, close, volume] = &self.values;
        [
            &self.product,
            &self.granularity,
            &self.ts,
            open,
            high,
            low,
            close,
            volume,
            &self.trades,
            &self.last_trade_id,
            &self.complete,
            &self.revision,
        ]
    }
}

/// Write `rows` in one statement. The rows must have distinct keys (PostgreSQL
/// refuses to update one row twice in a statement): the writer coalesces first.
pub async fn upsert<'a, C: GenericClient>(
    client: &C,
    exchange: &str,
    rows: impl ExactSizeIterator<Item = CandleRow<'a>>,
) -> Result<u64, StorageError> {
    let columns = Columns::of(rows);
    let statement = client.prepare_cached(UPSERT).await?;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&exchange];
    params.extend(columns.params());
    Ok(client.execute(&statement, &params).await?)
}

/// What [`upsert_publishing`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The `fleet_updates` row holding the changed rows (none changed: `None`).
    pub id: Option<i64>,
    /// Rows the upsert changed.
    pub changed: u64,
}

/// [`upsert`], and what it changed into one `fleet_updates` row of
/// `instance`, in the same statement.
pub async fn upsert_publishing<'a, C: GenericClient>(
    client: &C,
    exchange: &str,
    instance: &str,
    rows: impl ExactSizeIterator<Item = CandleRow<'a>>,
) -> Result<Published, StorageError> {
    let columns = Columns::of(rows);
    let statement = client.prepare_cached(UPSERT_PUBLISH).await?;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&exchange];
    params.extend(columns.params());
    params.push(&instance);
    let row = client.query_opt(&statement, &params).await?;
    Ok(match row {
        None => Published { id: None, changed: 0 },
        Some(r) => Published {
            id: Some(r.get(0)),
            changed: r.get::<_, i32>(1).max(0) as u64,
        },
    })
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
