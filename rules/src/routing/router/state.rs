//! The router's state for the store, and the views of alerts listed by the API.
//!
//! In the store every alert, group and silence is its own record, under a key that says what
//! it is ([`ALERT_PREFIX`] + `#` + the alert's record number in 16 hex digits, given in the
//! order alerts are taken in; [`GROUP_PREFIX`] + group key; [`SILENCE_PREFIX`] + id), so a
//! change writes only the items it touched, and new alerts land at the end of the table.
//! Alert records keyed by fingerprint (as earlier builds wrote them) are read, and moved to
//! a numbered key at the next write. Versions before 0.2 kept the whole state in one record
//! under [`LEGACY_KEY`]; it is still read, and replaced by item records at the first write.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Group, Held, RoutedAlert, Router};
use crate::routing::silence::Silence;
use atalaya_bus::delivery::notification::Status;
use atalaya_bus::fingerprint::labels_fingerprint;

/// Store key prefix of an alert's record (then `#` and its record number, [`alert_key`]; or,
/// as earlier builds wrote it, its fingerprint).
pub const ALERT_PREFIX: &[u8] = b"alert\0";
/// Store key prefix of a group's record (then its group key).
pub const GROUP_PREFIX: &[u8] = b"group\0";
/// Store key prefix of a silence's record (then its id).
pub const SILENCE_PREFIX: &[u8] = b"silence\0";
/// The one record that held the whole state before item records.
pub const LEGACY_KEY: &[u8] = b"state";

/// What changed since the state was last taken: records to write and keys to delete.
#[derive(Debug, Default, PartialEq)]
pub struct RouterChanges {
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub deletes: Vec<Vec<u8>>,
}

impl RouterChanges {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// The store key of the alert record numbered `record`: in the table's order, numbers in
/// the order given.
pub(super) fn alert_key(record: u64) -> Vec<u8> {
    key(ALERT_PREFIX, &format!("#{record:016x}"))
}

/// The record number in an alert record's key; `None` for a key of the older form.
fn alert_record(key: &[u8]) -> Option<u64> {
    let hex = key.strip_prefix(ALERT_PREFIX)?.strip_prefix(b"#")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

fn key(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + id.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Everything the router must remember across a restart: alerts, groups with their timers
/// and notification logs, and silences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterState {
    alerts: Vec<RoutedAlert>,
    /// The store key each alert was read from, by position (shorter when some came from
    /// the legacy record, which has none).
    #[serde(skip)]
    alert_keys: Vec<Vec<u8>>,
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
    /// Its own store record's key, to remove once set aside; `None` for an item of the
    /// legacy whole-state record.
    pub key: Option<Vec<u8>>,
}

/// The stored state read item by item, so that one bad item costs only itself.
#[derive(Default, Deserialize)]
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

    /// Reads the router's records from the store (item records, or the legacy whole-state
    /// record). Items that do not read are left out and returned; a legacy record that is not
    /// a state at all is an error.
    pub fn from_records(
        records: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> serde_json::Result<(Self, Vec<UnrestorableItem>)> {
        let mut state = Self::default();
        let mut unreadable = Vec::new();
        for (key, value) in records {
            if key == LEGACY_KEY {
                let (legacy, bad) = Self::decode(&value)?;
                state.alerts.extend(legacy.alerts);
                state.groups.extend(legacy.groups);
                state.silences.extend(legacy.silences);
                unreadable.extend(bad);
                continue;
            }
            let read = if key.starts_with(ALERT_PREFIX) {
                let read = read_record(&value, "alert", &mut state.alerts);
                if read.is_ok() {
                    state.alert_keys.resize(state.alerts.len() - 1, Vec::new());
                    state.alert_keys.push(key.clone());
                }
                read
            } else if key.starts_with(GROUP_PREFIX) {
                read_record(&value, "group", &mut state.groups)
            } else if key.starts_with(SILENCE_PREFIX) {
                read_record(&value, "silence", &mut state.silences)
            } else {
                continue;
            };
            if let Err((kind, reason)) = read {
                unreadable.push(UnrestorableItem {
                    kind,
                    record: serde_json::Value::String(String::from_utf8_lossy(&value).into_owned()),
                    reason,
                    key: Some(key),
                });
            }
        }
        Ok((state, unreadable))
    }
}

/// Reads one item record into `into`, or says what it was and why it does not read.
fn read_record<T: serde::de::DeserializeOwned>(
    value: &[u8],
    kind: &'static str,
    into: &mut Vec<T>,
) -> Result<(), (&'static str, String)> {
    let item = serde_json::from_slice(value).map_err(|e| (kind, e.to_string()))?;
    into.push(item);
    Ok(())
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
                key: None,
            }),
        }
    }
}

/// One alert as listed by `GET /api/v1/alerts` and `atalaya alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// Alertmanager's fingerprint of the labels.
    pub fingerprint: String,
    pub status: Status,
    pub labels: atalaya_bus::Labels,
    pub annotations: atalaya_bus::labels::Annotations,
    pub starts_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    pub value: serde_json::Value,
    /// Ids of the active silences that match it.
    pub silenced_by: Vec<String>,
    /// Fingerprints (Alertmanager's) of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
    /// The receivers its routes reach.
    pub receivers: Vec<String>,
    /// When the router last heard of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// One aggregation group as listed by Alertmanager's `GET /api/v2/alerts/groups`: the
/// group's labels, its receiver, and the alerts in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub labels: atalaya_bus::Labels,
    pub receiver: String,
    pub alerts: Vec<AlertView>,
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
    /// The whole state; clears [`Router::is_dirty`].
    pub fn snapshot(&mut self) -> RouterState {
        self.changed = Default::default();
        let mut held: Vec<&Held> = self.alerts.values().map(|h| &**h).collect();
        held.sort_by(|a, b| a.alert.fingerprint.cmp(&b.alert.fingerprint));
        RouterState {
            alerts: held.iter().map(|h| h.alert.clone()).collect(),
            alert_keys: held.iter().map(|h| alert_key(h.record)).collect(),
            groups: self
                .groups
                .iter()
                .map(|(k, g)| (k.clone(), g.clone()))
                .collect(),
            silences: self.silences.values().map(|(s, _)| s.clone()).collect(),
        }
    }

    /// The records of the items changed since the last call (or [`Router::snapshot`]): a
    /// put per item still held, a delete per item gone. Clears [`Router::is_dirty`].
    pub fn take_changes(&mut self) -> serde_json::Result<RouterChanges> {
        let changed = std::mem::take(&mut self.changed);
        let mut changes = RouterChanges::default();
        for fingerprint in changed.alerts {
            if let Some(held) = self.alerts.get(&fingerprint) {
                let record = serde_json::to_vec(&held.alert)?;
                changes.puts.push((alert_key(held.record), record));
            }
        }
        changes.deletes.extend(changed.deleted);
        for group_key in changed.groups {
            let key = key(GROUP_PREFIX, &group_key);
            match self.groups.get(&group_key) {
                Some(group) => changes
                    .puts
                    .push((key, serde_json::to_vec(&(&group_key, group))?)),
                None => changes.deletes.push(key),
            }
        }
        for id in changed.silences {
            let key = key(SILENCE_PREFIX, &id);
            match self.silences.get(&id) {
                Some((silence, _)) => changes.puts.push((key, serde_json::to_vec(silence)?)),
                None => changes.deletes.push(key),
            }
        }
        Ok(changes)
    }

    /// Marks every item changed, so the next [`Router::take_changes`] writes the whole state
    /// (after a restore from the legacy record).
    pub fn mark_all_changed(&mut self) {
        self.changed.alerts.extend(self.alerts.keys().cloned());
        self.changed.groups.extend(self.groups.keys().cloned());
        self.changed.silences.extend(self.silences.keys().cloned());
    }

    /// Brings back a persisted state, then routes the alerts through the current policy
    /// (which may have changed while atalaya was down). Silences that no longer compile are
    /// returned, for the caller to set aside. Groups whose flush fell due while down flush
    /// at the next tick.
    pub fn restore(&mut self, state: RouterState, now: Timestamp) -> Vec<UnrestorableItem> {
        let keys = state.alert_keys;
        let numbered = |at: usize| keys.get(at).and_then(|key| alert_record(key));
        self.next_record = (0..state.alerts.len())
            .filter_map(numbered)
            .max()
            .unwrap_or(0);
        self.alerts.clear();
        for (at, alert) in state.alerts.into_iter().enumerate() {
            let fingerprint = alert.fingerprint.clone();
            let record = match numbered(at) {
                Some(record) => record,
                // Keyed by fingerprint (or in the legacy record): numbered now, and moved
                // at the next write.
                None => {
                    self.next_record += 1;
                    self.changed.alerts.insert(fingerprint.clone());
                    self.changed
                        .deleted
                        .extend(keys.get(at).filter(|key| !key.is_empty()).cloned());
                    self.next_record
                }
            };
            // How many groups hold it: counted when set_policy routes it, below.
            let held = Box::new(Held {
                alert,
                groups: 0,
                record,
            });
            if let Some(twin) = self.alerts.insert(fingerprint, held) {
                // Two records of one alert: the later read stays.
                self.changed.deleted.push(alert_key(twin.record));
            }
        }
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
                    key: Some(key(SILENCE_PREFIX, &silence.id)),
                }),
            }
        }
        let policy = self.policy.clone();
        self.set_policy(policy, now);
        unrestorable
    }

    /// How many alerts held are active, suppressed (silenced or inhibited) and resolved, as
    /// [`AlertView::state`] says, without building the views (for gauges: no copy of every
    /// alert's labels each time).
    pub fn alert_states(&self, now: Timestamp) -> [(&'static str, i64); 3] {
        let (mut active, mut suppressed, mut resolved) = (0, 0, 0);
        for alert in self.held() {
            if alert.is_resolved(now) {
                resolved += 1;
            } else if self.silenced_by(alert, now).is_empty()
                && self.inhibited_by(alert, now).is_none()
            {
                active += 1;
            } else {
                suppressed += 1;
            }
        }
        [
            ("active", active),
            ("suppressed", suppressed),
            ("resolved", resolved),
        ]
    }

    /// Every alert held, firing first then by start, with why it is or is not notified.
    pub fn alerts(&self, now: Timestamp) -> Vec<AlertView> {
        let mut views: Vec<AlertView> = self.held().map(|a| self.view(a, now)).collect();
        views.sort_by(|a, b| {
            (a.status == Status::Resolved, a.starts_at, &a.fingerprint).cmp(&(
                b.status == Status::Resolved,
                b.starts_at,
                &b.fingerprint,
            ))
        });
        views
    }

    /// The alert the router knows by `fingerprint` (its own identity, [`RoutedAlert`]'s),
    /// with why it is or is not notified.
    pub fn view_of(&self, fingerprint: &str, now: Timestamp) -> Option<AlertView> {
        self.alert(fingerprint).map(|a| self.view(a, now))
    }

    /// The aggregation groups that hold alerts, ordered by key, each with its alerts
    /// (ordered by fingerprint, as Alertmanager orders them).
    pub fn groups(&self, now: Timestamp) -> Vec<GroupView> {
        self.groups
            .values()
            .filter(|g| !g.alerts.is_empty())
            .map(|g| {
                let mut alerts: Vec<AlertView> = g
                    .alerts
                    .iter()
                    .filter_map(|fp| self.alert(fp))
                    .map(|a| self.view(a, now))
                    .collect();
                alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
                GroupView {
                    labels: g.labels.clone(),
                    receiver: g.receiver.clone(),
                    alerts,
                }
            })
            .collect()
    }

    fn view(&self, a: &RoutedAlert, now: Timestamp) -> AlertView {
        AlertView {
            fingerprint: labels_fingerprint(&a.labels),
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
                .map(|source| labels_fingerprint(&source.labels))
                .into_iter()
                .collect(),
            receivers: self
                .policy
                .tree
                .matching(&a.labels)
                .into_iter()
                .map(|r| r.receiver.clone())
                .collect(),
            updated_at: a.updated_at,
            generator_url: a.generator_url.clone(),
        }
    }
}
