//! When to try again, and when to give up: the back-off and the dead-letter decision, as pure
//! functions of the settings, the attempt count and a random number.

use std::time::Duration;

use atalaya_bus::backoff::jittered;
use atalaya_bus::delivery::DeliveryError;
use jiff::Timestamp;

use super::OutboxSettings;

/// What follows a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterFailure {
    /// Try again after this long.
    Retry(Duration),
    /// Dead-letter it, for this reason.
    GiveUp(String),
}

/// Decides what follows the `attempts`-th failed attempt (counting from 1). `unit` is a
/// random number in `[0, 1)` for the jitter.
pub fn after_failure(
    settings: &OutboxSettings,
    attempts: u32,
    failure: &DeliveryError,
    unit: f64,
) -> AfterFailure {
    if !failure.retryable {
        return AfterFailure::GiveUp(format!("permanent failure: {failure}"));
    }
    if attempts >= settings.max_attempts {
        return AfterFailure::GiveUp(format!(
            "gave up after {attempts} attempts; last error: {failure}"
        ));
    }
    let delay = backoff(settings, attempts, unit);
    // Never sooner than the receiver asked, never longer than `max_backoff`.
    let delay = match failure.retry_after {
        Some(asked) => delay.max(asked).min(settings.max_backoff),
        None => delay,
    };
    AfterFailure::Retry(delay)
}

/// The wait after the `failures`-th failure (from 1): `initial_backoff` doubled per earlier
/// failure, at most `max_backoff`, times a jitter factor in `[0.8, 1.2)` from `unit`.
pub fn backoff(settings: &OutboxSettings, failures: u32, unit: f64) -> Duration {
    jittered(
        settings.initial_backoff,
        settings.max_backoff,
        failures,
        unit,
    )
}

/// Whether a notification created at `created_at` is past `max_age` at `now`; the reason if so.
pub fn expired(settings: &OutboxSettings, created_at: Timestamp, now: Timestamp) -> Option<String> {
    let age = Duration::try_from(now.duration_since(created_at)).unwrap_or(Duration::ZERO);
    (age >= settings.max_age).then(|| {
        format!(
            "past max_age ({:?} old; max_age {:?})",
            Duration::from_secs(age.as_secs()),
            settings.max_age
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutboxSettings {
        OutboxSettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        }
    }

    fn unavailable() -> DeliveryError {
        DeliveryError::transient("http_5xx", "the webhook answered HTTP 503")
    }

    #[test]
    fn backoff_doubles_from_the_initial_to_the_maximum() {
        let s = settings();
        let bases = [1, 2, 4, 8, 16, 32, 60, 60];
        for (failures, base) in (1..).zip(bases) {
            let base = Duration::from_secs(base);
            assert_eq!(backoff(&s, failures, 0.5), base, "failure {failures}");
            assert_eq!(backoff(&s, failures, 0.0), base.mul_f64(0.8));
            assert!(backoff(&s, failures, 0.999_999) < base.mul_f64(1.2));
        }
        // Far past the maximum nothing overflows.
        assert_eq!(backoff(&s, u32::MAX, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_varies() {
        let s = settings();
        let delays: Vec<Duration> = (0..200).map(|_| backoff(&s, 3, fastrand::f64())).collect();
        for d in &delays {
            assert!(
                *d >= Duration::from_millis(3200) && *d < Duration::from_millis(4800),
                "{d:?}"
            );
        }
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter should vary");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_maximum_backoff() {
        let s = settings();
        let mut busy = unavailable();
        busy.retry_after = Some(Duration::from_secs(30));
        assert_eq!(
            after_failure(&s, 1, &busy, 0.5),
            AfterFailure::Retry(Duration::from_secs(30))
        );
        busy.retry_after = Some(Duration::from_secs(3600));
        assert_eq!(
            after_failure(&s, 1, &busy, 0.5),
            AfterFailure::Retry(Duration::from_secs(60))
        );
        // Asking for less than the back-off does not shorten it.
        busy.retry_after = Some(Duration::ZERO);
        assert_eq!(
            after_failure(&s, 3, &busy, 0.5),
            AfterFailure::Retry(Duration::from_secs(4))
        );
    }

    #[test]
    fn gives_up_after_max_attempts_or_at_once_when_permanent() {
        let s = settings();
        for attempts in 1..5 {
            assert!(matches!(
                after_failure(&s, attempts, &unavailable(), 0.5),
                AfterFailure::Retry(_)
            ));
        }
        let AfterFailure::GiveUp(reason) = after_failure(&s, 5, &unavailable(), 0.5) else {
            panic!("the fifth failure of five attempts gives up");
        };
        assert_eq!(
            reason,
            "gave up after 5 attempts; last error: the webhook answered HTTP 503"
        );
        let refused = DeliveryError::permanent("http_4xx", "the webhook answered HTTP 400");
        assert_eq!(
            after_failure(&s, 1, &refused, 0.5),
            AfterFailure::GiveUp("permanent failure: the webhook answered HTTP 400".into())
        );
    }

    #[test]
    fn notifications_past_max_age_expire() {
        let s = settings();
        let created: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |t: &str| expired(&s, created, t.parse().unwrap());
        assert_eq!(at("2026-01-01T00:59:59Z"), None);
        assert_eq!(
            at("2026-01-01T01:00:00Z").as_deref(),
            Some("past max_age (3600s old; max_age 3600s)")
        );
        // A clock that went backwards is not an age.
        assert_eq!(at("2025-12-31T00:00:00Z"), None);
    }
}
