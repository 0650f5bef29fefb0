//! The fixed-size records of the packed batches: trades, candles, gaps.

use crate::codec::{Reader, WireError, Writer, get_i64, get_i128, get_u32, get_u64, put};
use crate::{Fixed, Granularity};

/// A fixed-size record with a packed layout.
///
/// `put` and `get` work on a slice of exactly `SIZE` bytes at fixed offsets:
/// batches are encoded and decoded with `chunks_exact`, one bounds check per
/// record rather than per field.
pub trait Packed: Sized {
    /// Bytes per record.
    const SIZE: usize;
    /// Write the record into `out` (`out.len() == SIZE`).
    fn put(&self, out: &mut [u8]);
    /// Read a record from `b` (`b.len() == SIZE`).
    fn get(b: &[u8]) -> Result<Self, WireError>;
    /// Append the record.
    fn write(&self, w: &mut Writer) {
        self.put(w.grow(Self::SIZE));
    }
    /// Read one record.
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Self::get(r.take(Self::SIZE)?)
    }
}

/// Decode records back to back from `bytes` (a whole number of them).
///
/// A loop into a vector sized up front: collecting an iterator of `Result`s
/// cannot know its length, and regrowing a vector of 112-byte candles cost
/// more than decoding them.
pub(crate) fn get_all<T: Packed>(bytes: &[u8]) -> Result<Vec<T>, WireError> {
    let mut out = Vec::with_capacity(bytes.len() / T::SIZE);
    for chunk in bytes.chunks_exact(T::SIZE) {
        out.push(T::get(chunk)?);
    }
    Ok(out)
}

/// Bytes per packed trade.
pub const TRADE_SIZE: usize = 56;
/// Bytes per packed candle.
pub const CANDLE_SIZE: usize = 112;
/// Bytes per packed gap.
pub const GAP_SIZE: usize = 40;

/// The maker side of a trade, as Coinbase reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    #[default]
    Unknown = 0,
    Buy = 1,
    Sell = 2,
}

/// One market trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// Host-assigned product id (names cross once, via `define-products`).
    pub product: u32,
    pub side: Side,
    /// Coinbase's trade id; consecutive per product.
    pub trade_id: u64,
    /// Execution time, unix milliseconds.
    pub time_ms: i64,
    pub price: Fixed,
    pub size: Fixed,
}

impl Packed for Trade {
    const SIZE: usize = TRADE_SIZE;
    fn put(&self, out: &mut [u8]) {
        put(out, 0, &self.product.to_le_bytes());
        out[4] = self.side as u8;
        out[5..8].fill(0);
        put(out, 8, &self.trade_id.to_le_bytes());
        put(out, 16, &self.time_ms.to_le_bytes());
        put(out, 24, &self.price.units().to_le_bytes());
        put(out, 40, &self.size.units().to_le_bytes());
    }
    fn get(b: &[u8]) -> Result<Self, WireError> {
        let side = match b[4] {
            1 => Side::Buy,
            2 => Side::Sell,
            _ => Side::Unknown,
        };
        Ok(Trade {
            product: get_u32(b, 0),
            side,
            trade_id: get_u64(b, 8),
            time_ms: get_i64(b, 16),
            price: Fixed::from_units(get_i128(b, 24)),
            size: Fixed::from_units(get_i128(b, 40)),
        })
    }
}

/// Candle flag: the bucket is complete (wall clock passed its end plus grace).
pub const FLAG_COMPLETE: u8 = 1;
/// Candle flag: `last_trade_id` is meaningful.
pub const FLAG_HAS_LAST_TRADE_ID: u8 = 2;
/// Candle flag: the value came from an authoritative source (REST or storage).
pub const FLAG_AUTHORITATIVE: u8 = 4;

/// One OHLCV candle: an update the component emits or an authoritative input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candle {
    pub product: u32,
    pub granularity: Granularity,
    /// Bucket start, unix seconds, aligned to the granularity.
    pub start: i64,
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
    /// Highest trade id counted in the bucket, when known.
    pub last_trade_id: Option<u64>,
    /// Trades counted (0 when unknown, e.g. REST candles).
    pub trades: u32,
    pub complete: bool,
    pub authoritative: bool,
}

impl Candle {
    /// `high >= max(open, close)`, `low <= min(open, close)`, `volume >= 0`.
    pub fn is_well_formed(&self) -> bool {
        self.high >= self.open.max(self.close)
            && self.low <= self.open.min(self.close)
            && !self.volume.is_negative()
            && self.start.rem_euclid(self.granularity.seconds()) == 0
    }
}

impl Packed for Candle {
    const SIZE: usize = CANDLE_SIZE;
    fn put(&self, out: &mut [u8]) {
        let mut flags = 0;
        if self.complete {
            flags |= FLAG_COMPLETE;
        }
        if self.last_trade_id.is_some() {
            flags |= FLAG_HAS_LAST_TRADE_ID;
        }
        if self.authoritative {
            flags |= FLAG_AUTHORITATIVE;
        }
        put(out, 0, &self.product.to_le_bytes());
        out[4] = self.granularity as u8;
        out[5] = flags;
        out[6..8].fill(0);
        put(out, 8, &self.start.to_le_bytes());
        for (i, v) in [self.open, self.high, self.low, self.close, self.volume]
            .into_iter()
            .enumerate()
        {
            put(out, 16 + 16 * i, &v.units().to_le_bytes());
        }
        put(out, 96, &self.last_trade_id.unwrap_or(0).to_le_bytes());
        put(out, 104, &self.trades.to_le_bytes());
        out[108..112].fill(0);
    }
    /// Packed on the stack and appended in one copy (growing the buffer first
    /// would zero it only to overwrite it).
    fn write(&self, w: &mut Writer) {
        let mut b = [0u8; CANDLE_SIZE];
        self.put(&mut b);
        w.bytes(&b);
    }
    fn get(b: &[u8]) -> Result<Self, WireError> {
        let granularity = Granularity::from_index(b[4]).ok_or(WireError::Invalid {
            field: "granularity",
            value: b[4] as i128,
        })?;
        let flags = b[5];
        let v = |i: usize| Fixed::from_units(get_i128(b, 16 + 16 * i));
        Ok(Candle {
            product: get_u32(b, 0),
            granularity,
            start: get_i64(b, 8),
            open: v(0),
            high: v(1),
            low: v(2),
            close: v(3),
            volume: v(4),
            last_trade_id: (flags & FLAG_HAS_LAST_TRADE_ID != 0).then_some(get_u64(b, 96)),
            trades: get_u32(b, 104),
            complete: flags & FLAG_COMPLETE != 0,
            authoritative: flags & FLAG_AUTHORITATIVE != 0,
        })
    }
}

/// A jump in a product's trade ids: trades that were never received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub product: u32,
    pub first_missing: u64,
    pub last_missing: u64,
    /// First and last minute (unix s) the missing trades can belong to.
    pub from_minute: i64,
    pub to_minute: i64,
}

impl Packed for Gap {
    const SIZE: usize = GAP_SIZE;
    fn put(&self, out: &mut [u8]) {
        put(out, 0, &self.product.to_le_bytes());
        out[4..8].fill(0);
        put(out, 8, &self.first_missing.to_le_bytes());
        put(out, 16, &self.last_missing.to_le_bytes());
        put(out, 24, &self.from_minute.to_le_bytes());
        put(out, 32, &self.to_minute.to_le_bytes());
    }
    fn get(b: &[u8]) -> Result<Self, WireError> {
        Ok(Gap {
            product: get_u32(b, 0),
            first_missing: get_u64(b, 8),
            last_missing: get_u64(b, 16),
            from_minute: get_i64(b, 24),
            to_minute: get_i64(b, 32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_all, encode_all};

    #[test]
    fn records_round_trip_at_their_declared_size() {
        let t = Trade {
            product: 7,
            side: Side::Sell,
            trade_id: 846155166,
            time_ms: 1_759_199_999_387,
            price: "2667.2".parse().unwrap(),
            size: "0.67103722".parse().unwrap(),
        };
        let bytes = encode_all(&[t, t]);
        assert_eq!(bytes.len(), 2 * TRADE_SIZE);
        assert_eq!(decode_all::<Trade>(&bytes).unwrap(), vec![t, t]);

        let c = Candle {
            product: 1,
            granularity: Granularity::SixHours,
            start: 1704520800,
            open: Fixed::from_int(1),
            high: Fixed::from_int(3),
            low: Fixed::ZERO,
            close: Fixed::from_int(2),
            volume: "50000000000".parse().unwrap(),
            last_trade_id: Some(0),
            trades: 9,
            complete: true,
            authoritative: false,
        };
        let bytes = encode_all(&[c]);
        assert_eq!(bytes.len(), CANDLE_SIZE);
        assert_eq!(decode_all::<Candle>(&bytes).unwrap(), vec![c]);
        assert!(c.is_well_formed());

        let g = Gap {
            product: 3,
            first_missing: 10,
            last_missing: 12,
            from_minute: 60,
            to_minute: 120,
        };
        assert_eq!(decode_all::<Gap>(&encode_all(&[g])).unwrap(), vec![g]);
    }

    #[test]
    fn ragged_and_invalid_buffers_are_errors() {
        assert!(matches!(decode_all::<Trade>(&[0u8; 57]), Err(WireError::Length { .. })));
        let mut bytes = vec![0u8; CANDLE_SIZE];
        bytes[4] = 9;
        assert!(matches!(
            decode_all::<Candle>(&bytes),
            Err(WireError::Invalid {
                field: "granularity",
                ..
            })
        ));
    }
}
