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
            self.open = m.ohlcv.open;
        }
        if minute > self.last_minute || (minute == self.last_minute && m.close_id == id) {
            self.last_minute = minute;
            self.close = m.ohlcv.close;
        }
    }

    /// Aggregate consecutive buckets, in time order, into the bucket that spans them.
    /// `None` when there are none.
    pub fn merge<'a>(mut parts: impl Iterator<Item = &'a Ohlcv>) -> Option<Ohlcv> {
        let mut acc = *parts.next()?;
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

/// A 1-minute candle: the OHLCV, and which trades it already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    pub ohlcv: Ohlcv,
    /// Lowest / highest trade id counted (they decide open and close).
    pub open_id: u64,
    pub close_id: u64,
    /// Trades with an id at or below this are already in the candle (0: none).
    pub floor_id: u64,
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
    /// A minute (starting at `start`) holding one trade.
    pub fn from_trade(start: i64, price: Fixed, size: Fixed, id: u64) -> Self {
        Minute {
            ohlcv: Ohlcv::from_trade(start, price, size, id),
            open_id: id,
            close_id: id,
            floor_id: 0,
            sealed: false,
        }
    }

    /// Count one trade. Open and close follow trade ids, so any order of the same
    /// trades gives the same minute; volume is an exact sum.
    pub fn add_trade(&mut self, price: Fixed, size: Fixed, id: u64) -> Applied {
        if self.sealed || (self.floor_id != 0 && id <= self.floor_id) {
            return Applied::Ignored;
        }
        let o = &mut self.ohlcv;
        o.high = o.high.max(price);
        o.low = o.low.min(price);
        o.volume = o.volume.saturating_add(size);
        o.trades = o.trades.saturating_add(1);
        if id < self.open_id {
            self.open_id = id;
            o.open = price;
        }
        if id > self.close_id {
            self.close_id = id;
            o.close = price;
        }
        o.last_trade_id = o.last_trade_id.max(Some(id));
        Applied::Counted
    }

    /// An authoritative minute. With `through = Some(w)` it holds every trade of
    /// the minute up to id `w` and later trades above `w` still count; without,
    /// it is sealed.
    pub fn authoritative(ohlcv: Ohlcv, through: Option<u64>) -> Self {
        match through {
            Some(w) => Minute {
                ohlcv: Ohlcv {
                    last_trade_id: Some(w),
                    ..ohlcv
                },
                open_id: w,
                close_id: w,
                floor_id: w,
                sealed: false,
            },
            None => Minute {
                ohlcv: Ohlcv {
                    last_trade_id: None,
                    ..ohlcv
                },
                open_id: 0,
                close_id: 0,
                floor_id: 0,
                sealed: true,
            },
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
        let mut m = Minute::from_trade(0, f("10"), f("1"), 5);
        assert_eq!(m.add_trade(f("12"), f("0.5"), 7), Applied::Counted);
        assert_eq!(m.add_trade(f("9"), f("0.25"), 4), Applied::Counted);
        assert_eq!(m.ohlcv.open, f("9"));
        assert_eq!(m.ohlcv.close, f("12"));
        assert_eq!(m.ohlcv.high, f("12"));
        assert_eq!(m.ohlcv.low, f("9"));
        assert_eq!(m.ohlcv.volume, f("1.75"));
        assert_eq!(m.ohlcv.trades, 3);
        assert_eq!(m.ohlcv.last_trade_id, Some(7));
    }

    #[test]
    fn authoritative_minutes_ignore_what_they_already_hold() {
        let base = Ohlcv::from_trade(0, f("10"), f("2"), 0);
        let mut sealed = Minute::authoritative(base, None);
        assert_eq!(sealed.add_trade(f("99"), f("1"), 100), Applied::Ignored);
        let mut through = Minute::authoritative(base, Some(50));
        assert_eq!(through.add_trade(f("99"), f("1"), 50), Applied::Ignored);
        assert_eq!(through.add_trade(f("11"), f("1"), 51), Applied::Counted);
        assert_eq!(through.ohlcv.open, f("10"));
        assert_eq!(through.ohlcv.close, f("11"));
        assert_eq!(through.ohlcv.volume, f("3"));
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
        let m = Ohlcv::merge([a, b].iter()).unwrap();
        assert_eq!(
            (m.open, m.high, m.low, m.close, m.volume),
            (f("10"), f("15"), f("8"), f("9"), f("3"))
        );
        assert_eq!(m.trades, 2);
        assert_eq!(m.last_trade_id, Some(3));
        assert_eq!(Ohlcv::merge([].iter()), None);
    }
}
