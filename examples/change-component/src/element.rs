//! The element: the default `<spot-candle>` attributes plus change, range and trades.

use core::fmt::Write;

use spot_rules::render::open_element;
use spot_wire::{Candle, Fixed};

/// `close − open` as a percentage of `open`, two decimals, or `""` when open is 0.
fn change_pct(c: &Candle) -> String {
    let (open, close) = (c.open.units(), c.close.units());
    if open == 0 {
        return String::new();
    }
    // Basis points, rounded half away from zero, in integers: exact, no floats.
    let num = (close - open).saturating_mul(10_000);
    let bp = (num + num.signum() * open.abs() / 2) / open;
    let sign = if bp < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", bp.abs() / 100, bp.abs() % 100)
}

/// Render one candle of `product`: the default element's attributes (same id),
/// then this component's own.
pub fn element(c: &Candle, product: &str) -> String {
    let mut s = String::with_capacity(400 + 2 * product.len());
    open_element(&mut s, c, product);
    let change = Fixed::from_units(c.close.units().saturating_sub(c.open.units()));
    let range = Fixed::from_units(c.high.units().saturating_sub(c.low.units()));
    let _ = write!(
        s,
        " data-change=\"{change}\" data-change-pct=\"{}\" data-range=\"{range}\" data-trades=\"{}\" \
         data-variant=\"change\"></spot-candle>",
        change_pct(c),
        c.trades
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use spot_wire::Granularity;

    fn candle(open: &str, close: &str) -> Candle {
        let f = |s: &str| s.parse::<Fixed>().unwrap();
        Candle {
            product: 0,
            granularity: Granularity::FiveMinutes,
            start: 1704567600,
            open: f(open),
            high: f("110"),
            low: f("90"),
            close: f(close),
            volume: f("3"),
            last_trade_id: Some(9),
            trades: 7,
            complete: false,
            authoritative: false,
        }
    }

    #[test]
    fn change_range_and_trades_are_exact() {
        let e = element(&candle("100", "101.5"), "BTC-USD");
        assert!(e.starts_with("<spot-candle id=\"BTC-USD-FIVE_MINUTES\""), "{e}");
        assert!(e.contains("data-change=\"1.5\""), "{e}");
        assert!(e.contains("data-change-pct=\"1.50\""), "{e}");
        assert!(e.contains("data-range=\"20\""), "{e}");
        assert!(e.contains("data-trades=\"7\""), "{e}");
        // Not `data-style`: Datastar would run its value as an expression.
        assert!(e.contains("data-variant=\"change\""), "{e}");
        let down = element(&candle("100", "99.994"), "BTC-USD");
        assert!(down.contains("data-change=\"-0.006\""), "{down}");
        assert!(down.contains("data-change-pct=\"-0.01\""), "{down}");
    }

    #[test]
    fn hostile_names_stay_attribute_values() {
        let e = element(&candle("1", "1"), "\"><script>x</script>");
        assert!(!e.contains("<script>"), "{e}");
        assert_eq!(e.matches('<').count(), 2, "only the element's own tags: {e}");
    }
}
