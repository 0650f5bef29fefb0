//! The backfill: the span of the horizon a product has never stored, fetched
//! from REST `ONE_MINUTE` candles and applied as authoritative minutes.
//!
//! What a product lacks depends on what this start knows of it:
//! - **the restore carried a trade id** (it traded within the horizon while
//!   an earlier run watched): everything since its coverage began is stored,
//!   and the downtime shows as a trade-id jump, repaired as a gap. Only the
//!   part of the horizon before its coverage is fetched (none, usually).
//! - **otherwise** (a first start, or a product quiet for the whole horizon):
//!   the feed reports the minute its live trades begin in (the earliest
//!   trade of its first snapshot within the horizon, or the minute it
//!   subscribed when there is none). Every minute of the horizon before that
//!   one and outside its coverage is fetched, and the minute itself, which
//!   the snapshot holds only in part, is repaired as a gap once it is over.
//!
//! A plan is recorded with its windows in one transaction
//! (`history_coverage` + `pending_repairs`), so a stop resumes it and a
//! restart fetches only what it lacks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::{mpsc, watch};

use super::repair::Context;
use super::windows::pieces;
use crate::feed::LiveFrom;
use crate::storage::coverage::{CoverageLog, Covered, Plan};
use crate::storage::repairs::{PendingRepair, WindowKind};
use crate::storage::restore::RestoredProduct;

/// What one product needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProductPlan {
    /// Its coverage once the plan is done.
    pub covered: Covered,
    /// Spans to backfill, `[from, to]` minute starts.
    pub spans: Vec<(i64, i64)>,
    /// The minute the live trades began in, to repair once it is over.
    pub live_minute: Option<i64>,
}

/// `[a, b] − [c, d]` over minute starts: up to two spans.
fn minus(a: i64, b: i64, cover: Option<Covered>) -> Vec<(i64, i64)> {
    if a > b {
        return Vec::new();
    }
    let Some(c) = cover else { return vec![(a, b)] };
    let mut out = Vec::new();
    if a < c.from {
        out.push((a, b.min(c.from - 60)));
    }
    if b > c.through {
        out.push((a.max(c.through + 60), b));
    }
    out.retain(|(f, t)| f <= t);
    out
}

/// The plan of one product, given the horizon's start, the current minute,
/// its recorded coverage, what the restore found and where its live trades
/// began (and whether that minute is partial). `None` while it still needs
/// `live` (see the module docs).
pub(crate) fn plan(
    horizon_start: i64,
    now_minute: i64,
    covered: Option<Covered>,
    restored: Option<&RestoredProduct>,
    live: Option<(i64, bool)>,
) -> Option<ProductPlan> {
    match restored {
        Some(r) if r.has_trade_id => {
            // Covered since its coverage began, or (recorded by an earlier
            // version) since its earliest stored minute, which is refetched.
            let from = covered.map_or(r.earliest + 60, |c| c.from);
            let through = covered.map_or(now_minute, |c| c.through.max(now_minute));
            let spans = if from > horizon_start {
                vec![(horizon_start, from - 60)]
            } else {
                Vec::new()
            };
            Some(ProductPlan {
                covered: Covered {
                    from: from.min(horizon_start),
                    through,
                },
                spans,
                live_minute: None,
            })
        }
        _ => {
            let (live, partial) = live?;
            let live = live.max(horizon_start);
            let spans = minus(horizon_start, live - 60, covered);
            let inside = covered.is_some_and(|c| c.from <= live && live <= c.through);
            Some(ProductPlan {
                covered: Covered {
                    from: covered.map_or(horizon_start, |c| c.from.min(horizon_start)),
                    through: covered.map_or(live, |c| c.through.max(live)),
                },
                spans,
                live_minute: (partial && !inside).then_some(live),
            })
        }
    }
}

/// The planner's inputs for the products it still has to plan.
pub(crate) struct Planner {
    pub ctx: Context,
    pub coverage: Option<CoverageLog>,
    /// Recorded coverage of every product that has one.
    pub covered: HashMap<String, Covered>,
    /// Products waiting for their live minute: id → name.
    pub awaiting: HashMap<u32, Arc<str>>,
}

impl Planner {
    /// Turn plans into windows: recorded (when there is a store), then queued.
    pub(crate) async fn enqueue(&self, plans: Vec<(u32, Arc<str>, ProductPlan)>) {
        if plans.is_empty() {
            return;
        }
        let records: Vec<Plan> = plans
            .iter()
            .map(|(_, name, p)| Plan {
                product_id: name.to_string(),
                covered: p.covered,
                windows: p
                    .spans
                    .iter()
                    .flat_map(|(f, t)| pieces(*f, *t))
                    .map(|(f, t)| PendingRepair {
                        product_id: name.to_string(),
                        from_minute: f,
                        to_minute: t,
                        kind: WindowKind::Backfill,
                    })
                    .chain(p.live_minute.map(|m| PendingRepair {
                        product_id: name.to_string(),
                        from_minute: m,
                        to_minute: m,
                        kind: WindowKind::Gap,
                    }))
                    .collect(),
            })
            .collect();
        if let Some(log) = &self.coverage
            && let Err(e) = log.record(&records).await
        {
            tracing::warn!(error = %e, products = records.len(),
                "cannot record the backfill's plan; a restart before it is done plans it again");
        }
        let stats = &self.ctx.stats.backfill;
        let mut finished = false;
        {
            let mut w = self.ctx.work.lock();
            for (id, _, p) in &plans {
                for &(f, t) in &p.spans {
                    for (from, to) in pieces(f, t) {
                        w.backlog.add(*id, from, to);
                        stats.requests.fetch_add(1, Relaxed);
                    }
                }
                if let Some(m) = p.live_minute {
                    w.gaps.add(*id, m, m);
                }
                if w.planned.insert(*id) {
                    stats.planned.fetch_add(1, Relaxed);
                    if !w.backlog.has(*id) {
                        stats.done.fetch_add(1, Relaxed);
                        finished = stats.finished();
                    }
                }
            }
            self.ctx.stats.repairs_pending.store(w.gaps.len() as u64, Relaxed);
        }
        self.ctx.work.wake();
        if stats.planned.load(Relaxed) == stats.products.load(Relaxed) {
            tracing::info!(
                products = stats.products.load(Relaxed),
                requests = stats.requests.load(Relaxed),
                "backfill planned: every product's span is known"
            );
        }
        if finished {
            (self.ctx.on_backfill_done)();
        }
    }

    /// Plan the products that wait for their live minute as the feed reports
    /// it, in batches, until every one is planned or `stop`.
    pub(crate) async fn run(
        mut self,
        restored: HashMap<String, RestoredProduct>,
        mut live: mpsc::UnboundedReceiver<LiveFrom>,
        mut stop: watch::Receiver<bool>,
    ) {
        while !self.awaiting.is_empty() {
            let first = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = live.recv() => match r {
                    Some(r) => r,
                    None => return,
                },
            };
            let mut batch = vec![first];
            while let Ok(more) = live.try_recv() {
                batch.push(more);
            }
            let now = crate::engine::now_ms();
            let horizon_start = self.ctx.horizon.start(now);
            let now_minute = now.div_euclid(60_000) * 60;
            let mut plans = Vec::new();
            for r in batch {
                let Some(name) = self.awaiting.remove(&r.product) else {
                    continue;
                };
                let covered = self.covered.get(&*name).copied();
                if let Some(p) = plan(
                    horizon_start,
                    now_minute,
                    covered,
                    restored.get(&*name),
                    Some((r.minute, r.partial)),
                ) {
                    plans.push((r.product, name, p));
                }
            }
            self.enqueue(plans).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = 1_704_499_200; // a UTC day start
    const HS: i64 = D - 86_400; // the horizon's start at any time of day D

    fn cov(from: i64, through: i64) -> Option<Covered> {
        Some(Covered { from, through })
    }

    #[test]
    fn a_first_start_fetches_the_horizon_up_to_the_live_minute_and_repairs_that_one() {
        let live = D + 80 * 60; // 01:20
        assert_eq!(plan(HS, live, None, None, None), None, "waits for the live minute");
        let p = plan(HS, live + 60, None, None, Some((live, true))).unwrap();
        assert_eq!(p.spans, vec![(HS, live - 60)]);
        assert_eq!(p.live_minute, Some(live));
        assert_eq!(
            p.covered,
            Covered {
                from: HS,
                through: live
            }
        );
        // Nothing of the horizon came before the subscription: that minute is whole.
        let p = plan(HS, live + 60, None, None, Some((live, false))).unwrap();
        assert_eq!((p.spans.clone(), p.live_minute), (vec![(HS, live - 60)], None));
        // A live minute before the horizon is clamped.
        let p = plan(HS, live, None, None, Some((HS - 3600, true))).unwrap();
        assert_eq!((p.spans.clone(), p.live_minute), (vec![], Some(HS)));
    }

    #[test]
    fn a_restart_with_a_restored_trade_id_fetches_only_before_its_coverage() {
        let r = RestoredProduct {
            earliest: D + 600,
            has_trade_id: true,
        };
        let now = D + 5 * 3600;
        let p = plan(HS, now, cov(HS, D + 80 * 60), Some(&r), None).unwrap();
        assert!(p.spans.is_empty() && p.live_minute.is_none());
        assert_eq!(p.covered, Covered { from: HS, through: now });
        // HISTORY_DAYS grew: the new first day.
        let p = plan(HS - 86_400, now, cov(HS, D), Some(&r), None).unwrap();
        assert_eq!(p.spans, vec![(HS - 86_400, HS - 60)]);
        // No coverage recorded (an earlier version): up to its earliest stored minute.
        let p = plan(HS, now, None, Some(&r), None).unwrap();
        assert_eq!(p.spans, vec![(HS, D + 600)]);
    }

    #[test]
    fn a_quiet_product_restarted_fetches_what_lies_outside_its_coverage() {
        let sealed_only = RestoredProduct {
            earliest: HS,
            has_trade_id: false,
        };
        // Its snapshot reaches into the coverage: nothing at all.
        let p = plan(
            HS,
            D + 7200,
            cov(HS, D + 3600),
            Some(&sealed_only),
            Some((D + 1800, true)),
        )
        .unwrap();
        assert!(p.spans.is_empty());
        assert_eq!(p.live_minute, None);
        // It traded while the service was down: the downtime, then the live minute.
        let p = plan(
            HS,
            D + 7200,
            cov(HS, D + 3600),
            Some(&sealed_only),
            Some((D + 7200, true)),
        )
        .unwrap();
        assert_eq!(p.spans, vec![(D + 3660, D + 7140)]);
        assert_eq!(p.live_minute, Some(D + 7200));
        // The coverage starts inside the horizon: both ends.
        assert_eq!(minus(0, 6000, cov(600, 1200)), vec![(0, 540), (1260, 6000)]);
        assert_eq!(minus(0, 60, cov(0, 6000)), vec![]);
    }
}
