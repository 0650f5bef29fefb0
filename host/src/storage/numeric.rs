//! `NUMERIC` read in PostgreSQL's binary format straight into a [`Fixed`]:
//! what the restore reads a million times at a start (the text form costs
//! the server a conversion and the host a parse per value).
//!
//! The binary form is `ndigits`, `weight`, `sign`, `dscale` (each 16 bits,
//! big-endian), then `ndigits` base-10000 digits, the first worth
//! `10000^weight`. A value that a `Fixed` cannot hold exactly (more than 18
//! decimals, too large, NaN or infinite) is an error, never a rounding.

use std::error::Error;

use spot_wire::Fixed;
use tokio_postgres::types::{FromSql, Type};

/// A `NUMERIC` column's value as a [`Fixed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numeric(pub Fixed);

/// Why a `NUMERIC` is not a [`Fixed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumericError {
    #[error("a NUMERIC shorter than its header says")]
    Truncated,
    #[error("NaN or an infinity is not a price or a size")]
    NotFinite,
    #[error("a base-10000 digit above 9999")]
    BadDigit,
    #[error("more than 18 decimals")]
    TooPrecise,
    #[error("too large for a Fixed")]
    TooLarge,
}

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;

/// Decode the binary form.
pub fn decode(raw: &[u8]) -> Result<Fixed, NumericError> {
    let word = |i: usize| -> Result<u16, NumericError> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(NumericError::Truncated)
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let negative = match word(2)? {
        POSITIVE => false,
        NEGATIVE => true,
        _ => return Err(NumericError::NotFinite),
    };
    let mut units: i128 = 0;
    for i in 0..ndigits {
        let digit = word(4 + i)?;
        if digit > 9999 {
            return Err(NumericError::BadDigit);
        }
        if digit == 0 {
            continue;
        }
        // This digit is worth 10000^(weight - i) = 10^(4 (weight - i)); in
        // units of 10^-18, 10^(18 + 4 (weight - i)).
        let exponent = 18 + 4 * (weight - i as i32);
        let value = if exponent >= 0 {
            10i128
                .checked_pow(exponent as u32)
                .and_then(|p| p.checked_mul(digit as i128))
                .ok_or(NumericError::TooLarge)?
        } else {
            let p = 10i128.checked_pow((-exponent) as u32).ok_or(NumericError::TooPrecise)?;
            if digit as i128 % p != 0 {
                return Err(NumericError::TooPrecise);
            }
            digit as i128 / p
        };
        units = units.checked_add(value).ok_or(NumericError::TooLarge)?;
    }
    Ok(Fixed::from_units(if negative { -units } else { units }))
}

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Numeric(decode(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary form of a decimal string, as PostgreSQL writes it.
    fn encode(s: &str) -> Vec<u8> {
        let (negative, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        // Pad to whole groups of four on both sides of the point.
        let whole = format!("{}{whole}", "0".repeat((4 - whole.len() % 4) % 4));
        let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
        let digits: Vec<u16> = whole
            .as_bytes()
            .chunks(4)
            .chain(frac.as_bytes().chunks(4))
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let weight = (whole.len() / 4) as i16 - 1;
        let mut out = Vec::new();
        for w in [
            digits.len() as u16,
            weight as u16,
            if negative { NEGATIVE } else { POSITIVE },
            0,
        ] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn decimals_read_back_exactly() {
        for s in [
            "0",
            "1",
            "42000.5",
            "0.000000001",
            "12345.000000000000000001",
            "100000000000",
            "-3.25",
            "0.0000092",
            "91053.39",
        ] {
            assert_eq!(decode(&encode(s)), Ok(s.parse::<Fixed>().unwrap()), "{s}");
        }
    }

    #[test]
    fn what_a_fixed_cannot_hold_is_refused() {
        assert_eq!(decode(&encode("0.0000000000000000001")), Err(NumericError::TooPrecise));
        assert_eq!(decode(&encode(&"9".repeat(30))), Err(NumericError::TooLarge));
        let nan = [0u8, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(decode(&nan), Err(NumericError::NotFinite));
        assert_eq!(decode(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 1]), Err(NumericError::Truncated));
        assert_eq!(
            decode(&[0, 1, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            Err(NumericError::BadDigit)
        );
        assert_eq!(decode(&[]), Err(NumericError::Truncated));
    }
}
