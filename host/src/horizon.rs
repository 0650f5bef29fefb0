//! `Horizon`: the UTC days the service keeps, counts and serves: the current
//! one and, by default, the previous one (`HISTORY_DAYS`).
//!
//! The component keeps a day until it has been over for `retention` (plus the
//! grace); the host derives that retention from the days, so the component,
//! the restore, the backfill and the audit all agree on where the horizon
//! starts: the UTC day start of `now − grace − (days − 1) · 1 day`.

use std::time::Duration;

use spot_wire::Granularity;

/// A day, in seconds.
pub const DAY: i64 = 86_400;

/// The most days the component's `retention-ms` (a u32 of milliseconds) can hold.
pub const MAX_DAYS: u32 = 49;

/// The days kept, and the grace after which a bucket is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    days: u32,
    grace: Duration,
}

impl Horizon {
    /// `days` UTC days (1 to [`MAX_DAYS`]; clamped), the current one included.
    pub fn new(days: u32, grace: Duration) -> Self {
        Horizon {
            days: days.clamp(1, MAX_DAYS),
            grace,
        }
    }

    /// The number of UTC days kept.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// What the component is configured with: a day is dropped once it has
    /// been over this long (0 for one day: only the current day is kept).
    pub fn retention(&self) -> Duration {
        Duration::from_secs((self.days as u64 - 1) * DAY as u64)
    }

    /// The first second of the horizon at `now_ms` (a UTC day start, unix s):
    /// the component's own cut (`retained_from` in the rules).
    pub fn start(&self, now_ms: i64) -> i64 {
        let lag_ms = self.grace.as_millis() as i64 + self.retention().as_millis() as i64;
        Granularity::OneDay.bucket_start(now_ms.saturating_sub(lag_ms).div_euclid(1000))
    }

    /// [`Horizon::start`] in unix milliseconds.
    pub fn start_ms(&self, now_ms: i64) -> i64 {
        self.start(now_ms).saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = 1_704_499_200; // 2024-01-06T00:00:00Z

    #[test]
    fn two_days_reach_back_to_the_previous_utc_day_start() {
        let h = Horizon::new(2, Duration::from_secs(5));
        assert_eq!(h.retention(), Duration::from_secs(DAY as u64));
        assert_eq!(h.start((D + 80 * 60) * 1000), D - DAY, "01:20");
        assert_eq!(h.start((D + 12 * 3600) * 1000), D - DAY, "noon");
        assert_eq!(h.start((D + DAY - 1) * 1000), D - DAY, "23:59:59");
        // Within the grace after midnight the day before yesterday is still held.
        assert_eq!(h.start((D + 3) * 1000), D - 2 * DAY);
        assert_eq!(h.start((D + 5) * 1000), D - DAY);
    }

    #[test]
    fn one_day_keeps_only_the_current_one_and_days_are_bounded() {
        let h = Horizon::new(1, Duration::from_secs(5));
        assert_eq!(h.retention(), Duration::ZERO);
        assert_eq!(h.start((D + 80 * 60) * 1000), D);
        assert_eq!(Horizon::new(0, Duration::ZERO).days(), 1);
        assert_eq!(Horizon::new(500, Duration::ZERO).days(), MAX_DAYS);
        let max = Horizon::new(MAX_DAYS, Duration::from_secs(5));
        assert!(max.retention().as_millis() + 5_000 <= u32::MAX as u128);
    }

    #[test]
    fn the_start_is_the_rules_cut() {
        // The component keeps minutes from `retained_from`: a trade of the
        // minute just before the horizon is ignored, the first one is kept.
        let h = Horizon::new(2, Duration::from_secs(5));
        let mut agg = spot_rules::Aggregator::new(spot_rules::Settings {
            grace_ms: 5_000,
            retention_ms: h.retention().as_millis() as i64,
        });
        let now = (D + 80 * 60) * 1000;
        agg.advance(now);
        let start = h.start(now);
        let trade = |id, t: i64| spot_wire::Trade {
            product: 0,
            side: spot_wire::Side::Buy,
            trade_id: id,
            time_ms: t,
            price: spot_wire::Fixed::from_int(1),
            size: spot_wire::Fixed::from_int(1),
        };
        let out = agg.ingest(vec![trade(1, start * 1000 - 1), trade(2, start * 1000)]);
        assert_eq!(out.ignored, 1);
        assert!(out.updates.iter().any(|c| c.start == start));
    }
}
