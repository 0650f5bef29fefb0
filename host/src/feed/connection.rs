//! One WebSocket connection: connect (paced), subscribe to `market_trades`
//! and then `heartbeats` (one channel per message, paced, the trades of every
//! connection ahead of any keep-alive, each with a fresh JWT when a key is
//! set), read frames until something goes wrong, then back off with
//! full jitter and do it again, until the feed stops.
//!
//! It also tells where each product's live trades begin (once per product and
//! process): the minute of the earliest trade within the horizon in its first
//! frame (a minute that may be partial: earlier trades of it were never
//! sent), or, for a product the first subscription brought no such trade of,
//! the minute it subscribed (whole when the snapshot came before the
//! acknowledgement, as Coinbase sends it: nothing of the horizon happened
//! before; partial otherwise). Every later trade reaches the engine, and the
//! component's trade ids show whatever goes missing from then on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use spot_wire::Trade;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};
use tracing::Instrument;

use super::LiveFrom;
use super::message::{self, Frame};
use super::stats::{ConnState, ConnStats, FeedStats, add, bump};
use super::{FeedConfig, Shared};
use crate::engine::EngineError;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("stopping")]
    Stopped,
    #[error("the engine stopped")]
    EngineGone,
    #[error("connect failed: {0}")]
    Connect(tungstenite::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("nothing received for {0:?}")]
    Silent(Duration),
    #[error("closed by the server (code {0})")]
    Closed(u16),
    #[error("connection ended")]
    Eof,
    #[error("websocket error: {0}")]
    Socket(tungstenite::Error),
    #[error("the server refused the subscription: {0}")]
    Refused(String),
    #[error("cannot sign the subscription: {0}")]
    Jwt(String),
}

/// One connection's fixed part.
pub(crate) struct Connection {
    pub index: usize,
    pub products: Vec<String>,
    /// Product name → engine id, for this connection's products.
    pub ids: HashMap<String, u32>,
}

/// Run the connection until `stop` turns true.
pub(crate) async fn run(conn: Connection, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let span = tracing::info_span!("feed", shard = shared.stats.shard_index, connection = conn.index);
    run_inner(conn, shared, stop).instrument(span).await
}

async fn run_inner(conn: Connection, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let stats = &shared.stats.connections[conn.index];
    add(&stats.products, conn.products.len() as u64);
    let mut live = LiveStart::new(match shared.live_from {
        Some(_) => conn.ids.values().copied().collect(),
        None => Vec::new(),
    });
    let mut attempt: u32 = 0;
    loop {
        let started = Instant::now();
        let end = tokio::select! {
            _ = wait_stop(&mut stop) => SessionEnd::Stopped,
            end = session(&conn, &shared, stats, &mut live) => end,
        };
        match end {
            SessionEnd::Stopped | SessionEnd::EngineGone => {
                stats.set_state(ConnState::Stopped);
                tracing::info!(reason = %end, "connection stopped");
                return;
            }
            ref e => {
                bump(&shared.stats.reconnects);
                bump(&stats.reconnects);
                tracing::warn!(reason = %e, after = ?started.elapsed(), "connection lost; reconnecting");
            }
        }
        stats.set_state(ConnState::Backoff);
        // A session that stayed up a while starts the backoff over.
        if started.elapsed() > shared.config.healthy_after {
            attempt = 0;
        }
        let delay = full_jitter(&shared.config, attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = wait_stop(&mut stop) => {
                stats.set_state(ConnState::Stopped);
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A random delay in `[0, min(cap, base · 2^attempt)]` ("full jitter"): after
/// an outage, connections come back spread out instead of all at once.
pub(crate) fn full_jitter(config: &FeedConfig, attempt: u32) -> Duration {
    let ceiling = config
        .backoff_base
        .saturating_mul(1u32 << attempt.min(20))
        .min(config.backoff_cap);
    let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rand::random::<u64>() % (nanos + 1))
}

fn subscribe_message(channel: &str, products: Option<&[String]>, jwt: Option<String>) -> String {
    let mut m = json!({ "type": "subscribe", "channel": channel });
    if let Some(p) = products {
        m["product_ids"] = json!(p);
    }
    if let Some(t) = jwt {
        m["jwt"] = json!(t);
    }
    m.to_string()
}

/// The products of a connection whose live start is not told yet.
struct LiveStart {
    waiting: HashSet<u32>,
    /// A `market_trades` frame (the snapshot, even one without trades) came
    /// in this session before the acknowledgement, as Coinbase sends it.
    snapshot_seen: bool,
    /// Per frame: the earliest trade time (ms) of each waiting product.
    earliest: HashMap<u32, i64>,
}

impl LiveStart {
    fn new(products: impl IntoIterator<Item = u32>) -> Self {
        LiveStart {
            waiting: products.into_iter().collect(),
            snapshot_seen: false,
            earliest: HashMap::new(),
        }
    }

    /// A frame's trades (within the horizon from `horizon_start_ms`) reached the engine.
    fn trades(&mut self, batch: &[Trade], horizon_start_ms: i64, sink: &Option<mpsc::UnboundedSender<LiveFrom>>) {
        self.snapshot_seen = true;
        if self.waiting.is_empty() {
            return;
        }
        for t in batch {
            if t.time_ms >= horizon_start_ms && self.waiting.contains(&t.product) {
                let e = self.earliest.entry(t.product).or_insert(t.time_ms);
                *e = (*e).min(t.time_ms);
            }
        }
        for (product, ms) in self.earliest.drain() {
            self.waiting.remove(&product);
            // Its earliest trade's minute may hold earlier trades never sent.
            tell(sink, product, ms, true);
        }
    }

    /// The subscription is acknowledged at `now_ms`: a product no trade of
    /// the horizon came for so far begins now. Its minute is whole when the
    /// snapshot came first (nothing of the horizon happened before it); with
    /// no snapshot seen yet, it may not be.
    fn subscribed(&mut self, now_ms: i64, sink: &Option<mpsc::UnboundedSender<LiveFrom>>) {
        for product in self.waiting.drain() {
            tell(sink, product, now_ms, !self.snapshot_seen);
        }
    }
}

fn tell(sink: &Option<mpsc::UnboundedSender<LiveFrom>>, product: u32, ms: i64, partial: bool) {
    if let Some(s) = sink {
        let _ = s.send(LiveFrom {
            product,
            minute: ms.div_euclid(60_000) * 60,
            partial,
        });
    }
}

async fn session(conn: &Connection, shared: &Shared, stats: &ConnStats, live: &mut LiveStart) -> SessionEnd {
    let config = &shared.config;
    stats.set_state(ConnState::Connecting);
    // Claimed before connecting: every connection's `market_trades`
    // subscribe goes ahead of any connection's `heartbeats` subscribe.
    let claim = shared.messages.claim();
    shared.connects.acquire().await;
    bump(&shared.stats.connect_attempts);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    let connecting = tokio_tungstenite::connect_async_with_config(config.ws_url.as_str(), Some(ws_config), true);
    let mut ws = match tokio::time::timeout(config.connect_timeout, connecting).await {
        Err(_) => return SessionEnd::ConnectTimeout,
        Ok(Err(e)) => return SessionEnd::Connect(e),
        Ok(Ok((ws, _))) => ws,
    };
    stats.set_state(ConnState::Subscribing);
    // One channel per message, within Coinbase's 5-second deadline; each
    // message waits its turn under the per-IP message limit. The trades
    // first; the keep-alive once no connection waits to subscribe to
    // trades, sent from the read loop (frames are read meanwhile).
    shared.messages.acquire_claimed(&claim).await;
    if let Err(end) = subscribe(&mut ws, shared, "market_trades", Some(conn.products.as_slice())).await {
        return end;
    }
    drop(claim);
    live.snapshot_seen = false;
    let heartbeats_slot = shared.messages.acquire();
    tokio::pin!(heartbeats_slot);
    let mut heartbeats_sent = false;
    let mut reader = Reader {
        conn,
        shared,
        stats,
        live,
        last_sequence: None,
        batch: Vec::new(),
    };
    loop {
        let next = tokio::select! {
            () = &mut heartbeats_slot, if !heartbeats_sent => {
                heartbeats_sent = true;
                if let Err(end) = subscribe(&mut ws, shared, "heartbeats", None).await {
                    return end;
                }
                continue;
            }
            // Silence counts once the keep-alive is asked for: before, a
            // quiet channel is silent by right (the keep-alive waits for
            // every connection's trades, seconds with many connections).
            next = tokio::time::timeout(if heartbeats_sent { config.watchdog } else { UNWATCHED }, ws.next()) => next,
        };
        let next = match next {
            Err(_) => {
                bump(&shared.stats.watchdog_timeouts);
                return SessionEnd::Silent(config.watchdog);
            }
            Ok(None) => return SessionEnd::Eof,
            Ok(Some(Err(e))) => return SessionEnd::Socket(e),
            Ok(Some(Ok(m))) => m,
        };
        match next {
            Message::Text(text) => {
                if let Some(end) = reader.frame(&text, std::time::Instant::now()).await {
                    return end;
                }
            }
            Message::Binary(b) => {
                bump(&shared.stats.malformed_frames);
                tracing::warn!(bytes = b.len(), "binary frame ignored");
            }
            Message::Close(frame) => {
                bump(&shared.stats.server_closes);
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                return SessionEnd::Closed(code);
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// The silence allowed before the keep-alive subscribe is sent: none is
/// expected (the pacer sends it within seconds).
const UNWATCHED: Duration = Duration::from_secs(24 * 3600);

/// Send a subscribe to `channel` (with a fresh JWT when a key is set); the
/// caller holds the pacer's slot.
async fn subscribe(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    shared: &Shared,
    channel: &str,
    products: Option<&[String]>,
) -> Result<(), SessionEnd> {
    let jwt = match &shared.credentials {
        None => None,
        Some(c) => Some(c.token(unix_now()).map_err(|e| SessionEnd::Jwt(e.to_string()))?),
    };
    ws.send(Message::text(subscribe_message(channel, products, jwt)))
        .await
        .map_err(SessionEnd::Socket)
}

/// Per-session frame handling.
struct Reader<'a> {
    conn: &'a Connection,
    shared: &'a Shared,
    stats: &'a ConnStats,
    live: &'a mut LiveStart,
    last_sequence: Option<u64>,
    batch: Vec<Trade>,
}

impl Reader<'_> {
    /// Handle one text frame, read at `received`; `Some` ends the session.
    async fn frame(&mut self, text: &str, received: std::time::Instant) -> Option<SessionEnd> {
        let feed: &FeedStats = &self.shared.stats;
        bump(&feed.frames);
        bump(&self.stats.frames);
        add(&feed.bytes, text.len() as u64);
        let frame = match message::parse(text) {
            Ok(f) => f,
            Err(e) => {
                bump(&feed.malformed_frames);
                let excerpt: String = text.chars().take(80).collect();
                tracing::warn!(error = %e, excerpt = ?excerpt, "malformed frame skipped");
                return None;
            }
        };
        if let Some(seq) = frame.sequence() {
            if let Some(last) = self.last_sequence
                && seq > last + 1
            {
                bump(&feed.sequence_jumps);
                tracing::warn!(from = last, to = seq, "sequence_num jumped: frames may be lost");
            }
            self.last_sequence = Some(self.last_sequence.map_or(seq, |l| l.max(seq)));
        }
        match frame {
            Frame::Trades { trades, .. } => {
                self.batch.clear();
                let horizon_start_ms = self.shared.config.horizon.start_ms(crate::engine::now_ms());
                for raw in &trades {
                    let Some(&id) = self.conn.ids.get(&*raw.product_id) else {
                        bump(&feed.foreign_trades);
                        continue;
                    };
                    match raw.to_trade(id) {
                        Ok(t) => {
                            if t.time_ms < horizon_start_ms {
                                bump(&feed.past_horizon_trades);
                            }
                            self.batch.push(t)
                        }
                        Err(e) => {
                            bump(&feed.bad_trades);
                            tracing::warn!(error = %e, product = %raw.product_id, trade_id = %raw.trade_id, "trade skipped");
                        }
                    }
                }
                self.live.trades(&self.batch, horizon_start_ms, &self.shared.live_from);
                if !self.batch.is_empty() {
                    // Held until the engine is restored (Feed::release).
                    if !*self.shared.open.borrow() {
                        let mut open = self.shared.open.clone();
                        let _ = open.wait_for(|o| *o).await;
                    }
                    let n = self.batch.len() as u64;
                    let batch = std::mem::take(&mut self.batch);
                    // Waits while the engine's queue is full: backpressure
                    // reaches the socket instead of growing a queue.
                    if let Err(EngineError::Stopped) = self.shared.engine.trades_received(batch, received).await {
                        return Some(SessionEnd::EngineGone);
                    }
                    add(&feed.trades, n);
                    add(&self.stats.trades, n);
                }
            }
            Frame::Heartbeat { .. } => bump(&feed.heartbeats),
            Frame::Subscriptions { market_trades, .. } => {
                if !market_trades.is_empty() && self.stats.state() != ConnState::Live {
                    self.stats.set_state(ConnState::Live);
                    bump(&self.stats.sessions);
                    self.live.subscribed(crate::engine::now_ms(), &self.shared.live_from);
                    let missing: Vec<&String> = self
                        .conn
                        .products
                        .iter()
                        .filter(|p| !market_trades.contains(p))
                        .collect();
                    let after_ms = self.shared.started.elapsed().as_millis() as u64;
                    if missing.is_empty() {
                        tracing::info!(products = market_trades.len(), after_ms, "subscribed");
                    } else {
                        tracing::warn!(
                            products = market_trades.len(),
                            after_ms,
                            ?missing,
                            "subscribed; the server left some products out"
                        );
                    }
                }
            }
            Frame::Error { message } => {
                bump(&feed.errors);
                if message.contains("authentication") {
                    bump(&feed.auth_failures);
                }
                tracing::warn!(%message, "error message from the server");
                if self.stats.state() != ConnState::Live {
                    return Some(SessionEnd::Refused(message));
                }
            }
            Frame::Other { .. } => {}
        }
        None
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let config = FeedConfig::default();
        for attempt in 0..40 {
            let d = full_jitter(&config, attempt);
            let ceiling = config
                .backoff_base
                .saturating_mul(1 << attempt.min(20))
                .min(config.backoff_cap);
            assert!(d <= ceiling, "{d:?} > {ceiling:?}");
        }
        let spread: std::collections::HashSet<Duration> = (0..20).map(|_| full_jitter(&config, 10)).collect();
        assert!(spread.len() > 10, "not jittered");
    }

    #[test]
    fn subscribe_messages_carry_one_channel() {
        let m: serde_json::Value =
            serde_json::from_str(&subscribe_message("market_trades", Some(&["BTC-USD".into()]), None)).unwrap();
        assert_eq!(m["type"], "subscribe");
        assert_eq!(m["channel"], "market_trades");
        assert_eq!(m["product_ids"][0], "BTC-USD");
        assert!(m.get("jwt").is_none() && m.get("channels").is_none());
        let h: serde_json::Value =
            serde_json::from_str(&subscribe_message("heartbeats", None, Some("t".into()))).unwrap();
        assert!(h.get("product_ids").is_none());
        assert_eq!(h["jwt"], "t");
    }
}
