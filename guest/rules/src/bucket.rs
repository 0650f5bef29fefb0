//! The OHLCV of one bucket, and the 1-minute candle with its trade-id bookkeeping.

use spot_wire::Fixed;

/// Open, high, low, close, volume of one bucket, plus what was counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ohlcv {
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
    pub trades: u32,
    /// Highest trade id counted in the bucket, when known.
    pub last_trade_id: Option<u64>,
    /// Start of the first and last minute with trades (they give open and close).
    pub first_minute: i64,
    pub last_minute: i64,
}

impl Ohlcv {
    /// A bucket holding one trade of the minute starting at `minute`.
    pub fn from_trade(minute: i64, price: Fixed, size: Fixed, id: u64) -> Self {
        Ohlcv {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            trades: 1,
            last_trade_id: Some(id),
            first_minute: minute,
            last_minute: minute,
        }
    }

    /// Count one more trade of the minute `m` (starting at `minute`) in this
    /// rollup, given the minute as it is after the trade. Equal to recomputing
    /// the rollup from its minutes, in O(1).
    pub fn extend(&mut self, minute: i64, m: &Minute, price: Fixed, size: Fixed, id: u64) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.volume = self.volume.saturating_add(size);
        self.trades = self.trades.saturating_add(1);
        self.last_trade_id = self.last_trade_id.max(Some(id));
        if minute < self.first_minute || (minute == self.first_minute && m.open_id == id) {
            self.first_minute = minute;
            self.open = m.open;
        }
        if minute > self.last_minute || (minute == self.last_minute && m.close_id == id) {
            self.last_minute = minute;
            self.close = m.close;
        }
    }

    /// Aggregate consecutive buckets, in time order, into the bucket that spans them.
    /// `None` when there are none.
    pub fn merge(mut parts: impl Iterator<Item = Ohlcv>) -> Option<Ohlcv> {
        let mut acc = parts.next()?;
        for p in parts {
            acc.high = acc.high.max(p.high);
            acc.low = acc.low.min(p.low);
            acc.close = p.close;
            acc.volume = acc.volume.saturating_add(p.volume);
            acc.trades = acc.trades.saturating_add(p.trades);
            acc.last_trade_id = acc.last_trade_id.max(p.last_trade_id);
            acc.last_minute = p.last_minute;
        }
        Some(acc)
    }
}

/// A 1-minute candle: its OHLCV, and which trades it already holds.
///
/// Not an [`Ohlcv`]: a minute's first and last minute are its start, and its
/// highest trade id is its close id (none once sealed), so it keeps neither;
/// that is 48 bytes less for each of the ~2.6 M minutes of a full horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
    /// Lowest / highest trade id counted (they decide open and close).
    pub open_id: u64,
    pub close_id: u64,
    /// Trades with an id at or below this are already in the candle (0: none).
    pub floor_id: u64,
    pub trades: u32,
    /// Replaced by an authoritative candle without trade ids: trades are ignored.
    pub sealed: bool,
}

/// What happened to a trade offered to a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// The minute already holds it (authoritative candle) or is sealed.
    Ignored,
}

impl Minute {
    /// A minute holding one trade.
    pub fn from_trade(price: Fixed, size: Fixed, id: u64) -> Self {
        Minute {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            open_id: id,
            close_id: id,
            floor_id: 0,
            trades: 1,
            sealed: false,
        }
    }

    /// The minute starting at `start` as a bucket.
    pub fn ohlcv(&self, start: i64) -> Ohlcv {
        Ohlcv {
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            trades: self.trades,
            last_trade_id: (!self.sealed).then_some(self.close_id),
            first_minute: start,
            last_minute: start,
        }
    }

    /// Count one trade. Open and close follow trade ids, so any order of the same
    /// trades gives the same minute; volume is an exact sum.
    pub fn add_trade(&mut self, price: Fixed, size: Fixed, id: u64) -> Applied {
        if self.sealed || (self.floor_id != 0 && id <= self.floor_id) {
            return Applied::Ignored;
        }
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.volume = self.volume.saturating_add(size);
        self.trades = self.trades.saturating_add(1);
        if id < self.open_id {
            self.open_id = id;
            self.open = price;
        }
        if id > self.close_id {
            self.close_id = id;
            self.close = price;
        }
        Applied::Counted
    }

    /// An authoritative minute. With `through = Some(w)` it holds every trade of
    /// the minute up to id `w` and later trades above `w` still count; without,
    /// it is sealed.
    pub fn authoritative(ohlcv: Ohlcv, through: Option<u64>) -> Self {
        let (ids, sealed) = match through {
            Some(w) => (w, false),
            None => (0, true),
        };
        Minute {
            open: ohlcv.open,
            high: ohlcv.high,
            low: ohlcv.low,
            close: ohlcv.close,
            volume: ohlcv.volume,
            open_id: ids,
            close_id: ids,
            floor_id: ids,
            trades: ohlcv.trades,
            sealed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Fixed {
        s.parse().unwrap()
    }

    #[test]
    fn open_and_close_follow_trade_ids_not_arrival() {
        let mut m = Minute::from_trade(f("10"), f("1"), 5);
        assert_eq!(m.add_trade(f("12"), f("0.5"), 7), Applied::Counted);
        assert_eq!(m.add_trade(f("9"), f("0.25"), 4), Applied::Counted);
        let o = m.ohlcv(60);
        assert_eq!(o.open, f("9"));
        assert_eq!(o.close, f("12"));
        assert_eq!(o.high, f("12"));
        assert_eq!(o.low, f("9"));
        assert_eq!(o.volume, f("1.75"));
        assert_eq!(o.trades, 3);
        assert_eq!(o.last_trade_id, Some(7));
        assert_eq!((o.first_minute, o.last_minute), (60, 60));
    }

    #[test]
    fn authoritative_minutes_ignore_what_they_already_hold() {
        let base = Ohlcv::from_trade(0, f("10"), f("2"), 0);
        let mut sealed = Minute::authoritative(base, None);
        assert_eq!(sealed.add_trade(f("99"), f("1"), 100), Applied::Ignored);
        let mut through = Minute::authoritative(base, Some(50));
        assert_eq!(through.add_trade(f("99"), f("1"), 50), Applied::Ignored);
        assert_eq!(through.add_trade(f("11"), f("1"), 51), Applied::Counted);
        let o = through.ohlcv(0);
        assert_eq!(o.open, f("10"));
        assert_eq!(o.close, f("11"));
        assert_eq!(o.volume, f("3"));
        assert_eq!(o.last_trade_id, Some(51));
        assert_eq!(sealed.ohlcv(0).last_trade_id, None);
    }

    #[test]
    fn merge_takes_first_open_last_close_and_sums() {
        let a = Ohlcv::from_trade(0, f("10"), f("1"), 1);
        let b = Ohlcv {
            high: f("15"),
            low: f("8"),
            close: f("9"),
            ..Ohlcv::from_trade(60, f("11"), f("2"), 3)
        };
        let m = Ohlcv::merge([a, b].into_iter()).unwrap();
        assert_eq!(
            (m.open, m.high, m.low, m.close, m.volume),
            (f("10"), f("15"), f("8"), f("9"), f("3"))
        );
        assert_eq!(m.trades, 2);
        assert_eq!(m.last_trade_id, Some(3));
        assert_eq!(Ohlcv::merge([].into_iter()), None);
    }
}
