//! The packed result of `ingest`, `apply-candles` and `advance`.

use crate::codec::{Reader, WireError, Writer};
use crate::records::{Candle, Gap, Packed};

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
        let updates = updates
            .chunks_exact(Candle::SIZE)
            .map(Candle::get)
            .collect::<Result<_, _>>()?;
        let gaps = gaps.chunks_exact(Gap::SIZE).map(Gap::get).collect::<Result<_, _>>()?;
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
