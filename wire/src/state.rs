//! The canonical state format: what `export-state` returns and `import-state`
//! accepts. It is part of the contract so that any component of the same major
//! version can take over from any other (hot swap) or be rebuilt after a trap.
//!
//! It holds the facts, not derived values: per product the counted trade ids and
//! the 1-minute candles still within retention. Rollups are recomputed on import.
//! Components may add private data under `extensions`, keyed by component name;
//! a component ignores the extensions of others.

use crate::Fixed;
use crate::codec::{Reader, WireError, Writer};

const MAGIC: &[u8; 8] = b"SPOSTAT1";

/// Everything a component needs to continue exactly where another stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The last time passed to `advance` (unix ms), `i64::MIN` if never.
    pub now_ms: i64,
    pub products: Vec<ProductState>,
    /// Component-private sections: (component name, bytes).
    pub extensions: Vec<(String, Vec<u8>)>,
}

/// One product's counted trades and minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductState {
    pub id: u32,
    pub name: String,
    /// Disjoint, ascending, inclusive ranges of trade ids already counted.
    pub counted: Vec<(u64, u64)>,
    /// Time (unix ms) of the highest counted trade, for gap reports.
    pub top_time_ms: i64,
    /// 1-minute candles, ascending by start.
    pub minutes: Vec<MinuteState>,
}

/// One 1-minute candle and what is known about the trades in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteState {
    pub start: i64,
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
    /// Lowest and highest trade id counted in the minute (0 when unknown).
    pub open_id: u64,
    pub close_id: u64,
    /// Trades with an id at or below this are already in the candle (0: none).
    pub floor_id: u64,
    pub trades: u32,
    /// Replaced by an authoritative candle without trade ids: later trades of
    /// this minute are ignored.
    pub sealed: bool,
}

impl State {
    /// Pack the state.
    pub fn encode(&self) -> Vec<u8> {
        let minutes: usize = self.products.iter().map(|p| p.minutes.len()).sum();
        let mut e = StateEncoder::new(self.now_ms, self.products.len(), minutes);
        for p in &self.products {
            e.product(p.id, &p.name, &p.counted, p.top_time_ms, p.minutes.len());
            for m in &p.minutes {
                e.minute(m);
            }
        }
        e.finish(&self.extensions)
    }

    /// Unpack a state, validating every length against the buffer.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut d = StateDecoder::new(bytes)?;
        let now_ms = d.now_ms();
        let mut products = Vec::with_capacity(d.products().min(bytes.len() / 24));
        while let Some(head) = d.next_product()? {
            let mut minutes = Vec::with_capacity(head.minutes);
            for _ in 0..head.minutes {
                minutes.push(d.minute()?);
            }
            products.push(ProductState {
                id: head.id,
                name: head.name,
                counted: head.counted,
                top_time_ms: head.top_time_ms,
                minutes,
            });
        }
        let extensions = d.finish()?;
        Ok(State {
            now_ms,
            products,
            extensions,
        })
    }
}

/// Writes the canonical state as it is walked, product by product, so a
/// component never holds its state twice to export it (a horizon of two days
/// of 900 products is ~300 MB of minutes either way).
pub struct StateEncoder {
    w: Writer,
}

/// Bytes of one packed minute.
pub const MINUTE_BYTES: usize = 117;

impl StateEncoder {
    /// A state of `products` products (exactly that many must follow) and
    /// about `minutes` minutes, told the time `now_ms` last.
    pub fn new(now_ms: i64, products: usize, minutes: usize) -> Self {
        let mut w = Writer::with_capacity(64 + minutes * MINUTE_BYTES + products * 64);
        w.bytes(MAGIC);
        w.i64(now_ms);
        w.u32(products as u32);
        StateEncoder { w }
    }

    /// The next product; exactly `minutes` calls to [`StateEncoder::minute`] follow.
    pub fn product(&mut self, id: u32, name: &str, counted: &[(u64, u64)], top_time_ms: i64, minutes: usize) {
        let w = &mut self.w;
        w.u32(id);
        w.blob(name.as_bytes());
        w.u32(counted.len() as u32);
        for &(lo, hi) in counted {
            w.u64(lo);
            w.u64(hi);
        }
        w.i64(top_time_ms);
        w.u32(minutes as u32);
    }

    /// The next minute of the current product, ascending by start.
    pub fn minute(&mut self, m: &MinuteState) {
        let w = &mut self.w;
        w.i64(m.start);
        for v in [m.open, m.high, m.low, m.close, m.volume] {
            w.i128(v.units());
        }
        w.u64(m.open_id);
        w.u64(m.close_id);
        w.u64(m.floor_id);
        w.u32(m.trades);
        w.u8(m.sealed as u8);
    }

    /// The extensions, and the bytes.
    pub fn finish(mut self, extensions: &[(String, Vec<u8>)]) -> Vec<u8> {
        self.w.u32(extensions.len() as u32);
        for (name, data) in extensions {
            self.w.blob(name.as_bytes());
            self.w.blob(data);
        }
        self.w.into_bytes()
    }
}

/// One product's header in a packed state; its minutes follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductHead {
    pub id: u32,
    pub name: String,
    pub counted: Vec<(u64, u64)>,
    pub top_time_ms: i64,
    /// How many minutes follow.
    pub minutes: usize,
}

/// Reads a packed state as it goes, so an import builds its own structures
/// without an intermediate [`State`]. Every length is checked against the buffer.
pub struct StateDecoder<'a> {
    r: Reader<'a>,
    len: usize,
    now_ms: i64,
    products_left: usize,
    products: usize,
    minutes_left: usize,
}

impl<'a> StateDecoder<'a> {
    /// Check the magic and read the header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.take(8)? != MAGIC {
            return Err(WireError::Magic { expected: "SPOSTAT1" });
        }
        let now_ms = r.i64()?;
        let n = r.u32()? as usize;
        Ok(StateDecoder {
            r,
            len: bytes.len(),
            now_ms,
            products_left: n,
            products: n,
            minutes_left: 0,
        })
    }

    /// The last time told (unix ms).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// How many products the state says it holds.
    pub fn products(&self) -> usize {
        self.products
    }

    /// The next product's header (`None` after the last), once every minute
    /// of the previous one was read.
    pub fn next_product(&mut self) -> Result<Option<ProductHead>, WireError> {
        if self.minutes_left != 0 {
            return Err(WireError::Length {
                len: self.len,
                record: MINUTE_BYTES,
            });
        }
        if self.products_left == 0 {
            return Ok(None);
        }
        self.products_left -= 1;
        let r = &mut self.r;
        let id = r.u32()?;
        let name = utf8(r.blob()?, "product name")?;
        let nc = r.u32()? as usize;
        let mut counted = Vec::with_capacity(nc.min(r.remaining() / 16));
        for _ in 0..nc {
            counted.push((r.u64()?, r.u64()?));
        }
        let top_time_ms = r.i64()?;
        let minutes = r.u32()? as usize;
        if minutes > r.remaining() / MINUTE_BYTES {
            return Err(WireError::Length {
                len: self.len,
                record: MINUTE_BYTES,
            });
        }
        self.minutes_left = minutes;
        Ok(Some(ProductHead {
            id,
            name,
            counted,
            top_time_ms,
            minutes,
        }))
    }

    /// The next minute of the current product.
    pub fn minute(&mut self) -> Result<MinuteState, WireError> {
        if self.minutes_left == 0 {
            return Err(WireError::Length {
                len: self.len,
                record: MINUTE_BYTES,
            });
        }
        self.minutes_left -= 1;
        let r = &mut self.r;
        let start = r.i64()?;
        let mut v = [Fixed::ZERO; 5];
        for x in v.iter_mut() {
            *x = Fixed::from_units(r.i128()?);
        }
        Ok(MinuteState {
            start,
            open: v[0],
            high: v[1],
            low: v[2],
            close: v[3],
            volume: v[4],
            open_id: r.u64()?,
            close_id: r.u64()?,
            floor_id: r.u64()?,
            trades: r.u32()?,
            sealed: r.u8()? != 0,
        })
    }

    /// After the last product: the extensions, and nothing after them.
    pub fn finish(mut self) -> Result<Vec<(String, Vec<u8>)>, WireError> {
        if self.products_left != 0 || self.minutes_left != 0 {
            return Err(WireError::Length {
                len: self.len,
                record: 1,
            });
        }
        let r = &mut self.r;
        let ne = r.u32()? as usize;
        let mut extensions = Vec::with_capacity(ne.min(r.remaining() / 8));
        for _ in 0..ne {
            let name = utf8(r.blob()?, "extension name")?;
            extensions.push((name, r.blob()?.to_vec()));
        }
        if !r.is_empty() {
            return Err(WireError::Length {
                len: self.len,
                record: 1,
            });
        }
        Ok(extensions)
    }
}

fn utf8(b: &[u8], field: &'static str) -> Result<String, WireError> {
    String::from_utf8(b.to_vec()).map_err(|_| WireError::Utf8 { field })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let s = State {
            now_ms: 1_700_000_000_000,
            products: vec![ProductState {
                id: 2,
                name: "BTC-USD".into(),
                counted: vec![(1, 5), (9, 9)],
                top_time_ms: 1_700_000_000_000,
                minutes: vec![MinuteState {
                    start: 1_699_999_980,
                    open: Fixed::from_int(1),
                    high: Fixed::from_int(2),
                    low: Fixed::from_int(1),
                    close: Fixed::from_int(2),
                    volume: Fixed::from_int(3),
                    open_id: 1,
                    close_id: 9,
                    floor_id: 0,
                    trades: 6,
                    sealed: false,
                }],
            }],
            extensions: vec![("vwap".into(), vec![1, 2, 3])],
        };
        let bytes = s.encode();
        assert_eq!(
            bytes.len(),
            8 + 8 + 4 + 4 + 4 + 7 + 4 + 32 + 8 + 4 + MINUTE_BYTES + 4 + 4 + 4 + 4 + 3
        );
        assert_eq!(State::decode(&bytes).unwrap(), s);
        // Read as it goes: the same, and a reader that skips a minute is told.
        let mut d = StateDecoder::new(&bytes).unwrap();
        let head = d.next_product().unwrap().unwrap();
        assert_eq!((head.id, head.minutes), (2, 1));
        assert!(d.next_product().is_err(), "a minute is still unread");
        assert!(State::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(State::decode(b"SPOSTAT1\0\0\0\0\0\0\0\0\xff\xff\xff\xff").is_err());
    }
}
