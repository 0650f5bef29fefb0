//! Emit: an outcome's candles rendered by the active instance, every element
//! checked, and the output handed to the sinks and subscribers.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use spot_wire::{Candle, Outcome, encode_all};

use super::Runtime;
use crate::engine::element;
use crate::engine::error::Fault;
use crate::engine::{CandleUpdate, Cause, EngineOutput, GapReport};

impl Runtime {
    /// Render other instances' candles for this one's streams, like its own
    /// (the state does not change: nothing is journaled).
    pub(super) fn render_fleet(&mut self, candles: Vec<Candle>) {
        self.stats.fleet_rendered.fetch_add(candles.len() as u64, Relaxed);
        let outcome = Outcome {
            updates: candles,
            gaps: Vec::new(),
            duplicates: 0,
            ignored: 0,
        };
        self.emit(outcome, Cause::Fleet);
    }

    /// Render the outcome's candles and hand it to every subscriber; returns
    /// what went out (`None` when there was nothing).
    pub(super) fn emit(&mut self, outcome: Outcome, cause: Cause) -> Option<Arc<EngineOutput>> {
        if cause != Cause::Fleet {
            self.stats.updates.fetch_add(outcome.updates.len() as u64, Relaxed);
        }
        self.stats.gaps.fetch_add(outcome.gaps.len() as u64, Relaxed);
        self.stats.duplicates.fetch_add(outcome.duplicates as u64, Relaxed);
        self.stats.ignored.fetch_add(outcome.ignored as u64, Relaxed);
        if cause == Cause::Trades {
            let late = outcome.updates.iter().filter(|c| c.complete).count();
            self.stats.late_revisions.fetch_add(late as u64, Relaxed);
        }
        if outcome.updates.is_empty() && outcome.gaps.is_empty() {
            return None;
        }
        let elements = if outcome.updates.is_empty() {
            Vec::new()
        } else {
            let packed = encode_all(&outcome.updates);
            match self.instance.as_mut().map(|i| i.render(&packed)) {
                Some(Ok(e)) => e,
                Some(Err(f)) => {
                    self.stats.render_failures.fetch_add(1, Relaxed);
                    self.record_fault(&f, "render failed; candles go out without elements");
                    let _ = self.rebuild();
                    vec![String::new(); outcome.updates.len()]
                }
                None => vec![String::new(); outcome.updates.len()],
            }
        };
        let name = |id: u32| {
            self.products
                .name(id)
                .unwrap_or_else(|| Arc::from(format!("product-{id}")))
        };
        let mut refused: Option<(usize, String)> = None;
        let updates = outcome
            .updates
            .into_iter()
            .zip(elements)
            .map(|(candle, mut element)| {
                let product = name(candle.product);
                // A component is untrusted and its element goes into every
                // viewer's page: only the contract's shape gets through.
                if !element.is_empty() {
                    let g = candle.granularity.name();
                    if let Err(why) = element::check(element.as_bytes(), &product, g) {
                        let (n, _) = refused.get_or_insert_with(|| (0, format!("{product}-{g}: {why}")));
                        *n += 1;
                        element.clear();
                    }
                }
                CandleUpdate {
                    product,
                    candle,
                    // (A String's buffer becomes the Bytes: no copy.)
                    element: Bytes::from(element),
                }
            })
            .collect();
        let gaps = outcome
            .gaps
            .into_iter()
            .map(|gap| GapReport {
                product: name(gap.product),
                gap,
            })
            .collect();
        let out = Arc::new(EngineOutput {
            cause,
            updates,
            gaps,
            duplicates: outcome.duplicates,
            ignored: outcome.ignored,
        });
        // Sinks first: they take the output here, without a hop to another thread.
        for sink in &self.sinks {
            sink(&out);
        }
        // Backpressure: a subscriber that is behind holds the engine (and so the
        // feed) back; subscribers conflate, so they are never behind for long.
        self.subscribers.retain(|s| s.blocking_send(out.clone()).is_ok());
        if let Some((n, first)) = refused {
            self.refused_elements(n, first);
        }
        Some(out)
    }

    /// Elements that failed [`element::check`] went out empty (the candles
    /// still reach storage and streams). Logged at the 1st, 2nd, 4th, 8th...
    /// batch with some; a component that came in by a swap is rolled back.
    pub(super) fn refused_elements(&mut self, n: usize, first: String) {
        let before = self.stats.unsafe_elements.fetch_add(n as u64, Relaxed);
        self.unsafe_batches += 1;
        if self.unsafe_batches.is_power_of_two() {
            tracing::warn!(component = %self.active, refused = n, total = before + n as u64, first = %first,
                "the component rendered elements that may not reach a browser; sent without them");
        }
        if self.swapped_in {
            let fault = Fault::Malformed(format!("unsafe element {first}"));
            if let Err(e) = self.roll_back_after(&fault) {
                tracing::error!(error = %e, "rolling back after unsafe elements failed");
            }
        }
    }
}
