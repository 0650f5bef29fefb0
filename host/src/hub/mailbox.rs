//! A client's mailbox: the latest undelivered state per (product, granularity).
//!
//! The hub puts, the client's stream takes. A put for a key that is still
//! waiting replaces it (the client skips an intermediate state, never the
//! latest), so a mailbox holds at most one entry per subscribed key however
//! slow the client is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::sse::Element;

/// One client's undelivered states.
#[derive(Debug, Default)]
pub struct Mailbox {
    slots: Mutex<Slots>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Slots {
    /// (the key's position in the client's subscription, its latest element)
    pending: Vec<(u32, Element)>,
    /// When the oldest undelivered state arrived.
    waiting_since: Option<Instant>,
    closed: bool,
}

/// What a take found.
pub enum Taken {
    Lines(Vec<Element>),
    Nothing,
    Closed,
}

impl Mailbox {
    /// Put the latest element of the client's `key`-th subscribed key (its
    /// position in the subscription: cheaper to match than the key itself);
    /// counts into `skipped` when it replaces a state the client never
    /// received, and records the mailbox's size in `largest` (the most entries
    /// any mailbox held).
    ///
    /// Does not wake the reader: returns `true` when the mailbox was empty,
    /// the one case where the reader needs a [`Mailbox::wake`] (otherwise the
    /// wake of the first put is still due, and its take gets this one too).
    /// The hub wakes readers after it has put a whole output, so a woken
    /// stream does not take the CPU from the puts still to make.
    #[must_use = "a mailbox that was empty needs a wake"]
    pub fn put(&self, key: u32, lines: &Element, skipped: &AtomicU64, largest: &AtomicU64) -> bool {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if s.closed {
            return false;
        }
        let was_empty = s.pending.is_empty();
        match s.pending.iter_mut().find(|(k, _)| *k == key) {
            Some((_, l)) => {
                *l = lines.clone();
                skipped.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                s.pending.push((key, lines.clone()));
                largest.fetch_max(s.pending.len() as u64, Ordering::Relaxed);
            }
        }
        s.waiting_since.get_or_insert_with(Instant::now);
        was_empty
    }

    /// Wake the reader (after a put that returned `true`).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Everything waiting, in the order the keys first arrived.
    pub fn take(&self) -> Taken {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if s.closed {
            return Taken::Closed;
        }
        if s.pending.is_empty() {
            return Taken::Nothing;
        }
        s.waiting_since = None;
        Taken::Lines(std::mem::take(&mut s.pending).into_iter().map(|(_, l)| l).collect())
    }

    /// Wait for a put or a close.
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    /// How long the oldest undelivered state has waited.
    pub fn waiting_for(&self, now: Instant) -> Option<std::time::Duration> {
        let s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.waiting_since.map(|t| now.saturating_duration_since(t))
    }

    /// No more puts; the stream ends at its next take.
    pub fn close(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn only_a_put_into_an_empty_mailbox_asks_for_a_wake() {
        let (skipped, largest) = (AtomicU64::new(0), AtomicU64::new(0));
        let m = Mailbox::default();
        let e = |s: &'static str| Element::new(Bytes::from_static(s.as_bytes()));
        assert!(m.put(0, &e("<a>"), &skipped, &largest));
        // The first put's wake is still due: its take will hold these too.
        assert!(!m.put(1, &e("<b>"), &skipped, &largest));
        assert!(!m.put(0, &e("<c>"), &skipped, &largest));
        assert_eq!(skipped.load(Ordering::Relaxed), 1);
        match m.take() {
            Taken::Lines(l) => assert_eq!(l, vec![e("<c>"), e("<b>")]),
            _ => panic!("expected the two latest states"),
        }
        assert!(m.put(1, &e("<d>"), &skipped, &largest));
        m.close();
        assert!(!m.put(0, &e("<e>"), &skipped, &largest));
        assert!(matches!(m.take(), Taken::Closed));
    }
}
