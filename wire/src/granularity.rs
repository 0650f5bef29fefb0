//! The eight candle granularities, UTC aligned.

/// A candle width, named as in the seed schema's `granularity` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Granularity {
    OneMinute = 0,
    FiveMinutes = 1,
    FifteenMinutes = 2,
    ThirtyMinutes = 3,
    OneHour = 4,
    TwoHours = 5,
    SixHours = 6,
    OneDay = 7,
}

impl Granularity {
    /// All eight, finest first.
    pub const ALL: [Granularity; 8] = [
        Granularity::OneMinute,
        Granularity::FiveMinutes,
        Granularity::FifteenMinutes,
        Granularity::ThirtyMinutes,
        Granularity::OneHour,
        Granularity::TwoHours,
        Granularity::SixHours,
        Granularity::OneDay,
    ];

    /// Width in seconds. Every width divides a day, so buckets align to the UTC day.
    pub const fn seconds(self) -> i64 {
        match self {
            Granularity::OneMinute => 60,
            Granularity::FiveMinutes => 300,
            Granularity::FifteenMinutes => 900,
            Granularity::ThirtyMinutes => 1800,
            Granularity::OneHour => 3600,
            Granularity::TwoHours => 7200,
            Granularity::SixHours => 21600,
            Granularity::OneDay => 86400,
        }
    }

    /// The seed's enum name (`ONE_MINUTE`, ...), used in element ids and storage.
    pub const fn name(self) -> &'static str {
        match self {
            Granularity::OneMinute => "ONE_MINUTE",
            Granularity::FiveMinutes => "FIVE_MINUTES",
            Granularity::FifteenMinutes => "FIFTEEN_MINUTES",
            Granularity::ThirtyMinutes => "THIRTY_MINUTES",
            Granularity::OneHour => "ONE_HOUR",
            Granularity::TwoHours => "TWO_HOURS",
            Granularity::SixHours => "SIX_HOURS",
            Granularity::OneDay => "ONE_DAY",
        }
    }

    /// Parse a seed name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }

    /// From the packed index.
    pub fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(i as usize).copied()
    }

    /// Position in [`Granularity::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Start (unix seconds) of the bucket holding `t` (unix seconds).
    pub const fn bucket_start(self, t: i64) -> i64 {
        t - t.rem_euclid(self.seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_buckets_align_to_utc() {
        for g in Granularity::ALL {
            assert_eq!(Granularity::from_name(g.name()), Some(g));
            assert_eq!(Granularity::from_index(g as u8), Some(g));
            assert_eq!(86400 % g.seconds(), 0);
        }
        // 2024-01-06T19:40:00Z sits in the day starting 2024-01-06T00:00:00Z.
        assert_eq!(Granularity::OneDay.bucket_start(1704570000), 1704499200);
        assert_eq!(Granularity::FiveMinutes.bucket_start(1704567899), 1704567600);
        assert_eq!(Granularity::OneMinute.bucket_start(-1), -60);
    }
}
