//! `Fixed`: an exact decimal with 18 fractional digits, stored as an i128.
//!
//! Coinbase sends prices and sizes as decimal strings. Floats would round them and
//! drift when summed into volumes; `numeric(20,10)` (the seed) overflows on daily
//! volumes of high-supply tokens. An i128 of atto-units holds ±1.7e20 with 1e-18
//! resolution, adds exactly, and formats back to the shortest exact decimal.

use core::fmt;
use core::str::FromStr;

/// Fractional digits held by [`Fixed`].
pub const SCALE_DIGITS: u32 = 18;
const SCALE: i128 = 10i128.pow(SCALE_DIGITS);

/// An exact decimal: `units / 10^18`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fixed(i128);

/// A decimal string that is not a number [`Fixed`] can hold exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty number")]
    Empty,
    #[error("not a plain decimal number")]
    Syntax,
    #[error("more than 18 significant fractional digits")]
    Precision,
    #[error("out of range")]
    Range,
}

impl Fixed {
    /// Zero.
    pub const ZERO: Fixed = Fixed(0);

    /// From raw atto-units.
    pub const fn from_units(units: i128) -> Self {
        Fixed(units)
    }
    /// Raw atto-units.
    pub const fn units(self) -> i128 {
        self.0
    }
    /// From a whole number.
    pub fn from_int(v: i64) -> Self {
        Fixed(v as i128 * SCALE)
    }
    /// Exact sum, `None` on overflow.
    pub fn checked_add(self, o: Fixed) -> Option<Fixed> {
        self.0.checked_add(o.0).map(Fixed)
    }
    /// Sum that saturates instead of overflowing (volumes near 1.7e20 units).
    pub fn saturating_add(self, o: Fixed) -> Fixed {
        Fixed(self.0.saturating_add(o.0))
    }
    /// Is the value negative?
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
    /// Nearest f64 (for display math only, never for storage).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }
}

impl FromStr for Fixed {
    type Err = DecimalError;

    /// Parse `[-+]digits[.digits]`. Trailing fractional zeros beyond 18 digits are
    /// accepted; a non-zero 19th digit is refused rather than rounded.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DecimalError::Empty);
        }
        let (neg, body) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(DecimalError::Syntax);
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecimalError::Syntax);
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > SCALE_DIGITS as usize {
            return Err(DecimalError::Precision);
        }
        let mut units: i128 = 0;
        for b in int.bytes() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add((b - b'0') as i128))
                .ok_or(DecimalError::Range)?;
        }
        units = units.checked_mul(SCALE).ok_or(DecimalError::Range)?;
        let mut f: i128 = 0;
        for b in frac.bytes() {
            f = f * 10 + (b - b'0') as i128;
        }
        f *= 10i128.pow(SCALE_DIGITS - frac.len() as u32);
        units = units.checked_add(f).ok_or(DecimalError::Range)?;
        Ok(Fixed(if neg { -units } else { units }))
    }
}

impl fmt::Display for Fixed {
    /// The shortest exact decimal: `42000.5`, `0.000000001`, `50000000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; FORMATTED_MAX];
        f.write_str(self.format_into(&mut buf))
    }
}

/// The longest formatted `Fixed`: a sign, 21 integer digits, a point, 18 digits.
const FORMATTED_MAX: usize = 48;

impl Fixed {
    /// Append the shortest exact decimal (what `Display` writes) to `out`,
    /// without the formatting machinery (the renderer's hot path).
    pub fn push_to(self, out: &mut String) {
        let mut buf = [0u8; FORMATTED_MAX];
        out.push_str(self.format_into(&mut buf));
    }

    /// Format into `buf`, right-aligned; returns the text. Every element
    /// the component renders formats five of these, so this avoids the
    /// formatting machinery and all but one 128-bit division (in wasm,
    /// 128-bit division is a library call): the fraction is below 10^18 and
    /// the integer part of any price fits a u64.
    fn format_into(self, buf: &mut [u8; FORMATTED_MAX]) -> &str {
        let neg = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let int = abs / SCALE as u128;
        let mut frac = (abs - int * SCALE as u128) as u64;
        let mut pos = buf.len();
        if frac != 0 {
            let mut digits = SCALE_DIGITS as usize;
            while frac.is_multiple_of(10) {
                frac /= 10;
                digits -= 1;
            }
            for _ in 0..digits {
                pos -= 1;
                buf[pos] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            pos -= 1;
            buf[pos] = b'.';
        }
        match u64::try_from(int) {
            Ok(mut v) => loop {
                pos -= 1;
                buf[pos] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            },
            Err(_) => {
                let mut v = int;
                loop {
                    pos -= 1;
                    buf[pos] = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
            }
        }
        if neg {
            pos -= 1;
            buf[pos] = b'-';
        }
        // ASCII digits, '.' and '-' only.
        core::str::from_utf8(&buf[pos..]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_shortest() {
        for (input, shown) in [
            ("42000.5000000000", "42000.5"),
            ("1260.01", "1260.01"),
            ("0.000000001", "0.000000001"),
            ("50000000000", "50000000000"),
            ("-3.10", "-3.1"),
            (".5", "0.5"),
            ("7.", "7"),
            ("0.000000000000000001", "0.000000000000000001"),
        ] {
            let v: Fixed = input.parse().unwrap();
            assert_eq!(v.to_string(), shown, "{input}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_hold() {
        assert_eq!("".parse::<Fixed>(), Err(DecimalError::Empty));
        assert_eq!("1e-9".parse::<Fixed>(), Err(DecimalError::Syntax));
        assert_eq!("abc".parse::<Fixed>(), Err(DecimalError::Syntax));
        assert_eq!(".".parse::<Fixed>(), Err(DecimalError::Syntax));
        assert_eq!("0.0000000000000000001".parse::<Fixed>(), Err(DecimalError::Precision));
        assert_eq!("999999999999999999999".parse::<Fixed>(), Err(DecimalError::Range));
        assert!("0.10000000000000000000000".parse::<Fixed>().is_ok());
    }

    #[test]
    fn the_extremes_round_trip() {
        // (i128::MIN prints, but the parser takes magnitudes up to i128::MAX.)
        for units in [
            i128::MIN + 1,
            i128::MAX,
            -1,
            1,
            0,
            SCALE,
            -SCALE,
            u64::MAX as i128 * SCALE,
        ] {
            let f = Fixed::from_units(units);
            let shown = f.to_string();
            assert_eq!(shown.parse::<Fixed>().ok(), Some(f), "{units} shown as {shown}");
        }
        assert_eq!(Fixed::from_units(-1).to_string(), "-0.000000000000000001");
    }

    proptest! {
        #[test]
        fn display_round_trips(units in any::<i128>()) {
            let v = Fixed::from_units(units);
            prop_assert_eq!(v.to_string().parse::<Fixed>(), Ok(v));
        }
    }
}
