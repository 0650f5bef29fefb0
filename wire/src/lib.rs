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
pub use decimal::{DecimalError, Fixed, SCALE_DIGITS};
pub use granularity::Granularity;
pub use outcome::{Outcome, OutcomeSink, OutcomeWriter};
pub use records::{CANDLE_SIZE, Candle, GAP_SIZE, Gap, Side, TRADE_SIZE, Trade};

/// Encode a slice of records back to back.
pub fn encode_all<T: records::Packed>(items: &[T]) -> Vec<u8> {
    let mut buf = vec![0u8; items.len() * T::SIZE];
    for (item, out) in items.iter().zip(buf.chunks_exact_mut(T::SIZE)) {
        item.put(out);
    }
    buf
}

/// Decode a byte slice that holds records back to back.
pub fn decode_all<T: records::Packed>(bytes: &[u8]) -> Result<Vec<T>, WireError> {
    if !bytes.len().is_multiple_of(T::SIZE) {
        return Err(WireError::Length {
            len: bytes.len(),
            record: T::SIZE,
        });
    }
    records::get_all(bytes)
}

pub use records::Packed;
