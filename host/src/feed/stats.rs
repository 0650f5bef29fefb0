//! The feed's counters, read by `/metrics`, `/readyz` and tests.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Waiting before the next attempt.
    Backoff = 0,
    /// Opening the WebSocket.
    Connecting = 1,
    /// Open; subscribe messages sent, no acknowledgement yet.
    Subscribing = 2,
    /// Subscribed and receiving.
    Live = 3,
    /// Stopped for good (shutdown).
    Stopped = 4,
}

impl ConnState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ConnState::Connecting,
            2 => ConnState::Subscribing,
            3 => ConnState::Live,
            4 => ConnState::Stopped,
            _ => ConnState::Backoff,
        }
    }

    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Backoff => "backoff",
            ConnState::Connecting => "connecting",
            ConnState::Subscribing => "subscribing",
            ConnState::Live => "live",
            ConnState::Stopped => "stopped",
        }
    }
}

/// One connection's counters.
#[derive(Default)]
pub struct ConnStats {
    state: AtomicU8,
    /// Products on this connection.
    pub products: AtomicU64,
    /// Sessions that reached `Live`.
    pub sessions: AtomicU64,
    pub frames: AtomicU64,
    pub trades: AtomicU64,
    pub reconnects: AtomicU64,
}

impl ConnStats {
    /// The current state.
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }
    pub(crate) fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// The feed's counters (totals over all connections).
#[derive(Default)]
pub struct FeedStats {
    /// This instance's shard and the shard count.
    pub shard_index: u32,
    pub shard_count: u32,
    pub connections: Vec<ConnStats>,
    /// WebSocket connection attempts (including failed ones).
    pub connect_attempts: AtomicU64,
    /// Sessions that ended and were retried.
    pub reconnects: AtomicU64,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Trades handed to the engine.
    pub trades: AtomicU64,
    pub heartbeats: AtomicU64,
    /// Frames that were not JSON or not a message.
    pub malformed_frames: AtomicU64,
    /// Trades refused for a bad field (id, price, size, time).
    pub bad_trades: AtomicU64,
    /// Trades of a product this connection did not subscribe to.
    pub foreign_trades: AtomicU64,
    /// `sequence_num` jumps: frames possibly lost.
    pub sequence_jumps: AtomicU64,
    /// Connections that were silent past the watchdog.
    pub watchdog_timeouts: AtomicU64,
    /// Close frames received from the server.
    pub server_closes: AtomicU64,
    /// `error` messages received (authentication failures included).
    pub errors: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Trades older than the horizon (the component ignores them).
    pub past_horizon_trades: AtomicU64,
}

impl FeedStats {
    /// Counters for `n` connections of shard `index` of `count`.
    pub fn new(n: usize, index: u32, count: u32) -> Self {
        FeedStats {
            shard_index: index,
            shard_count: count,
            connections: (0..n).map(|_| ConnStats::default()).collect(),
            ..FeedStats::default()
        }
    }

    /// Connections that are live now.
    pub fn live(&self) -> usize {
        self.connections.iter().filter(|c| c.state() == ConnState::Live).count()
    }

    /// Every connection has been live at least once.
    pub fn all_started(&self) -> bool {
        self.connections.iter().all(|c| c.sessions.load(Ordering::Relaxed) > 0)
    }
}

/// Add one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Add `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
