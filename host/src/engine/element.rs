//! What an element from a component must look like before it reaches a browser.
//!
//! A component is untrusted, and its elements are patched into every viewer's
//! page. Escaping the values is the component's job (SPEC §3), but a hostile
//! one could send `<img onerror=…>`, or a Datastar attribute (`data-on:…`,
//! `data-init`, `data-effect`, …) whose value is an expression the browser
//! runs, or another element's id, which would replace part of the page. So the
//! host lets through only the shape the contract describes:
//!
//! - one `<spot-candle …></spot-candle>` with attributes only (no `<` or `>`
//!   anywhere else: no child element, no text);
//! - attributes written `name="value"`, names of `[a-z0-9-]` that are `id` or
//!   `data-…` but not a Datastar attribute;
//! - exactly one `id`, the candle's own (`BTC-USD-ONE_MINUTE`).
//!
//! Components stay free to add `data-*` attributes of their own (the example
//! component adds `data-change`, `data-range`, …).

const OPEN: &[u8] = b"<spot-candle";
const CLOSE: &[u8] = b"></spot-candle>";

/// Whether `word` begins a Datastar attribute (core and Pro, 1.0; a few older
/// names too): `data-<word>` and `data-<word>-…` are refused. (A `match`, not a
/// list search: this runs for every attribute of every element.)
fn datastar_word(word: &[u8]) -> bool {
    matches!(
        word,
        b"animate"
            | b"attr"
            | b"bind"
            | b"class"
            | b"computed"
            | b"custom"
            | b"effect"
            | b"ignore"
            | b"indicator"
            | b"init"
            | b"json"
            | b"match"
            | b"model"
            | b"on"
            | b"persist"
            | b"preserve"
            | b"query"
            | b"ref"
            | b"replace"
            | b"scroll"
            | b"show"
            | b"signals"
            | b"star"
            | b"store"
            | b"style"
            | b"text"
            | b"view"
    )
}

/// Why an element was not let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeElement {
    #[error("not one <spot-candle ...></spot-candle> element")]
    Shape,
    #[error("markup (< or >) inside the element")]
    Markup,
    #[error("malformed attribute list at byte {0}")]
    Syntax(usize),
    #[error("attribute {0:?} is not id or data-*")]
    NotData(String),
    #[error("attribute {0:?} is a Datastar attribute")]
    Datastar(String),
    #[error("id {found:?} is not the candle's ({expected:?})")]
    Id { found: String, expected: String },
    #[error("{0} id attributes")]
    IdCount(usize),
}

/// Check `html`, the element a component rendered for a candle of `product`
/// at `granularity` (its id: `{product}-{granularity}`, e.g. `BTC-USD-ONE_MINUTE`).
///
/// This runs for every element the engine emits: for the seed's element it
/// costs a quarter to a third of rendering it in the component (`make bench`,
/// part 2). A plain byte walk: SWAR and memchr-per-quote variants measured no
/// faster on real elements.
pub fn check(html: &[u8], product: &str, granularity: &str) -> Result<(), UnsafeElement> {
    if html.len() < OPEN.len() + CLOSE.len() || !html.starts_with(OPEN) || !html.ends_with(CLOSE) {
        return Err(UnsafeElement::Shape);
    }
    let inner = &html[OPEN.len()..html.len() - CLOSE.len()];
    if memchr::memchr2(b'<', b'>', inner).is_some() {
        return Err(UnsafeElement::Markup);
    }
    let mut ids = 0;
    let mut at = 0;
    while at < inner.len() {
        // At least one blank before every attribute.
        let blanks = inner[at..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        if blanks == 0 {
            return Err(UnsafeElement::Syntax(OPEN.len() + at));
        }
        at += blanks;
        if at == inner.len() {
            break;
        }
        let name_len = inner[at..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'-')
            .count();
        let name = &inner[at..at + name_len];
        let value_at = at + name_len + 2;
        if name_len == 0 || inner.get(at + name_len..value_at) != Some(b"=\"") {
            return Err(UnsafeElement::Syntax(OPEN.len() + at));
        }
        // A value runs to the next quote (it cannot hold one).
        let Some(value_len) = inner[value_at..].iter().position(|b| *b == b'"') else {
            return Err(UnsafeElement::Syntax(OPEN.len() + value_at));
        };
        let value = &inner[value_at..value_at + value_len];
        check_name(name)?;
        if name == b"id" {
            ids += 1;
            let (p, g) = (product.as_bytes(), granularity.as_bytes());
            let own = value.len() == p.len() + 1 + g.len()
                && value.starts_with(p)
                && value[p.len()] == b'-'
                && value.ends_with(g);
            if !own {
                return Err(UnsafeElement::Id {
                    found: String::from_utf8_lossy(value).into_owned(),
                    expected: format!("{product}-{granularity}"),
                });
            }
        }
        at = value_at + value_len + 1;
    }
    if ids != 1 {
        return Err(UnsafeElement::IdCount(ids));
    }
    Ok(())
}

fn check_name(name: &[u8]) -> Result<(), UnsafeElement> {
    // The seed's attributes, the common case, without looking further.
    if matches!(
        name,
        b"id"
            | b"data-product"
            | b"data-granularity"
            | b"data-timestamp"
            | b"data-open"
            | b"data-high"
            | b"data-low"
            | b"data-close"
            | b"data-volume"
            | b"data-complete"
    ) {
        return Ok(());
    }
    let text = || String::from_utf8_lossy(name).into_owned();
    let Some(rest) = name.strip_prefix(b"data-") else {
        return Err(UnsafeElement::NotData(text()));
    };
    let word = rest.split(|b| *b == b'-').next().unwrap_or_default();
    if datastar_word(word) {
        return Err(UnsafeElement::Datastar(text()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spot_wire::{Candle, Fixed, Granularity};

    fn candle() -> Candle {
        Candle {
            product: 0,
            granularity: Granularity::OneHour,
            start: 1_704_499_200,
            open: Fixed::from_int(42_000),
            high: Fixed::from_int(42_500),
            low: Fixed::from_int(41_800),
            close: Fixed::from_int(42_200),
            volume: Fixed::from_int(3),
            last_trade_id: Some(9),
            trades: 4,
            complete: false,
            authoritative: false,
        }
    }

    const ID: &str = "BTC-USD-ONE_HOUR";

    fn check(html: &[u8], id: &str) -> Result<(), UnsafeElement> {
        let (product, granularity) = id.split_at(7);
        super::check(html, product, &granularity[1..])
    }

    #[test]
    fn the_default_and_the_example_elements_pass() {
        let c = candle();
        check(spot_rules::render::element(&c, "BTC-USD").as_bytes(), ID).unwrap();
        let mut example = String::new();
        spot_rules::render::open_element(&mut example, &c, "BTC-USD");
        example.push_str(" data-change=\"200\" data-change-pct=\"0.47\" data-range=\"700\" data-trades=\"4\"");
        example.push_str("\n  data-note=\"a &quot;quoted&quot; &lt;b&gt; &amp; it's fine\"></spot-candle>");
        check(example.as_bytes(), ID).unwrap();
    }

    #[test]
    fn hostile_elements_are_refused_with_the_reason() {
        let ok = |attrs: &str| format!("<spot-candle id=\"{ID}\"{attrs}></spot-candle>");
        let cases: Vec<(String, UnsafeElement)> = vec![
            (
                format!("<img id=\"{ID}\" src=x onerror=\"alert(1)\">"),
                UnsafeElement::Shape,
            ),
            (ok("><script>alert(1)</script><spot-candle"), UnsafeElement::Markup),
            (
                ok(" data-open=\"1\"><img src=x onerror=alert(1)><x"),
                UnsafeElement::Markup,
            ),
            (ok(" onclick=\"alert(1)\""), UnsafeElement::NotData("onclick".into())),
            (ok(" style=\"x\""), UnsafeElement::NotData("style".into())),
            (
                ok(" data-init=\"alert(1)\""),
                UnsafeElement::Datastar("data-init".into()),
            ),
            (
                ok(" data-on-load=\"alert(1)\""),
                UnsafeElement::Datastar("data-on-load".into()),
            ),
            (ok(" data-effect=\"x\""), UnsafeElement::Datastar("data-effect".into())),
            (
                ok(" data-json-signals=\"x\""),
                UnsafeElement::Datastar("data-json-signals".into()),
            ),
            (ok(" data-on:click=\"alert(1)\""), UnsafeElement::Syntax(ID.len() + 19)),
            (
                ok(" data-signals__ifmissing=\"x\""),
                UnsafeElement::Syntax(ID.len() + 19),
            ),
            (ok(" DATA-INIT=\"x\""), UnsafeElement::Syntax(ID.len() + 19)),
            (ok(" data-open=x"), UnsafeElement::Syntax(ID.len() + 19)),
            (ok(" data-open=\"1"), UnsafeElement::Syntax(ID.len() + 30)),
            (ok("data-open=\"1\""), UnsafeElement::Syntax(ID.len() + 18)),
            (ok(&format!(" id=\"{ID}\"")), UnsafeElement::IdCount(2)),
            (
                "<spot-candle id=\"main\"></spot-candle>".into(),
                UnsafeElement::Id {
                    found: "main".into(),
                    expected: ID.into(),
                },
            ),
            (
                "<spot-candle data-open=\"1\"></spot-candle>".into(),
                UnsafeElement::IdCount(0),
            ),
            (String::new(), UnsafeElement::Shape),
        ];
        for (html, want) in cases {
            match (check(html.as_bytes(), ID), want) {
                // Where a syntax error is reported is a detail.
                (Err(UnsafeElement::Syntax(_)), UnsafeElement::Syntax(_)) => {}
                (got, want) => assert_eq!(got, Err(want), "{html}"),
            }
        }
    }

    #[test]
    fn names_that_only_start_like_a_datastar_word_pass() {
        // `open` is not `on`, `close` not `class`, `texture` not `text`.
        let html = format!(
            "<spot-candle id=\"{ID}\" data-open=\"1\" data-close=\"2\" data-texture=\"3\" data-onward=\"4\"></spot-candle>"
        );
        check(html.as_bytes(), ID).unwrap();
    }
}
