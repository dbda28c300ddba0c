//! The sans-IO router: alerts and time in, notifications out, as Alertmanager's dispatcher
//! and notification pipeline do it.
//!
//! Each alert is routed through the tree ([`super::tree`]) into one aggregation group per
//! route reached (the route plus the values of its `group_by` labels). A new group waits
//! `group_wait` before its first flush, then flushes every `group_interval`. A flush
//! drops the group's inhibited and silenced alerts; if its route is muted by time intervals
//! it sends nothing; otherwise, per integration of the route's receiver, it notifies when
//! the group changed since that integration was last notified (a new firing alert, or a
//! resolved one when `send_resolved`), or when `repeat_interval` has passed. Resolved
//! alerts leave the group after a flush; an empty group is gone.
//!
//! The caller drives it with [`Router::on_alert`], [`Router::on_tick`] when
//! [`Router::next_deadline`] comes, silences ([`Router::add_silence`],
//! [`Router::expire_silence`]) and policy reloads ([`Router::set_policy`]), writes the
//! notifications it returns to the outbox, and persists [`Router::take_changes`]: one store
//! record per alert, group and silence, written only when that item changed, so a change
//! costs O(that item) however many alerts are held.
//!
//! # Layout
//! - this file: the router's state, grouping and flushing.
//! - `alert`: the alerts the router holds, from the engine or from Prometheus.
//! - `state`: persistence ([`RouterState`]) and the views listed by the API.

mod alert;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use atalaya_bus::Labels;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use self::alert::{RoutedAlert, posted_alert_id};
pub use self::state::{
    ALERT_PREFIX, AlertView, GROUP_PREFIX, GroupView, LEGACY_KEY, RouterChanges, RouterState,
    SILENCE_PREFIX, UnrestorableItem,
};
use super::config::RoutingPolicy;
use super::matcher::Matchers;
use super::quiet::is_quiet;
use super::silence::{MuteAll, Silence, SilenceError, SilenceState};
use super::time_limits::later;
use super::tree::{GroupBy, Route};
use crate::alert::{Output, fingerprint_text, fnv1a};
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status, common};

/// How long expired silences are kept (listed) before they are forgotten, as Alertmanager's
/// default `--data.retention`.
const SILENCE_RETENTION: jiff::SignedDuration = jiff::SignedDuration::from_hours(120);

/// The router.
pub struct Router {
    policy: Arc<RoutingPolicy>,
    /// The policy's routes by id, without their children.
    routes: HashMap<String, Route>,
    /// Every alert some group holds, by fingerprint. Boxed: the table keeps its spare
    /// slots (up to half of them) a pointer wide instead of an alert wide.
    alerts: HashMap<String, Box<Held>>,
    /// Aggregation groups by group key.
    groups: BTreeMap<String, Group>,
    /// Silences by id, with their compiled matchers.
    silences: BTreeMap<String, (Silence, Matchers)>,
    /// Every group's next flush, soonest first.
    deadlines: BTreeSet<(Timestamp, String)>,
    /// The store key number the next alert taken in gets ([`Held::record`]).
    next_record: u64,
    /// What changed since the last [`Router::take_changes`].
    changed: Changed,
}

/// The items changed since the state was last taken for the store, by key. An item changed
/// and no longer held is deleted from the store.
#[derive(Default)]
struct Changed {
    /// Alerts to write, by fingerprint (an alert no longer held is in `deleted`).
    alerts: HashSet<String>,
    /// Store keys of alert records to delete: alerts forgotten, records moved.
    deleted: Vec<Vec<u8>>,
    groups: HashSet<String>,
    silences: HashSet<String>,
}

impl Changed {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.deleted.is_empty()
            && self.groups.is_empty()
            && self.silences.is_empty()
    }
}

/// An alert the router holds, and how many groups hold it: it is forgotten when none does.
struct Held {
    alert: RoutedAlert,
    groups: u32,
    /// Its record's number in the store's key ([`state::alert_key`]): given in the order
    /// alerts are taken in, so a commit of new alerts adds to the end of the store's tree
    /// instead of a leaf here and there (what made each commit's cost grow with the
    /// alerts held when records were keyed by fingerprint).
    record: u64,
}

/// An aggregation group: the alerts one route groups together under one set of label
/// values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    route_id: String,
    receiver: String,
    labels: Labels,
    /// Fingerprints of the alerts in the group. Not stored: a restore routes the alerts
    /// again, which fills it (and keeps a group record small whatever its size).
    #[serde(skip)]
    alerts: HashSet<String>,
    next_flush: Timestamp,
    has_flushed: bool,
    /// Per integration of the receiver: what it was last notified of (Alertmanager's
    /// notification log).
    notified: Vec<Option<NotifyLog>>,
}

/// What one integration was last told about one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NotifyLog {
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
    at: Timestamp,
}

impl Router {
    pub fn new(policy: Arc<RoutingPolicy>) -> Self {
        Self {
            routes: routes_by_id(&policy),
            policy,
            alerts: HashMap::new(),
            groups: BTreeMap::new(),
            silences: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_record: 0,
            changed: Changed::default(),
        }
    }

    pub fn policy(&self) -> &Arc<RoutingPolicy> {
        &self.policy
    }

    /// When [`Router::on_tick`] should next be called.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Takes in a new or updated alert. A resolved alert the router never saw firing is
    /// dropped: there is nobody to tell.
    pub fn on_alert(&mut self, now: Timestamp, alert: RoutedAlert) {
        let (mut alert, groups, record) = match self.alerts.get(&alert.fingerprint) {
            Some(known) => (known.alert.merge(alert), known.groups, known.record),
            None if alert.is_resolved(now) => return,
            None => {
                self.next_record += 1;
                (alert, 0, self.next_record)
            }
        };
        alert.updated_at = Some(now);
        self.changed.alerts.insert(alert.fingerprint.clone());
        let groups = groups + self.route(&alert, now);
        self.alerts.insert(
            alert.fingerprint.clone(),
            Box::new(Held {
                alert,
                groups,
                record,
            }),
        );
    }

    /// Routes the alerts among the rule engine's outputs (actions are not the router's):
    /// how the service and `atalaya replay` hand the engine's work on. Returns the
    /// fingerprints of the firing alerts it took in anew (it did not hold them), for the
    /// service's history to tell how they were routed.
    pub fn on_outputs(&mut self, now: Timestamp, outputs: &[Output]) -> Vec<String> {
        let mut taken_in = Vec::new();
        for output in outputs {
            if let Output::Alert(alert) = output
                && let Some(alert) = RoutedAlert::from_engine(alert)
            {
                let new = !alert.is_resolved(now) && !self.holds(&alert.fingerprint);
                let fingerprint = new.then(|| alert.fingerprint.clone());
                self.on_alert(now, alert);
                taken_in.extend(fingerprint);
            }
        }
        taken_in
    }

    /// Puts `alert` in the group of every route it reaches, creating groups as needed;
    /// returns how many groups took it in (did not hold it already).
    fn route(&mut self, alert: &RoutedAlert, now: Timestamp) -> u32 {
        let mut taken = 0;
        for route in self.policy.tree.matching(&alert.labels) {
            let labels = group_labels(&route.group_by, &alert.labels);
            let key = group_key(&route.id, &labels);
            let integrations = self
                .policy
                .receiver(&route.receiver)
                .map_or(0, |r| r.integrations.len());
            let mut created = false;
            let group = self.groups.entry(key.clone()).or_insert_with(|| {
                created = true;
                Group {
                    route_id: route.id.clone(),
                    receiver: route.receiver.clone(),
                    labels,
                    alerts: HashSet::new(),
                    next_flush: later(now, route.group_wait),
                    has_flushed: false,
                    notified: vec![None; integrations],
                }
            });
            if group.alerts.insert(alert.fingerprint.clone()) {
                taken += 1;
            }
            let before = group.next_flush;
            // An alert that has been firing longer than the wait needs no waiting for
            // company (Alertmanager does the same).
            if !group.has_flushed && later(alert.starts_at, route.group_wait) <= now {
                group.next_flush = group.next_flush.min(now);
            }
            let after = group.next_flush;
            if created || before != after {
                self.deadlines.remove(&(before, key.clone()));
                self.deadlines.insert((after, key.clone()));
                self.changed.groups.insert(key);
            }
        }
        taken
    }

    /// Flushes every group that is due; returns the notifications to write to the outbox.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Notification> {
        let due: Vec<String> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            self.flush(&key, now, &mut out);
        }
        let changed = &mut self.changed;
        self.silences.retain(|id, (s, _)| {
            let kept = later(s.ends_at, SILENCE_RETENTION) > now;
            if !kept {
                changed.silences.insert(id.clone());
            }
            kept
        });
        out
    }

    fn flush(&mut self, key: &str, now: Timestamp, out: &mut Vec<Notification>) {
        let Some(mut group) = self.groups.remove(key) else {
            return;
        };
        self.deadlines.remove(&(group.next_flush, key.to_owned()));
        self.changed.groups.insert(key.to_owned());
        let Some(route) = self.routes.get(&group.route_id) else {
            // Routes change only through set_policy, which regroups: cannot happen.
            return;
        };
        group.next_flush = later(now, route.group_interval);
        group.has_flushed = true;

        // Alertmanager's pipeline: drop inhibited and silenced alerts, then time muting,
        // then per integration dedup against what it was last told.
        let mut alerts: Vec<&RoutedAlert> = group
            .alerts
            .iter()
            .filter_map(|fp| self.alert(fp))
            .filter(|a| self.inhibited_by(a, now).is_none() && self.silenced_by(a, now).is_empty())
            .collect();
        alerts.sort_by(|a, b| {
            (!a.shown_firing(now), a.starts_at, &a.fingerprint).cmp(&(
                !b.shown_firing(now),
                b.starts_at,
                &b.fingerprint,
            ))
        });
        let muted = self.time_muted(route, now);
        if !alerts.is_empty() && !muted {
            let receiver = self.policy.receiver(&group.receiver);
            let integrations = receiver.map_or(&[][..], |r| &r.integrations[..]);
            group.notified.resize(integrations.len(), None);
            let firing: BTreeSet<String> = alerts
                .iter()
                .filter(|a| a.shown_firing(now))
                .map(|a| a.fingerprint.clone())
                .collect();
            let resolved: BTreeSet<String> = alerts
                .iter()
                .filter(|a| !a.shown_firing(now))
                .map(|a| a.fingerprint.clone())
                .collect();
            for (index, integration) in integrations.iter().enumerate() {
                let send_resolved = integration.send_resolved;
                let log = &mut group.notified[index];
                if !needs_update(
                    log.as_ref(),
                    &firing,
                    &resolved,
                    send_resolved,
                    route.repeat_interval,
                    now,
                ) {
                    continue;
                }
                let sent: Vec<&RoutedAlert> = alerts
                    .iter()
                    .copied()
                    .filter(|a| send_resolved || a.shown_firing(now))
                    .collect();
                *log = Some(NotifyLog {
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    at: now,
                });
                if sent.is_empty() {
                    continue;
                }
                let mut notification = notification(key, &group, index, &sent, now);
                notification.silent =
                    is_quiet(integration, &notification, &self.policy.time_intervals, now);
                out.push(notification);
            }
        }
        // Resolved alerts have been told (or were muted, as in Alertmanager): they leave the
        // group. One-shot alerts stay through time muting, to be told once it ends.
        let mut left = Vec::new();
        group.alerts.retain(|fp| {
            let stays = self
                .alerts
                .get(fp)
                .is_some_and(|a| !a.alert.is_resolved(now) || (a.alert.is_instant() && muted));
            if !stays {
                left.push(fp.clone());
            }
            stays
        });
        if !group.alerts.is_empty() {
            self.deadlines.insert((group.next_flush, key.to_owned()));
            self.groups.insert(key.to_owned(), group);
        }
        for fingerprint in left {
            self.release(fingerprint);
        }
    }

    /// A group let go of an alert: once no group holds it (resolved, and told), it is
    /// forgotten.
    fn release(&mut self, fingerprint: String) {
        let Some(held) = self.alerts.get_mut(&fingerprint) else {
            return;
        };
        held.groups = held.groups.saturating_sub(1);
        if held.groups == 0 {
            self.changed.deleted.push(state::alert_key(held.record));
            self.alerts.remove(&fingerprint);
            self.changed.alerts.remove(&fingerprint);
        }
    }

    /// The alert held by this fingerprint.
    fn alert(&self, fingerprint: &str) -> Option<&RoutedAlert> {
        self.alerts.get(fingerprint).map(|held| &held.alert)
    }

    /// Every alert held, in no order.
    fn held(&self) -> impl Iterator<Item = &RoutedAlert> {
        self.alerts.values().map(|held| &held.alert)
    }

    /// Whether notifications of `route` are muted at `now` by its time intervals.
    fn time_muted(&self, route: &Route, now: Timestamp) -> bool {
        let inside = |name: &String| {
            self.policy
                .time_intervals
                .get(name)
                .is_some_and(|i| i.contains(now))
        };
        route.mute_time_intervals.iter().any(inside)
            || (!route.active_time_intervals.is_empty()
                && !route.active_time_intervals.iter().any(inside))
    }

    /// The firing alert that inhibits `alert`, if any.
    fn inhibited_by(&self, alert: &RoutedAlert, now: Timestamp) -> Option<&RoutedAlert> {
        for rule in &self.policy.inhibit_rules {
            if !rule.target.matches(&alert.labels) {
                continue;
            }
            // An alert matching both sides is not inhibited by another that does too
            // (Alertmanager's rule, so such alerts cannot mute each other).
            let two_sided = rule.source.matches(&alert.labels);
            let source = self.held().find(|s| {
                s.fingerprint != alert.fingerprint
                    && !s.is_resolved(now)
                    && rule.source.matches(&s.labels)
                    && rule.equal_labels(&s.labels, &alert.labels)
                    && !(two_sided && rule.target.matches(&s.labels))
            });
            if source.is_some() {
                return source;
            }
        }
        None
    }

    /// The ids of the active silences that match `alert`.
    fn silenced_by(&self, alert: &RoutedAlert, now: Timestamp) -> Vec<&str> {
        self.silences
            .values()
            .filter(|(s, m)| s.state(now) == SilenceState::Active && m.matches(&alert.labels))
            .map(|(s, _)| s.id.as_str())
            .collect()
    }

    /// Creates a silence, or replaces the one with the same id. The caller gives the id;
    /// `mute_all` says whether the silence may mute every alert.
    pub fn add_silence(
        &mut self,
        now: Timestamp,
        silence: Silence,
        mute_all: MuteAll,
    ) -> Result<(), SilenceError> {
        let matchers = silence.validate(now, mute_all)?;
        if let Some((old, _)) = self.silences.get(&silence.id)
            && old.state(now) == SilenceState::Expired
        {
            return Err(SilenceError::AlreadyExpired(silence.id));
        }
        self.changed.silences.insert(silence.id.clone());
        self.silences
            .insert(silence.id.clone(), (silence, matchers));
        Ok(())
    }

    /// Ends a silence now. Alerts it held that are still firing are notified at their
    /// group's next flush.
    pub fn expire_silence(&mut self, now: Timestamp, id: &str) -> Result<(), SilenceError> {
        let Some((silence, _)) = self.silences.get_mut(id) else {
            return Err(SilenceError::NotFound(id.to_owned()));
        };
        match silence.state(now) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_owned())),
            SilenceState::Pending => silence.starts_at = now,
            SilenceState::Active => {}
        }
        silence.ends_at = now;
        silence.updated_at = now;
        self.changed.silences.insert(id.to_owned());
        Ok(())
    }

    /// Every silence kept, newest first.
    pub fn silences(&self) -> Vec<Silence> {
        let mut all: Vec<Silence> = self.silences.values().map(|(s, _)| s.clone()).collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        all
    }

    /// Replaces the policy. Alerts are routed again; groups that still exist (same route
    /// and labels) keep their timers and what each integration was told.
    pub fn set_policy(&mut self, policy: Arc<RoutingPolicy>, now: Timestamp) {
        self.routes = routes_by_id(&policy);
        self.policy = policy;
        let old = std::mem::take(&mut self.groups);
        self.deadlines.clear();
        let mut alerts = std::mem::take(&mut self.alerts);
        for held in alerts.values_mut() {
            held.groups = self.route(&held.alert, now);
        }
        self.alerts = alerts;
        for (key, group) in &mut self.groups {
            if let Some(previous) = old.get(key)
                && previous.receiver == group.receiver
            {
                group.next_flush = previous.next_flush;
                group.has_flushed = previous.has_flushed;
                group.notified = previous.notified.clone();
            }
        }
        self.deadlines = self
            .groups
            .iter()
            .map(|(key, g)| (g.next_flush, key.clone()))
            .collect();
        // Groups gone are deleted from the store, groups made or kept written.
        self.changed.groups.extend(old.into_keys());
        self.changed.groups.extend(self.groups.keys().cloned());
    }

    /// How many alerts the router holds.
    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    /// Whether the router holds an alert with this fingerprint.
    pub fn holds(&self, fingerprint: &str) -> bool {
        self.alerts.contains_key(fingerprint)
    }

    /// Whether something changed since the state was last taken for the store.
    pub fn is_dirty(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// Alertmanager's `DedupStage.needsUpdate`: whether an integration must be told about a
/// group whose alerts now are `firing` and `resolved`, given what it was last told.
fn needs_update(
    log: Option<&NotifyLog>,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    send_resolved: bool,
    repeat: std::time::Duration,
    now: Timestamp,
) -> bool {
    let Some(log) = log else {
        // Never told: only firing alerts are news.
        return !firing.is_empty();
    };
    if !firing.is_subset(&log.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell it if firing alerts were told (clears the log, even
        // without send_resolved); alerts that came and went between flushes are no news.
        return !log.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&log.resolved) {
        return true;
    }
    later(log.at, repeat) <= now
}

/// The labels of `alert` that `group_by` names (those it has).
fn group_labels(group_by: &GroupBy, labels: &Labels) -> Labels {
    match group_by {
        GroupBy::All => labels.clone(),
        GroupBy::Labels(names) => names
            .iter()
            .filter_map(|n| labels.get(n).map(|v| (n, v)))
            .collect(),
    }
}

/// Alertmanager's group key: `route:{label="value", ...}`.
fn group_key(route_id: &str, labels: &Labels) -> String {
    let mut key = format!("{route_id}:{{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            key.push_str(", ");
        }
        key.push_str(name);
        key.push('=');
        key.push_str(&serde_json::Value::String(value.to_owned()).to_string());
    }
    key.push('}');
    key
}

fn routes_by_id(policy: &RoutingPolicy) -> HashMap<String, Route> {
    fn walk(route: &Route, into: &mut HashMap<String, Route>) {
        let mut own = route.clone();
        own.routes.clear();
        into.insert(route.id.clone(), own);
        for child in &route.routes {
            walk(child, into);
        }
    }
    let mut routes = HashMap::new();
    walk(&policy.tree.root, &mut routes);
    routes
}

/// Labels shared by every alert, with the same value.
fn notification(
    key: &str,
    group: &Group,
    integration: usize,
    alerts: &[&RoutedAlert],
    now: Timestamp,
) -> Notification {
    let at = now.as_millisecond().to_string();
    let id = fingerprint_text(fnv1a(&[
        key,
        &group.receiver,
        &integration.to_string(),
        &at,
    ]));
    let alerts: Vec<NotifiedAlert> = alerts.iter().map(|a| a.notified(now)).collect();
    let status = if alerts.iter().any(|a| a.status == Status::Firing) {
        Status::Firing
    } else {
        Status::Resolved
    };
    Notification {
        id,
        receiver: group.receiver.clone(),
        integration,
        group_key: key.to_owned(),
        status,
        group_labels: group.labels.clone(),
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        alerts,
        created_at: now,
        silent: false,
    }
}
