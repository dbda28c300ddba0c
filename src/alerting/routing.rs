//! Routing in the service: the sans-IO router beside the rule engine, in the same task, so
//! an alert the engine emits is routed, and the notifications it causes are in the outbox,
//! before the events behind it are acknowledged.
//!
//! [`Routing`] holds the router, persists its state (alerts, groups and what each
//! integration was told, silences; one record per item, only the items that changed) in the
//! store's `router` table — in the rules runner's commit, one transaction with the engine's
//! series and the outbox — hands notifications to the outbox, reloads the policy file, and
//! answers the HTTP API through [`RouterCommand`]s.

use atalaya_connectors::notifiers::integration_kinds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use atalaya_bus::delivery::notification::Notification;
use atalaya_bus::store::{Store, TableBatch};

use super::history::{History, HistoryEntry, SilencedBy, What};
use atalaya_rules::alert::{Alert, Output};
use atalaya_rules::routing::config::{RoutingPolicy, load_policy};
use atalaya_rules::routing::router::{
    AlertView, GroupView, LEGACY_KEY, RoutedAlert, Router, RouterChanges, RouterState,
};
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceError, SilenceState};
use jiff::{SignedDuration, Timestamp};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::alerting::outbox::Outbox;

/// The store table of the router's state.
pub const ROUTER_TABLE: &str = "router";

/// What the HTTP API asks of the router.
pub enum RouterCommand {
    /// Alerts posted by Prometheus (`POST /api/v2/alerts`): all taken, or all refused.
    Post(Vec<RoutedAlert>, oneshot::Sender<Result<(), PostRefused>>),
    ListAlerts(oneshot::Sender<Vec<AlertView>>),
    /// The aggregation groups holding alerts (`GET /api/v2/alerts/groups`).
    ListGroups(oneshot::Sender<Vec<GroupView>>),
    /// The policy in force (`GET /api/v2/status`, `GET /api/v2/receivers`).
    Policy(oneshot::Sender<Arc<RoutingPolicy>>),
    ListSilences(oneshot::Sender<Vec<Silence>>),
    AddSilence(Silence, MuteAll, oneshot::Sender<Result<(), SilenceError>>),
    ExpireSilence(String, oneshot::Sender<Result<(), SilenceError>>),
    /// Why a rule does or does not fire (`atalaya explain --rule`): answered by the rules
    /// runner from the engine, beside which the router lives.
    ExplainRule(
        String,
        oneshot::Sender<Option<atalaya_rules::engine::RuleExplanation>>,
    ),
    /// Every rule explained, with the last reload's outcome (the web page's rules): answered
    /// by the rules runner too.
    RulesOverview(oneshot::Sender<RulesOverview>),
}

/// Every loaded rule, series by series, and how the last reload went.
pub struct RulesOverview {
    pub rules: Vec<atalaya_rules::engine::RuleExplanation>,
    /// When the rules were last loaded successfully.
    pub loaded_at: Option<Timestamp>,
    /// The errors of the last reload, when it was refused (the running rules were kept).
    pub reload_error: Option<String>,
    /// The rules' revision (Git commit or `.revision`), when known.
    pub rules_commit: Option<String>,
}

/// How a silence made "until resolved" (the web page's button) starts its comment, followed
/// by the fingerprint of the alert it was made for: [`Routing::expire_acknowledged`] expires
/// it once that alert resolves or is gone. Kept in the silence itself, so a restart keeps it.
pub const UNTIL_RESOLVED: &str = "until resolved: alert ";

/// The longest a silence "until resolved" lasts when its alert never resolves.
pub const UNTIL_RESOLVED_HOLD: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Why posted alerts were refused, whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostRefused {
    #[error("{posted} alerts in one request; at most {max} (routing.max_alerts_per_request)")]
    TooManyInRequest { posted: usize, max: usize },
    #[error(
        "the router holds {held} alerts and these would add {new}; at most {max} (routing.max_alerts)"
    )]
    TooManyHeld { held: usize, new: usize, max: usize },
}

impl PostRefused {
    /// The `reason` label of `atalaya_posted_alerts_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooManyInRequest { .. } => "request",
            Self::TooManyHeld { .. } => "total",
        }
    }
}

/// The bounds on alerts posted over HTTP.
#[derive(Debug, Clone, Copy)]
pub struct AlertLimits {
    pub per_request: usize,
    pub total: usize,
}

/// Gauges of the router's alerts and silences.
#[derive(Clone)]
pub struct RoutingMetrics {
    /// `state`: active, suppressed (silenced or inhibited), resolved (not yet told).
    alerts: IntGaugeVec,
    /// `state`: active, pending, expired (kept for listing).
    silences: IntGaugeVec,
    /// `reason`: request (too many in one post), total (the router holds too many).
    refused: IntCounterVec,
}

impl RoutingMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let alerts = IntGaugeVec::new(
            Opts::new(
                "atalaya_routed_alerts",
                "Alerts held by the router, by state (active, suppressed, resolved).",
            ),
            &["state"],
        )?;
        let silences = IntGaugeVec::new(
            Opts::new(
                "atalaya_silences",
                "Silences by state (active, pending, expired).",
            ),
            &["state"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "atalaya_posted_alerts_refused_total",
                "Alerts refused at POST /api/v2/alerts, by reason (request: too many in one post; total: the router holds too many).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(alerts.clone()))?;
        registry.register(Box::new(silences.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        for reason in ["request", "total"] {
            refused.with_label_values(&[reason]).inc_by(0);
        }
        for state in ["active", "suppressed", "resolved"] {
            alerts.with_label_values(&[state]).set(0);
        }
        for state in ["active", "pending", "expired"] {
            silences.with_label_values(&[state]).set(0);
        }
        Ok(Self {
            alerts,
            silences,
            refused,
        })
    }
}

pub struct Routing {
    pub router: Router,
    pub outbox: Outbox,
    /// The policy file, reloaded with the rules; `None`: the built-in console policy.
    pub policy_file: Option<PathBuf>,
    /// Tells the outbox's delivery about a new policy.
    pub policy_tx: watch::Sender<Arc<RoutingPolicy>>,
    pub metrics: RoutingMetrics,
    pub limits: AlertLimits,
    /// Where what happens to alerts is kept; `None` in tests that do not look.
    pub history: Option<History>,
    /// What happened to alerts since the last commit, written with it.
    pub happened: Vec<HistoryEntry>,
}

/// Reads the policy the service routes by: the file when one is configured, else every
/// alert to the console.
pub fn initial_policy(file: Option<&Path>) -> Result<RoutingPolicy, Vec<String>> {
    match file {
        Some(path) => load_policy(path, &integration_kinds())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect()),
        None => Ok(RoutingPolicy::console_default()),
    }
}

impl Routing {
    /// Brings back the router's persisted state. A state stored whole by an earlier version
    /// is rewritten as item records at once, in one transaction.
    pub fn restore(&mut self, store: &Store, now: Timestamp) -> anyhow::Result<()> {
        let records = store.scan(ROUTER_TABLE).context("reading router state")?;
        if records.is_empty() {
            return Ok(());
        }
        let legacy = records
            .iter()
            .find(|(key, _)| key == LEGACY_KEY)
            .map(|(_, value)| value.clone());
        match RouterState::from_records(records) {
            Ok((state, unreadable)) => {
                let unrestorable = self.router.restore(state, now);
                for item in unreadable.iter().chain(&unrestorable) {
                    warn!(kind = item.kind, reason = %item.reason, "A stored router item cannot be restored; set aside.");
                    store
                        .set_aside(
                            ROUTER_TABLE,
                            item.kind.as_bytes(),
                            item.record.to_string().as_bytes(),
                            &item.reason,
                        )
                        .context("setting a router item aside")?;
                    if let Some(key) = &item.key {
                        store
                            .remove(ROUTER_TABLE, key)
                            .context("removing a router item set aside")?;
                    }
                }
                if legacy.is_some() {
                    self.router.mark_all_changed();
                    let mut changes = self.take_changes()?;
                    changes.deletes.push(LEGACY_KEY.to_vec());
                    store
                        .write_tables(&[TableBatch {
                            table: ROUTER_TABLE,
                            puts: &changes.puts,
                            deletes: &changes.deletes,
                        }])
                        .context("rewriting the router state as item records")?;
                }
                info!(
                    alerts = self.router.alert_count(),
                    silences = self.router.silences().len(),
                    "Router state restored."
                );
            }
            // An unreadable state must not keep atalaya down; alerts still firing are
            // routed again as the engine reports them.
            Err(e) => {
                warn!(error = %e, "Router state unreadable; set aside, starting without it.");
                let bytes = legacy.unwrap_or_default();
                store
                    .set_aside(ROUTER_TABLE, LEGACY_KEY, &bytes, &e.to_string())
                    .context("setting the router state aside")?;
                store
                    .remove(ROUTER_TABLE, LEGACY_KEY)
                    .context("removing the router state set aside")?;
            }
        }
        self.update_metrics(now);
        Ok(())
    }

    /// Routes the alerts among the engine's outputs ([`Router::on_outputs`], as `atalaya
    /// replay` does), and records how the router took in those it did not hold.
    pub fn on_outputs(&mut self, now: Timestamp, outputs: &[Output]) {
        let taken_in = self.router.on_outputs(now, outputs);
        // How it was routed is told when the router takes it in, not again at each change
        // of an alert it holds (a flapping one).
        if self.history.is_some() {
            for fingerprint in taken_in {
                self.record_routing(now, &fingerprint);
            }
        }
    }

    /// How the router took a firing alert in: routes, receivers, silences and inhibitions.
    fn record_routing(&mut self, now: Timestamp, fingerprint: &str) {
        let Some(view) = self.router.view_of(fingerprint, now) else {
            return;
        };
        let routes = self
            .router
            .policy()
            .tree
            .matching(&view.labels)
            .iter()
            .map(|r| r.id.clone())
            .collect();
        let silenced_by = if view.silenced_by.is_empty() {
            Vec::new()
        } else {
            let silences = self.router.silences();
            view.silenced_by
                .iter()
                .map(|id| SilencedBy {
                    silence: id.clone(),
                    created_by: silences
                        .iter()
                        .find(|s| &s.id == id)
                        .map(|s| s.created_by.clone())
                        .unwrap_or_default(),
                })
                .collect()
        };
        self.happened.push(HistoryEntry {
            at: now,
            alertname: view
                .labels
                .get("alertname")
                .map(str::to_owned)
                .unwrap_or_default(),
            fingerprint: view.fingerprint,
            what: What::Routed {
                routes,
                receivers: view.receivers,
                silenced_by,
                inhibited_by: view.inhibited_by,
            },
        });
    }

    /// Flushes the groups that are due: the notifications to write to the outbox, in the
    /// transaction that also holds [`Routing::take_changes`].
    pub fn flush_due(&mut self, now: Timestamp) -> Vec<Notification> {
        if self.router.next_deadline().is_none_or(|d| d > now) {
            return Vec::new();
        }
        let notifications = self.router.on_tick(now);
        for n in &notifications {
            for alert in &n.alerts {
                self.happened.push(HistoryEntry {
                    at: now,
                    fingerprint: alert.fingerprint.clone(),
                    alertname: alert
                        .labels
                        .get("alertname")
                        .map(str::to_owned)
                        .unwrap_or_default(),
                    what: What::Notified {
                        notification: n.id.clone(),
                        receiver: n.receiver.clone(),
                        integration: n.integration,
                        group_key: n.group_key.clone(),
                        status: alert.status.as_str().to_owned(),
                    },
                });
            }
        }
        notifications
    }

    /// The router's items changed since the last call, as store writes.
    pub fn take_changes(&mut self) -> anyhow::Result<RouterChanges> {
        self.router.take_changes().context("encoding router state")
    }

    /// Routes the firing alerts of the rule engine that the router does not hold: a store
    /// written by a version that saved the engine and the router in two transactions, and
    /// crashed between them, would otherwise leave them never notified.
    pub fn reconcile(&mut self, now: Timestamp, engine_alerts: &[Alert]) -> usize {
        let mut routed = 0;
        for alert in engine_alerts {
            if let Some(alert) = RoutedAlert::from_engine(alert)
                && !self.router.holds(&alert.fingerprint)
                && !alert.is_resolved(now)
            {
                warn!(fingerprint = %alert.fingerprint, "A firing alert the router did not know; routing it now.");
                self.router.on_alert(now, alert);
                routed += 1;
            }
        }
        routed
    }

    pub fn handle(&mut self, now: Timestamp, command: RouterCommand) {
        match command {
            RouterCommand::Post(alerts, reply) => {
                let result = self.post(now, alerts);
                if let Err(refused) = &result {
                    self.metrics
                        .refused
                        .with_label_values(&[refused.reason()])
                        .inc();
                    warn!(reason = %refused, "Posted alerts refused.");
                }
                let _ = reply.send(result);
            }
            RouterCommand::ListAlerts(reply) => {
                let _ = reply.send(self.router.alerts(now));
            }
            RouterCommand::ListGroups(reply) => {
                let _ = reply.send(self.router.groups(now));
            }
            RouterCommand::Policy(reply) => {
                let _ = reply.send(Arc::clone(self.router.policy()));
            }
            RouterCommand::ListSilences(reply) => {
                let _ = reply.send(self.router.silences());
            }
            RouterCommand::AddSilence(silence, mute_all, reply) => {
                let id = silence.id.clone();
                let made = silence.clone();
                let result = self.router.add_silence(now, silence, mute_all);
                if result.is_ok() {
                    info!(silence = %id, "Silence set.");
                    self.update_metrics(now);
                    self.record_silence(now, &made);
                }
                let _ = reply.send(result);
            }
            // The runner answers it before it gets here; the router has no rules.
            RouterCommand::ExplainRule(_, reply) => {
                let _ = reply.send(None);
            }
            RouterCommand::RulesOverview(reply) => {
                let _ = reply.send(RulesOverview {
                    rules: Vec::new(),
                    loaded_at: None,
                    reload_error: None,
                    rules_commit: None,
                });
            }
            RouterCommand::ExpireSilence(id, reply) => {
                let result = self.router.expire_silence(now, &id);
                if result.is_ok() {
                    info!(silence = %id, "Silence expired.");
                    self.update_metrics(now);
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Expires the silences made "until resolved" ([`UNTIL_RESOLVED`]) whose alert resolved
    /// or is gone; how many.
    pub fn expire_acknowledged(&mut self, now: Timestamp) -> usize {
        let marked: Vec<(String, String)> = self
            .router
            .silences()
            .into_iter()
            .filter(|s| s.state(now) != SilenceState::Expired)
            .filter_map(|s| {
                let fingerprint = s.comment.strip_prefix(UNTIL_RESOLVED)?.trim().to_owned();
                Some((s.id, fingerprint))
            })
            .collect();
        if marked.is_empty() {
            return 0;
        }
        let firing: std::collections::HashSet<String> = self
            .router
            .alerts(now)
            .into_iter()
            .filter(|a| a.state() != "resolved")
            .map(|a| a.fingerprint)
            .collect();
        let mut expired = 0;
        for (id, fingerprint) in marked {
            if !firing.contains(&fingerprint) && self.router.expire_silence(now, &id).is_ok() {
                info!(silence = %id, alert = %fingerprint, "The alert resolved; its silence until resolved expired.");
                expired += 1;
            }
        }
        if expired > 0 {
            self.update_metrics(now);
        }
        expired
    }

    /// A silence made: in the history of every alert held that it silences.
    fn record_silence(&mut self, now: Timestamp, silence: &Silence) {
        for view in self.router.alerts(now) {
            if view.silenced_by.contains(&silence.id) {
                self.happened.push(HistoryEntry {
                    at: now,
                    alertname: view
                        .labels
                        .get("alertname")
                        .map(str::to_owned)
                        .unwrap_or_default(),
                    fingerprint: view.fingerprint,
                    what: What::Silenced {
                        silence: silence.id.clone(),
                        created_by: silence.created_by.clone(),
                        comment: silence.comment.clone(),
                        ends_at: silence.ends_at,
                    },
                });
            }
        }
    }

    /// Takes posted alerts, within [`AlertLimits`]: all of them, or none.
    fn post(&mut self, now: Timestamp, alerts: Vec<RoutedAlert>) -> Result<(), PostRefused> {
        let AlertLimits { per_request, total } = self.limits;
        if alerts.len() > per_request {
            return Err(PostRefused::TooManyInRequest {
                posted: alerts.len(),
                max: per_request,
            });
        }
        let held = self.router.alert_count();
        let new = alerts
            .iter()
            .filter(|a| !self.router.holds(&a.fingerprint))
            .count();
        if new > 0 && held + new > total {
            return Err(PostRefused::TooManyHeld {
                held,
                new,
                max: total,
            });
        }
        // Posted without an end: firing for `global.resolve_timeout` unless posted again.
        let timeout = SignedDuration::try_from(self.router.policy().resolve_timeout)
            .unwrap_or(SignedDuration::MAX);
        for mut alert in alerts {
            alert
                .ends_at
                .get_or_insert_with(|| now.saturating_add(timeout).unwrap_or(Timestamp::MAX));
            self.router.on_alert(now, alert);
        }
        Ok(())
    }

    /// Routes by `policy` from now on: the router regroups and delivery learns the new
    /// receivers.
    pub fn set_policy(&mut self, policy: RoutingPolicy, now: Timestamp) {
        let policy = Arc::new(policy);
        self.router.set_policy(Arc::clone(&policy), now);
        self.policy_tx.send_replace(policy);
    }

    pub fn update_metrics(&self, now: Timestamp) {
        for (state, count) in self.router.alert_states(now) {
            self.metrics.alerts.with_label_values(&[state]).set(count);
        }
        let (mut s_active, mut s_pending, mut s_expired) = (0, 0, 0);
        for silence in self.router.silences() {
            match silence.state(now) {
                SilenceState::Active => s_active += 1,
                SilenceState::Pending => s_pending += 1,
                SilenceState::Expired => s_expired += 1,
            }
        }
        let silences = &self.metrics.silences;
        silences.with_label_values(&["active"]).set(s_active);
        silences.with_label_values(&["pending"]).set(s_pending);
        silences.with_label_values(&["expired"]).set(s_expired);
    }
}
