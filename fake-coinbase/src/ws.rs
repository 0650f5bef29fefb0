//! The fake's WebSocket endpoint: one task per connection.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use spot_wire::Fixed;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::{Event, FakeTrade, Fault, Shared, push_rfc3339_micros, rfc3339_micros};

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut n = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        n += 1;
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.stats.connections.fetch_add(1, Ordering::Relaxed);
            shared.stats.lock().connects.push(Instant::now());
            shared.stats.open.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = connection(stream, &shared, n).await {
                tracing::debug!(error = %e, "fake connection ended");
            }
            shared.stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// What one connection has asked for and been sent.
struct Conn {
    id: u64,
    seq: u64,
    /// Products subscribed to `market_trades` (checked for every trade of
    /// every frame: a hash lookup).
    trades: HashSet<Arc<str>>,
    heartbeats: bool,
    stalled_until: Option<tokio::time::Instant>,
}

impl Conn {
    /// The envelope; `client_id` is present on odd connections only, as it is
    /// on some production frames and not others.
    fn frame(&mut self, channel: &str, events: Value) -> Message {
        let mut v = json!({
            "channel": channel,
            "timestamp": rfc3339_micros(crate::now_ms() * 1000),
            "sequence_num": self.seq,
            "events": events,
        });
        if self.id % 2 == 1 {
            v["client_id"] = json!("");
        }
        self.seq += 1;
        Message::text(v.to_string())
    }

    /// A `market_trades` update frame: [`Conn::frame`] of the [`trade_json`]s,
    /// written by hand. This is the fake's hot path (a market of 100k
    /// trades/s); building a `serde_json::Value` map per trade cost most of
    /// its CPU, which the load benchmark shares with the service.
    fn update_frame(&mut self, trades: &[&FakeTrade], stamp: Fixed) -> Message {
        use std::fmt::Write;
        let mut out = String::with_capacity(160 + 200 * trades.len());
        out.push_str("{\"channel\":\"market_trades\",");
        if self.id % 2 == 1 {
            out.push_str("\"client_id\":\"\",");
        }
        out.push_str("\"timestamp\":\"");
        push_rfc3339_micros(&mut out, crate::now_ms() * 1000);
        out.push_str("\",\"sequence_num\":");
        let _ = write!(out, "{}", self.seq);
        out.push_str(",\"events\":[{\"type\":\"update\",\"trades\":[");
        for (i, t) in trades.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"trade_id\":\"");
            // Writing to a String cannot fail.
            let _ = write!(out, "{}", t.trade_id);
            out.push_str("\",\"product_id\":");
            push_json_string(&mut out, &t.product);
            out.push_str(",\"price\":\"");
            (if t.stamped { stamp } else { t.price }).push_to(&mut out);
            out.push_str("\",\"size\":\"");
            t.size.push_to(&mut out);
            out.push_str("\",\"side\":");
            push_json_string(&mut out, t.side);
            out.push_str(",\"time\":\"");
            push_rfc3339_micros(&mut out, t.time_us);
            out.push_str("\"}");
        }
        out.push_str("]}]}");
        self.seq += 1;
        Message::text(out)
    }

    fn stalled(&self) -> bool {
        self.stalled_until.is_some_and(|u| tokio::time::Instant::now() < u)
    }

    fn subscriptions(&mut self) -> Message {
        let mut subs = serde_json::Map::new();
        if !self.trades.is_empty() {
            let mut names: Vec<&str> = self.trades.iter().map(|p| &**p).collect();
            names.sort_unstable();
            subs.insert("market_trades".into(), json!(names));
        }
        if self.heartbeats {
            subs.insert("heartbeats".into(), json!(["heartbeats"]));
        }
        self.frame("subscriptions", json!([{ "subscriptions": subs }]))
    }
}

/// A trade as Coinbase sends it, at `price`.
fn trade_json(t: &FakeTrade, price: spot_wire::Fixed) -> Value {
    json!({
        "trade_id": t.trade_id.to_string(),
        "product_id": &*t.product,
        "price": price.to_string(),
        "size": t.size.to_string(),
        "side": t.side,
        "time": rfc3339_micros(t.time_us),
    })
}

/// `s` as a JSON string literal (quotes, backslashes and control characters escaped).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn error(message: &str) -> Message {
    Message::text(json!({"type": "error", "message": message}).to_string())
}

const CHANNELS: &[&str] = &[
    "heartbeats",
    "market_trades",
    "candles",
    "ticker",
    "ticker_batch",
    "level2",
    "status",
];

async fn connection(stream: TcpStream, shared: &Shared, id: u64) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (mut tx, mut rx) = ws.split();
    let mut events = shared.events.subscribe();
    let mut conn = Conn {
        id,
        seq: 0,
        trades: HashSet::new(),
        heartbeats: false,
        stalled_until: None,
    };
    let deadline = tokio::time::sleep(shared.config.subscribe_deadline);
    tokio::pin!(deadline);
    let mut subscribed = false;
    let mut beat = tokio::time::interval(shared.config.heartbeat_every);
    beat.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline, if !subscribed => {
                shared.stats.deadline_closes.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Policy,
                    reason: "no subscribe within the deadline".into(),
                }))).await;
                return Ok(());
            }
            _ = beat.tick(), if conn.heartbeats => {
                if conn.stalled() {
                    continue;
                }
                let counter = shared.started.elapsed().as_secs();
                // Production sends an integer, the docs a string: odd connections get the docs' form.
                let counter = if id % 2 == 1 { json!(counter.to_string()) } else { json!(counter) };
                let msg = conn.frame("heartbeats", json!([{
                    "current_time": "2026-07-16 20:28:53.16294062 +0000 UTC m=+75497.317767664",
                    "heartbeat_counter": counter,
                }]));
                tx.send(msg).await?;
            }
            msg = rx.next() => {
                let Some(msg) = msg else { return Ok(()) };
                match msg? {
                    Message::Text(text) => {
                        shared.stats.lock().messages.push(Instant::now());
                        for reply in request(&mut conn, shared, &text) {
                            tx.send(reply).await?;
                        }
                        subscribed |= conn.heartbeats || !conn.trades.is_empty();
                    }
                    Message::Close(_) => return Ok(()),
                    _ => {}
                }
            }
            ev = events.recv() => {
                match ev {
                    Ok(Event::Trades(trades)) => {
                        if conn.stalled() {
                            continue;
                        }
                        // Newest first, as Coinbase sends them.
                        let mut mine: Vec<&FakeTrade> = trades.iter().filter(|t| conn.trades.contains(&t.product)).collect();
                        if mine.is_empty() {
                            continue;
                        }
                        mine.sort_by(|a, b| b.time_us.cmp(&a.time_us).then(b.trade_id.cmp(&a.trade_id)));
                        // A stamped trade is priced at this frame's making.
                        let msg = conn.update_frame(&mine, Fixed::from_int(crate::now_us()));
                        tx.send(msg).await?;
                    }
                    Ok(Event::Fault(f)) => match f {
                        Fault::Drop => return Ok(()),
                        Fault::Close(code) => {
                            let _ = tx.send(Message::Close(Some(CloseFrame {
                                code: CloseCode::from(code),
                                reason: "fault".into(),
                            }))).await;
                            return Ok(());
                        }
                        Fault::Stall(d) => conn.stalled_until = Some(tokio::time::Instant::now() + d),
                        Fault::Garbage => {
                            tx.send(Message::text("{\"channel\":\"market_trades\",\"events\":[{\"trades\":[{\"trade_id\":")).await?;
                            tx.send(Message::text("[1,2,3]")).await?;
                            let msg = conn.frame("market_trades", json!([{ "type": "update", "trades": [
                                {"trade_id": "x", "product_id": "BTC-USD", "price": "NaN", "size": "1", "side": "BUY", "time": "yesterday"}
                            ] }]));
                            tx.send(msg).await?;
                        }
                        Fault::SkipSequence(n) => conn.seq += n,
                    },
                    // The real service drops clients it cannot keep up with.
                    Err(RecvError::Lagged(_)) => return Ok(()),
                    Err(RecvError::Closed) => return Ok(()),
                }
            }
        }
    }
}

/// Answer one client message.
fn request(conn: &mut Conn, shared: &Shared, text: &str) -> Vec<Message> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return vec![error("failed to parse message")];
    };
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    // A `channels` array (or any unknown channel) is an authentication failure.
    let Some(channel) = v
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| CHANNELS.contains(c))
    else {
        shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        return vec![error("authentication failure")];
    };
    if !shared.config.jwt_keys.is_empty() {
        let token = v.get("jwt").and_then(Value::as_str).unwrap_or("");
        match verify(shared, token) {
            Ok(nonce) => {
                shared.stats.jwt_verified.fetch_add(1, Ordering::Relaxed);
                shared.stats.lock().nonces.insert(nonce);
            }
            Err(e) => {
                tracing::debug!(error = %e, "fake: JWT refused");
                shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                return vec![error("authentication failure")];
            }
        }
    }
    let products: Vec<String> = v
        .get("product_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    match (kind, channel) {
        ("subscribe", "heartbeats") => conn.heartbeats = true,
        ("unsubscribe", "heartbeats") => conn.heartbeats = false,
        ("subscribe", "market_trades") => {
            let known = shared.market().products();
            let fresh: Vec<String> = products.into_iter().filter(|p| known.contains(p)).collect();
            let market = shared.market();
            let events: Vec<Value> = fresh
                .iter()
                .map(|p| {
                    let list: Vec<Value> = market
                        .recent(p, shared.config.snapshot_trades)
                        .iter()
                        .map(|t| trade_json(t, t.price))
                        .collect();
                    json!({"type": "snapshot", "trades": list})
                })
                .collect();
            drop(market);
            conn.trades.extend(fresh.iter().map(|p| Arc::from(p.as_str())));
            if !events.is_empty() {
                out.push(conn.frame("market_trades", json!(events)));
            }
        }
        ("unsubscribe", "market_trades") => {
            if products.is_empty() {
                conn.trades.clear();
            }
            for p in products {
                conn.trades.remove(p.as_str());
            }
        }
        ("subscribe" | "unsubscribe", _) => {}
        _ => return vec![error("unknown message type")],
    }
    shared.stats.subscribes.fetch_add(1, Ordering::Relaxed);
    out.push(conn.subscriptions());
    out
}

/// Check a CDP WebSocket JWT: known `kid`, signature, `iss: cdp`, `sub` = key
/// name, `nbf`/`exp` valid and at most 120 s apart, a nonce, no `uri`.
fn verify(shared: &Shared, token: &str) -> anyhow::Result<String> {
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.ok_or_else(|| anyhow::anyhow!("no kid"))?;
    let nonce = header.nonce.ok_or_else(|| anyhow::anyhow!("no nonce"))?;
    let key = shared
        .config
        .jwt_keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| anyhow::anyhow!("unknown kid"))?;
    let mut validation = jsonwebtoken::Validation::new(key.algorithm);
    validation.set_issuer(&["cdp"]);
    validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
    validation.validate_nbf = true;
    validation.leeway = 5;
    let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation)?;
    let claims = data.claims;
    anyhow::ensure!(
        claims.get("sub").and_then(Value::as_str) == Some(kid.as_str()),
        "sub is not the key name"
    );
    anyhow::ensure!(claims.get("uri").is_none(), "a WebSocket JWT has no uri");
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    anyhow::ensure!(exp > nbf && exp - nbf <= 120, "lifetime over 120 s");
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u64) -> Conn {
        Conn {
            id,
            seq: 41,
            trades: HashSet::new(),
            heartbeats: false,
            stalled_until: None,
        }
    }

    fn without_timestamp(m: Message) -> Value {
        let mut v: Value = serde_json::from_str(m.to_text().expect("text")).expect("JSON");
        v.as_object_mut().expect("object").remove("timestamp");
        v
    }

    #[test]
    fn the_hand_written_update_frame_is_the_generic_one() {
        let trade = |product: &str, id: u64, stamped: bool| FakeTrade {
            product: Arc::from(product),
            trade_id: id,
            price: "42000.5".parse().expect("price"),
            size: "0.00000001".parse().expect("size"),
            side: "SELL",
            time_us: 1_759_199_999_387_841,
            withheld: false,
            stamped,
        };
        let trades = [trade("BTC-USD", u64::MAX, false), trade("we\"ird\\one\u{1}", 7, true)];
        let refs: Vec<&FakeTrade> = trades.iter().collect();
        let stamp = Fixed::from_int(1_759_199_999_387_900);
        for id in [1, 2] {
            let by_hand = conn(id).update_frame(&refs, stamp);
            let list: Vec<Value> = trades
                .iter()
                .map(|t| trade_json(t, if t.stamped { stamp } else { t.price }))
                .collect();
            let generic = conn(id).frame("market_trades", json!([{ "type": "update", "trades": list }]));
            assert_eq!(without_timestamp(by_hand), without_timestamp(generic));
        }
    }
}
