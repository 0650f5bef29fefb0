//! The packed result of `ingest`, `apply-candles` and `advance`.

use crate::codec::{Reader, WireError, Writer};
use crate::records::{Candle, Gap, Packed, get_all};

const MAGIC: &[u8; 4] = b"SPO1";
const HEADER: usize = 4 + 4 * 4;

/// What one component call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Current value of every bucket the call changed or completed.
    pub updates: Vec<Candle>,
    /// Trade-id jumps revealed by the call.
    pub gaps: Vec<Gap>,
    /// Trades dropped as already counted.
    pub duplicates: u32,
    /// Trades that could not count (their minute is sealed by a repair or past retention).
    pub ignored: u32,
}

/// Where the results of a component call go: into an [`Outcome`], or straight
/// into the packed bytes with an [`OutcomeWriter`] (no `Vec<Candle>` between).
pub trait OutcomeSink {
    /// The current value of a bucket the call changed or completed.
    fn push_update(&mut self, c: &Candle);
    /// A trade-id jump.
    fn push_gap(&mut self, g: Gap);
    /// A trade dropped as already counted.
    fn count_duplicate(&mut self);
    /// A trade or candle that could not count.
    fn count_ignored(&mut self);
}

impl OutcomeSink for Outcome {
    fn push_update(&mut self, c: &Candle) {
        self.updates.push(*c);
    }
    fn push_gap(&mut self, g: Gap) {
        self.gaps.push(g);
    }
    fn count_duplicate(&mut self) {
        self.duplicates += 1;
    }
    fn count_ignored(&mut self) {
        self.ignored += 1;
    }
}

/// Builds a packed outcome as results arrive: updates are packed at once;
/// gaps and counters (few) wait in an [`Outcome`] until [`OutcomeWriter::finish`].
pub struct OutcomeWriter {
    w: Writer,
    updates: u32,
    rest: Outcome,
}

impl Default for OutcomeWriter {
    fn default() -> Self {
        Self::with_room_for(64)
    }
}

impl OutcomeWriter {
    /// A writer with room for `updates` candles before it has to grow (a
    /// regrowth copies everything written so far).
    pub fn with_room_for(updates: usize) -> Self {
        let mut w = Writer::with_capacity(HEADER + updates * Candle::SIZE);
        w.bytes(MAGIC);
        w.zeros(HEADER - MAGIC.len());
        OutcomeWriter {
            w,
            updates: 0,
            rest: Outcome::default(),
        }
    }

    /// The packed outcome (same bytes as [`Outcome::encode`] of the same results).
    pub fn finish(mut self) -> Vec<u8> {
        for g in &self.rest.gaps {
            g.write(&mut self.w);
        }
        self.w.patch_u32(4, self.updates);
        self.w.patch_u32(8, self.rest.gaps.len() as u32);
        self.w.patch_u32(12, self.rest.duplicates);
        self.w.patch_u32(16, self.rest.ignored);
        self.w.into_bytes()
    }
}

impl OutcomeSink for OutcomeWriter {
    fn push_update(&mut self, c: &Candle) {
        c.write(&mut self.w);
        self.updates += 1;
    }
    fn push_gap(&mut self, g: Gap) {
        self.rest.push_gap(g);
    }
    fn count_duplicate(&mut self) {
        self.rest.count_duplicate();
    }
    fn count_ignored(&mut self) {
        self.rest.count_ignored();
    }
}

impl Outcome {
    /// Pack the outcome.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER + self.updates.len() * Candle::SIZE + self.gaps.len() * Gap::SIZE);
        w.bytes(MAGIC);
        w.u32(self.updates.len() as u32);
        w.u32(self.gaps.len() as u32);
        w.u32(self.duplicates);
        w.u32(self.ignored);
        for c in &self.updates {
            c.write(&mut w);
        }
        for g in &self.gaps {
            g.write(&mut w);
        }
        w.into_bytes()
    }

    /// Unpack an outcome, checking every count against the buffer.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MAGIC {
            return Err(WireError::Magic { expected: "SPO1" });
        }
        let n_updates = r.u32()? as usize;
        let n_gaps = r.u32()? as usize;
        let duplicates = r.u32()?;
        let ignored = r.u32()?;
        let need = n_updates
            .checked_mul(Candle::SIZE)
            .and_then(|a| n_gaps.checked_mul(Gap::SIZE).and_then(|b| a.checked_add(b)))
            .ok_or(WireError::Length {
                len: bytes.len(),
                record: Candle::SIZE,
            })?;
        if r.remaining() != need {
            return Err(WireError::Length {
                len: bytes.len(),
                record: Candle::SIZE,
            });
        }
        let (updates, gaps) = r.take(need)?.split_at(n_updates * Candle::SIZE);
        let updates = get_all(updates)?;
        let gaps = get_all(gaps)?;
        Ok(Outcome {
            updates,
            gaps,
            duplicates,
            ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_packs_what_encode_packs() {
        use crate::Granularity;
        let c = Candle {
            product: 1,
            granularity: Granularity::OneHour,
            start: 3600,
            open: crate::Fixed::from_int(1),
            high: crate::Fixed::from_int(2),
            low: crate::Fixed::from_int(1),
            close: crate::Fixed::from_int(2),
            volume: crate::Fixed::from_int(5),
            last_trade_id: Some(9),
            trades: 3,
            complete: false,
            authoritative: false,
        };
        let g = Gap {
            product: 1,
            first_missing: 4,
            last_missing: 5,
            from_minute: 0,
            to_minute: 60,
        };
        let mut o = Outcome::default();
        let mut w = OutcomeWriter::default();
        for sink in [&mut o as &mut dyn OutcomeSink, &mut w] {
            sink.push_update(&c);
            sink.push_gap(g);
            sink.push_update(&c);
            sink.count_duplicate();
            sink.count_ignored();
            sink.count_ignored();
        }
        assert_eq!(w.finish(), o.encode());
    }

    #[test]
    fn empty_and_lying_outcomes() {
        let o = Outcome {
            duplicates: 3,
            ignored: 1,
            ..Default::default()
        };
        assert_eq!(Outcome::decode(&o.encode()).unwrap(), o);
        let mut bytes = o.encode();
        bytes[4] = 200; // claims 200 updates that are not there
        assert!(Outcome::decode(&bytes).is_err());
        assert!(Outcome::decode(b"nope").is_err());
    }
}
