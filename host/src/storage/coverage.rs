//! `history_coverage`: per product, the span of minutes the backfill has
//! covered (stored as the exchange had it, or waiting in `pending_repairs`).
//! A plan is recorded with its pieces in one transaction, so the two never
//! disagree after a crash.

use std::collections::HashMap;

use deadpool_postgres::Pool;

use super::StorageError;
use super::repairs::{self, PendingRepair};

/// Minutes `[from, through]` (unix seconds, minute starts) of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    pub from: i64,
    pub through: i64,
}

/// One product's new coverage and the windows that make it true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub product_id: String,
    pub covered: Covered,
    pub windows: Vec<PendingRepair>,
}

/// The table, for one exchange.
#[derive(Clone)]
pub struct CoverageLog {
    pool: Pool,
    exchange: String,
}

impl CoverageLog {
    /// The coverage of `exchange` in the database of `pool`.
    pub fn new(pool: Pool, exchange: &str) -> Self {
        CoverageLog {
            pool,
            exchange: exchange.to_string(),
        }
    }

    /// The recorded coverage of every product that has one.
    pub async fn all(&self) -> Result<HashMap<String, Covered>, StorageError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT product_id, extract(epoch FROM covered_from)::int8, extract(epoch FROM covered_through)::int8
                 FROM history_coverage WHERE exchange = $1",
                &[&self.exchange],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Covered {
                        from: r.get(1),
                        through: r.get(2),
                    },
                )
            })
            .collect())
    }

    /// Record `plans` (coverage and windows) in one transaction.
    pub async fn record(&self, plans: &[Plan]) -> Result<(), StorageError> {
        if plans.is_empty() {
            return Ok(());
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let windows: Vec<PendingRepair> = plans.iter().flat_map(|p| p.windows.iter().cloned()).collect();
        repairs::add_all(&tx, &self.exchange, &windows).await?;
        let products: Vec<&str> = plans.iter().map(|p| p.product_id.as_str()).collect();
        let from: Vec<i64> = plans.iter().map(|p| p.covered.from).collect();
        let through: Vec<i64> = plans.iter().map(|p| p.covered.through).collect();
        tx.execute(
            "INSERT INTO history_coverage (exchange, product_id, covered_from, covered_through)
             SELECT $1, p, to_timestamp(f), to_timestamp(t)
             FROM UNNEST($2::text[], $3::int8[], $4::int8[]) AS c(p, f, t)
             ON CONFLICT (exchange, product_id) DO UPDATE SET
                 covered_from = LEAST(history_coverage.covered_from, EXCLUDED.covered_from),
                 covered_through = GREATEST(history_coverage.covered_through, EXCLUDED.covered_through),
                 updated_at = now()",
            &[&self.exchange, &products, &from, &through],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
