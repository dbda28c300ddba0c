//! The rule engine and the router driven together on virtual time: what `atalaya replay`
//! runs recorded events through.
//!
//! The service drives both cores with the wall clock (`src/alerting/runner.rs`); here time
//! is the events' own. Before each event, every deadline of the engine (`for:`, absence,
//! windows, active hours) and of the router (`group_wait`, `group_interval`,
//! `repeat_interval`) that falls before it is processed at its own instant, in order, and
//! the engine's alerts are routed at the instant they happen — as the service would have
//! done, had the events arrived live. Nothing is stored or sent: what happens is handed to
//! the caller.

use atalaya_bus::Event;
use atalaya_bus::delivery::notification::Notification;
use jiff::Timestamp;

use crate::alert::{ActionRequest, Alert, Output};
use crate::engine::Engine;
use crate::routing::router::Router;

/// What happened at one virtual instant.
#[derive(Debug, Clone)]
pub enum Happening {
    /// An alert changed state (pending, firing, resolved).
    Transition { at: Timestamp, alert: Alert },
    /// A notification the router would hand to the outbox.
    Notification {
        at: Timestamp,
        notification: Notification,
    },
    /// A rule action that would be published.
    Action {
        at: Timestamp,
        action: ActionRequest,
    },
}

/// The engine and the router on one virtual clock.
pub struct VirtualRun {
    engine: Engine,
    router: Router,
    /// Virtual now: the latest instant processed; `None` before the first.
    now: Option<Timestamp>,
}

impl VirtualRun {
    pub fn new(engine: Engine, router: Router) -> Self {
        Self {
            engine,
            router,
            now: None,
        }
    }

    /// The latest instant processed.
    pub fn now(&self) -> Option<Timestamp> {
        self.now
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Moves virtual time to `until`, processing every deadline of the engine and the
    /// router on the way at its own instant. Time never goes back: an `until` before now
    /// does nothing.
    pub fn advance_to(&mut self, until: Timestamp, out: &mut Vec<Happening>) {
        if self.now.is_some_and(|now| until < now) {
            return;
        }
        loop {
            let engine = self.engine.next_deadline().filter(|d| *d <= until);
            let router = self.router.next_deadline().filter(|d| *d <= until);
            let at = match (engine, router) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            // A deadline left behind (cannot be: each is processed when reached) is
            // processed now rather than moving time back.
            let at = self.now.map_or(at, |now| at.max(now));
            self.now = Some(at);
            if engine.is_some_and(|d| d <= at) {
                let outputs = self.engine.on_tick(at);
                self.hand_on(at, outputs, out);
            }
            if self.router.next_deadline().is_some_and(|d| d <= at) {
                self.flush(at, out);
            }
        }
        self.now = Some(until);
    }

    /// Moves virtual time to `at` (or keeps it, when `at` is earlier than now: an event out
    /// of order is taken when it arrives, as the service would), then evaluates `event`.
    /// Returns the instant it was evaluated at.
    pub fn on_event(
        &mut self,
        at: Timestamp,
        event: &Event,
        out: &mut Vec<Happening>,
    ) -> Timestamp {
        let at = self.now.map_or(at, |now| at.max(now));
        self.advance_to(at, out);
        let outputs = self.engine.on_event(at, event);
        self.hand_on(at, outputs, out);
        // Alerts routed now may be due now (`group_wait: 0`, an alert older than the wait).
        if self.router.next_deadline().is_some_and(|d| d <= at) {
            self.flush(at, out);
        }
        at
    }

    /// Routes the engine's outputs (as the service does) and reports them.
    fn hand_on(&mut self, at: Timestamp, outputs: Vec<Output>, out: &mut Vec<Happening>) {
        self.router.on_outputs(at, &outputs);
        out.extend(outputs.into_iter().map(|output| match output {
            Output::Alert(alert) => Happening::Transition { at, alert },
            Output::Action(action) => Happening::Action { at, action },
        }));
    }

    fn flush(&mut self, at: Timestamp, out: &mut Vec<Happening>) {
        out.extend(
            self.router
                .on_tick(at)
                .into_iter()
                .map(|notification| Happening::Notification { at, notification }),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use atalaya_bus::{Event, Subject};
    use jiff::Timestamp;

    use super::*;
    use crate::alert::AlertState;
    use crate::compile::compile_files;
    use crate::files::RuleFile;
    use crate::metrics::EngineMetrics;
    use crate::routing::config::RoutingPolicy;

    fn engine(rules: &str) -> Engine {
        let file = RuleFile {
            path: "r.yaml".into(),
            text: rules.to_owned(),
            documents: crate::yaml::parse_documents(rules).expect("rules parse"),
        };
        let set = compile_files(&[file]).expect("rules compile");
        Engine::new(set, EngineMetrics::unregistered().expect("metrics"))
    }

    fn at(offset: &str) -> Timestamp {
        let start: Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
        start + crate::model::parse_duration(offset).unwrap()
    }

    fn reading(t: Timestamp, value: f64) -> Event {
        Event::new(
            "/t",
            Subject::parse("home/freezer/temperature").unwrap(),
            serde_json::json!(value),
            t,
        )
    }

    /// (offset from 10:00 in seconds, what) for each happening.
    fn timeline(happenings: &[Happening]) -> Vec<(i64, String)> {
        let start = at("0s");
        happenings
            .iter()
            .map(|h| match h {
                Happening::Transition { at, alert } => (
                    at.duration_since(start).as_secs(),
                    alert.state.as_str().to_owned(),
                ),
                Happening::Notification { at, notification } => (
                    at.duration_since(start).as_secs(),
                    format!(
                        "notify {} {} ({})",
                        notification.receiver,
                        notification.status.as_str(),
                        notification.alerts.len()
                    ),
                ),
                Happening::Action { at, action } => {
                    (at.duration_since(start).as_secs(), action.subject.clone())
                }
            })
            .collect()
    }

    const FREEZER: &str = "rules:\n  - name: freezer_warm\n    subject: home/freezer/temperature\n    condition: value > -12\n    for: 5m\n";

    #[test]
    fn a_for_rule_fires_and_notifies_at_its_own_virtual_instants() {
        let mut policy = RoutingPolicy::console_default();
        policy.tree.root.group_wait = Duration::from_secs(30);
        let mut run = VirtualRun::new(engine(FREEZER), Router::new(Arc::new(policy)));
        let mut out = Vec::new();
        // Warm from 10:01; readings every 10 minutes, so nothing arrives when the 5 minutes
        // are up (10:06) nor when the group's wait ends (10:06:30).
        run.on_event(at("0s"), &reading(at("0s"), -18.0), &mut out);
        run.on_event(at("1m"), &reading(at("1m"), -9.0), &mut out);
        run.on_event(at("11m"), &reading(at("11m"), -9.5), &mut out);
        run.on_event(at("21m"), &reading(at("21m"), -19.0), &mut out);
        run.advance_to(at("1h"), &mut out);
        assert_eq!(
            timeline(&out),
            [
                (60, "pending".to_owned()),
                (360, "firing".to_owned()),
                (390, "notify console firing (1)".to_owned()),
                (1260, "resolved".to_owned()),
                // group_interval (5m) after the first flush at 10:06:30: 10:11:30, 10:16:30,
                // 10:21:30 — the first flush after the resolution tells it.
                (1290, "notify console resolved (1)".to_owned()),
            ]
        );
        assert_eq!(run.now(), Some(at("1h")));
    }

    #[test]
    fn an_event_older_than_now_is_taken_at_the_current_instant() {
        let policy = RoutingPolicy::console_default();
        let mut run = VirtualRun::new(engine(FREEZER), Router::new(Arc::new(policy)));
        let mut out = Vec::new();
        run.on_event(at("10m"), &reading(at("10m"), -9.0), &mut out);
        let taken = run.on_event(at("2m"), &reading(at("2m"), -9.0), &mut out);
        assert_eq!(taken, at("10m"));
        run.advance_to(at("14m"), &mut out);
        assert_eq!(timeline(&out), [(600, "pending".to_owned())]);
        run.advance_to(at("15m"), &mut out);
        assert_eq!(out.len(), 2);
        let Happening::Transition { alert, .. } = &out[1] else {
            panic!("a transition: {out:?}");
        };
        assert_eq!(alert.state, AlertState::Firing);
        // Time does not go back.
        run.advance_to(at("1m"), &mut out);
        assert_eq!(run.now(), Some(at("15m")));
    }

    #[test]
    fn group_wait_zero_notifies_at_the_event_that_fired() {
        let mut policy = RoutingPolicy::console_default();
        policy.tree.root.group_wait = Duration::ZERO;
        let rules = "rules:\n  - name: leak\n    subject: home/freezer/temperature\n    condition: value > 0\n";
        let mut run = VirtualRun::new(engine(rules), Router::new(Arc::new(policy)));
        let mut out = Vec::new();
        run.on_event(at("3m"), &reading(at("3m"), 5.0), &mut out);
        assert_eq!(
            timeline(&out),
            [
                (180, "firing".to_owned()),
                (180, "notify console firing (1)".to_owned())
            ]
        );
    }
}
