//! atalaya's one back-off: doubling from a minimum to a maximum, with ±20 % jitter so that
//! many clients cut off by one server restart do not all come back in the same instant.
//! [`jittered`] is the pure rule (the outbox's retries use it with their own random
//! number); [`Backoff`] applies it to reconnect loops (MQTT, Kubernetes).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The wait after the `failures`-th failure (from 1): `initial` doubled per earlier failure,
/// at most `max`, times a jitter factor in `[0.8, 1.2)` from `unit` (a number in `[0, 1)`).
pub fn jittered(initial: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(31);
    let base = initial.saturating_mul(factor).min(max);
    base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
}

/// Delays between reconnect attempts.
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// Failures since the last success: the next delay is the `failures + 1`-th.
    failures: u32,
    /// xorshift state for the jitter; no need for a cryptographic generator here.
    rng: u64,
}

impl Backoff {
    /// `min` is raised to 1 ms (a zero delay would spin) and `max` to `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
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
            failures: 0,
            rng: seed,
        }
    }

    /// The delay before the next attempt; each call doubles the next one, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let unit = self.unit();
        jittered(self.min, self.max, self.failures, unit)
    }

    /// Back to the minimum, after a successful connection.
    pub fn reset(&mut self) {
        self.failures = 0;
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
