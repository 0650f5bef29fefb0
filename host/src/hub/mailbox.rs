//! A client's mailbox: the latest undelivered state per (product, granularity).
//!
//! The hub puts, the client's stream takes. A put for a key that is still
//! waiting replaces it (the client skips an intermediate state, never the
//! latest), so a mailbox holds at most one entry per subscribed key however
//! slow the client is.
//!
//! A stream on its own socket also gives the mailbox that socket (its
//! *outlet*): the publisher may then take and write an event itself, when the
//! socket takes it at once, instead of waking the stream's task (a thread
//! wake is most of a quiet server's delivery time). Whoever takes states
//! writes them before anyone takes again (`writing`), so events never
//! overtake each other; an event the socket took only in part leaves its end
//! (`leftover`) for the task, which writes it before anything else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::sse::Element;

/// One client's undelivered states.
#[derive(Debug, Default)]
pub struct Mailbox {
    slots: Mutex<Slots>,
    notify: Notify,
    /// The client's socket, when its stream lets the publisher write to it.
    outlet: OnceLock<Arc<TcpStream>>,
}

#[derive(Debug, Default)]
struct Slots {
    /// (the key's position in the client's subscription, its latest element)
    pending: Vec<(u32, Element)>,
    /// When the oldest undelivered state arrived.
    waiting_since: Option<Instant>,
    closed: bool,
    /// With an outlet: states were taken and their event is being written;
    /// nobody takes again until [`Mailbox::written`].
    writing: bool,
    /// The end of an event the publisher could not write whole: the stream
    /// writes it before anything else.
    leftover: Option<Bytes>,
    /// When the publisher last wrote an event (keep-alives count from it).
    written_at: Option<Instant>,
}

impl Slots {
    /// The waiting states, in the order their keys first arrived, and how
    /// long the oldest waited; none wait now.
    fn take_pending(&mut self) -> (Vec<Element>, Duration) {
        let waited = self.waiting_since.take().map_or(Duration::ZERO, |t| t.elapsed());
        (
            std::mem::take(&mut self.pending).into_iter().map(|(_, l)| l).collect(),
            waited,
        )
    }
}

/// What a take found.
pub enum Taken {
    /// The states, and how long the oldest of them waited in the mailbox.
    Lines(Vec<Element>, Duration),
    /// The end of an event already framed and partly written.
    Rest(Bytes),
    Nothing,
    Closed,
}

/// What [`Mailbox::deliver`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The event went out whole (or there was nothing to send).
    Written,
    /// The stream's task must act (write a leftover, take the states, or see
    /// its socket fail): wake it.
    Wake,
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

    /// Everything waiting, in the order the keys first arrived (or the end of
    /// an event the publisher left). With an outlet, the caller must call
    /// [`Mailbox::written`] once it has written what it took.
    pub fn take(&self) -> Taken {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if s.closed {
            return Taken::Closed;
        }
        if s.writing {
            // The publisher is writing; if it leaves anything it wakes us.
            return Taken::Nothing;
        }
        if let Some(rest) = s.leftover.take() {
            s.writing = true;
            return Taken::Rest(rest);
        }
        if s.pending.is_empty() {
            return Taken::Nothing;
        }
        s.writing = self.outlet.get().is_some();
        let (lines, waited) = s.take_pending();
        Taken::Lines(lines, waited)
    }

    /// What the last take returned has been written (or failed to be).
    pub fn written(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).writing = false;
    }

    /// Let the publisher write this client's events to `socket` itself
    /// (set once, after the response head went out).
    pub fn set_outlet(&self, socket: Arc<TcpStream>) {
        let _ = self.outlet.set(socket);
    }

    /// The publisher's path: take what waits, frame it with `event` (given
    /// how long the oldest state waited), and
    /// write it to the outlet if the socket takes it without waiting.
    /// [`Delivery::Wake`] when the stream's task has to do it instead (no
    /// outlet, the task is writing, the socket is full or failed).
    pub fn deliver(&self, event: impl FnOnce(&[Element], Duration) -> Bytes) -> Delivery {
        let Some(socket) = self.outlet.get() else {
            return Delivery::Wake;
        };
        let (lines, waited) = {
            let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if s.closed || s.writing || s.leftover.is_some() {
                return Delivery::Wake;
            }
            if s.pending.is_empty() {
                return Delivery::Written;
            }
            s.writing = true;
            s.take_pending()
        };
        let bytes = event(&lines, waited);
        let wrote = socket.try_write(&bytes);
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.writing = false;
        match wrote {
            Ok(n) if n == bytes.len() => {
                s.written_at = Some(Instant::now());
                Delivery::Written
            }
            Ok(n) => {
                s.leftover = Some(bytes.slice(n..));
                s.waiting_since.get_or_insert_with(Instant::now);
                Delivery::Wake
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                s.leftover = Some(bytes);
                s.waiting_since.get_or_insert_with(Instant::now);
                Delivery::Wake
            }
            // The task's own read or write sees the socket fail and ends the stream.
            Err(_) => Delivery::Wake,
        }
    }

    /// When the publisher last wrote an event to the outlet.
    pub fn written_at(&self) -> Option<Instant> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).written_at
    }

    /// Wait for a put or a close.
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    /// How long the oldest undelivered state has waited.
    pub fn waiting_for(&self, now: Instant) -> Option<Duration> {
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
            Taken::Lines(l, _) => assert_eq!(l, vec![e("<c>"), e("<b>")]),
            _ => panic!("expected the two latest states"),
        }
        assert!(m.put(1, &e("<d>"), &skipped, &largest));
        m.close();
        assert!(!m.put(0, &e("<e>"), &skipped, &largest));
        assert!(matches!(m.take(), Taken::Closed));
    }

    /// A connected pair on loopback: (the server's end, the client's end).
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    #[tokio::test]
    async fn the_publisher_writes_whole_events_and_leaves_the_rest_to_the_stream_in_order() {
        use tokio::io::AsyncReadExt;
        let (skipped, largest) = (AtomicU64::new(0), AtomicU64::new(0));
        let (server, mut client) = socket_pair().await;
        let m = Mailbox::default();
        let e = |s: String| Element::new(Bytes::from(s));
        let frame = |lines: &[Element], _| Bytes::from(lines.iter().map(|l| format!("{l:?};")).collect::<String>());
        // No outlet yet: the stream's task does the writing.
        assert!(m.put(0, &e("a".into()), &skipped, &largest));
        assert_eq!(m.deliver(frame), Delivery::Wake);
        assert!(matches!(m.take(), Taken::Lines(..)));

        m.set_outlet(Arc::new(server));
        assert!(m.put(0, &e("b".into()), &skipped, &largest));
        assert_eq!(m.deliver(frame), Delivery::Written);
        assert!(m.written_at().is_some());
        let want = frame(&[e("b".into())], Duration::ZERO);
        let mut got = vec![0u8; want.len()];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got, want);

        // While the stream writes what it took, the publisher leaves it alone.
        assert!(m.put(0, &e("c".into()), &skipped, &largest));
        assert!(matches!(m.take(), Taken::Lines(..)));
        assert!(m.put(1, &e("d".into()), &skipped, &largest));
        assert_eq!(m.deliver(frame), Delivery::Wake);
        assert!(matches!(m.take(), Taken::Nothing));
        m.written();

        // A client that does not read: the socket fills, the publisher keeps
        // the unwritten end, and the stream gets it before any newer state.
        let big = "x".repeat(64 * 1024);
        let mut sent = 0usize;
        loop {
            let _ = m.put(0, &e(big.clone()), &skipped, &largest);
            match m.deliver(frame) {
                Delivery::Written => sent += 1,
                Delivery::Wake => break,
            }
            assert!(sent < 10_000, "the socket never filled");
        }
        let Taken::Rest(left) = m.take() else {
            panic!("the stream must first get the end of the event the publisher began");
        };
        assert!(!left.is_empty());
        // Until the stream has written it, nobody takes anything else.
        let _ = m.put(1, &e("newer".into()), &skipped, &largest);
        assert_eq!(m.deliver(frame), Delivery::Wake);
        assert!(matches!(m.take(), Taken::Nothing));
        m.written();
        assert!(matches!(m.take(), Taken::Lines(l, _) if l == vec![e("newer".into())]));
    }
}
