//! The SSE hub: the engine's rendered candle updates → every subscribed client.
//!
//! The engine hands each output to [`Hub::publish`] on its own thread (no
//! queue, no thread to wake). Each update's element ([`sse::Element`], the
//! component's bytes, shared, never copied per client) is kept as the
//! current state of its (product, granularity), and the same bytes are put in
//! the [`mailbox::Mailbox`] of every client subscribed to that key. A client's
//! stream takes whatever waits and sends it as one event; for a stream on its
//! own socket, the publisher writes that event itself when the socket takes
//! it at once (no stream task woken). A slow client skips
//! intermediate states but always ends on the latest one, and never slows the
//! engine or other clients; one that stays stuck past `stuck_after` is
//! disconnected (its connection is cut).
//!
//! Element ids are per (product, granularity), so only the newest bucket of a
//! key is shown: a late revision of an older bucket is stored by the writer
//! but not pushed to browsers.

pub mod mailbox;
pub mod sse;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use spot_wire::Granularity;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::engine::{EngineError, EngineHandle, EngineOutput};
use mailbox::{Delivery, Mailbox, Taken};
use sse::Element;

/// A subscription key: one element on the page.
pub type Key = (Arc<str>, Granularity);

/// Limits of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Clients at once; more are refused (503).
    pub max_clients: usize,
    /// (product, granularity) pairs per client.
    pub max_subscriptions: usize,
    /// A client whose oldest undelivered state is older than this is cut off.
    pub stuck_after: Duration,
    /// A comment is sent after this long without an event.
    pub keepalive: Duration,
    /// How long one publish may spend writing events to clients' sockets
    /// itself (a socket that takes the event at once: no task to wake, the
    /// most of a quiet server's delivery time); the clients left are woken
    /// and their streams write. Zero: always wake.
    pub publish_writes: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_clients: 20_000,
            max_subscriptions: 64,
            stuck_after: Duration::from_secs(30),
            keepalive: Duration::from_secs(15),
            publish_writes: Duration::from_micros(250),
        }
    }
}

/// The hub's counters (exported as metrics).
#[derive(Debug, Default)]
pub struct HubStats {
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Connections accepted, ever.
    pub connects: AtomicU64,
    /// Clients gone (closed by themselves, cut off, or at shutdown).
    pub disconnects: AtomicU64,
    /// Clients cut off for being stuck.
    pub stuck: AtomicU64,
    /// Clients refused because `max_clients` were connected.
    pub refused: AtomicU64,
    /// Events written to clients.
    pub events: AtomicU64,
    /// How long the events' oldest states waited in their mailboxes, from
    /// the put to the take that framed them, summed (ns): divided by
    /// `events`, the mean wait for a stream (or the publisher) to take an update.
    pub waited_nanos: AtomicU64,
    /// Of those, events the publisher wrote itself (no stream task woken).
    pub published_writes: AtomicU64,
    /// States a slow client skipped (replaced before it took them).
    pub skipped: AtomicU64,
    /// Updates of an older bucket than the one shown (not pushed).
    pub older_buckets: AtomicU64,
    /// The most states any one mailbox held at once (bounded by its keys).
    pub largest_mailbox: AtomicU64,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("too many clients")]
    Full,
    #[error("the server is shutting down")]
    Closed,
}

/// The hub; clones share it.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: HubConfig,
    state: Mutex<State>,
    stats: HubStats,
    next_client: AtomicU64,
    next_event: AtomicU64,
    /// Wakes the sweeper when the hub closes.
    closing: Notify,
}

#[derive(Default)]
struct State {
    /// Per product, per granularity (by index): the current state and who
    /// watches it. Keyed by the name so an update looks it up by `&str` (no
    /// key to build; fast hasher: the names are ours).
    products: HashMap<Arc<str>, [Slot; 8], foldhash::fast::RandomState>,
    clients: HashMap<u64, Client>,
    closed: bool,
}

impl Inner {
    /// One SSE event holding `lines`, with the next event id (unix ms and a
    /// sequence number), counted.
    /// Frame `lines` as one event; `waited`: how long the oldest of them
    /// waited in the client's mailbox.
    fn event(&self, lines: &[Element], waited: Duration) -> Bytes {
        let id = format!(
            "{}-{}",
            crate::engine::now_ms(),
            self.next_event.fetch_add(1, Ordering::Relaxed)
        );
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        self.stats
            .waited_nanos
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        sse::event(&id, lines.iter())
    }
}

/// One (product, granularity) in the hub.
#[derive(Default)]
struct Slot {
    /// The newest bucket's start and its element.
    current: Option<(i64, Element)>,
    /// Client id → its mailbox and the key's position in its subscription.
    subscribers: HashMap<u64, (Arc<Mailbox>, u32), foldhash::fast::RandomState>,
}

struct Client {
    mailbox: Arc<Mailbox>,
    /// Cuts the client's connection (set by the HTTP layer).
    kill: Option<Arc<Notify>>,
}

impl Hub {
    /// A hub with no clients yet.
    pub fn new(config: HubConfig) -> Self {
        Hub {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                stats: HubStats::default(),
                next_client: AtomicU64::new(1),
                next_event: AtomicU64::new(1),
                closing: Notify::new(),
            }),
        }
    }

    /// The hub's limits.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The hub's counters.
    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// Take the engine's outputs as they are made: [`Hub::publish`] runs on
    /// the engine's thread ([`EngineHandle::attach`]), so an update reaches the
    /// mailboxes without waiting for another thread to wake. Returns the task
    /// that cuts off stuck clients until the hub closes.
    pub async fn attach(&self, engine: &EngineHandle) -> Result<tokio::task::JoinHandle<()>, EngineError> {
        let hub = self.clone();
        engine.attach(Box::new(move |out| hub.publish(out))).await?;
        let hub = self.clone();
        Ok(tokio::spawn(async move {
            let every = (hub.inner.config.stuck_after / 4).max(Duration::from_millis(10));
            let mut sweep = tokio::time::interval(every);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = hub.inner.closing.notified() => break,
                    _ = sweep.tick() => hub.cut_stuck(),
                }
            }
        }))
    }

    /// Put one output's updates in the mailboxes of their subscribers, then,
    /// for each mailbox that was empty, write its event to the client's
    /// socket (within `publish_writes`, when the socket takes it whole, and
    /// only for the last piece of an input) or wake its stream. Doing that last keeps the puts together: a stream
    /// woken mid-output would take the CPU (it is often scheduled on this
    /// core) while other clients' puts wait, and would send part of the
    /// output in one event and the rest in another.
    pub fn publish(&self, out: &EngineOutput) {
        let inner = &self.inner;
        let mut wake = Vec::new();
        {
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let state = &mut *state;
            for u in &out.updates {
                if u.element.is_empty() {
                    continue; // the component failed to render it (counted by the engine)
                }
                if !state.products.contains_key(&*u.product) {
                    state.products.insert(u.product.clone(), Default::default());
                }
                let Some(slots) = state.products.get_mut(&*u.product) else {
                    continue;
                };
                let slot = &mut slots[u.candle.granularity.index()];
                let start = u.candle.start;
                if slot.current.as_ref().is_some_and(|(shown, _)| *shown > start) {
                    inner.stats.older_buckets.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let element = Element::new(u.element.clone());
                for (mailbox, position) in slot.subscribers.values() {
                    if mailbox.put(*position, &element, &inner.stats.skipped, &inner.stats.largest_mailbox) {
                        wake.push(mailbox.clone());
                    }
                }
                slot.current = Some((start, element));
            }
        }
        // Write to the sockets that take it at once, within the budget (the
        // engine waits meanwhile); wake the streams of the rest. With more
        // pieces of the input to render, the engine has better to do: the
        // streams write (on other threads) while it renders the next.
        let budget = if out.more {
            Duration::ZERO
        } else {
            inner.config.publish_writes
        };
        let started = std::time::Instant::now();
        for mailbox in wake {
            if !budget.is_zero()
                && started.elapsed() < budget
                && mailbox.deliver(|lines, waited| inner.event(lines, waited)) == Delivery::Written
            {
                inner.stats.published_writes.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            mailbox.wake();
        }
    }

    /// Subscribe to `keys`: the current state of each comes first, then every
    /// update. `kill` cuts the client's connection if it gets stuck.
    pub fn subscribe(&self, keys: Vec<Key>, kill: Option<Arc<Notify>>) -> Result<Subscription, HubError> {
        let inner = &self.inner;
        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            return Err(HubError::Closed);
        }
        if state.clients.len() >= inner.config.max_clients {
            inner.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(HubError::Full);
        }
        let id = inner.next_client.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::default());
        for (position, (product, granularity)) in keys.iter().enumerate() {
            let position = position as u32;
            let slot = &mut state.products.entry(product.clone()).or_default()[granularity.index()];
            if let Some((_, element)) = &slot.current {
                // Nobody waits on a mailbox still being built: its first take
                // happens after this returns.
                let _ = mailbox.put(position, element, &AtomicU64::new(0), &inner.stats.largest_mailbox);
            }
            slot.subscribers.insert(id, (mailbox.clone(), position));
        }
        state.clients.insert(
            id,
            Client {
                mailbox: mailbox.clone(),
                kill,
            },
        );
        inner.stats.clients.store(state.clients.len() as u64, Ordering::Relaxed);
        inner.stats.connects.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription {
            hub: self.inner.clone(),
            id,
            keys,
            mailbox,
            started: false,
            last_sent: Instant::now(),
            quiet: None,
        })
    }

    /// End every stream (shutdown) and refuse new ones.
    pub fn close(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        for c in state.clients.values() {
            c.mailbox.close();
        }
        // (A stored permit if the sweeper is between two waits.)
        self.inner.closing.notify_one();
    }

    fn cut_stuck(&self) {
        let now = Instant::now();
        let limit = self.inner.config.stuck_after;
        let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        for (id, c) in &state.clients {
            if c.mailbox.waiting_for(now).is_some_and(|w| w > limit) {
                tracing::info!(client = id, "cutting off a client stuck for {limit:?}");
                self.inner.stats.stuck.fetch_add(1, Ordering::Relaxed);
                c.mailbox.close();
                if let Some(kill) = &c.kill {
                    kill.notify_one();
                }
            }
        }
    }
}

/// One client's stream of events.
pub struct Subscription {
    hub: Arc<Inner>,
    id: u64,
    keys: Vec<Key>,
    mailbox: Arc<Mailbox>,
    /// Something was sent already (the response head goes out with the first
    /// bytes, so the first call never waits).
    started: bool,
    /// When the last bytes went out; a keep-alive is due `keepalive` after it.
    last_sent: Instant,
    /// The keep-alive timer. It is not moved on every event (that would be a
    /// timer-wheel removal and insertion per delivery): when it fires early it
    /// is set again from `last_sent`.
    quiet: Option<Pin<Box<Sleep>>>,
}

impl Subscription {
    /// Let the publisher write events to `socket` itself when it takes them
    /// at once (see [`mailbox`]). Call once the response head went out; from
    /// then on, call [`Subscription::written`] after writing what `next` gave.
    pub fn set_outlet(&self, socket: Arc<tokio::net::TcpStream>) {
        self.mailbox.set_outlet(socket);
    }

    /// What the last `next` returned has been written (or failed to be).
    pub fn written(&self) {
        self.mailbox.written();
    }

    /// The next bytes to send: an event with everything waiting, a keep-alive
    /// comment after a quiet `keepalive`, or `None` once the hub closed it.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.mailbox.take() {
                Taken::Closed => return None,
                Taken::Lines(lines, waited) => {
                    self.started = true;
                    self.last_sent = Instant::now();
                    return Some(self.hub.event(&lines, waited));
                }
                Taken::Rest(rest) => {
                    self.last_sent = Instant::now();
                    return Some(rest);
                }
                Taken::Nothing if !self.started => {
                    self.started = true;
                    self.last_sent = Instant::now();
                    return Some(Bytes::from_static(sse::KEEPALIVE));
                }
                Taken::Nothing => {
                    let keepalive = self.hub.config.keepalive;
                    // Events the publisher wrote itself count as traffic too.
                    if let Some(at) = self.mailbox.written_at() {
                        self.last_sent = self.last_sent.max(at);
                    }
                    let due = self.last_sent + keepalive;
                    let quiet = self
                        .quiet
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    tokio::select! {
                        _ = self.mailbox.changed() => {}
                        _ = quiet.as_mut() => {
                            let now = Instant::now();
                            let due = match self.mailbox.written_at() {
                                Some(at) => due.max(at + keepalive),
                                None => due,
                            };
                            if now >= due {
                                self.last_sent = now;
                                quiet.as_mut().reset(now + keepalive);
                                return Some(Bytes::from_static(sse::KEEPALIVE));
                            }
                            // Fired for an earlier quiet spell; events went out since.
                            quiet.as_mut().reset(due);
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.state.lock().unwrap_or_else(|p| p.into_inner());
        for (product, granularity) in &self.keys {
            if let Some(slots) = state.products.get_mut(&**product) {
                slots[granularity.index()].subscribers.remove(&self.id);
            }
        }
        state.clients.remove(&self.id);
        self.hub
            .stats
            .clients
            .store(state.clients.len() as u64, Ordering::Relaxed);
        self.hub.stats.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}
