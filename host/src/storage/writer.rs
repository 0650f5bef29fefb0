//! The batch writer: the engine's candle updates → `live_candles`.
//!
//! Updates are coalesced by key (exchange, product, granularity, bucket): the
//! latest state of a key replaces the one waiting, so a batch never holds a key
//! twice and memory is bounded by the number of distinct keys, however long the
//! database is away. A batch is flushed when `batch_rows` keys wait or the
//! oldest has waited `interval`; one flush is in flight at a time, and while it
//! runs new updates keep coalescing (so batches grow with the load). After a
//! flush that took `d`, the next waits at least `d` (unless a sync or the
//! shutdown asks): the writer keeps the database busy at most half the time,
//! and under load rows coalesce in memory instead of queueing there. A failed
//! flush puts its rows back (a newer state of the same key, arrived meanwhile,
//! wins) and is retried with capped, jittered exponential backoff.
//!
//! Every row carries a revision from a strictly increasing clock: the upsert
//! only replaces a stored row with a newer revision, so a stale write (a retry,
//! an instance still shutting down) never overwrites a newer row.
//!
//! Restore outputs (the candles read back from storage at start) are not
//! written again: they are what is stored; nor are the fleet's outputs (other
//! instances' candles, rendered here for this instance's streams).
//!
//! With `publish` set (every ingesting server), a flush also puts the rows it
//! changed into `fleet_updates` in the same statement and, once committed,
//! sends one NOTIFY naming that row ([`super::outbox`]). A NOTIFY that fails
//! costs no candle: its ids ride on the next flush's notification (past
//! [`super::outbox::MAX_IDS`], that one tells listeners to resync instead).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use spot_wire::{Candle, Granularity};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::StorageError;
use super::outbox::{self, Notice};
use super::upsert::{CandleRow, upsert, upsert_publishing};
use crate::engine::{Cause, EngineOutput};

/// How the writer batches and retries.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The `exchange` column.
    pub exchange: String,
    /// Flush once this many keys wait (the seed's 50)...
    pub batch_rows: usize,
    /// ...or once the oldest has waited this long (the seed's 100 ms).
    pub interval: Duration,
    /// At most this many rows per statement (a backlog after an outage is
    /// written in several).
    pub max_statement_rows: usize,
    /// A statement that takes longer than this counts as failed.
    pub statement_timeout: Duration,
    /// Retry delays after failures: from `backoff_min`, doubling, capped.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// When the input closes (shutdown), keep trying to write what is held
    /// for this long, then give up and say how much was lost.
    pub drain_timeout: Duration,
    /// Publish every flush to the fleet as this instance (`None`: store only).
    pub publish: Option<Arc<str>>,
    /// Published rows are deleted after this long (checked every 30 s).
    pub publish_keep: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            exchange: super::EXCHANGE.to_string(),
            batch_rows: 50,
            interval: Duration::from_millis(100),
            max_statement_rows: 2_000,
            statement_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            publish: None,
            publish_keep: Duration::from_secs(60),
        }
    }
}

/// The writer's counters, shared with metrics and readiness.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Candle updates received.
    pub updates: AtomicU64,
    /// Restore updates not written (they came from storage).
    pub restored: AtomicU64,
    /// Rows sent in successful flushes.
    pub rows_written: AtomicU64,
    /// Successful flushes.
    pub flushes: AtomicU64,
    /// Failed flushes (each retried).
    pub failures: AtomicU64,
    /// Keys waiting now, and the most that ever waited.
    pub pending: AtomicU64,
    pub pending_max: AtomicU64,
    /// Rows per successful flush, and how long each flush took (seconds).
    pub flush_rows: crate::histogram::Histogram,
    pub flush_seconds: crate::histogram::Histogram,
    /// Rows given up at shutdown because the database stayed away.
    pub lost_at_shutdown: AtomicU64,
    /// Unix ms of the last flush that changed a stored row (0: none yet).
    pub last_change_ms: AtomicI64,
    /// Unix ms the flush in flight started (0: none in flight).
    pub in_flight_since_ms: AtomicI64,
    /// Flushes published to the fleet, notifications sent, and NOTIFYs that
    /// failed (their ids went with a later one).
    pub published: AtomicU64,
    pub notifications: AtomicU64,
    pub notify_failures: AtomicU64,
    /// False from a failed flush until the next successful one.
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl WriterStats {
    /// Whether the last flush attempt succeeded (true before the first).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// How long the flush in flight has been waiting, if one is.
    pub fn in_flight_for(&self) -> Option<Duration> {
        let since = self.in_flight_since_ms.load(Ordering::Relaxed);
        (since > 0).then(|| Duration::from_millis((crate::engine::now_ms() - since).max(0) as u64))
    }

    /// The error of the last failed flush, if the writer is unhealthy.
    pub fn last_error(&self) -> Option<String> {
        if self.healthy() {
            return None;
        }
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

/// The writer gave up (its task ended).
#[derive(Debug, thiserror::Error)]
#[error("the storage writer has stopped")]
pub struct WriterStopped;

/// The running writer.
pub struct Writer {
    control: mpsc::Sender<oneshot::Sender<()>>,
    stats: Arc<WriterStats>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Start writing the updates that arrive on `input` (an engine subscription).
    /// The writer ends once `input` closes and what it holds is written.
    pub fn spawn(pool: Pool, input: mpsc::Receiver<Arc<EngineOutput>>, config: WriterConfig) -> Writer {
        let stats = Arc::new(WriterStats {
            healthy: AtomicBool::new(true),
            flush_rows: crate::histogram::Histogram::new(crate::histogram::SIZES),
            ..WriterStats::default()
        });
        let (control, syncs) = mpsc::channel(16);
        let task = Task {
            exchange: config.exchange.as_str().into(),
            config,
            pool,
            input,
            input_open: true,
            syncs,
            syncs_open: true,
            stats: stats.clone(),
            pending: HashMap::default(),
            oldest: None,
            flush_started: Instant::now(),
            rest_until: None,
            in_flight: None,
            in_flight_rows: 0,
            backoff: Duration::ZERO,
            retry_at: None,
            closing_since: None,
            seq: 0,
            revisions: Revisions::default(),
            waiters: Vec::new(),
            unnotified: Vec::new(),
            last_trim: None,
        };
        Writer {
            control,
            stats,
            task: tokio::spawn(task.run()),
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Wait until every update the writer has received so far, and everything
    /// already queued on its input, is stored.
    pub async fn sync(&self) -> Result<(), WriterStopped> {
        let (tx, rx) = oneshot::channel();
        self.control.send(tx).await.map_err(|_| WriterStopped)?;
        rx.await.map_err(|_| WriterStopped)
    }

    /// Wait for the writer to end: it does once its input has closed (the
    /// engine stopped) and what it held is written or `drain_timeout` passed.
    pub async fn finish(self) {
        drop(self.control);
        let _ = self.task.await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    product: Arc<str>,
    granularity: Granularity,
    start: i64,
}

/// The latest state of a key, not yet stored.
#[derive(Debug, Clone)]
struct Dirty {
    candle: Candle,
    revision: i64,
    /// The input sequence number at which the key became dirty: syncs wait
    /// until every key dirty since before them is stored.
    since: u64,
}

type Batch = Vec<(Key, Dirty)>;

struct Task {
    exchange: Arc<str>,
    config: WriterConfig,
    pool: Pool,
    input: mpsc::Receiver<Arc<EngineOutput>>,
    input_open: bool,
    syncs: mpsc::Receiver<oneshot::Sender<()>>,
    syncs_open: bool,
    stats: Arc<WriterStats>,
    // Hashed for every candle update; the keys are ours (foldhash, as the hub).
    pending: HashMap<Key, Dirty, foldhash::fast::RandomState>,
    /// When the oldest waiting key became dirty.
    oldest: Option<Instant>,
    /// When the flush in flight started, and the earliest time the next one
    /// may start (the database rests as long as the last flush took).
    flush_started: Instant,
    rest_until: Option<Instant>,
    in_flight: Option<JoinHandle<Landed>>,
    /// Rows in the batch in flight (the batch itself is inside the task).
    in_flight_rows: usize,
    backoff: Duration,
    retry_at: Option<Instant>,
    closing_since: Option<Instant>,
    /// Outputs received.
    seq: u64,
    revisions: Revisions,
    /// Syncs waiting for everything up to their sequence number.
    waiters: Vec<(u64, oneshot::Sender<()>)>,
    /// Published `fleet_updates` ids whose NOTIFY failed (sent with the next).
    unnotified: Vec<i64>,
    /// When old published rows were last deleted.
    last_trim: Option<Instant>,
}

/// A flush that came back: its rows, the result, the ids still unnotified.
struct Landed {
    batch: Batch,
    result: Result<Flushed, StorageError>,
    unnotified: Vec<i64>,
}

/// What a successful flush did.
struct Flushed {
    /// Rows it changed, when known (publishing counts them).
    changed: Option<u64>,
    /// A notification went out.
    notified: bool,
    /// The NOTIFY that failed (the rows are stored).
    notify_error: Option<StorageError>,
}

/// How often published rows older than `publish_keep` are deleted.
const TRIM_EVERY: Duration = Duration::from_secs(30);

impl Task {
    async fn run(mut self) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                landed = async { self.in_flight.as_mut().expect("guarded").await }, if self.in_flight.is_some() => {
                    self.in_flight = None;
                    match landed {
                        Ok(l) => {
                            self.unnotified = l.unnotified;
                            self.landed(l.batch, l.result)
                        }
                        Err(e) => tracing::error!(error = %e, "storage flush task failed"),
                    }
                }
                sync = self.syncs.recv(), if self.syncs_open => match sync {
                    Some(done) => {
                        // Take in what the engine has already sent, so the sync
                        // covers it.
                        while let Ok(out) = self.input.try_recv() {
                            self.absorb(&out);
                        }
                        self.waiters.push((self.seq, done));
                    }
                    None => self.syncs_open = false,
                },
                out = self.input.recv(), if self.input_open => match out {
                    Some(out) => self.absorb(&out),
                    None => {
                        self.input_open = false;
                        self.closing_since = Some(Instant::now());
                    }
                },
                _ = sleep_until(wake), if wake.is_some() => {}
            }
            self.maybe_flush();
            self.release_waiters();
            if !self.input_open {
                if self.pending.is_empty() && self.in_flight.is_none() {
                    break;
                }
                if self
                    .closing_since
                    .is_some_and(|t| t.elapsed() >= self.config.drain_timeout)
                {
                    let lost = self.pending.len()
                        + if self.in_flight.is_some() {
                            self.in_flight_rows
                        } else {
                            0
                        };
                    self.stats.lost_at_shutdown.store(lost as u64, Ordering::Relaxed);
                    tracing::error!(
                        rows = lost,
                        "storage writer gave up at shutdown: the database stayed unreachable"
                    );
                    break;
                }
            }
        }
        tracing::info!(
            rows = self.stats.rows_written.load(Ordering::Relaxed),
            "storage writer stopped"
        );
    }

    fn absorb(&mut self, out: &EngineOutput) {
        self.seq += 1;
        let n = out.updates.len() as u64;
        self.stats.updates.fetch_add(n, Ordering::Relaxed);
        match out.cause {
            Cause::Restore => {
                self.stats.restored.fetch_add(n, Ordering::Relaxed);
                return;
            }
            // Another instance's candles: it stores them itself.
            Cause::Fleet => return,
            Cause::Trades | Cause::Repair | Cause::Clock => {}
        }
        for u in &out.updates {
            let key = Key {
                product: u.product.clone(),
                granularity: u.candle.granularity,
                start: u.candle.start,
            };
            let revision = self.revisions.next();
            match self.pending.entry(key) {
                Entry::Occupied(mut e) => {
                    let d = e.get_mut();
                    d.candle = u.candle;
                    d.revision = revision;
                }
                Entry::Vacant(e) => {
                    e.insert(Dirty {
                        candle: u.candle,
                        revision,
                        since: self.seq,
                    });
                }
            }
        }
        if !self.pending.is_empty() && self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        self.note_pending();
    }

    /// A flush is due: enough keys, the oldest waited long enough, a sync
    /// waits, or we are shutting down.
    fn due(&self, now: Instant) -> Option<Instant> {
        let oldest = self.oldest?;
        if !self.input_open || !self.waiters.is_empty() {
            return Some(now);
        }
        let at = if self.pending.len() >= self.config.batch_rows {
            now
        } else {
            oldest + self.config.interval
        };
        Some(self.rest_until.map_or(at, |r| r.max(at)))
    }

    fn next_wake(&self) -> Option<Instant> {
        let flush = if self.in_flight.is_some() || self.pending.is_empty() {
            None
        } else {
            self.due(Instant::now())
                .map(|at| self.retry_at.map_or(at, |r| r.max(at)))
        };
        let give_up = self.closing_since.map(|t| t + self.config.drain_timeout);
        match (flush, give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn maybe_flush(&mut self) {
        if self.in_flight.is_some() || self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.retry_at.is_some_and(|r| now < r) || self.due(now).is_none_or(|at| now < at) {
            return;
        }
        // Marked in flight before the rows leave `pending`: a reader of the
        // counters always sees them somewhere.
        self.stats
            .in_flight_since_ms
            .store(crate::engine::now_ms().max(1), Ordering::Relaxed);
        let batch: Batch = if self.pending.len() <= self.config.max_statement_rows {
            self.pending.drain().collect()
        } else {
            let mut left = self.config.max_statement_rows;
            self.pending
                .extract_if(|_, _| {
                    let take = left > 0;
                    left = left.saturating_sub(1);
                    take
                })
                .collect()
        };
        if self.pending.is_empty() {
            self.oldest = None;
        }
        self.note_pending();
        let pool = self.pool.clone();
        let exchange = self.exchange.clone();
        let timeout = self.config.statement_timeout;
        self.in_flight_rows = batch.len();
        self.flush_started = now;
        let stats = self.stats.clone();
        let publish = self.config.publish.clone();
        let mut unnotified = std::mem::take(&mut self.unnotified);
        let trim = (publish.is_some() && self.last_trim.is_none_or(|t| t.elapsed() >= TRIM_EVERY))
            .then_some(self.config.publish_keep);
        if trim.is_some() {
            self.last_trim = Some(now);
        }
        self.in_flight = Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(
                timeout,
                write(&pool, &exchange, publish.as_deref(), &batch, &mut unnotified, trim),
            )
            .await
            .unwrap_or(Err(StorageError::Timeout(timeout)));
            if result.is_ok() {
                stats.flush_seconds.observe(started.elapsed().as_secs_f64());
                stats.flush_rows.observe(batch.len() as f64);
            }
            Landed {
                batch,
                result,
                unnotified,
            }
        }));
    }

    fn landed(&mut self, batch: Batch, result: Result<Flushed, StorageError>) {
        self.landed_result(batch, result);
        // Cleared once failed rows are back in `pending` (see `maybe_flush`).
        self.stats.in_flight_since_ms.store(0, Ordering::Relaxed);
    }

    fn landed_result(&mut self, batch: Batch, result: Result<Flushed, StorageError>) {
        match result {
            Ok(flushed) => {
                if flushed.changed.is_none_or(|n| n > 0) {
                    self.stats
                        .last_change_ms
                        .store(crate::engine::now_ms(), Ordering::Relaxed);
                }
                if flushed.changed.is_some() {
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                }
                if flushed.notified {
                    self.stats.notifications.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(e) = flushed.notify_error {
                    let before = self.stats.notify_failures.fetch_add(1, Ordering::Relaxed);
                    if (before + 1).is_power_of_two() {
                        tracing::warn!(error = %e, failures = before + 1, waiting = self.unnotified.len(),
                            "fleet NOTIFY failed; the candles are stored, the next flush notifies them");
                    }
                }
                let now = Instant::now();
                self.rest_until = Some(now + (now - self.flush_started));
                self.stats.rows_written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                if !self.stats.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("storage writer: the database is back");
                }
                self.backoff = Duration::ZERO;
                self.retry_at = None;
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.healthy.store(false, Ordering::Relaxed);
                if let Ok(mut last) = self.stats.last_error.lock() {
                    *last = Some(e.to_string());
                }
                // Put the rows back; a newer state that arrived meanwhile wins,
                // but the key stays dirty since the older one.
                for (key, dirty) in batch {
                    match self.pending.entry(key) {
                        Entry::Occupied(mut e) => e.get_mut().since = e.get().since.min(dirty.since),
                        Entry::Vacant(e) => {
                            e.insert(dirty);
                        }
                    }
                }
                self.oldest.get_or_insert_with(Instant::now);
                self.note_pending();
                self.backoff = (self.backoff * 2).clamp(self.config.backoff_min, self.config.backoff_max);
                let delay = jitter(self.backoff);
                self.retry_at = Some(Instant::now() + delay);
                tracing::warn!(error = %e, keys = self.pending.len(), retry_in_ms = delay.as_millis() as u64,
                    "storage flush failed; keeping the rows and retrying");
            }
        }
    }

    /// Answer the syncs whose updates are all stored.
    fn release_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let in_flight = self.in_flight.is_some();
        // Everything dirty since before `watermark` is stored. A batch in flight
        // is not stored yet; its rows are no longer in `pending`, so while one
        // flies only syncs older than every pending key *and* the flight can go:
        // we do not know the flight's oldest row here, so wait for it to land.
        if in_flight {
            return;
        }
        let watermark = self.pending.values().map(|d| d.since).min().unwrap_or(u64::MAX);
        let (keep, done): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(target, _)| *target >= watermark);
        self.waiters = keep;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    fn note_pending(&self) {
        let n = self.pending.len() as u64;
        self.stats.pending.store(n, Ordering::Relaxed);
        self.stats.pending_max.fetch_max(n, Ordering::Relaxed);
    }
}

/// Store `batch`; with `publish`, also put what changed into `fleet_updates`
/// and notify it with the ids still `unnotified` (cleared once sent); with
/// `trim`, delete published rows older than that.
async fn write(
    pool: &Pool,
    exchange: &str,
    publish: Option<&str>,
    batch: &Batch,
    unnotified: &mut Vec<i64>,
    trim: Option<Duration>,
) -> Result<Flushed, StorageError> {
    let client = pool.get().await?;
    let rows = batch.iter().map(|(k, d)| CandleRow {
        product: &k.product,
        candle: &d.candle,
        revision: d.revision,
    });
    let Some(instance) = publish else {
        upsert(&client, exchange, rows).await?;
        return Ok(Flushed {
            changed: None,
            notified: false,
            notify_error: None,
        });
    };
    let published = upsert_publishing(&client, exchange, instance, rows).await?;
    unnotified.extend(published.id);
    let mut flushed = Flushed {
        changed: Some(published.changed),
        notified: false,
        notify_error: None,
    };
    if !unnotified.is_empty() {
        let notice = if unnotified.len() > outbox::MAX_IDS {
            Notice::Resync {
                instance: instance.to_string(),
            }
        } else {
            Notice::Rows {
                instance: instance.to_string(),
                ids: unnotified.clone(),
            }
        };
        match outbox::notify(&client, &notice).await {
            Ok(()) => {
                unnotified.clear();
                flushed.notified = true;
            }
            Err(e) => flushed.notify_error = Some(e),
        }
    }
    if let Some(keep) = trim
        && let Err(e) = outbox::trim(&client, keep.as_secs() as i64).await
    {
        tracing::warn!(error = %e, "cannot delete old fleet updates");
    }
    Ok(flushed)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A delay between half of `d` and `d` ("equal jitter"), so instances that
/// lost the same database do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0) as u64;
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let half = d / 2;
    half + Duration::from_nanos(x % (half.as_nanos() as u64 + 1))
}

/// Revisions: unix microseconds, strictly increasing within the process, so
/// a later update of a key always has a higher revision, and a restarted
/// instance's writes are newer than its predecessor's.
#[derive(Debug, Default)]
struct Revisions {
    last: i64,
}

impl Revisions {
    fn next(&mut self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        self.last = now.max(self.last + 1);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_strictly_increase() {
        let mut r = Revisions::default();
        let v: Vec<i64> = (0..10_000).map(|_| r.next()).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        for ms in [1u64, 100, 5_000] {
            let d = Duration::from_millis(ms);
            let j = jitter(d);
            assert!(j >= d / 2 && j <= d, "{j:?} for {d:?}");
        }
    }
}
