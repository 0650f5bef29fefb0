//! `pending_repairs`: the minute windows waiting for REST, kept so a restart
//! does not forget them: the gaps (after a restart the restored last trade id
//! is past a gap, which would not show again) and the backfill's pieces (a
//! backfill interrupted by a stop resumes where it was).

use deadpool_postgres::Pool;

use super::StorageError;

/// What a window is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Trades were missed (or the live trades began) in these minutes.
    Gap,
    /// These minutes of the horizon were never stored.
    Backfill,
}

impl WindowKind {
    /// The `kind` column's value.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Gap => "gap",
            WindowKind::Backfill => "backfill",
        }
    }

    fn from_name(s: &str) -> Self {
        if s == "backfill" {
            WindowKind::Backfill
        } else {
            WindowKind::Gap
        }
    }
}

/// One product's window of minutes, unix seconds, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRepair {
    pub product_id: String,
    pub from_minute: i64,
    pub to_minute: i64,
    pub kind: WindowKind,
}

/// The table, for one exchange.
#[derive(Clone)]
pub struct RepairLog {
    pool: Pool,
    exchange: String,
}

impl RepairLog {
    /// The log of `exchange` in the database of `pool`.
    pub fn new(pool: Pool, exchange: &str) -> Self {
        RepairLog {
            pool,
            exchange: exchange.to_string(),
        }
    }

    /// The database this log is in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The `exchange` column's value.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Remember a gap window.
    pub async fn add(&self, product: &str, from: i64, to: i64) -> Result<(), StorageError> {
        let client = self.pool.get().await?;
        add_all(
            &client,
            &self.exchange,
            &[PendingRepair {
                product_id: product.to_string(),
                from_minute: from,
                to_minute: to,
                kind: WindowKind::Gap,
            }],
        )
        .await
    }

    /// The minutes `[from, to]` are fetched. For gaps: forget windows inside
    /// them, and move the start of windows that begin inside them and go on.
    /// For the backfill: forget that piece.
    pub async fn done(&self, product: &str, from: i64, to: i64, kind: WindowKind) -> Result<(), StorageError> {
        let mut client = self.pool.get().await?;
        if kind == WindowKind::Backfill {
            client
                .execute(
                    "DELETE FROM pending_repairs WHERE exchange = $1 AND product_id = $2 AND kind = 'backfill'
                       AND from_minute = to_timestamp($3::int8) AND to_minute = to_timestamp($4::int8)",
                    &[&self.exchange, &product, &from, &to],
                )
                .await?;
            return Ok(());
        }
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM pending_repairs WHERE exchange = $1 AND product_id = $2 AND kind = 'gap'
               AND from_minute >= to_timestamp($3::int8) AND to_minute <= to_timestamp($4::int8)",
            &[&self.exchange, &product, &from, &to],
        )
        .await?;
        tx.execute(
            "UPDATE pending_repairs SET from_minute = to_timestamp($4::int8 + 60)
             WHERE exchange = $1 AND product_id = $2 AND kind = 'gap'
               AND from_minute >= to_timestamp($3::int8) AND from_minute <= to_timestamp($4::int8)
               AND to_minute > to_timestamp($4::int8)
               AND NOT EXISTS (SELECT 1 FROM pending_repairs q WHERE q.exchange = $1 AND q.product_id = $2
                   AND q.from_minute = to_timestamp($4::int8 + 60) AND q.to_minute = pending_repairs.to_minute)",
            &[&self.exchange, &product, &from, &to],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every window waiting.
    pub async fn pending(&self) -> Result<Vec<PendingRepair>, StorageError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT product_id, extract(epoch FROM from_minute)::int8, extract(epoch FROM to_minute)::int8, kind
                 FROM pending_repairs WHERE exchange = $1 ORDER BY product_id, from_minute",
                &[&self.exchange],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingRepair {
                product_id: r.get(0),
                from_minute: r.get(1),
                to_minute: r.get(2),
                kind: WindowKind::from_name(r.get(3)),
            })
            .collect())
    }
}

/// Insert `windows` (one statement; a window already recorded stays as it is).
pub(crate) async fn add_all(
    client: &impl deadpool_postgres::GenericClient,
    exchange: &str,
    windows: &[PendingRepair],
) -> Result<(), StorageError> {
    if windows.is_empty() {
        return Ok(());
    }
    let products: Vec<&str> = windows.iter().map(|w| w.product_id.as_str()).collect();
    let from: Vec<i64> = windows.iter().map(|w| w.from_minute).collect();
    let to: Vec<i64> = windows.iter().map(|w| w.to_minute).collect();
    let kinds: Vec<&str> = windows.iter().map(|w| w.kind.name()).collect();
    client
        .execute(
            "INSERT INTO pending_repairs (exchange, product_id, from_minute, to_minute, kind)
             SELECT $1, p, to_timestamp(f), to_timestamp(t), k
             FROM UNNEST($2::text[], $3::int8[], $4::int8[], $5::text[]) AS w(p, f, t, k)
             ON CONFLICT DO NOTHING",
            &[&exchange, &products, &from, &to, &kinds],
        )
        .await?;
    Ok(())
}
