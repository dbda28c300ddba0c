//! The alerts the router holds: from the rule engine, or posted by Prometheus.

use atalaya_bus::Labels;
use atalaya_bus::fingerprint::labels_fingerprint;
use atalaya_bus::labels::Annotations;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertState, fingerprint_hash, fingerprint_text};
use atalaya_bus::delivery::notification::{NotifiedAlert, Status};

/// An alert as the router sees it: identity, labels, and when it started and ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedAlert {
    /// The router's identity of the alert: the rule series' fingerprint, or
    /// [`posted_alert_id`]. Internal; the fingerprint shown (API, notifications) is
    /// Alertmanager's, of the labels ([`NotifiedAlert::fingerprint`]).
    pub fingerprint: String,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Annotations,
    /// When it fired.
    pub starts_at: Timestamp,
    /// When it resolved, or (alerts from Prometheus) when it resolves unless sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    #[serde(default)]
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// When the router last took it in (Alertmanager's `updatedAt`); set by the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

impl RoutedAlert {
    /// The router's view of an engine alert; `None` for a pending one (not news yet).
    pub fn from_engine(alert: &Alert) -> Option<Self> {
        let ends_at = match alert.state {
            AlertState::Pending => return None,
            AlertState::Firing => None,
            AlertState::Resolved => Some(alert.resolved_at.unwrap_or(alert.active_since)),
        };
        Some(Self {
            fingerprint: alert.fingerprint.clone(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: alert.fired_at.unwrap_or(alert.active_since),
            ends_at,
            value: alert.value.clone(),
            generator_url: None,
            updated_at: None,
        })
    }

    pub fn is_resolved(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }

    /// A one-shot alert: resolved at the instant it fired (a water leak, a door opened at
    /// night). It is news all the same: it is notified as firing once, and its resolution is
    /// not.
    pub fn is_instant(&self) -> bool {
        self.ends_at == Some(self.starts_at)
    }

    /// Whether notifications show it firing: while it is, and a one-shot alert until told.
    pub fn shown_firing(&self, now: Timestamp) -> bool {
        !self.is_resolved(now) || self.is_instant()
    }

    /// This alert updated by a newer report of it (Alertmanager's merge): while the two
    /// overlap, the earlier start is kept; a report starting after this one ended is a new
    /// occurrence.
    pub fn merge(&self, newer: Self) -> Self {
        let overlaps = self.ends_at.is_none_or(|end| end >= newer.starts_at);
        Self {
            starts_at: if overlaps {
                self.starts_at.min(newer.starts_at)
            } else {
                newer.starts_at
            },
            ..newer
        }
    }

    pub fn notified(&self, now: Timestamp) -> NotifiedAlert {
        let firing = self.shown_firing(now);
        NotifiedAlert {
            instant: self.is_instant(),
            status: if firing {
                Status::Firing
            } else {
                Status::Resolved
            },
            fingerprint: labels_fingerprint(&self.labels),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at.filter(|end| *end <= now && !firing),
            value: self.value.clone(),
            generator_url: self.generator_url.clone(),
        }
    }
}

/// The router's identity of an alert known only by its labels (one posted by Prometheus):
/// kept as it was before shown fingerprints became Alertmanager's, so the alerts in a
/// stored router state keep their identity across an upgrade. What is shown is
/// [`labels_fingerprint`].
pub fn posted_alert_id(labels: &Labels) -> String {
    fingerprint_text(fingerprint_hash("", labels))
}
