//! The fake's market: consecutive trade ids per product, a random walk of
//! prices, and the log of every trade made. Candles computed directly from
//! the log are the truth tests compare the service's candles with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use spot_wire::Fixed;

/// One trade as the fake made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTrade {
    pub product: Arc<str>,
    pub trade_id: u64,
    pub price: Fixed,
    pub size: Fixed,
    /// `BUY` or `SELL` (the maker side).
    pub side: &'static str,
    /// Unix microseconds.
    pub time_us: i64,
    /// Logged, never sent over the WebSocket.
    pub withheld: bool,
    /// Sent priced at the unix µs its frame is serialized at (see
    /// [`Market::stamp_prices`]), whatever `price` says.
    pub stamped: bool,
}

/// One candle computed from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefCandle {
    /// Bucket start, unix seconds.
    pub start: i64,
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
    pub trades: u32,
}

impl RefCandle {
    /// Whether a stored candle is this one: its `start`, then its open,
    /// high, low, close and volume as decimal text.
    pub fn is_stored_as(&self, start: i64, ohlcv: [&str; 5]) -> bool {
        self.start == start
            && [self.open, self.high, self.low, self.close, self.volume]
                .iter()
                .zip(ohlcv)
                .all(|(v, text)| v.to_string() == text)
    }
}

struct Book {
    name: Arc<str>,
    next_id: u64,
    /// Price in ticks of `10^-decimals`.
    ticks: i64,
    /// The price's decimals (Coinbase's quote increment).
    decimals: u32,
    withhold: usize,
}

/// Where the demo's well-known products trade (about late 2026), and their
/// quote increments' decimals: a synthetic market that looks like one.
/// Other products start at a seeded level between 10 and 100,000.
const LEVELS: &[(&str, &str, u32)] = &[
    ("BTC", "91000", 2),
    ("ETH", "3100", 2),
    ("SOL", "140", 2),
    ("ADA", "0.42", 4),
    ("SHIB", "0.0000092", 8),
    ("XRP", "2.1", 4),
    ("DOGE", "0.15", 5),
    ("AVAX", "14", 2),
    ("LINK", "13.5", 3),
    ("DOT", "2.3", 3),
    ("LTC", "85", 2),
    ("BCH", "520", 2),
    ("UNI", "5.8", 3),
    ("ATOM", "2.6", 3),
    ("XLM", "0.25", 6),
    ("ETC", "13", 2),
    ("FIL", "1.6", 3),
    ("APT", "1.9", 2),
    ("ARB", "0.21", 4),
    ("OP", "0.33", 4),
    ("NEAR", "1.9", 3),
];

/// The starting price of `product` in ticks and its decimals, when its base
/// is one of [`LEVELS`].
fn level(product: &str) -> Option<(i64, u32)> {
    let base = product.split('-').next()?;
    let (_, price, decimals) = LEVELS.iter().find(|(b, _, _)| *b == base)?;
    let (whole, frac) = price.split_once('.').unwrap_or((price, ""));
    let frac = format!("{frac:0<width$}", width = *decimals as usize);
    Some((format!("{whole}{frac}").parse().ok()?, *decimals))
}

/// The products, their books and the log.
pub struct Market {
    books: Vec<Book>,
    index: HashMap<String, usize>,
    log: Vec<FakeTrade>,
    /// Per book, the positions of its trades in `log` (a REST request or a
    /// snapshot looks at one product; scanning every trade of 900 made the
    /// fake slow enough to bunch up the request times it records).
    positions: Vec<Vec<usize>>,
    rng: u64,
    /// Keep about this many trades in the log (a load test runs millions).
    log_limit: Option<usize>,
    /// Trades made so far (the log may keep fewer).
    made: u64,
    /// Price each random trade at its frame's time in unix µs (see
    /// [`Market::stamp_prices`]).
    stamp_prices: bool,
}

impl Market {
    /// A market of `products`, prices and sizes drawn from `seed`.
    pub fn new(products: &[String], seed: u64) -> Self {
        let mut m = Market {
            books: Vec::new(),
            index: HashMap::new(),
            log: Vec::new(),
            positions: Vec::new(),
            rng: seed.max(1),
            log_limit: None,
            made: 0,
            stamp_prices: false,
        };
        for p in products {
            m.book(p);
        }
        m
    }

    fn next(&mut self, modulo: u64) -> u64 {
        let s = &mut self.rng;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s % modulo.max(1)
    }

    fn book(&mut self, product: &str) -> usize {
        if let Some(&i) = self.index.get(product) {
            return i;
        }
        let i = self.books.len();
        let (ticks, decimals) = level(product).unwrap_or((1_000 + self.next(10_000_000) as i64, 2));
        // Real ids are large and only grow: start from the wall clock in ms,
        // so a restarted fake (the demo's, with the same seed) never reuses
        // the ids of an earlier run that a server has stored (it would drop
        // the new trades as duplicates). Below 1,000 trades/s per product the
        // ids of one run stay below the next run's start.
        let next_id = crate::now_ms().max(0) as u64 + self.next(1_000);
        self.positions.push(Vec::new());
        self.books.push(Book {
            name: Arc::from(product),
            next_id,
            ticks,
            decimals,
            withhold: 0,
        });
        self.index.insert(product.to_string(), i);
        i
    }

    /// Keep only about the newest `limit` trades in the log (between `limit`
    /// and twice that): candles from the log are then partial, snapshots not.
    pub fn limit_log(&mut self, limit: usize) {
        self.log_limit = Some(limit.max(1));
    }

    /// Random trades are sent priced at the unix µs their WebSocket frame is
    /// serialized at, so a client can read from a candle's close how long ago
    /// the frame holding its newest trade was made (the load bench's latency
    /// from exchange frame to browser). The log keeps the generation time.
    pub fn stamp_prices(&mut self, on: bool) {
        self.stamp_prices = on;
    }

    /// The next `n` trades of `product` are withheld.
    pub fn withhold(&mut self, product: &str, n: usize) {
        let i = self.book(product);
        self.books[i].withhold += n;
    }

    /// Make one trade of `product` at `time_ms`.
    pub fn trade(&mut self, product: &str, time_ms: i64) -> FakeTrade {
        let i = self.book(product);
        self.trade_of(i, time_ms * 1000)
    }

    /// Make one trade of `product` at `time_ms` at exactly `price`.
    pub fn trade_priced(&mut self, product: &str, time_ms: i64, price: Fixed) -> FakeTrade {
        let i = self.book(product);
        let mut t = self.trade_of(i, time_ms * 1000);
        t.price = price;
        if let Some(last) = self.log.last_mut() {
            last.price = price;
        }
        t
    }

    fn trade_of(&mut self, i: usize, time_us: i64) -> FakeTrade {
        // A random walk of up to ±0.05% a trade (at least a tick).
        let reach = (self.books[i].ticks / 2_000).max(1) as u64;
        let step = self.next(2 * reach + 1) as i64 - reach as i64;
        let size_units = 1 + self.next(1_000_000_000);
        let side = if self.next(2) == 0 { "BUY" } else { "SELL" };
        let b = &mut self.books[i];
        b.ticks = (b.ticks + step).max(1);
        let id = b.next_id;
        b.next_id += 1;
        let withheld = b.withhold > 0;
        if withheld {
            b.withhold -= 1;
        }
        let t = FakeTrade {
            product: b.name.clone(),
            trade_id: id,
            price: Fixed::from_units(b.ticks as i128 * 10i128.pow(spot_wire::SCALE_DIGITS - b.decimals)),
            // 8 decimals, like Coinbase sizes.
            size: Fixed::from_units(size_units as i128 * 10_000_000_000),
            side,
            time_us,
            withheld,
            stamped: false,
        };
        self.log.push(t.clone());
        self.positions[i].push(self.log.len() - 1);
        self.made += 1;
        if let Some(limit) = self.log_limit
            && self.log.len() > 2 * limit
        {
            let n = self.log.len() - limit;
            self.log.drain(..n);
            for p in self.positions.iter_mut() {
                p.retain(|&k| k >= n);
                p.iter_mut().for_each(|k| *k -= n);
            }
        }
        t
    }

    /// A past for `product`: trades from `from_ms` to `to_ms` (exclusive),
    /// about one every `every_ms` (at a random point of each interval), with
    /// consecutive ids, as if the exchange had traded before anyone listened.
    /// Returns how many were made.
    pub fn history(&mut self, product: &str, from_ms: i64, to_ms: i64, every_ms: i64) -> usize {
        let i = self.book(product);
        let every = every_ms.max(1);
        let mut n = 0;
        let mut slot = from_ms;
        while slot < to_ms {
            let t = slot + self.next(every as u64) as i64;
            if t < to_ms {
                self.trade_of(i, t * 1000);
                n += 1;
            }
            slot += every;
        }
        n
    }

    /// Change the size of a logged trade after it was sent: the exchange's
    /// record (REST) then differs from what the WebSocket carried, with no
    /// trade-id gap anywhere (a late correction). False when not logged.
    pub fn amend(&mut self, product: &str, trade_id: u64, size: Fixed) -> bool {
        let Some(&i) = self.index.get(product) else {
            return false;
        };
        match self.positions[i].iter().find(|&&k| self.log[k].trade_id == trade_id) {
            Some(&k) => {
                self.log[k].size = size;
                true
            }
            None => false,
        }
    }

    /// The logged trades of `product`, in order made.
    fn of(&self, product: &str) -> impl DoubleEndedIterator<Item = &FakeTrade> {
        let positions = self
            .index
            .get(product)
            .map(|&i| self.positions[i].as_slice())
            .unwrap_or(&[]);
        positions.iter().map(|&k| &self.log[k])
    }

    /// `n` trades at `time_ms` over randomly chosen products.
    pub fn random_trades(&mut self, n: usize, time_ms: i64) -> Vec<FakeTrade> {
        self.random_trades_us(n, time_ms * 1000)
    }

    /// `n` trades from `time_us` on (1 µs apart) over randomly chosen products.
    pub fn random_trades_us(&mut self, n: usize, time_us: i64) -> Vec<FakeTrade> {
        if self.books.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|k| {
                let i = self.next(self.books.len() as u64) as usize;
                let mut t = self.trade_of(i, time_us + k as i64);
                if self.stamp_prices {
                    t.price = Fixed::from_int(time_us);
                    t.stamped = true;
                    if let Some(last) = self.log.last_mut() {
                        last.price = t.price;
                    }
                }
                t
            })
            .collect()
    }

    /// How many trades were made (withheld ones included).
    pub fn made(&self) -> u64 {
        self.made
    }

    /// Every trade made, in order.
    pub fn log(&self) -> &[FakeTrade] {
        &self.log
    }

    /// The last `n` trades of `product` that were not withheld, newest first.
    pub fn recent(&self, product: &str, n: usize) -> Vec<FakeTrade> {
        self.of(product)
            .rev()
            .filter(|t| !t.withheld)
            .take(n)
            .cloned()
            .collect()
    }

    /// The products, in the order they were created.
    pub fn products(&self) -> Vec<String> {
        self.books.iter().map(|b| b.name.to_string()).collect()
    }

    /// Candles of `product` at `granularity` seconds from the whole log
    /// (open = lowest trade id, close = highest), ascending, empty buckets omitted.
    pub fn candles(&self, product: &str, granularity: i64) -> Vec<RefCandle> {
        let mut buckets: BTreeMap<i64, (u64, u64, RefCandle)> = BTreeMap::new();
        for t in self.of(product) {
            let start = t.time_us.div_euclid(1_000_000).div_euclid(granularity) * granularity;
            let e = buckets.entry(start).or_insert_with(|| {
                (
                    t.trade_id,
                    t.trade_id,
                    RefCandle {
                        start,
                        open: t.price,
                        high: t.price,
                        low: t.price,
                        close: t.price,
                        volume: Fixed::ZERO,
                        trades: 0,
                    },
                )
            });
            let (first, last, c) = e;
            if t.trade_id <= *first {
                *first = t.trade_id;
                c.open = t.price;
            }
            if t.trade_id >= *last {
                *last = t.trade_id;
                c.close = t.price;
            }
            c.high = c.high.max(t.price);
            c.low = c.low.min(t.price);
            c.volume = c.volume.saturating_add(t.size);
            c.trades += 1;
        }
        buckets.into_values().map(|(_, _, c)| c).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_consecutive_and_candles_follow_ids() {
        let mut m = Market::new(&["A-USD".into()], 7);
        let a = m.trade("A-USD", 60_000);
        let b = m.trade("A-USD", 60_500);
        let c = m.trade("A-USD", 120_000);
        assert_eq!(b.trade_id, a.trade_id + 1);
        assert_eq!(c.trade_id, b.trade_id + 1);
        let minutes = m.candles("A-USD", 60);
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].start, 60);
        assert_eq!(minutes[0].open, a.price);
        assert_eq!(minutes[0].close, b.price);
        assert_eq!(minutes[0].volume, a.size.saturating_add(b.size));
        assert_eq!(minutes[1].trades, 1);
        let hour = m.candles("A-USD", 3600);
        assert_eq!(hour.len(), 1);
        assert_eq!(hour[0].high, a.price.max(b.price).max(c.price));
    }

    #[test]
    fn history_is_spread_over_its_span_with_consecutive_ids_and_can_be_amended() {
        let mut m = Market::new(&["A-USD".into()], 3);
        let n = m.history("A-USD", 0, 3_600_000, 60_000);
        assert_eq!(n, 60);
        let log = m.log();
        assert!(
            log.windows(2)
                .all(|w| w[1].trade_id == w[0].trade_id + 1 && w[1].time_us > w[0].time_us)
        );
        assert!(log.iter().all(|t| (0..3_600_000_000).contains(&t.time_us)));
        assert_eq!(m.candles("A-USD", 60).len(), 60, "one trade in every minute");
        let id = log[10].trade_id;
        let before = m.candles("A-USD", 3600)[0].volume;
        assert!(m.amend("A-USD", id, Fixed::from_int(1000)));
        assert_ne!(m.candles("A-USD", 3600)[0].volume, before);
        assert!(!m.amend("A-USD", 1, Fixed::from_int(1)));
    }

    #[test]
    fn withheld_trades_are_logged_but_not_recent() {
        let mut m = Market::new(&["A-USD".into()], 7);
        m.trade("A-USD", 0);
        m.withhold("A-USD", 2);
        let w = m.trade("A-USD", 1);
        m.trade("A-USD", 2);
        let last = m.trade("A-USD", 3);
        assert!(w.withheld && !last.withheld);
        assert_eq!(m.log().len(), 4);
        let recent = m.recent("A-USD", 10);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].trade_id, last.trade_id);
    }
}
