//! `Aggregator`: every product's book, the clock, and the component's operations.

use std::collections::BTreeMap;

use spot_wire::WireError;
use spot_wire::state::{MinuteState, ProductHead, ProductState, State, StateDecoder, StateEncoder};
use spot_wire::{Candle, Gap, Granularity, Outcome, OutcomeSink, Trade};

use crate::book::Book;
use crate::bucket::{Applied, Minute, Ohlcv};
use crate::trade_ids::TradeIds;

/// Replaced minutes of one product above which its rollups are rebuilt in one pass.
const REBUILD_ABOVE: usize = 64;

/// Rules set by the host (`configure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A bucket is complete once `now >= end + grace_ms`.
    pub grace_ms: i64,
    /// Minutes are dropped once their UTC day has been complete this long.
    pub retention_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            grace_ms: 5_000,
            retention_ms: 3_600_000,
        }
    }
}

/// Where authoritative 1-minute candles come from (see the WIT `candle-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandleSource {
    Repair,
    Restore,
}

/// The time as last told, and what it means for a bucket.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now_ms: i64,
    settings: Settings,
}

impl Clock {
    /// Latest bucket start of `g` that is complete at `now_ms`.
    fn complete_through(g: Granularity, now_ms: i64, grace_ms: i64) -> i64 {
        now_ms.saturating_sub(grace_ms).div_euclid(1000) - g.seconds()
    }

    fn is_complete(&self, g: Granularity, start: i64) -> bool {
        self.now_ms != i64::MIN && start <= Self::complete_through(g, self.now_ms, self.settings.grace_ms)
    }

    /// First UTC day start still within retention (`i64::MIN` before any time).
    fn retained_from(&self) -> i64 {
        if self.now_ms == i64::MIN {
            return i64::MIN;
        }
        let lag = self.settings.grace_ms.saturating_add(self.settings.retention_ms);
        let x = self.now_ms.saturating_sub(lag).div_euclid(1000) - 86_400;
        Granularity::OneDay.bucket_start(x) + 86_400
    }

    fn candle(&self, product: u32, g: Granularity, start: i64, o: &Ohlcv) -> Candle {
        Candle {
            product,
            granularity: g,
            start,
            open: o.open,
            high: o.high,
            low: o.low,
            close: o.close,
            volume: o.volume,
            last_trade_id: o.last_trade_id,
            trades: o.trades,
            complete: self.is_complete(g, start),
            authoritative: false,
        }
    }
}

/// All products' candles, and the operations of the WIT `aggregator` interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregator {
    settings: Settings,
    now_ms: i64,
    books: BTreeMap<u32, Book>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

impl Aggregator {
    /// An empty aggregator that has not been told the time.
    pub fn new(settings: Settings) -> Self {
        Aggregator {
            settings,
            now_ms: i64::MIN,
            books: BTreeMap::new(),
        }
    }

    fn clock(&self) -> Clock {
        Clock {
            now_ms: self.now_ms,
            settings: self.settings,
        }
    }

    /// The rules in force.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Change the rules.
    pub fn configure(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Name products (additive; renaming an id is allowed).
    pub fn define_products(&mut self, products: impl IntoIterator<Item = (u32, String)>) {
        for (id, name) in products {
            self.books.entry(id).or_default().name = name;
        }
    }

    /// The name of a product id, if defined.
    pub fn name_of(&self, product: u32) -> Option<&str> {
        self.books
            .get(&product)
            .map(|b| b.name.as_str())
            .filter(|n| !n.is_empty())
    }

    /// Count a batch of trades. Any order and any duplication of the same trades
    /// ends in the same candles; each changed bucket is reported once.
    pub fn ingest(&mut self, trades: Vec<Trade>) -> Outcome {
        let mut out = Outcome::default();
        self.ingest_into(trades, &mut out);
        out
    }

    /// [`Aggregator::ingest`], with the results going to `out`.
    pub fn ingest_into(&mut self, mut trades: Vec<Trade>, out: &mut impl OutcomeSink) {
        let clock = self.clock();
        let retained_from = clock.retained_from();
        trades.sort_unstable_by_key(|t| (t.product, t.trade_id));
        let mut dirty = Vec::new();
        for run in trades.chunk_by(|a, b| a.product == b.product) {
            let product = run[0].product;
            let book = self.books.entry(product).or_default();
            dirty.clear();
            for t in run {
                if book.ids.contains(t.trade_id) {
                    out.count_duplicate();
                    continue;
                }
                let minute = Granularity::OneMinute.bucket_start(t.time_ms.div_euclid(1000));
                if t.price.units() <= 0 || t.size.is_negative() || minute < retained_from {
                    // Nothing it could revise is kept any more, or it is not a trade.
                    book.ids.insert(t.trade_id, t.time_ms);
                    out.count_ignored();
                    continue;
                }
                if let Some(j) = book.ids.insert(t.trade_id, t.time_ms) {
                    let below = Granularity::OneMinute.bucket_start(j.below_time_ms.div_euclid(1000));
                    out.push_gap(Gap {
                        product,
                        first_missing: j.first_missing,
                        last_missing: j.last_missing,
                        from_minute: below.min(minute),
                        to_minute: below.max(minute),
                    });
                }
                match book.add_trade(minute, t.price, t.size, t.trade_id) {
                    Applied::Counted => dirty.push(minute),
                    Applied::Ignored => out.count_ignored(),
                }
            }
            dirty.sort_unstable();
            dirty.dedup();
            book.touched(&dirty, |g, s, o| out.push_update(&clock.candle(product, g, s, o)));
        }
    }

    /// Replace minutes with authoritative 1-minute candles and recompute every
    /// rollup holding them. `Restore` reports nothing (the rows are stored).
    pub fn apply_candles(&mut self, candles: &[Candle], source: CandleSource) -> Result<Outcome, String> {
        let mut out = Outcome::default();
        self.apply_candles_into(candles, source, &mut out)?;
        Ok(out)
    }

    /// [`Aggregator::apply_candles`], with the results going to `out`.
    pub fn apply_candles_into(
        &mut self,
        candles: &[Candle],
        source: CandleSource,
        out: &mut impl OutcomeSink,
    ) -> Result<(), String> {
        if let Some(c) = candles.iter().find(|c| c.granularity != Granularity::OneMinute) {
            return Err(format!(
                "authoritative candles must be ONE_MINUTE, got {}",
                c.granularity.name()
            ));
        }
        let clock = self.clock();
        let retained_from = clock.retained_from();
        let mut sorted: Vec<&Candle> = candles.iter().collect();
        sorted.sort_by_key(|c| (c.product, c.start));
        let mut dirty = Vec::new();
        for run in sorted.chunk_by(|a, b| a.product == b.product) {
            let product = run[0].product;
            let book = self.books.entry(product).or_default();
            dirty.clear();
            // A restore brings whole days of a product: room for them at once
            // (the minutes grow by an eighth otherwise, copying each time).
            if run.len() > REBUILD_ABOVE {
                book.minutes.reserve_exact(run.len());
            }
            for c in run {
                if !c.is_well_formed() || c.start < retained_from {
                    out.count_ignored();
                    continue;
                }
                let ohlcv = Ohlcv {
                    open: c.open,
                    high: c.high,
                    low: c.low,
                    close: c.close,
                    volume: c.volume,
                    trades: c.trades,
                    last_trade_id: c.last_trade_id,
                    first_minute: c.start,
                    last_minute: c.start,
                };
                book.minutes.put(c.start, Minute::authoritative(ohlcv, c.last_trade_id));
                if let (CandleSource::Restore, Some(w)) = (source, c.last_trade_id) {
                    book.ids.count_through(w, c.start.saturating_mul(1000));
                }
                dirty.push(c.start);
            }
            dirty.dedup();
            if dirty.len() > REBUILD_ABOVE {
                // A restore brings whole days: one linear pass beats a merge per bucket.
                book.rebuild_rollups();
            } else {
                book.recompute(&dirty);
            }
            if source == CandleSource::Repair {
                book.touched(&dirty, |g, s, o| out.push_update(&clock.candle(product, g, s, o)));
            }
        }
        Ok(())
    }

    /// Move the clock to `now_ms`: report every bucket that became complete, and
    /// drop days past retention. Time never moves backwards.
    pub fn advance(&mut self, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        self.advance_into(now_ms, &mut out);
        out
    }

    /// [`Aggregator::advance`], with the results going to `out`.
    pub fn advance_into(&mut self, now_ms: i64, out: &mut impl OutcomeSink) {
        if now_ms <= self.now_ms {
            return;
        }
        let before = self.now_ms;
        self.now_ms = now_ms;
        let clock = self.clock();
        let grace = self.settings.grace_ms;
        for (&product, book) in &self.books {
            for g in Granularity::ALL {
                let hi = Clock::complete_through(g, now_ms, grace);
                let lo = if before == i64::MIN {
                    i64::MIN
                } else {
                    Clock::complete_through(g, before, grace).saturating_add(1)
                };
                if lo > hi {
                    continue;
                }
                for (start, o) in book.buckets_between(g, lo, hi) {
                    out.push_update(&clock.candle(product, g, start, &o));
                }
            }
        }
        let retained_from = clock.retained_from();
        for book in self.books.values_mut() {
            book.prune_before(retained_from);
        }
    }

    /// The canonical state.
    pub fn export(&self) -> State {
        State {
            now_ms: self.now_ms,
            products: self
                .books
                .iter()
                .map(|(&id, b)| ProductState {
                    id,
                    name: b.name.clone(),
                    counted: b.ids.ranges().to_vec(),
                    top_time_ms: b.ids.top_time_ms(),
                    minutes: b.minutes.iter().map(|(start, m)| minute_state(*start, m)).collect(),
                })
                .collect(),
            extensions: Vec::new(),
        }
    }

    /// The canonical state, packed as the books are walked: the same bytes as
    /// `export().encode()` without holding the state twice.
    pub fn export_encoded(&self) -> Vec<u8> {
        let minutes = self.books.values().map(|b| b.minutes.len()).sum();
        let mut e = StateEncoder::new(self.now_ms, self.books.len(), minutes);
        for (&id, b) in &self.books {
            e.product(id, &b.name, b.ids.ranges(), b.ids.top_time_ms(), b.minutes.len());
            for (start, m) in b.minutes.iter() {
                e.minute(&minute_state(*start, m));
            }
        }
        e.finish(&[])
    }

    /// Replace everything but the settings with `state`.
    pub fn import(&mut self, state: State) {
        self.now_ms = state.now_ms;
        self.books.clear();
        for p in state.products {
            let head = ProductHead {
                id: p.id,
                name: p.name,
                counted: p.counted,
                top_time_ms: p.top_time_ms,
                minutes: p.minutes.len(),
            };
            let mut minutes = p.minutes.into_iter();
            let book = book_from(head, || minutes.next().ok_or(WireError::Magic { expected: "minute" }));
            if let Ok((id, book)) = book {
                self.books.insert(id, book);
            }
        }
    }

    /// Replace everything but the settings with a packed state, read as it
    /// goes (no intermediate [`State`]). On an error nothing is replaced.
    pub fn import_encoded(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let mut d = StateDecoder::new(bytes)?;
        let now_ms = d.now_ms();
        let mut books = BTreeMap::new();
        while let Some(head) = d.next_product()? {
            let (id, book) = book_from(head, || d.minute())?;
            books.insert(id, book);
        }
        d.finish()?;
        self.now_ms = now_ms;
        self.books = books;
        Ok(())
    }

    /// Every bucket held, all granularities, ordered by (product, granularity, start).
    pub fn candles(&self) -> Vec<Candle> {
        let clock = self.clock();
        let mut out = Vec::new();
        for (&product, book) in &self.books {
            for g in Granularity::ALL {
                for (start, o) in book.buckets_between(g, i64::MIN, i64::MAX - 1) {
                    out.push(clock.candle(product, g, start, &o));
                }
            }
        }
        out
    }
}

/// The canonical form of one held minute.
fn minute_state(start: i64, m: &Minute) -> MinuteState {
    MinuteState {
        start,
        open: m.open,
        high: m.high,
        low: m.low,
        close: m.close,
        volume: m.volume,
        open_id: m.open_id,
        close_id: m.close_id,
        floor_id: m.floor_id,
        trades: m.trades,
        sealed: m.sealed,
    }
}

/// A book from a product's header and its minutes (`next` gives each in
/// turn), rollups rebuilt; minutes out of order or repeated are dropped.
fn book_from(
    head: ProductHead,
    mut next: impl FnMut() -> Result<MinuteState, WireError>,
) -> Result<(u32, Book), WireError> {
    let mut book = Book::new(head.name);
    book.ids = TradeIds::from_ranges(head.counted, head.top_time_ms);
    book.minutes.reserve_exact(head.minutes);
    let mut unordered = Vec::new();
    for _ in 0..head.minutes {
        let m = next()?;
        let minute = Minute {
            open: m.open,
            high: m.high,
            low: m.low,
            close: m.close,
            volume: m.volume,
            open_id: m.open_id,
            close_id: m.close_id,
            floor_id: m.floor_id,
            trades: m.trades,
            sealed: m.sealed,
        };
        match book.minutes.last_start() {
            Some(s) if s >= m.start => unordered.push((m.start, minute)),
            _ => book.minutes.push_last(m.start, minute),
        }
    }
    // A state written by another component may be out of order: sorted in,
    // the first of a repeated start kept.
    for (start, minute) in unordered {
        if book.minutes.get(start).is_none() {
            book.minutes.put(start, minute);
        }
    }
    book.rebuild_rollups();
    Ok((head.id, book))
}
