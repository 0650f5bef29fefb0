//! `pending_repairs`: the minute windows waiting for a repair, kept so a
//! restart does not forget them (after a restart the restored last trade id
//! is past the gap, which would not show again).

use deadpool_postgres::Pool;

use super::StorageError;

/// One product's window of minutes, unix seconds, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRepair {
    pub product_id: String,
    pub from_minute: i64,
    pub to_minute: i64,
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

    /// Remember a window.
    pub async fn add(&self, product: &str, from: i64, to: i64) -> Result<(), StorageError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO pending_repairs (exchange, product_id, from_minute, to_minute)
                 VALUES ($1, $2, to_timestamp($3::int8), to_timestamp($4::int8)) ON CONFLICT DO NOTHING",
                &[&self.exchange, &product, &from, &to],
            )
            .await?;
        Ok(())
    }

    /// The minutes `[from, to]` are repaired: forget windows inside them, and
    /// move the start of windows that begin inside them and go on.
    pub async fn done(&self, product: &str, from: i64, to: i64) -> Result<(), StorageError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM pending_repairs WHERE exchange = $1 AND product_id = $2
               AND from_minute >= to_timestamp($3::int8) AND to_minute <= to_timestamp($4::int8)",
            &[&self.exchange, &product, &from, &to],
        )
        .await?;
        tx.execute(
            "UPDATE pending_repairs SET from_minute = to_timestamp($4::int8 + 60)
             WHERE exchange = $1 AND product_id = $2
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
                "SELECT product_id, extract(epoch FROM from_minute)::int8, extract(epoch FROM to_minute)::int8
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
            })
            .collect())
    }
}
