//! `Budget`: the process's one allowance of REST requests, granted in order
//! of priority.
//!
//! Coinbase limits public REST to about 10 requests a second per IP, for the
//! whole process: the product list, gap repairs, the backfill and the audit
//! all draw on one budget. Grants are evenly spaced (a burst at the start of
//! each second is within the limit where it is sent, but network jitter can
//! move two bursts into one second at the receiver), and `rate` of them span
//! 1.05 s rather than 1 s for the same reason: the fake exchange of the
//! benchmark, busy on two cores, saw 9 requests within a second at 8/s when
//! they spanned 1.02 s. At each slot the waiter of the most urgent
//! [`Priority`] goes first: a live gap is repaired before the backfill goes
//! on, and the audit only takes what is left.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Who asks, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// The product list at start, and the repair of missed trades.
    Repair = 0,
    /// The history the horizon still lacks.
    Backfill = 1,
    /// The comparison with the exchange's candles.
    Audit = 2,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 3] = [Priority::Repair, Priority::Backfill, Priority::Audit];

    /// The name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Repair => "repair",
            Priority::Backfill => "backfill",
            Priority::Audit => "audit",
        }
    }
}

/// Requests granted, per priority.
#[derive(Debug, Default)]
pub struct BudgetStats {
    granted: [AtomicU64; 3],
    waiting: [AtomicU64; 3],
}

impl BudgetStats {
    /// Requests granted to `p` so far.
    pub fn granted(&self, p: Priority) -> u64 {
        self.granted[p as usize].load(Relaxed)
    }

    /// Requests of `p` waiting for a slot now.
    pub fn waiting(&self, p: Priority) -> u64 {
        self.waiting[p as usize].load(Relaxed)
    }
}

/// A request for one slot.
type Ask = (Priority, oneshot::Sender<()>);

/// The shared allowance. Cloning shares it.
#[derive(Clone)]
pub struct Budget {
    asks: mpsc::UnboundedSender<Ask>,
    stats: Arc<BudgetStats>,
    per_second: f64,
}

impl Budget {
    /// At most `per_second` requests in any second (evenly spaced, 50 ms of
    /// jitter to spare).
    /// Starts the task that grants them: call inside a tokio runtime.
    pub fn per_second(per_second: f64) -> Budget {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        let interval = Duration::from_secs_f64(1.05 / per_second);
        let (asks, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(BudgetStats::default());
        tokio::spawn(grant(rx, interval, stats.clone()));
        Budget {
            asks,
            stats,
            per_second,
        }
    }

    /// The configured rate.
    pub fn rate(&self) -> f64 {
        self.per_second
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<BudgetStats> {
        &self.stats
    }

    /// Wait for a slot at priority `p`, then take it. A caller that gives up
    /// (its future dropped) gives its place back.
    pub async fn acquire(&self, p: Priority) {
        let (tx, rx) = oneshot::channel();
        self.stats.waiting[p as usize].fetch_add(1, Relaxed);
        let _counted = Waiting(&self.stats, p);
        if self.asks.send((p, tx)).is_err() {
            return;
        }
        let _ = rx.await;
    }
}

/// Takes a waiter off the gauge however `acquire` ends.
struct Waiting<'a>(&'a BudgetStats, Priority);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting[self.1 as usize].fetch_sub(1, Relaxed);
    }
}

/// The granting task: one slot per `interval`, to the most urgent waiter.
async fn grant(mut asks: mpsc::UnboundedReceiver<Ask>, interval: Duration, stats: Arc<BudgetStats>) {
    let mut queues: [VecDeque<oneshot::Sender<()>>; 3] = Default::default();
    let mut next = Instant::now();
    loop {
        while let Ok((p, tx)) = asks.try_recv() {
            queues[p as usize].push_back(tx);
        }
        if queues.iter().all(VecDeque::is_empty) {
            match asks.recv().await {
                Some((p, tx)) => queues[p as usize].push_back(tx),
                None => return,
            }
            continue;
        }
        let now = Instant::now();
        if next > now {
            // Asks that arrive meanwhile are sorted in at the top of the loop.
            tokio::time::sleep_until(next).await;
            continue;
        }
        'slot: for (i, q) in queues.iter_mut().enumerate() {
            while let Some(tx) = q.pop_front() {
                if tx.send(()).is_ok() {
                    stats.granted[i].fetch_add(1, Relaxed);
                    next = now + interval;
                    break 'slot;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_rate_in_a_second_and_the_urgent_go_first() {
        let budget = Budget::per_second(5.0);
        let mut tasks = Vec::new();
        for i in 0..12 {
            let b = budget.clone();
            let p = if i % 3 == 0 {
                Priority::Audit
            } else {
                Priority::Backfill
            };
            tasks.push(tokio::spawn(async move {
                b.acquire(p).await;
                (Instant::now(), p)
            }));
        }
        // Let them all queue, then a repair arrives last.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let b = budget.clone();
        let repair = tokio::spawn(async move {
            b.acquire(Priority::Repair).await;
            Instant::now()
        });
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        let repair_at = repair.await.unwrap();
        let mut all: Vec<Instant> = times.iter().map(|(t, _)| *t).chain([repair_at]).collect();
        all.sort();
        for (i, t) in all.iter().enumerate() {
            let in_window = all[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 5, "{in_window} grants within a second");
        }
        // The repair, asked for after twelve others, got the second slot.
        assert_eq!(all.iter().position(|t| *t == repair_at), Some(1));
        // Every backfill went before every audit.
        let last_backfill = times
            .iter()
            .filter(|(_, p)| *p == Priority::Backfill)
            .map(|(t, _)| *t)
            .max();
        let first_audit = times
            .iter()
            .filter(|(_, p)| *p == Priority::Audit)
            .map(|(t, _)| *t)
            .min();
        assert!(last_backfill < first_audit);
        assert_eq!(budget.stats().granted(Priority::Audit), 4);
        assert_eq!(budget.stats().waiting(Priority::Backfill), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_budget_grants_at_once_and_a_dropped_waiter_costs_no_slot() {
        let budget = Budget::per_second(2.0);
        let t0 = Instant::now();
        budget.acquire(Priority::Backfill).await;
        assert_eq!(Instant::now(), t0, "the first request waits for nothing");
        // A waiter that gives up before its slot.
        let gave_up = tokio::time::timeout(Duration::from_millis(100), budget.acquire(Priority::Repair)).await;
        assert!(gave_up.is_err());
        budget.acquire(Priority::Backfill).await;
        let took = Instant::now().duration_since(t0);
        assert!(
            took <= Duration::from_millis(530),
            "{took:?}: the abandoned slot was not passed on"
        );
        assert_eq!(budget.stats().granted(Priority::Repair), 0);
    }
}
