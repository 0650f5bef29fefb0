//! Parsing Coinbase WebSocket frames: one JSON object per text frame, parsed
//! in one pass into borrowed fields, then trades into packed [`Trade`]s.
//!
//! Tolerant where production differs from the docs: `client_id` may be
//! missing, `heartbeat_counter` is a string or an integer, unknown channels,
//! event types and fields are ignored. Intolerant of what would corrupt a
//! candle: a trade with an unparsable id, price, size or time is refused.

use std::borrow::Cow;

use serde::Deserialize;
use spot_wire::{Fixed, Side, Trade};

/// A frame that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not a JSON message: {0}")]
    Json(#[from] serde_json::Error),
}

/// A trade field that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TradeError {
    #[error("bad trade_id")]
    Id,
    #[error("bad price")]
    Price,
    #[error("bad size")]
    Size,
    #[error("bad time")]
    Time,
}

/// One frame, as far as the feed cares.
#[derive(Debug)]
pub enum Frame<'a> {
    /// `market_trades`: every trade of every event (snapshots and updates).
    Trades {
        sequence: Option<u64>,
        trades: Vec<RawTrade<'a>>,
    },
    /// `heartbeats`.
    Heartbeat {
        sequence: Option<u64>,
        counter: Option<u64>,
    },
    /// `subscriptions`: the products now subscribed to `market_trades`.
    Subscriptions {
        sequence: Option<u64>,
        market_trades: Vec<String>,
    },
    /// `{"type":"error","message":…}`.
    Error { message: String },
    /// Any other channel: only the sequence number matters.
    Other { sequence: Option<u64> },
}

impl Frame<'_> {
    /// The frame's `sequence_num`, if it has one.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            Frame::Trades { sequence, .. }
            | Frame::Heartbeat { sequence, .. }
            | Frame::Subscriptions { sequence, .. }
            | Frame::Other { sequence } => *sequence,
            Frame::Error { .. } => None,
        }
    }
}

/// A trade with its fields still as sent.
#[derive(Debug, Deserialize)]
pub struct RawTrade<'a> {
    #[serde(borrow)]
    pub trade_id: Cow<'a, str>,
    #[serde(borrow)]
    pub product_id: Cow<'a, str>,
    #[serde(borrow)]
    pub price: Cow<'a, str>,
    #[serde(borrow)]
    pub size: Cow<'a, str>,
    #[serde(borrow, default)]
    pub side: Cow<'a, str>,
    #[serde(borrow)]
    pub time: Cow<'a, str>,
}

impl RawTrade<'_> {
    /// The packed trade for product id `product`.
    pub fn to_trade(&self, product: u32) -> Result<Trade, TradeError> {
        let trade_id = self.trade_id.parse::<u64>().map_err(|_| TradeError::Id)?;
        let price: Fixed = self.price.parse().map_err(|_| TradeError::Price)?;
        let size: Fixed = self.size.parse().map_err(|_| TradeError::Size)?;
        if price.is_negative() || price == Fixed::ZERO {
            return Err(TradeError::Price);
        }
        if size.is_negative() {
            return Err(TradeError::Size);
        }
        let time_ms = parse_time_ms(&self.time).ok_or(TradeError::Time)?;
        let side = match &*self.side {
            "BUY" => Side::Buy,
            "SELL" => Side::Sell,
            _ => Side::Unknown,
        };
        Ok(Trade {
            product,
            side,
            trade_id,
            time_ms,
            price,
            size,
        })
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    sequence_num: Option<u64>,
    #[serde(borrow, default)]
    events: Vec<Event<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    trades: Vec<RawTrade<'a>>,
    #[serde(default)]
    heartbeat_counter: Option<Counter>,
    #[serde(default)]
    subscriptions: Option<Subscriptions>,
}

#[derive(Deserialize, Default)]
struct Subscriptions {
    #[serde(default)]
    market_trades: Vec<String>,
}

/// `heartbeat_counter`: an integer in production, a string in the docs.
#[derive(Deserialize)]
#[serde(untagged)]
enum Counter {
    Int(u64),
    Text(String),
}

/// Parse one text frame.
pub fn parse(text: &str) -> Result<Frame<'_>, FrameError> {
    let env: Envelope<'_> = serde_json::from_str(text)?;
    let sequence = env.sequence_num;
    if env.kind.as_deref() == Some("error") {
        return Ok(Frame::Error {
            message: env.message.unwrap_or_default(),
        });
    }
    Ok(match env.channel.as_deref() {
        Some("market_trades") => {
            let mut events = env.events.into_iter();
            let mut trades = match events.next() {
                Some(e) => e.trades,
                None => Vec::new(),
            };
            for e in events {
                trades.extend(e.trades);
            }
            Frame::Trades { sequence, trades }
        }
        Some("heartbeats") => Frame::Heartbeat {
            sequence,
            counter: env.events.into_iter().find_map(|e| match e.heartbeat_counter? {
                Counter::Int(n) => Some(n),
                Counter::Text(s) => s.parse().ok(),
            }),
        },
        Some("subscriptions") => Frame::Subscriptions {
            sequence,
            market_trades: env
                .events
                .into_iter()
                .filter_map(|e| e.subscriptions)
                .flat_map(|s| s.market_trades)
                .collect(),
        },
        _ => Frame::Other { sequence },
    })
}

/// `2026-09-30T02:39:59.387841Z` (or with a `±HH:MM` offset) → unix ms.
/// Digits past milliseconds are truncated.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            ms *= 10;
        }
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_s) * 1000 + ms)
}

/// Howard Hinnant's (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // Verbatim production frames (reference §10).
    const TRADES: &str = r#"{"channel":"market_trades","timestamp":"2026-09-30T02:39:59.452764328Z","sequence_num":242,"events":[{"type":"update","trades":[{"product_id":"ETH-USD","trade_id":"846155166","price":"2667.2","size":"0.67103722","time":"2026-09-30T02:39:59.387841Z","side":"SELL"},{"product_id":"ETH-USD","trade_id":"846155165","price":"2667.2","size":"0.55708109","time":"2026-09-30T02:39:59.373447Z","side":"SELL"}]}]}"#;
    const HEARTBEAT_INT: &str = r#"{"channel":"heartbeats","timestamp":"2026-07-16T20:28:53.166419882Z","sequence_num":33,"events":[{"current_time":"2026-07-16 20:28:53.16294062 +0000 UTC m=+75497.317767664","heartbeat_counter":75497}]}"#;
    const HEARTBEAT_TEXT: &str = r#"{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z","sequence_num":0,"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105","heartbeat_counter":"3049"}]}"#;
    const ACK: &str = r#"{"channel":"subscriptions","timestamp":"2026-09-07T23:37:22.278739877Z","sequence_num":2,"events":[{"subscriptions":{"heartbeats":["heartbeats"],"market_trades":["BTC-USD","ETH-USD"]}}]}"#;

    #[test]
    fn production_trades_parse_exactly() {
        let Frame::Trades { sequence, trades } = parse(TRADES).unwrap() else {
            panic!("not trades")
        };
        assert_eq!(sequence, Some(242));
        assert_eq!(trades.len(), 2);
        let t = trades[0].to_trade(3).unwrap();
        assert_eq!(t.trade_id, 846155166);
        assert_eq!(t.price.to_string(), "2667.2");
        assert_eq!(t.size.to_string(), "0.67103722");
        assert_eq!(t.side, Side::Sell);
        assert_eq!(t.time_ms, parse_time_ms("2026-09-30T02:39:59.387Z").unwrap());
        assert_eq!(t.product, 3);
    }

    #[test]
    fn heartbeat_counter_is_an_integer_or_a_string() {
        assert!(matches!(
            parse(HEARTBEAT_INT).unwrap(),
            Frame::Heartbeat {
                sequence: Some(33),
                counter: Some(75497)
            }
        ));
        assert!(matches!(
            parse(HEARTBEAT_TEXT).unwrap(),
            Frame::Heartbeat {
                sequence: Some(0),
                counter: Some(3049)
            }
        ));
    }

    #[test]
    fn acks_errors_and_unknown_channels() {
        let Frame::Subscriptions { market_trades, .. } = parse(ACK).unwrap() else {
            panic!()
        };
        assert_eq!(market_trades, ["BTC-USD", "ETH-USD"]);
        assert!(matches!(
            parse(r#"{"type":"error","message":"authentication failure"}"#).unwrap(),
            Frame::Error { message } if message == "authentication failure"
        ));
        assert!(matches!(
            parse(
                r#"{"channel":"l2_data","sequence_num":7,"events":[{"type":"snapshot","updates":[]}],"new_field":1}"#
            )
            .unwrap(),
            Frame::Other { sequence: Some(7) }
        ));
        assert!(parse("{\"channel\":\"market_trades\",\"events\":[{\"trades\":[{\"trade_id\":").is_err());
        assert!(parse("[1,2,3]").is_err());
    }

    #[test]
    fn bad_trade_fields_are_refused_not_guessed() {
        let raw = |id: &str, price: &str, size: &str, time: &str| {
            format!(
                r#"{{"channel":"market_trades","events":[{{"type":"update","trades":[{{"trade_id":"{id}","product_id":"BTC-USD","price":"{price}","size":"{size}","side":"BUY","time":"{time}"}}]}}]}}"#
            )
        };
        let one = |s: String| -> Result<Trade, TradeError> {
            let Frame::Trades { trades, .. } = parse(&s).unwrap() else {
                panic!()
            };
            trades[0].to_trade(0)
        };
        assert!(one(raw("1", "1.5", "2", "2026-01-01T00:00:00Z")).is_ok());
        assert_eq!(one(raw("x", "1", "1", "2026-01-01T00:00:00Z")), Err(TradeError::Id));
        assert_eq!(
            one(raw("1", "NaN", "1", "2026-01-01T00:00:00Z")),
            Err(TradeError::Price)
        );
        assert_eq!(one(raw("1", "-1", "1", "2026-01-01T00:00:00Z")), Err(TradeError::Price));
        assert_eq!(one(raw("1", "1", "1e3", "2026-01-01T00:00:00Z")), Err(TradeError::Size));
        assert_eq!(one(raw("1", "1", "1", "yesterday")), Err(TradeError::Time));
        // Escaped strings still parse (Cow falls back to owned).
        let escaped = r#"{"channel":"market_trades","events":[{"trades":[{"trade_id":"\u0031","product_id":"BTC\u002dUSD","price":"1","size":"1","time":"2026-01-01T00:00:00Z"}]}]}"#;
        let Frame::Trades { trades, .. } = parse(escaped).unwrap() else {
            panic!()
        };
        assert_eq!(trades[0].product_id, "BTC-USD");
        assert_eq!(trades[0].to_trade(0).unwrap().trade_id, 1);
    }

    #[test]
    fn times_parse_with_any_precision_and_offset() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time_ms("2024-01-06T00:00:00.5Z"), Some(1_704_499_200_500));
        assert_eq!(parse_time_ms("2024-01-06T00:00:00.123456789Z"), Some(1_704_499_200_123));
        assert_eq!(parse_time_ms("2024-01-06T01:00:00+01:00"), Some(1_704_499_200_000));
        assert_eq!(parse_time_ms("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        for bad in [
            "2024-01-06",
            "2024-13-06T00:00:00Z",
            "2024-01-06T00:00:00",
            "2024-01-06T00:00:00.Z",
            "2024-01-06T00:00:00Zjunk",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad}");
        }
    }
}
