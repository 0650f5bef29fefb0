//! The listener's counters (exported as metrics and in `/readyz`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the listener did.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Its connection is up and listening now.
    pub connected: AtomicBool,
    /// It has read the fleet's current candles once (since start).
    pub synced: AtomicBool,
    /// Connections made, and lost.
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    /// Reads of the current candle of every key (after each connect, for new
    /// products, when a writer asked).
    pub resyncs: AtomicU64,
    /// Notifications of other instances' flushes, and of its own (skipped).
    pub notifications: AtomicU64,
    pub own_notifications: AtomicU64,
    /// Notifications no spot instance writes (logged, skipped).
    pub malformed: AtomicU64,
    /// Candles read back (from notified flushes and resyncs).
    pub candles_read: AtomicU64,
    /// Of those: handed to the engine to render, and dropped as not newer
    /// than what is shown (or this instance's own products).
    pub candles_applied: AtomicU64,
    pub candles_stale: AtomicU64,
    /// Unix ms of the last candle applied (0: none).
    pub last_applied_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// When each instance's last notification arrived here (unix ms).
    heard: Mutex<HashMap<String, i64>>,
}

impl FleetStats {
    /// Why the last connection ended, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    /// When each instance's last flush was notified here (unix ms).
    pub fn heard(&self) -> HashMap<String, i64> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn heard_from(&self, instance: &str, at_ms: i64) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        match heard.get_mut(instance) {
            Some(t) => *t = at_ms,
            None => {
                heard.insert(instance.to_string(), at_ms);
            }
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
