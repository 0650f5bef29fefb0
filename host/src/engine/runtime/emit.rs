//! Emit: an outcome's candles rendered by the active instance, every element
//! checked, and the output handed to the sinks and subscribers.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use spot_wire::{Candle, Outcome, encode_all};

use super::Runtime;
use crate::engine::element;
use crate::engine::error::Fault;
use crate::engine::{CandleUpdate, Cause, EngineOutput, GapReport};

/// About how many updates of live trades go out in one piece (see
/// [`Runtime::emit`]): a few dozen products, each piece one render call and
/// one hub publish.
pub(super) const PIECE: usize = 256;

/// Where the first piece of `updates` ends: after [`PIECE`] updates, at the
/// next change of product (all of them when fewer).
fn piece_end(updates: &[Candle]) -> usize {
    if updates.len() <= PIECE {
        return updates.len();
    }
    let last = updates[PIECE - 1].product;
    updates[PIECE..]
        .iter()
        .position(|c| c.product != last)
        .map_or(updates.len(), |i| PIECE + i)
}

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

    /// Render the outcome's candles and hand them to every subscriber;
    /// returns what went out (nothing when there was nothing).
    ///
    /// A large outcome of live trades goes out in pieces of about
    /// [`PIECE`] updates (whole products: a client's candles of one product
    /// stay in one event), each rendered and handed out before the next is
    /// rendered: the streams of the first piece write (on other threads)
    /// while the engine renders the rest, instead of every client waiting for
    /// the whole outcome. Gaps and counts go with the first piece.
    pub(super) fn emit(&mut self, outcome: Outcome, cause: Cause) -> Vec<Arc<EngineOutput>> {
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
            return Vec::new();
        }
        let Outcome {
            updates,
            gaps,
            duplicates,
            ignored,
        } = outcome;
        let gaps = gaps
            .into_iter()
            .map(|gap| GapReport {
                product: self.name(gap.product),
                gap,
            })
            .collect();
        let mut first = Some((gaps, duplicates, ignored));
        let mut outs = Vec::new();
        let mut rest = updates.as_slice();
        loop {
            let cut = if cause == Cause::Trades {
                piece_end(rest)
            } else {
                rest.len()
            };
            let (piece, after) = rest.split_at(cut);
            let (gaps, duplicates, ignored) = first.take().unwrap_or_default();
            let more = !after.is_empty();
            outs.push(self.emit_piece(piece, gaps, duplicates, ignored, cause, more));
            rest = after;
            if rest.is_empty() {
                return outs;
            }
        }
    }

    /// Render `candles`, check their elements, and hand them out as one output.
    fn emit_piece(
        &mut self,
        candles: &[Candle],
        gaps: Vec<GapReport>,
        duplicates: u32,
        ignored: u32,
        cause: Cause,
        more: bool,
    ) -> Arc<EngineOutput> {
        let started = Instant::now();
        let elements = if candles.is_empty() {
            Vec::new()
        } else {
            let packed = encode_all(candles);
            match self.instance.as_mut().map(|i| i.render(&packed)) {
                Some(Ok(e)) => e,
                Some(Err(f)) => {
                    self.stats.render_failures.fetch_add(1, Relaxed);
                    self.record_fault(&f, "render failed; candles go out without elements");
                    let _ = self.rebuild();
                    vec![String::new(); candles.len()]
                }
                None => vec![String::new(); candles.len()],
            }
        };
        let mut refused: Option<(usize, String)> = None;
        let updates = candles
            .iter()
            .zip(elements)
            .map(|(candle, mut element)| {
                let product = self.name(candle.product);
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
                    candle: *candle,
                    // (A String's buffer becomes the Bytes: no copy.)
                    element: Bytes::from(element),
                }
            })
            .collect();
        let out = Arc::new(EngineOutput {
            cause,
            updates,
            gaps,
            duplicates,
            ignored,
            more,
        });
        let rendered = Instant::now();
        self.timing.render += rendered - started;
        // Sinks first: they take the output here, without a hop to another thread.
        for sink in &self.sinks {
            sink(&out);
        }
        // Backpressure: a subscriber that is behind holds the engine (and so the
        // feed) back; subscribers conflate, so they are never behind for long.
        self.subscribers.retain(|s| s.blocking_send(out.clone()).is_ok());
        self.timing.publish += rendered.elapsed();
        if let Some((n, first)) = refused {
            self.refused_elements(n, first);
        }
        out
    }

    /// A product's name (a made-up one for an id never defined).
    fn name(&self, id: u32) -> Arc<str> {
        self.products
            .name(id)
            .unwrap_or_else(|| Arc::from(format!("product-{id}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use spot_wire::{Fixed, Granularity};

    fn candles(products: &[(u32, usize)]) -> Vec<Candle> {
        let c = |product| Candle {
            product,
            granularity: Granularity::OneMinute,
            start: 0,
            open: Fixed::from_int(1),
            high: Fixed::from_int(1),
            low: Fixed::from_int(1),
            close: Fixed::from_int(1),
            volume: Fixed::from_int(1),
            last_trade_id: None,
            trades: 1,
            complete: false,
            authoritative: false,
        };
        products
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(c(p), n))
            .collect()
    }

    #[test]
    fn a_piece_ends_at_the_first_change_of_product_after_its_size() {
        assert_eq!(piece_end(&[]), 0);
        assert_eq!(piece_end(&candles(&[(0, 8), (1, 8)])), 16);
        // 256 of product 0 are a piece; product 1 starts the next.
        assert_eq!(piece_end(&candles(&[(0, PIECE), (1, 8)])), PIECE);
        // Product 1 straddles the size: it stays whole in the first piece.
        assert_eq!(piece_end(&candles(&[(0, PIECE - 4), (1, 8), (2, 8)])), PIECE + 4);
        // One product to the end: one piece.
        assert_eq!(piece_end(&candles(&[(0, PIECE - 4), (1, 100)])), PIECE + 96);
    }
}
