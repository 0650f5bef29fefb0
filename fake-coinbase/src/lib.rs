//! A fake Coinbase Advanced Trade market-data service for tests and the
//! offline demo: the real message formats over real sockets.
//!
//! - [`market`]: the trade log (every trade ever made, including withheld
//!   ones) and the candles computed directly from it, the truth tests compare to;
//! - `ws`: the WebSocket endpoint (`market_trades`, `heartbeats`, the
//!   `subscriptions` ack, one `sequence_num` per connection, the subscribe
//!   deadline, `authentication failure`);
//! - `rest`: `GET …/market/products` and `GET …/market/products/{id}/candles`;
//! - [`Fault`]: what can go wrong on purpose.
//!
//! Start one with [`Fake::start`]; make trades with [`Fake::emit`] (test-chosen
//! times) or [`Fake::run_market`] (a synthetic market on the wall clock).

pub mod market;
mod rest;
mod ws;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use tokio::sync::broadcast;

pub use market::{FakeTrade, Market, RefCandle};

/// An online spot listing whose id is markup and a path: a client must refuse it.
pub const HOSTILE_PRODUCT: &str = "<img src=x onerror=\"window.pwned=1\">/../-USD";

/// How the fake behaves.
#[derive(Clone)]
pub struct FakeConfig {
    /// The online spot products that trade.
    pub products: Vec<String>,
    /// List products the client must skip too (USDC aliases, disabled,
    /// delisted, trading-disabled, futures).
    pub listing_extras: bool,
    /// List [`HOSTILE_PRODUCT`] as tradable too (tests; the demo does not:
    /// the server warns about it on every start).
    pub hostile_listing: bool,
    /// Heartbeats on subscribed connections this often.
    pub heartbeat_every: Duration,
    /// A connection that sends no subscribe within this is closed.
    pub subscribe_deadline: Duration,
    /// Trades per product in the snapshot sent on every subscribe.
    pub snapshot_trades: usize,
    /// When not empty, every subscribe must carry a JWT signed by one of
    /// these keys (by `kid`); otherwise `authentication failure`.
    pub jwt_keys: Vec<JwtKey>,
    /// Seed of the synthetic prices and sizes.
    pub seed: u64,
}

/// A key the fake accepts JWTs from.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: String,
    pub algorithm: jsonwebtoken::Algorithm,
    pub key: DecodingKey,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            products: vec!["BTC-USD".into(), "ETH-USD".into()],
            listing_extras: true,
            hostile_listing: true,
            heartbeat_every: Duration::from_secs(1),
            subscribe_deadline: Duration::from_secs(5),
            snapshot_trades: 50,
            jwt_keys: Vec::new(),
            seed: 1,
        }
    }
}

/// Something the fake does to every open connection on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Send a close frame with this code (1000, 1001) and end.
    Close(u16),
    /// Send nothing (no trades, no heartbeats) for this long; what would have
    /// been sent meanwhile is lost.
    Stall(Duration),
    /// Send a frame that is not JSON, and one that is JSON but not a message.
    Garbage,
    /// Skip this many sequence numbers (as if frames were dropped).
    SkipSequence(u64),
}

/// What reaches the connection tasks.
#[derive(Debug, Clone)]
enum Event {
    Trades(Arc<Vec<FakeTrade>>),
    Fault(Fault),
}

/// What the fake observed, for tests.
#[derive(Default)]
pub struct FakeStats {
    /// WebSocket connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Subscribe messages that were accepted.
    pub subscribes: AtomicU64,
    /// `authentication failure` errors sent.
    pub auth_failures: AtomicU64,
    /// Subscribes that carried a JWT the fake verified.
    pub jwt_verified: AtomicU64,
    /// Candle requests answered (any status).
    pub candle_requests: AtomicU64,
    /// Product list requests answered.
    pub product_requests: AtomicU64,
    /// Connections closed for not subscribing in time.
    pub deadline_closes: AtomicU64,
    times: Mutex<Times>,
}

#[derive(Default)]
struct Times {
    connects: Vec<Instant>,
    messages: Vec<Instant>,
    candle_requests: Vec<Instant>,
    nonces: HashSet<String>,
}

impl FakeStats {
    /// When each WebSocket connection was accepted.
    pub fn connect_times(&self) -> Vec<Instant> {
        self.lock().connects.clone()
    }
    /// When each client message (subscribe, unsubscribe, anything) arrived.
    pub fn message_times(&self) -> Vec<Instant> {
        self.lock().messages.clone()
    }
    /// When each candle request arrived.
    pub fn candle_request_times(&self) -> Vec<Instant> {
        self.lock().candle_requests.clone()
    }
    /// Distinct JWT nonces seen.
    pub fn distinct_nonces(&self) -> usize {
        self.lock().nonces.len()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
    /// Shorthand for a counter's value.
    pub fn count(&self, pick: impl Fn(&FakeStats) -> &AtomicU64) -> u64 {
        Self::get(pick(self))
    }
}

/// The most events of `times` inside any window of `window`.
pub fn busiest_window(times: &[Instant], window: Duration) -> usize {
    let mut t = times.to_vec();
    t.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..t.len() {
        while t[hi].duration_since(t[lo]) >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

pub(crate) struct Shared {
    config: FakeConfig,
    market: Mutex<Market>,
    events: broadcast::Sender<Event>,
    stats: FakeStats,
    /// Statuses the next candle requests answer with (429, 401, 500...).
    rest_faults: Mutex<std::collections::VecDeque<u16>>,
    /// Volume added to one REST candle (product, granularity s, start s): the
    /// exchange's rollup disagrees with its own minutes.
    skews: Mutex<std::collections::HashMap<(String, i64, i64), spot_wire::Fixed>>,
    started: Instant,
}

impl Shared {
    fn market(&self) -> std::sync::MutexGuard<'_, Market> {
        self.market.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake.
pub struct Fake {
    shared: Arc<Shared>,
    ws_addr: SocketAddr,
    rest_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fake {
    /// Listen on 127.0.0.1 (free ports) and serve.
    pub async fn start(config: FakeConfig) -> std::io::Result<Fake> {
        Self::start_on(
            config,
            "127.0.0.1:0".parse().expect("address"),
            "127.0.0.1:0".parse().expect("address"),
        )
        .await
    }

    /// Listen on the given addresses and serve.
    pub async fn start_on(config: FakeConfig, ws: SocketAddr, rest: SocketAddr) -> std::io::Result<Fake> {
        let (events, _) = broadcast::channel(1 << 16);
        let shared = Arc::new(Shared {
            market: Mutex::new(Market::new(&config.products, config.seed)),
            config,
            events,
            stats: FakeStats::default(),
            rest_faults: Mutex::new(Default::default()),
            skews: Mutex::new(Default::default()),
            started: Instant::now(),
        });
        let ws_listener = tokio::net::TcpListener::bind(ws).await?;
        let rest_listener = tokio::net::TcpListener::bind(rest).await?;
        let ws_addr = ws_listener.local_addr()?;
        let rest_addr = rest_listener.local_addr()?;
        let tasks = vec![
            tokio::spawn(ws::serve(ws_listener, shared.clone())),
            tokio::spawn(rest::serve(rest_listener, shared.clone())),
        ];
        Ok(Fake {
            shared,
            ws_addr,
            rest_addr,
            tasks,
        })
    }

    /// `ws://127.0.0.1:PORT` (COINBASE_WS_URL).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// `http://127.0.0.1:PORT` (COINBASE_REST_URL).
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// What the fake observed.
    pub fn stats(&self) -> &FakeStats {
        &self.shared.stats
    }

    /// Make `n` trades of `product` at `time_ms` (+1 ms each), log them and
    /// send them (newest first, one frame) to the subscribed connections.
    /// Withheld trades are logged but not sent.
    pub fn emit(&self, product: &str, n: usize, time_ms: i64) -> Vec<FakeTrade> {
        let trades = {
            let mut m = self.shared.market();
            (0..n).map(|i| m.trade(product, time_ms + i as i64)).collect::<Vec<_>>()
        };
        self.publish(&trades);
        trades
    }

    /// One trade of `product` at `time_ms` at exactly `price` (tests use
    /// prices a component reacts to), logged and sent.
    pub fn emit_priced(&self, product: &str, time_ms: i64, price: spot_wire::Fixed) -> FakeTrade {
        let t = self.shared.market().trade_priced(product, time_ms, price);
        self.publish(std::slice::from_ref(&t));
        t
    }

    /// Send trades already in the log (for tests that build frames by hand).
    fn publish(&self, trades: &[FakeTrade]) {
        let sent: Vec<FakeTrade> = trades.iter().filter(|t| !t.withheld).cloned().collect();
        if !sent.is_empty() {
            let _ = self.shared.events.send(Event::Trades(Arc::new(sent)));
        }
    }

    /// Trades of `product` before anyone listened: about one every `every_ms`
    /// from `from_ms` to `to_ms` (the snapshot holds the newest of them, REST
    /// all of them). Returns how many.
    pub fn history(&self, product: &str, from_ms: i64, to_ms: i64, every_ms: i64) -> usize {
        self.shared.market().history(product, from_ms, to_ms, every_ms)
    }

    /// Change a sent trade's size in the exchange's record (REST), with no
    /// trade-id gap: a divergence only a comparison with REST can find.
    pub fn amend(&self, product: &str, trade_id: u64, size: spot_wire::Fixed) -> bool {
        self.shared.market().amend(product, trade_id, size)
    }

    /// The REST candle of `product` at `granularity_seconds` starting at
    /// `start` (unix s) reports `extra` more volume than its trades: a rollup
    /// of the exchange's that its own minutes do not add up to.
    pub fn skew_candle(&self, product: &str, granularity_seconds: i64, start: i64, extra: spot_wire::Fixed) {
        self.shared
            .skews
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((product.to_string(), granularity_seconds, start), extra);
    }

    /// The next `n` trades of `product` are logged (REST sees them) but never
    /// sent over the WebSocket, not even in snapshots.
    pub fn withhold(&self, product: &str, n: usize) {
        self.shared.market().withhold(product, n);
    }

    /// Inject a fault into every open connection.
    pub fn fault(&self, fault: Fault) {
        let _ = self.shared.events.send(Event::Fault(fault));
    }

    /// The next candle requests answer with these statuses, in order.
    pub fn fail_candle_requests(&self, statuses: &[u16]) {
        let mut q = self.shared.rest_faults.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(statuses.iter().copied());
    }

    /// Forget the statuses queued by [`Fake::fail_candle_requests`].
    pub fn clear_candle_failures(&self) {
        self.shared
            .rest_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Change the market's settings ([`Market::limit_log`],
    /// [`Market::stamp_prices`]).
    pub fn configure_market(&self, f: impl FnOnce(&mut Market)) {
        f(&mut self.shared.market());
    }

    /// How many trades were made so far (withheld ones included).
    pub fn made(&self) -> u64 {
        self.shared.market().made()
    }

    /// Every trade made so far (including withheld ones), in order made.
    pub fn log(&self) -> Vec<FakeTrade> {
        self.shared.market().log().to_vec()
    }

    /// The candles of `product` at `granularity_seconds`, computed directly from
    /// the full trade log; ascending by start, buckets without trades omitted.
    pub fn candles(&self, product: &str, granularity_seconds: i64) -> Vec<RefCandle> {
        self.shared.market().candles(product, granularity_seconds)
    }

    /// Make trades on the wall clock: about `per_second` trades a second over
    /// all products, in frames every 250 ms (as Coinbase batches them).
    pub fn run_market(&self, per_second: u64) -> tokio::task::JoinHandle<()> {
        self.run_market_every(per_second, Duration::from_millis(250))
    }

    /// [`Fake::run_market`] with a frame every `every`.
    pub fn run_market_every(&self, per_second: u64, every: Duration) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Owed trades follow the time passed, so a late tick (a busy
            // machine) makes a bigger frame instead of lowering the rate.
            let started = Instant::now();
            let mut made = 0u64;
            loop {
                tick.tick().await;
                let owed = (started.elapsed().as_micros() as u64).saturating_mul(per_second) / 1_000_000;
                let n = owed.saturating_sub(made);
                made = owed;
                let now = now_us();
                let trades = shared.market().random_trades_us(n as usize, now);
                let sent: Vec<FakeTrade> = trades.into_iter().filter(|t| !t.withheld).collect();
                if !sent.is_empty() {
                    let _ = shared.events.send(Event::Trades(Arc::new(sent)));
                }
            }
        })
    }

    /// Stop serving (open connections end when their task notices).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shared.events.send(Event::Fault(Fault::Drop));
    }
}

/// Unix time in microseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `2026-09-30T02:39:59.387841Z` for unix microseconds.
pub fn rfc3339_micros(micros: i64) -> String {
    let mut out = String::with_capacity(27);
    push_rfc3339_micros(&mut out, micros);
    out
}

/// [`rfc3339_micros`], appended to `out`.
pub fn push_rfc3339_micros(out: &mut String, micros: i64) {
    use std::fmt::Write;
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

/// Howard Hinnant's days → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_micros(1_759_199_999_387_841), "2025-09-30T02:39:59.387841Z");
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn busiest_window_counts_events_closer_than_the_window() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let times = [at(0), at(100), at(900), at(1000), at(1999), at(2500)];
        assert_eq!(busiest_window(&times, Duration::from_secs(1)), 3);
    }
}
