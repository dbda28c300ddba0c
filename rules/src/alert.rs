//! Alerts: what the engine says about a series, and how it moves between states.

use atalaya_bus::Labels;
use atalaya_bus::labels::Annotations;
use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use serde::{Deserialize, Serialize};

pub use atalaya_bus::fingerprint::{
    fingerprint, fingerprint_hash, fingerprint_hash_from, fingerprint_hash_sorted,
    fingerprint_seed, fingerprint_text, fnv1a,
};

/// Where an alert is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, but not yet for `for`.
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert of one series of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's name (also the `alertname` label).
    pub rule: String,
    /// Stable identity: a hash of the rule name and the series labels.
    pub fingerprint: String,
    pub state: AlertState,
    /// `alertname`, `severity`, the series labels and the rule's extra labels.
    pub labels: Labels,
    pub annotations: Annotations,
    /// The rule's value when the alert last changed.
    pub value: serde_json::Value,
    /// When the condition started holding (pending or firing since).
    pub active_since: Timestamp,
    /// When it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<Timestamp>,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
}

impl Alert {
    pub fn severity(&self) -> &str {
        self.labels.get("severity").unwrap_or("")
    }
}

/// What the engine tells its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An alert changed state (to pending, firing or resolved).
    Alert(Alert),
    /// A rule action to carry out: publish `payload` to `subject`.
    Action(ActionRequest),
}

/// A message a rule asks to publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub rule: String,
    pub fingerprint: String,
    pub trigger: AlertState,
    pub subject: String,
    pub payload: String,
    /// Publish retained (MQTT).
    #[serde(default)]
    pub retain: bool,
}

/// An instant as the engine keeps it: to the millisecond, as Prometheus and Alertmanager
/// give an alert's times and as the store keeps them, so an alert's `startsAt` reads the
/// same when it fires and when it resolves after a restart.
pub fn alert_time(at: Timestamp) -> Timestamp {
    // Since 1970 flooring is truncating, done here without the 128-bit division of jiff's
    // general rounding: this runs twice for every event.
    let nanos = at.subsec_nanosecond();
    if at.as_second() >= 0 && nanos >= 0 {
        return Timestamp::new(at.as_second(), nanos - nanos % 1_000_000).unwrap_or(at);
    }
    let millisecond = TimestampRound::new()
        .smallest(Unit::Millisecond)
        .mode(RoundMode::Floor);
    at.round(millisecond).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_time_floors_to_the_millisecond_on_both_sides_of_1970() {
        let floor = |at: Timestamp| {
            at.round(
                TimestampRound::new()
                    .smallest(Unit::Millisecond)
                    .mode(RoundMode::Floor),
            )
            .unwrap()
        };
        for seconds in [-2_000_000_000, -1, 0, 1, 1_733_320_201, 4_000_000_000] {
            for nanos in (0..1_000_000_000).step_by(999_983) {
                for sign in [1, -1] {
                    let Ok(at) = Timestamp::new(seconds, sign * nanos) else {
                        continue;
                    };
                    assert_eq!(alert_time(at), floor(at), "{at}");
                }
            }
        }
        let at: Timestamp = "2026-12-04T13:50:01.123999999Z".parse().unwrap();
        assert_eq!(alert_time(at).to_string(), "2026-12-04T13:50:01.123Z");
        let before: Timestamp = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        assert_eq!(alert_time(before).to_string(), "1969-12-31T23:59:59.999Z");
    }
}
