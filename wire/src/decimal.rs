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

    /// Append a plain integer the same way (candle starts, counts): no
    /// scaling, so no 128-bit arithmetic at all.
    pub fn push_int(v: i64, out: &mut String) {
        let mut buf = [0u8; FORMATTED_MAX];
        let mut pos = put_int(&mut buf, POINT, v.unsigned_abs());
        if v < 0 {
            pos -= 1;
            buf[pos] = b'-';
        }
        out.push_str(core::str::from_utf8(&buf[pos..POINT]).unwrap_or_default());
    }

    /// Format into `buf`; returns the text. Every element the component
    /// renders formats five of these, so this avoids the formatting machinery
    /// and 64-bit digit loops: wasm has no 64-bit high multiply, so there a
    /// 64-bit division by 10 stays a hardware division per digit, while a 32-bit
    /// one becomes a multiply. Digits are produced nine at a time from u32s;
    /// the 128-bit division by 10^18 (a library call in wasm) is done as two
    /// long divisions by 10^9 on 32-bit limbs.
    fn format_into(self, buf: &mut [u8; FORMATTED_MAX]) -> &str {
        const SCALE64: u64 = SCALE as u64;
        let neg = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let (int, frac) = match u64::try_from(abs) {
            Ok(a) => ((a / SCALE64) as u128, a % SCALE64),
            Err(_) => {
                let (q, lo) = div_rem_billion(abs);
                let (int, hi) = div_rem_billion(q);
                (int, hi as u64 * BILLION + lo as u64)
            }
        };
        // The integer part ends at POINT, the fraction's 18 digits follow the
        // point, and its trailing zeros are cut off.
        let mut end = POINT;
        if frac != 0 {
            buf[POINT] = b'.';
            put_nine(buf, POINT + 1, (frac / BILLION) as u32);
            put_nine(buf, POINT + 10, (frac % BILLION) as u32);
            end = POINT + 1 + SCALE_DIGITS as usize;
            while buf[end - 1] == b'0' {
                end -= 1;
            }
        }
        let mut pos = POINT;
        let mut int = int;
        while int > u64::MAX as u128 {
            let (rest, low) = div_rem_billion(int);
            pos -= 9;
            put_nine(buf, pos, low);
            int = rest;
        }
        pos = put_int(buf, pos, int as u64);
        if neg {
            pos -= 1;
            buf[pos] = b'-';
        }
        // ASCII digits, '.' and '-' only.
        core::str::from_utf8(&buf[pos..end]).unwrap_or_default()
    }
}

/// Digits come nine at a time.
const BILLION: u64 = 1_000_000_000;

/// Where the formatted integer part ends: room for a sign and the 21 digits of
/// the largest magnitude before it, the point and 18 digits after it.
const POINT: usize = 1 + 21 + 1;

/// `(x / 10^9, x % 10^9)` by long division on 32-bit limbs: each step divides
/// a u64 below 10^9 * 2^32, so no 128-bit arithmetic is needed.
#[inline]
fn div_rem_billion(x: u128) -> (u128, u32) {
    let mut q = 0u128;
    let mut r = 0u64;
    for shift in [96, 64, 32, 0] {
        let cur = (r << 32) | ((x >> shift) as u32 as u64);
        let digit = cur / BILLION;
        r = cur - digit * BILLION;
        q |= (digit as u128) << shift;
    }
    (q, r as u32)
}

/// Write the digits of `v` so that they end at `buf[end]`; returns where they start.
#[inline]
fn put_int(buf: &mut [u8], end: usize, mut v: u64) -> usize {
    let mut pos = end;
    while v >= BILLION {
        pos -= 9;
        put_nine(buf, pos, (v % BILLION) as u32);
        v /= BILLION;
    }
    let mut v = v as u32;
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return pos;
        }
    }
}

/// Write `v` (< 10^9) as exactly nine digits, zero-padded, at `buf[at..at + 9]`.
#[inline]
fn put_nine(buf: &mut [u8], at: usize, mut v: u32) {
    for slot in buf[at..at + 9].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
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

    /// The shortest exact decimal, the slow obvious way.
    fn reference(units: i128) -> String {
        let sign = if units < 0 { "-" } else { "" };
        let abs = units.unsigned_abs();
        let scale = SCALE as u128;
        let frac = format!("{:018}", abs % scale);
        let frac = frac.trim_end_matches('0');
        match frac {
            "" => format!("{sign}{}", abs / scale),
            f => format!("{sign}{}.{f}", abs / scale),
        }
    }

    #[test]
    fn integers_print_as_integers() {
        for v in [0, 7, -7, 1_704_567_600, i64::MAX, i64::MIN, 999_999_999, 1_000_000_000] {
            let mut s = String::new();
            Fixed::push_int(v, &mut s);
            assert_eq!(s, v.to_string());
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(units in any::<i128>()) {
            let v = Fixed::from_units(units);
            prop_assert_eq!(v.to_string().parse::<Fixed>(), Ok(v));
            prop_assert_eq!(v.to_string(), reference(units));
        }

        #[test]
        fn prices_and_volumes_print_shortest(int in 0u64..100_000_000_000, frac in 0u64..SCALE as u64, neg: bool) {
            let units = (int as i128 * SCALE + frac as i128) * if neg { -1 } else { 1 };
            prop_assert_eq!(Fixed::from_units(units).to_string(), reference(units));
        }
    }
}
