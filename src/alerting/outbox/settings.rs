//! [`OutboxSettings`]: the `outbox:` section — how long and how often delivery is retried.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `outbox:` — retries of notifications that could not be delivered.
///
/// A failed attempt is retried after a back-off that starts at `initial_backoff` and doubles
/// up to `max_backoff` (±20 % jitter). A notification is given up — moved to the dead-letter
/// table, logged and counted — after `max_attempts` attempts, or once it is older than
/// `max_age`, whichever comes first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// The wait after the first failed attempt. Default `1s`.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts, also the most a `Retry-After` is honoured.
    /// Default `5m`.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Attempts before a notification is dead-lettered. Default 20 (with the default
    /// back-offs, about 1h20m of trying).
    pub max_attempts: u32,
    /// Age (since the router created it) after which a notification is dead-lettered rather
    /// than attempted: news that old misleads more than it helps. Default `24h`.
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            max_attempts: 20,
            max_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl OutboxSettings {
    /// Every problem with these settings (empty when they are fine), each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.initial_backoff.is_zero() {
            errors.push("outbox.initial_backoff: must be positive".to_owned());
        }
        if self.max_backoff < self.initial_backoff {
            errors.push(format!(
                "outbox.max_backoff: {:?} is shorter than initial_backoff ({:?})",
                self.max_backoff, self.initial_backoff
            ));
        }
        if self.max_attempts == 0 {
            errors.push("outbox.max_attempts: must be at least 1".to_owned());
        }
        if self.max_age.is_zero() {
            errors.push("outbox.max_age: must be positive".to_owned());
        }
        errors
    }
}

/// A duration written with units, as everywhere in the configuration: `500ms`, `5s`, `2m`,
/// `1h30m`, `24h`, `7d`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    let parsed = atalaya_rules::model::parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration; write it like `500ms`, `5s`, `2m`, `1h30m` or `7d`"
        ))
    })?;
    Duration::try_from(parsed).map_err(|_| {
        serde::de::Error::custom(format!("`{text}`: the duration must not be negative"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_is_not_written() {
        let settings: OutboxSettings =
            serde_json::from_str(r#"{"max_backoff": "10m", "max_attempts": 5}"#).unwrap();
        assert_eq!(
            settings,
            OutboxSettings {
                max_backoff: Duration::from_secs(600),
                max_attempts: 5,
                ..OutboxSettings::default()
            }
        );
        assert!(settings.validate().is_empty());
        assert_eq!(
            OutboxSettings::default().max_age,
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        let unknown = serde_json::from_str::<OutboxSettings>(r#"{"max_retries": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown field `max_retries`"), "{unknown}");
        let bad = serde_json::from_str::<OutboxSettings>(r#"{"max_age": "a day"}"#)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("`a day` is not a duration"), "{bad}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let settings = OutboxSettings {
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(1),
            max_attempts: 0,
            max_age: Duration::ZERO,
        };
        assert_eq!(settings.validate().len(), 3, "{:?}", settings.validate());
    }
}
