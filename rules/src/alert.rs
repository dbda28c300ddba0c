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
    let millisecond = TimestampRound::new()
        .smallest(Unit::Millisecond)
        .mode(RoundMode::Floor);
    at.round(millisecond).unwrap_or(at)
}
