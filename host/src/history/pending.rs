//! The windows waiting for REST, recorded in PostgreSQL (`pending_repairs`)
//! in the order they happen. One task writes them: a window's record always
//! comes before its clearing, even when the repair is done before a record
//! written from another task would have reached the database (a stale row
//! would be fetched again by every start), and neither the gap listener nor
//! a worker waits for the database.

use tokio::sync::mpsc;

use crate::storage::repairs::{RepairLog, WindowKind};

/// One change to the log.
enum Change {
    /// Gap windows found: `(product, from, to)`, unix s.
    Add(Vec<(String, i64, i64)>),
    /// The minutes `[from, to]` of `product` are fetched (or given up).
    Done {
        product: String,
        from: i64,
        to: i64,
        kind: WindowKind,
    },
}

/// A handle on the writer; it ends once every handle is dropped and what
/// they sent is written.
#[derive(Clone)]
pub(crate) struct PendingLog {
    tx: mpsc::UnboundedSender<Change>,
}

impl PendingLog {
    /// Start the writer of `log`.
    pub fn spawn(log: RepairLog) -> (PendingLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (PendingLog { tx }, tokio::spawn(write(log, rx)))
    }

    /// Record gap windows `(product, from, to)`.
    pub fn add(&self, windows: Vec<(String, i64, i64)>) {
        if !windows.is_empty() {
            let _ = self.tx.send(Change::Add(windows));
        }
    }

    /// Clear what the minutes `[from, to]` of `product` covered.
    pub fn done(&self, product: &str, from: i64, to: i64, kind: WindowKind) {
        let _ = self.tx.send(Change::Done {
            product: product.to_string(),
            from,
            to,
            kind,
        });
    }
}

async fn write(log: RepairLog, mut changes: mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = changes.recv().await {
        match change {
            Change::Add(windows) => {
                for (product, from, to) in windows {
                    if let Err(e) = log.add(&product, from, to).await {
                        tracing::warn!(%product, error = %e,
                            "cannot record a pending repair; a restart before it is done would forget it");
                    }
                }
            }
            Change::Done {
                product,
                from,
                to,
                kind,
            } => {
                if let Err(e) = log.done(&product, from, to, kind).await {
                    tracing::warn!(%product, error = %e,
                        "cannot clear a done window; it will be fetched again after a restart");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window cleared right after it is recorded (a repair that took
    /// milliseconds) leaves nothing behind, and a window still open stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_window_cleared_at_once_after_its_record_leaves_no_row() {
        let pg = spot_testkit::pg::Cluster::temporary().expect("PostgreSQL cluster");
        let pool = crate::storage::pool(&pg.url("postgres"), 4).expect("pool");
        crate::storage::migrate(&pool).await.expect("migrate");
        let log = RepairLog::new(pool, "coinbase");
        let (pending, writer) = PendingLog::spawn(log.clone());
        for i in 0..50 {
            let from = 1_796_457_300 + i * 600;
            pending.add(vec![("BTC-USD".into(), from, from + 120)]);
            pending.done("BTC-USD", from, from + 120, WindowKind::Gap);
        }
        pending.add(vec![("ETH-USD".into(), 1_796_457_300, 1_796_457_360)]);
        drop(pending);
        writer.await.expect("writer");
        let left = log.pending().await.expect("pending");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].product_id, "ETH-USD");
    }
}
