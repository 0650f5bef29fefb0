//! The `<spot-candle>` element browsers receive (the seed's format, SPEC §4).

use spot_wire::{Candle, Fixed};

/// Append `s` to `out` with every character that could end or break out of a
/// double-quoted attribute escaped. Line breaks are escaped too, so an element is
/// always one line (one SSE `data:` line).
pub fn escape_attr(out: &mut String, s: &str) {
    // Product names almost never hold any of these: copy them whole.
    if !s
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | b'\n' | b'\r'))
    {
        out.push_str(s);
        return;
    }
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Render one candle of `product`. The id (`BTC-USD-ONE_MINUTE`) is stable per
/// product and granularity, so the browser morphs the element in place.
pub fn element(c: &Candle, product: &str) -> String {
    let mut s = String::with_capacity(320 + 2 * product.len());
    open_element(&mut s, c, product);
    s.push_str("></spot-candle>");
    s
}

/// Write `<spot-candle id=… data-…="…"` (the seed's attributes, without the
/// closing `>`), so a component can add attributes of its own after them.
pub fn open_element(s: &mut String, c: &Candle, product: &str) {
    let g = c.granularity.name();
    s.push_str("<spot-candle id=\"");
    escape_attr(s, product);
    s.push('-');
    s.push_str(g);
    s.push_str("\" data-product=\"");
    escape_attr(s, product);
    // Numbers and names below are produced here and contain nothing to escape.
    // Pieces are pushed directly: `write!` costs more than the digits (an
    // element is rendered for every candle update).
    s.push_str("\" data-granularity=\"");
    s.push_str(g);
    s.push_str("\" data-timestamp=\"");
    Fixed::push_int(c.start, s);
    for (name, v) in [
        ("\" data-open=\"", c.open),
        ("\" data-high=\"", c.high),
        ("\" data-low=\"", c.low),
        ("\" data-close=\"", c.close),
        ("\" data-volume=\"", c.volume),
    ] {
        s.push_str(name);
        v.push_to(s);
    }
    s.push_str(if c.complete {
        "\" data-complete=\"true\""
    } else {
        "\" data-complete=\"false\""
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use spot_wire::{Fixed, Granularity};

    fn candle() -> Candle {
        let f = |s: &str| s.parse::<Fixed>().unwrap();
        Candle {
            product: 0,
            granularity: Granularity::OneMinute,
            start: 1704567600,
            open: f("42000.5000000000"),
            high: f("42500"),
            low: f("41800"),
            close: f("42200"),
            volume: f("123.45"),
            last_trade_id: None,
            trades: 0,
            complete: false,
            authoritative: false,
        }
    }

    #[test]
    fn renders_the_seed_element() {
        assert_eq!(
            element(&candle(), "BTC-USD"),
            "<spot-candle id=\"BTC-USD-ONE_MINUTE\" data-product=\"BTC-USD\" data-granularity=\"ONE_MINUTE\" \
             data-timestamp=\"1704567600\" data-open=\"42000.5\" data-high=\"42500\" data-low=\"41800\" \
             data-close=\"42200\" data-volume=\"123.45\" data-complete=\"false\"></spot-candle>"
        );
    }

    #[test]
    fn hostile_product_names_stay_inside_their_attribute() {
        let html = element(&candle(), "\"><script>alert('x')</script>\n&");
        assert!(!html.contains("<script"));
        assert!(!html.contains('\n'));
        assert!(html.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#10;&amp;"));
        // Exactly the attribute quotes we wrote remain.
        assert_eq!(html.matches('"').count(), 20);
    }
}
