//! The reconnect back-off (MQTT, Kubernetes): doubling from a minimum to a maximum, with
//! ±20 % jitter so that many clients cut off by one server restart do not all come back in
//! the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays between reconnect attempts.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    /// The delay before jitter of the next attempt.
    next: Duration,
    /// xorshift state for the jitter; no need for a cryptographic generator here.
    rng: u64,
}

impl Backoff {
    /// `min` is raised to 1 ms (a zero delay would spin) and `max` to `min`.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        // A per-process random seed; `| 1` keeps xorshift away from its zero fixed point.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        Self {
            min,
            max,
            next: min,
            rng: seed,
        }
    }

    /// The delay before the next attempt; each call doubles the next one, up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = base.saturating_mul(2).min(self.max);
        base.mul_f64(0.8 + 0.4 * self.unit())
    }

    /// Back to the minimum, after a successful connection.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(delay: Duration, base: Duration) -> bool {
        delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2)
    }

    #[test]
    fn doubles_up_to_the_maximum_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        for base in [1, 2, 4, 8, 10, 10, 10] {
            let delay = backoff.next_delay();
            assert!(
                within(delay, Duration::from_secs(base)),
                "{delay:?} vs {base}s"
            );
        }
        backoff.reset();
        assert!(within(backoff.next_delay(), Duration::from_secs(1)));
    }

    #[test]
    fn jitter_varies_and_degenerate_settings_are_safe() {
        let mut backoff = Backoff::new(Duration::from_secs(4), Duration::from_secs(4));
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 1, "jitter should vary: {delays:?}");
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(zero.next_delay() >= Duration::from_micros(800));
    }
}
