//! The packed formats that cross the boundary between the spot host and an
//! aggregation component (see `wit/spot.wit` for the byte layouts).
//!
//! Both sides link this crate: the host encodes trades and decodes outcomes, a
//! Rust component does the reverse. Everything is little-endian and fixed-size
//! so a batch is one memcpy across the component boundary.

mod codec;
mod decimal;
mod granularity;
mod outcome;
mod records;
pub mod state;

pub use codec::{Reader, WireError, Writer};
pub use decimal::{DecimalError, Fixed};
pub use granularity::Granularity;
pub use outcome::Outcome;
pub use records::{CANDLE_SIZE, Candle, GAP_SIZE, Gap, Side, TRADE_SIZE, Trade};

/// Encode a slice of records back to back.
pub fn encode_all<T: records::Packed>(items: &[T]) -> Vec<u8> {
    let mut w = Writer::with_capacity(items.len() * T::SIZE);
    for item in items {
        item.write(&mut w);
    }
    w.into_bytes()
}

/// Decode a byte slice that holds records back to back.
pub fn decode_all<T: records::Packed>(bytes: &[u8]) -> Result<Vec<T>, WireError> {
    if bytes.len() % T::SIZE != 0 {
        return Err(WireError::Length {
            len: bytes.len(),
            record: T::SIZE,
        });
    }
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(bytes.len() / T::SIZE);
    while !r.is_empty() {
        out.push(T::read(&mut r)?);
    }
    Ok(out)
}

pub use records::Packed;
