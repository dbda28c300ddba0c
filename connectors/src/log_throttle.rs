//! [`LogThrottle`]: one log line per interval for a problem that repeats (a broker away, a
//! device sending garbage), with a count of the lines held back.

use std::time::{Duration, Instant};

/// Lets one log line through per interval and counts the ones held back.
pub(crate) struct LogThrottle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_held_back() {
        let start = Instant::now();
        let mut throttle = LogThrottle::new(Duration::from_secs(60));
        assert_eq!(throttle.check(start), Some(0));
        assert_eq!(throttle.check(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.check(start + Duration::from_secs(59)), None);
        assert_eq!(throttle.check(start + Duration::from_secs(60)), Some(2));
        assert_eq!(throttle.check(start + Duration::from_secs(61)), None);
    }
}
