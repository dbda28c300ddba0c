//! Limits on times that come from outside (silences, alerts posted over HTTP, stored state),
//! and arithmetic on them that cannot overflow.
//!
//! jiff's `Timestamp + duration` panics past the year 9999. A silence ending in 9999 once
//! crash-looped the service at every group flush; times are now refused beyond
//! [`HORIZON`] where they come in, and every sum of a stored time and a duration saturates
//! with [`later`], so a record written before the refusal cannot panic either.

use jiff::{SignedDuration, Timestamp};

/// How far ahead of now a time given to atalaya may lie: a hundred years, far past any
/// silence a household means ("forever") and far from the end of jiff's range.
pub const HORIZON: SignedDuration = SignedDuration::from_hours(100 * 8766);

/// Whether `t` lies within [`HORIZON`] of `now`.
pub fn within_horizon(t: Timestamp, now: Timestamp) -> bool {
    t <= later(now, HORIZON)
}

/// `t + by`, or the latest representable instant when that overflows.
pub fn later(t: Timestamp, by: impl IntoSigned) -> Timestamp {
    t.checked_add(by.into_signed()).unwrap_or(Timestamp::MAX)
}

/// Durations [`later`] takes: jiff's signed ones and the standard library's, which saturate
/// when longer than a signed duration can be.
pub trait IntoSigned {
    fn into_signed(self) -> SignedDuration;
}

impl IntoSigned for SignedDuration {
    fn into_signed(self) -> SignedDuration {
        self
    }
}

impl IntoSigned for std::time::Duration {
    fn into_signed(self) -> SignedDuration {
        SignedDuration::try_from(self).unwrap_or(SignedDuration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_at_the_end_of_time() {
        let end = Timestamp::MAX;
        assert_eq!(later(end, SignedDuration::from_hours(120)), Timestamp::MAX);
        assert_eq!(later(end, std::time::Duration::MAX), Timestamp::MAX);
        let t = Timestamp::from_second(0).unwrap();
        assert_eq!(later(t, SignedDuration::from_secs(5)).as_second(), 5);
        assert_eq!(
            later(t, SignedDuration::from_secs(-5)).as_second(),
            -5,
            "a negative duration goes back"
        );
    }

    #[test]
    fn the_horizon_is_a_century() {
        let now: Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        assert!(within_horizon("2126-01-01T00:00:00Z".parse().unwrap(), now));
        assert!(!within_horizon(
            "2127-01-01T00:00:00Z".parse().unwrap(),
            now
        ));
        assert!(!within_horizon(
            "9999-12-30T00:00:00Z".parse().unwrap(),
            now
        ));
        assert!(within_horizon(Timestamp::MAX, Timestamp::MAX));
    }
}
