//! The router's state for the store, and the views of alerts listed by the API.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Group, RoutedAlert, Router};
use crate::routing::silence::Silence;
use atalaya_bus::delivery::notification::Status;

/// Everything the router must remember across a restart: alerts, groups with their timers
/// and notification logs, and silences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterState {
    alerts: Vec<RoutedAlert>,
    groups: Vec<(String, Group)>,
    silences: Vec<Silence>,
}

/// A part of a stored router state that could not be restored (unreadable, or a silence
/// whose matchers no longer compile): left out, for the caller to log, count and set aside
/// rather than lose the whole state or stop the start over it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnrestorableItem {
    /// `alert`, `group` or `silence`.
    pub kind: &'static str,
    pub record: serde_json::Value,
    pub reason: String,
}

/// The stored state read item by item, so that one bad item costs only itself.
#[derive(Deserialize)]
struct StoredItems {
    #[serde(default)]
    alerts: Vec<serde_json::Value>,
    #[serde(default)]
    groups: Vec<serde_json::Value>,
    #[serde(default)]
    silences: Vec<serde_json::Value>,
}

impl RouterState {
    /// Reads a stored state. Items that do not read are left out and returned; only a blob
    /// that is not a state at all is an error.
    pub fn decode(bytes: &[u8]) -> serde_json::Result<(Self, Vec<UnrestorableItem>)> {
        let stored: StoredItems = serde_json::from_slice(bytes)?;
        let mut unreadable = Vec::new();
        let mut state = Self::default();
        read_items(stored.alerts, "alert", &mut state.alerts, &mut unreadable);
        read_items(stored.groups, "group", &mut state.groups, &mut unreadable);
        read_items(
            stored.silences,
            "silence",
            &mut state.silences,
            &mut unreadable,
        );
        Ok((state, unreadable))
    }
}

fn read_items<T: serde::de::DeserializeOwned>(
    raw: Vec<serde_json::Value>,
    kind: &'static str,
    into: &mut Vec<T>,
    unreadable: &mut Vec<UnrestorableItem>,
) {
    for record in raw {
        match T::deserialize(&record) {
            Ok(item) => into.push(item),
            Err(e) => unreadable.push(UnrestorableItem {
                kind,
                record,
                reason: e.to_string(),
            }),
        }
    }
}

/// One alert as listed by `GET /api/v1/alerts` and `atalaya alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub fingerprint: String,
    pub status: Status,
    pub labels: atalaya_bus::Labels,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub starts_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    pub value: serde_json::Value,
    /// Ids of the active silences that match it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
    /// The receivers its routes reach.
    pub receivers: Vec<String>,
}

impl AlertView {
    /// `active`, `suppressed` (silenced or inhibited) or `resolved`, as Alertmanager says.
    pub fn state(&self) -> &'static str {
        if self.status == Status::Resolved {
            "resolved"
        } else if self.silenced_by.is_empty() && self.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

impl Router {
    /// The state to persist; clears [`Router::is_dirty`].
    pub fn snapshot(&mut self) -> RouterState {
        self.dirty = false;
        let mut alerts: Vec<RoutedAlert> = self.alerts.values().cloned().collect();
        alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        RouterState {
            alerts,
            groups: self
                .groups
                .iter()
                .map(|(k, g)| (k.clone(), g.clone()))
                .collect(),
            silences: self.silences.values().map(|(s, _)| s.clone()).collect(),
        }
    }

    /// Brings back a persisted state, then routes the alerts through the current policy
    /// (which may have changed while atalaya was down). Silences that no longer compile are
    /// returned, for the caller to set aside. Groups whose flush fell due while down flush
    /// at the next tick.
    pub fn restore(&mut self, state: RouterState, now: Timestamp) -> Vec<UnrestorableItem> {
        self.alerts = state
            .alerts
            .into_iter()
            .map(|a| (a.fingerprint.clone(), a))
            .collect();
        self.groups = state.groups.into_iter().collect();
        self.silences.clear();
        let mut unrestorable = Vec::new();
        for silence in state.silences {
            // Expired silences are kept for listing. Only the matchers are checked: times a
            // new silence may not have (far ahead, over) are harmless once stored.
            match silence.compile() {
                Ok(matchers) => {
                    self.silences
                        .insert(silence.id.clone(), (silence, matchers));
                }
                Err(e) => unrestorable.push(UnrestorableItem {
                    kind: "silence",
                    record: serde_json::to_value(&silence).unwrap_or_default(),
                    reason: e.to_string(),
                }),
            }
        }
        let policy = self.policy.clone();
        self.set_policy(policy, now);
        unrestorable
    }

    /// Every alert held, firing first then by start, with why it is or is not notified.
    pub fn alerts(&self, now: Timestamp) -> Vec<AlertView> {
        let mut views: Vec<AlertView> = self
            .alerts
            .values()
            .map(|a| AlertView {
                fingerprint: a.fingerprint.clone(),
                status: if a.is_resolved(now) {
                    Status::Resolved
                } else {
                    Status::Firing
                },
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                value: a.value.clone(),
                silenced_by: self
                    .silenced_by(a, now)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                inhibited_by: self
                    .inhibited_by(a, now)
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
                receivers: self
                    .policy
                    .tree
                    .matching(&a.labels)
                    .into_iter()
                    .map(|r| r.receiver.clone())
                    .collect(),
            })
            .collect();
        views.sort_by(|a, b| {
            (a.status == Status::Resolved, a.starts_at, &a.fingerprint).cmp(&(
                b.status == Status::Resolved,
                b.starts_at,
                &b.fingerprint,
            ))
        });
        views
    }
}
