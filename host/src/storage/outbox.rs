//! The fleet's candle updates through PostgreSQL (`fleet_updates`).
//!
//! Each writer flush puts the rows it changed into one `fleet_updates` row in
//! the flush's own statement ([`super::upsert::upsert_publishing`]), then, once
//! committed, sends one NOTIFY on [`CHANNEL`] naming it ([`notify`]): at most
//! one notification per flush, whatever its size (a payload holds 8,000 bytes;
//! a flush holds thousands of rows). Other instances read the rows back by id
//! ([`read`]), or, after every (re)connect of their listener, the current
//! candle of every key they serve from `live_candles` ([`current`]): a
//! notification missed while away is never needed. HTML never goes through
//! here: each instance renders the candles with its own component.

use std::sync::Arc;

use deadpool_postgres::GenericClient;
use spot_wire::{Candle, Fixed, Granularity};

use super::StorageError;

/// The channel writers notify on and listeners LISTEN to.
pub const CHANNEL: &str = "spot_updates";

/// Ids one notification may name before it says "read everything" instead
/// (a payload holds at most 7,999 bytes).
pub const MAX_IDS: usize = 300;

/// One candle of another instance, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCandle {
    pub product: Arc<str>,
    /// The candle (its `product` id is the reader's to set).
    pub candle: Candle,
    /// The writer's revision: a later state of a key has a higher one.
    pub revision: i64,
}

/// What a notification on [`CHANNEL`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `instance` stored these `fleet_updates` rows.
    Rows { instance: String, ids: Vec<i64> },
    /// `instance` cannot say which rows (its notifications failed for a
    /// while): read the current state of its keys again.
    Resync { instance: String },
}

impl Notice {
    /// The payload: `INSTANCE ID,ID,...` or `INSTANCE *`.
    pub fn payload(&self) -> String {
        match self {
            Notice::Rows { instance, ids } => {
                let mut s = String::with_capacity(instance.len() + 1 + ids.len() * 8);
                s.push_str(instance);
                s.push(' ');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&id.to_string());
                }
                s
            }
            Notice::Resync { instance } => format!("{instance} *"),
        }
    }

    /// Read a payload; `None` for one no spot instance writes.
    pub fn parse(payload: &str) -> Option<Notice> {
        let (instance, rest) = payload.split_once(' ')?;
        if instance.is_empty() {
            return None;
        }
        let instance = instance.to_string();
        if rest == "*" {
            return Some(Notice::Resync { instance });
        }
        let ids: Option<Vec<i64>> = rest.split(',').map(|id| id.parse().ok()).collect();
        let ids = ids.filter(|ids| !ids.is_empty())?;
        Some(Notice::Rows { instance, ids })
    }
}

/// Send `notice` on [`CHANNEL`] (its own transaction: the rows it names are
/// committed already, and a failed NOTIFY never costs a stored candle).
pub async fn notify<C: GenericClient>(client: &C, notice: &Notice) -> Result<(), StorageError> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &notice.payload()])
        .await?;
    Ok(())
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct Read {
    pub candles: Vec<RemoteCandle>,
    /// Of the ids asked for, how many were gone (deleted as old): the reader
    /// then has to read the current state of every key again.
    pub missing: usize,
}

/// The candles of the `fleet_updates` rows `ids`, in id order.
///
/// On the listener's own connection (outside the pool, so no statement cache).
pub async fn read(client: &tokio_postgres::Client, ids: &[i64]) -> Result<Read, StorageError> {
    let rows = client
        .query(
            r#"SELECT u.product_id, u.granularity, u.ts, u.open, u.high, u.low, u.close, u.volume,
                      u.trades, u.last_trade_id, u.complete, u.revision, f.id
               FROM fleet_updates f,
                    unnest(f.product_id, f.granularity, f.ts, f.open, f.high, f.low, f.close, f.volume,
                           f.trades, f.last_trade_id, f.complete, f.revision)
                    AS u(product_id, granularity, ts, open, high, low, close, volume,
                         trades, last_trade_id, complete, revision)
               WHERE f.id = ANY($1)
               ORDER BY f.id"#,
            &[&ids],
        )
        .await?;
    // Every stored row holds at least one candle: the ids seen are the ids found.
    let mut found: Vec<i64> = rows.iter().map(|r| r.get::<_, i64>(12)).collect();
    found.dedup();
    let mut asked = ids.to_vec();
    asked.sort_unstable();
    asked.dedup();
    Ok(Read {
        candles: parse(&rows),
        missing: asked.len().saturating_sub(found.len()),
    })
}

/// The newest stored bucket of every (product, granularity) of `products`
/// from `from` (unix s) on: what a listener starts from after a (re)connect
/// (on its own connection).
pub async fn current(
    client: &tokio_postgres::Client,
    exchange: &str,
    products: &[String],
    from: i64,
) -> Result<Vec<RemoteCandle>, StorageError> {
    // One index probe per key (a DISTINCT ON would read the whole horizon).
    let rows = client
        .query(
            r#"SELECT c.product_id, c.granularity::text, extract(epoch FROM c."timestamp")::int8,
                      c.open::text, c.high::text, c.low::text, c.close::text, c.volume::text,
                      c.trades, c.last_trade_id, c.complete, c.revision
               FROM unnest($2::text[]) AS p(product_id)
               CROSS JOIN unnest(enum_range(NULL::granularity)) AS g(granularity)
               CROSS JOIN LATERAL (
                   SELECT * FROM live_candles c
                   WHERE c.exchange = $1 AND c.product_id = p.product_id AND c.granularity = g.granularity
                     AND c."timestamp" >= to_timestamp($3::int8)
                   ORDER BY c."timestamp" DESC LIMIT 1) c"#,
            &[&exchange, &products, &from],
        )
        .await?;
    Ok(parse(&rows))
}

/// Delete the `fleet_updates` rows older than `seconds`: a listener reads a
/// row within moments of its notification; one that was away, or finds a
/// row gone, reads the current state of every key instead.
pub async fn trim<C: GenericClient>(client: &C, seconds: i64) -> Result<u64, StorageError> {
    Ok(client
        .execute(
            "DELETE FROM fleet_updates WHERE created_at < now() - make_interval(secs => $1::int8::float8)",
            &[&seconds],
        )
        .await?)
}

/// Rows of (product, granularity, start, open, high, low, close, volume,
/// trades, last trade id, complete, revision); a row that is not a valid
/// candle is logged and skipped.
fn parse(rows: &[tokio_postgres::Row]) -> Vec<RemoteCandle> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match remote(row) {
            Ok(c) => out.push(c),
            Err(e) => tracing::warn!(error = %e, "skipping a fleet update that is not a valid candle"),
        }
    }
    out
}

fn remote(row: &tokio_postgres::Row) -> Result<RemoteCandle, StorageError> {
    let product: &str = row.get(0);
    let bad = |what: &str| StorageError::BadRow(format!("{product}: {what}"));
    let granularity: &str = row.get(1);
    let granularity = Granularity::from_name(granularity).ok_or_else(|| bad("unknown granularity"))?;
    let value = |i: usize| -> Result<Fixed, StorageError> {
        let text: &str = row.get(i);
        text.parse().map_err(|e| bad(&format!("{text}: {e}")))
    };
    let last_trade_id: Option<i64> = row.get(9);
    let candle = Candle {
        product: 0,
        granularity,
        start: row.get(2),
        open: value(3)?,
        high: value(4)?,
        low: value(5)?,
        close: value(6)?,
        volume: value(7)?,
        last_trade_id: last_trade_id.and_then(|id| u64::try_from(id).ok()),
        trades: u32::try_from(row.get::<_, i32>(8)).unwrap_or(0),
        complete: row.get(10),
        authoritative: false,
    };
    if !candle.is_well_formed() {
        return Err(bad("not a well-formed candle"));
    }
    Ok(RemoteCandle {
        product: Arc::from(product),
        candle,
        revision: row.get(11),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_reads_back_as_written() {
        for n in [
            Notice::Rows {
                instance: "ingest-0-ab12".into(),
                ids: vec![1, 22, 333],
            },
            Notice::Resync {
                instance: "replica-9f".into(),
            },
        ] {
            assert_eq!(Notice::parse(&n.payload()), Some(n));
        }
        let most = Notice::Rows {
            instance: "ingest-12-0123456789abcdef".into(),
            ids: (0..MAX_IDS as i64).map(|i| i64::MAX - i).collect(),
        };
        assert!(most.payload().len() < 8_000, "{}", most.payload().len());
        for bad in ["", "x", " 1,2", "x 1,,2", "x a", "x ", "x 1 2"] {
            assert_eq!(Notice::parse(bad), None, "{bad:?}");
        }
    }
}
