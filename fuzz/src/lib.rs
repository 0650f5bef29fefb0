//! Fuzz targets: every place where spot decodes bytes from outside.
//!
//! Each function takes arbitrary bytes, runs one decoder on them and asserts
//! what must hold of its answer: no panic (any panic is a finding), and where
//! the format allows, that what parses re-encodes to the same thing. The AFL
//! binaries (`src/bin/`, `cargo afl build --features afl`; `make fuzz`) call
//! them; `cargo test` replays every file of `corpus/<target>/` through them,
//! so every crash found, once added to the corpus, is a regression test.
//!
//! - the feed: a WebSocket text frame → `feed::message::parse` → trades
//!   (Coinbase is outside) [`feed_message`];
//! - the REST answers: the product list [`rest_products`], candles
//!   [`rest_candles`];
//! - HTTP: the query strings of the page, `/stream` and `/api/candles`
//!   [`query`]; the request head a `/stream` connection sends on its raw
//!   socket, and the subscription in it [`request_head`];
//! - what a hostile component controls: the packed outcome [`outcome`], the
//!   state it exports [`state`], the element it renders [`element`];
//! - an admin upload, before wasmtime sees it [`upload`].

use spot_host::engine::element;
use spot_host::feed::message::{self, Frame};
use spot_host::http::api::{HistoryQuery, MAX_LIMIT};
use spot_host::http::sse_socket::{Head, parse_head};
use spot_host::http::{page, stream};
use spot_wire::state::State;
use spot_wire::{Fixed, Outcome, Trade, decode_all, encode_all};

/// A target: bytes in, a panic when something that must hold does not.
pub type Target = fn(&[u8]);

/// Every target, by name (the corpus directory's and the binary's).
pub const TARGETS: &[(&str, Target)] = &[
    ("feed_message", feed_message),
    ("rest_products", rest_products),
    ("rest_candles", rest_candles),
    ("query", query),
    ("request_head", request_head),
    ("outcome", outcome),
    ("state", state),
    ("element", element),
    ("upload", upload),
];

/// The products the HTTP targets serve.
fn served(p: &str) -> bool {
    matches!(p, "BTC-USD" | "ETH-USD" | "SHIB-USD")
}

/// A decimal that parses prints back to the same value.
fn decimal_round_trips(v: Fixed) {
    let back: Fixed = v.to_string().parse().expect("a decimal prints as one that parses");
    assert_eq!(back, v, "{v} does not read back");
}

/// A feed frame: parsed; its trades converted as the feed does; every trade
/// that converts has a positive price, a size not below zero, and crosses
/// the component boundary (packed, unpacked) unchanged.
pub fn feed_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(Frame::Trades { trades, .. }) = message::parse(text) else {
        return;
    };
    for raw in &trades {
        let Ok(t) = raw.to_trade(7) else { continue };
        assert!(t.price > Fixed::ZERO, "{raw:?} gave price {}", t.price);
        assert!(!t.size.is_negative(), "{raw:?} gave size {}", t.size);
        decimal_round_trips(t.price);
        decimal_round_trips(t.size);
        let back: Vec<Trade> = decode_all(&encode_all(&[t])).expect("a packed trade decodes");
        assert_eq!(back, [t]);
    }
}

/// A REST product list page: every product kept is a well-formed id, and
/// every id it gives is one it read.
pub fn rest_products(data: &[u8]) {
    let Ok(page) = spot_host::rest::parse_products_page(data) else {
        return;
    };
    for p in &page.products {
        assert!(spot_host::product::valid(&p.product_id).is_ok(), "{p:?} kept");
        for size in [&p.min_size, &p.max_size].into_iter().flatten() {
            assert!(
                spot_host::product::decimal(size).is_some(),
                "{p:?}: a size that is not a decimal"
            );
        }
    }
    for p in &page.malformed {
        assert!(spot_host::product::valid(p).is_err(), "{p:?} skipped");
    }
    if let Some(c) = &page.next_cursor {
        assert!(!c.is_empty());
    }
}

/// A REST candles answer: what parses is sorted by start without repeats,
/// and its decimals read back.
pub fn rest_candles(data: &[u8]) {
    let Ok(candles) = spot_host::rest::parse_candles(data, i64::MIN, i64::MAX) else {
        return;
    };
    assert!(candles.windows(2).all(|w| w[0].start < w[1].start), "not sorted");
    for c in &candles {
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            decimal_round_trips(v);
        }
    }
}

/// A component's packed outcome: what decodes re-encodes to what decodes
/// the same.
pub fn outcome(data: &[u8]) {
    let Ok(o) = Outcome::decode(data) else { return };
    let again = Outcome::decode(&o.encode()).expect("an encoded outcome decodes");
    assert_eq!(again, o);
}

/// A component's exported state: what decodes re-encodes to what decodes
/// the same.
pub fn state(data: &[u8]) {
    let Ok(s) = State::decode(data) else { return };
    let again = State::decode(&s.encode()).expect("an encoded state decodes");
    assert_eq!(again, s);
}

/// Datastar's attributes (1.0, core and Pro, per `shared/reference/datastar.md`),
/// whose values the browser runs or that change the page.
const DATASTAR: &[&str] = &[
    "animate",
    "attr",
    "bind",
    "class",
    "computed",
    "custom",
    "effect",
    "ignore",
    "indicator",
    "init",
    "json",
    "match",
    "on",
    "persist",
    "preserve",
    "query",
    "ref",
    "replace",
    "scroll",
    "show",
    "signals",
    "style",
    "text",
    "view",
];

/// A component's element: what the host's check passes is one
/// `<spot-candle>` with attributes only, carrying the candle's own id once
/// and no event handler or Datastar attribute, read the way a browser reads
/// a start tag (attributes separated by HTML whitespace, quoted values).
/// Elements cross the component boundary as WIT strings: UTF-8.
pub fn element(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if element::check(data, "BTC-USD", "ONE_MINUTE").is_err() {
        return;
    }
    let inner = text
        .strip_prefix("<spot-candle")
        .and_then(|t| t.strip_suffix("></spot-candle>"))
        .expect("one <spot-candle> element");
    assert!(!inner.contains(['<', '>']), "markup inside: {text}");
    let mut rest = inner;
    let mut ids = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(['\t', '\n', '\x0C', '\r', ' ']);
        if trimmed.is_empty() {
            break;
        }
        assert!(trimmed.len() < rest.len(), "attributes run together: {text}");
        let (name, after) = trimmed.split_once("=\"").expect("name=\"value\"");
        let (value, after) = after.split_once('"').expect("a closed value");
        let lower = name.to_ascii_lowercase();
        assert!(
            !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{name:?} in {text}"
        );
        assert!(lower == "id" || lower.starts_with("data-"), "{name} in {text}");
        // Datastar reads `data-<word>` and `data-<word>-…` (its camelCased
        // key is the word, then an uppercase letter or the end) as its own.
        let word = lower.strip_prefix("data-").and_then(|w| w.split('-').next());
        assert!(
            word.is_none_or(|w| !DATASTAR.contains(&w)),
            "a Datastar attribute: {text}"
        );
        if lower == "id" {
            ids.push(value);
        }
        rest = after;
    }
    assert_eq!(ids, ["BTC-USD-ONE_MINUTE"], "{text}");
}

/// A query string, as the page, `/stream` and `/api/candles` read it: what
/// passes names served, well-formed products, one to eight granularities
/// without repeats, at most the pairs allowed, and a sane window.
pub fn query(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    check_subscription(raw);
    if let Ok(q) = page::parse_query(Some(raw), &served, Some("BTC-USD")) {
        assert!(served(&q.product), "{q:?}");
        granularities_ok(&q.granularities);
        assert!(q.granularities.contains(&q.chart), "{q:?}");
    }
    if let Ok(q) = HistoryQuery::parse_with(Some(raw), &served, 1_800_000_000) {
        assert!(served(&q.product), "{q:?}");
        assert!(q.from <= q.to && (1..=MAX_LIMIT).contains(&q.limit), "{q:?}");
    }
}

fn granularities_ok(gs: &[spot_wire::Granularity]) {
    assert!(!gs.is_empty() && gs.len() <= 8, "{gs:?}");
    let mut sorted = gs.to_vec();
    sorted.sort_by_key(|g| g.index());
    sorted.dedup();
    assert_eq!(sorted.len(), gs.len(), "repeated granularities {gs:?}");
}

/// The pairs a `/stream` query subscribes to (at most 64).
fn check_subscription(raw: &str) {
    if let Ok(keys) = stream::parse_subscription(Some(raw), &served, 64) {
        assert!(!keys.is_empty() && keys.len() <= 64, "{} keys", keys.len());
        for (p, _) in &keys {
            assert!(served(p) && spot_host::product::valid(p).is_ok(), "{p:?}");
        }
        let mut unique = keys.clone();
        unique.sort_by(|a, b| (&*a.0, a.1.index()).cmp(&(&*b.0, b.1.index())));
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "a pair twice");
    }
}

/// The request head of a `/stream` connection served on its socket: a head
/// is complete, incomplete or refused; the query of a complete one is part
/// of what was sent, and goes through the subscription's checks.
pub fn request_head(data: &[u8]) {
    match parse_head(data) {
        Ok(Head::Complete { query: Some(query), .. }) => {
            let sent = String::from_utf8_lossy(data);
            assert!(sent.contains(&query), "{query:?} is not in the request");
            check_subscription(&query);
        }
        Ok(Head::Complete { query: None, .. }) | Err(_) => {}
        Ok(Head::Partial) => assert!(data.len() < spot_host::http::sse_socket::MAX_HEAD),
    }
}

/// An admin upload: what passes the checks before wasmtime starts with
/// WebAssembly's magic and is within the limit, and so does every prefix
/// of it as it arrives.
pub fn upload(data: &[u8]) {
    use spot_host::admin::{MAX_COMPONENT_BYTES, check_upload};
    if check_upload(data, true).is_err() {
        return;
    }
    assert!(data.starts_with(b"\0asm") && data.len() <= MAX_COMPONENT_BYTES);
    for n in 0..data.len().min(16) {
        assert!(check_upload(&data[..n], false).is_ok(), "a prefix of {n} bytes refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of every target's corpus goes through its target: the
    /// seeds, and every crash found (kept there once fixed).
    #[test]
    fn the_corpus_replays_without_a_finding() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut replayed = 0;
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let files = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let mut n = 0;
            for f in files {
                let path = f.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                n += 1;
            }
            assert!(n > 0, "{name} has no corpus");
            replayed += n;
        }
        assert!(replayed >= TARGETS.len());
    }
}
