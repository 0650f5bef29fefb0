//! The fixed-size records of the packed batches: trades, candles, gaps.

use crate::codec::{Reader, WireError, Writer};
use crate::{Fixed, Granularity};

/// A fixed-size record with a packed layout.
pub trait Packed: Sized {
    /// Bytes per record.
    const SIZE: usize;
    /// Append the record.
    fn write(&self, w: &mut Writer);
    /// Read one record.
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError>;
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
    fn write(&self, w: &mut Writer) {
        w.u32(self.product);
        w.u8(self.side as u8);
        w.zeros(3);
        w.u64(self.trade_id);
        w.i64(self.time_ms);
        w.i128(self.price.units());
        w.i128(self.size.units());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let product = r.u32()?;
        let side = match r.u8()? {
            1 => Side::Buy,
            2 => Side::Sell,
            _ => Side::Unknown,
        };
        r.skip(3)?;
        Ok(Trade {
            product,
            side,
            trade_id: r.u64()?,
            time_ms: r.i64()?,
            price: Fixed::from_units(r.i128()?),
            size: Fixed::from_units(r.i128()?),
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
    fn write(&self, w: &mut Writer) {
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
        w.u32(self.product);
        w.u8(self.granularity as u8);
        w.u8(flags);
        w.zeros(2);
        w.i64(self.start);
        for v in [self.open, self.high, self.low, self.close, self.volume] {
            w.i128(v.units());
        }
        w.u64(self.last_trade_id.unwrap_or(0));
        w.u32(self.trades);
        w.zeros(4);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let product = r.u32()?;
        let g = r.u8()?;
        let granularity = Granularity::from_index(g).ok_or(WireError::Invalid {
            field: "granularity",
            value: g as i128,
        })?;
        let flags = r.u8()?;
        r.skip(2)?;
        let start = r.i64()?;
        let mut v = [Fixed::ZERO; 5];
        for x in v.iter_mut() {
            *x = Fixed::from_units(r.i128()?);
        }
        let last = r.u64()?;
        let trades = r.u32()?;
        r.skip(4)?;
        Ok(Candle {
            product,
            granularity,
            start,
            open: v[0],
            high: v[1],
            low: v[2],
            close: v[3],
            volume: v[4],
            last_trade_id: (flags & FLAG_HAS_LAST_TRADE_ID != 0).then_some(last),
            trades,
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
    fn write(&self, w: &mut Writer) {
        w.u32(self.product);
        w.zeros(4);
        w.u64(self.first_missing);
        w.u64(self.last_missing);
        w.i64(self.from_minute);
        w.i64(self.to_minute);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let product = r.u32()?;
        r.skip(4)?;
        Ok(Gap {
            product,
            first_missing: r.u64()?,
            last_missing: r.u64()?,
            from_minute: r.i64()?,
            to_minute: r.i64()?,
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
