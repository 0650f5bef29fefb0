//! The element: what each viewer's page gets for one candle.
//!
//! It must be one `<spot-candle …></spot-candle>` with `name="value"`
//! attributes and nothing inside: the candle's own `id` and `data-*` of your
//! own, not Datastar's (`data-on…`, `data-init`, `data-text`, `data-signals`,
//! …). Escape values (`spot_rules::render::escape_attr`). spot checks every
//! element and refuses anything else.

use core::fmt::Write;

use spot_rules::render::open_element;
use spot_wire::{Candle, Fixed};

/// The default element's attributes (its id, product, granularity,
/// timestamp, open, high, low, close, volume, complete), then this
/// component's own: the candle's spread (high − low).
pub fn element(c: &Candle, product: &str) -> String {
    let mut s = String::with_capacity(400 + 2 * product.len());
    open_element(&mut s, c, product);
    let spread = Fixed::from_units(c.high.units().saturating_sub(c.low.units()));
    let _ = write!(s, " data-spread=\"{spread}\"></spot-candle>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use spot_wire::Granularity;

    #[test]
    fn the_element_adds_the_spread() {
        let f = |s: &str| s.parse::<Fixed>().unwrap();
        let c = Candle {
            product: 0,
            granularity: Granularity::OneMinute,
            start: 1_767_225_600,
            open: f("100"),
            high: f("104.5"),
            low: f("99"),
            close: f("101"),
            volume: f("2"),
            last_trade_id: Some(7),
            trades: 3,
            complete: false,
            authoritative: false,
        };
        let e = element(&c, "BTC-USD");
        assert!(
            e.starts_with("<spot-candle id=\"BTC-USD-ONE_MINUTE\""),
            "{e}"
        );
        assert!(e.ends_with(" data-spread=\"5.5\"></spot-candle>"), "{e}");
    }
}
