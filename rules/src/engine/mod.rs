//! The rule engine: a sans-IO state machine from events and time to alert transitions.
//!
//! The caller drives it: [`Engine::on_event`] with each event, [`Engine::on_tick`] when
//! [`Engine::next_deadline`] comes, both with the current time. No clock, no tasks, no
//! sockets inside, so the service runs it on real time and `atalaya test` and benchmarks on
//! virtual time. Deadlines are processed at their own instant, however late the tick, so the
//! outcome does not depend on when the caller gets round to ticking.
//!
//! State is per series (one alert per series of a rule). Changed series are handed out by
//! [`Engine::take_changes`] for the caller to persist, and come back through
//! [`Engine::restore`] after a restart.
//!
//! # Layout
//! - this file: the engine's state, and evaluation: events and deadlines moving each series'
//!   alert through its phases.
//! - `series`: one series' state and the pure functions that move it.
//! - `alerts`: rendering a series' alert and actions from the rule's templates, listing the
//!   alerts now active, and the `atalaya_alerts{state}` gauge.
//! - `persist`: handing out changed series for the store ([`Changes`]) and restoring them.
//! - `reload`: replacing the rules while keeping the state of unchanged ones.

mod alerts;
mod persist;
mod reload;
mod series;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use atalaya_bus::{Event, Labels, Subject};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tracing::warn;

pub use self::persist::{Changes, SOFT_PERSIST_INTERVAL};
pub use self::series::{KeyHash, MAX_WINDOW_SAMPLES, Phase, Series, aggregate};
use crate::alert::{AlertState, Output, fingerprint_hash, fingerprint_hash_sorted};
use crate::compile::{Rule, RuleSet};
use crate::expr::{EvalError, Expression, RuleValue, Vars};
use crate::metrics::EngineMetrics;
use crate::model::ActionTrigger;

/// How often, at most, one rule logs the same kind of problem (virtual time).
const LOG_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// The rule engine.
pub struct Engine {
    rules: RuleSet,
    /// Per rule (same order as `rules.rules`): its series by fingerprint.
    states: Vec<RuleState>,
    /// The deadline queue: (when, rule id, fingerprint), one entry per series with a
    /// deadline, due at or before it (see [`Engine::schedule`]).
    deadlines: BTreeSet<(Timestamp, usize, u64)>,
    /// Series whose phase, arm or latch changed since they were last persisted.
    urgent: HashSet<(usize, u64), KeyHash>,
    /// Series with other changes, with when they are due to be persisted, oldest first.
    soft: VecDeque<(Timestamp, usize, u64)>,
    soft_queued: HashSet<(usize, u64), KeyHash>,
    /// Changes taken before a reload renumbered the rules, handed out with the next ones.
    carried: Changes,
    /// Series gone since the last `take_changes`: (rule name, fingerprint).
    removed: Vec<(String, String)>,
    metrics: EngineMetrics,
}

struct RuleState {
    /// `atalaya_rule_evaluations_total{rule}`, looked up once: it moves on every event.
    evaluations: prometheus::IntCounter,
    /// Series by fingerprint hash.
    series: HashMap<u64, Box<Series>, KeyHash>,
    /// Last time a series-limit or evaluation problem was logged, to keep logs quiet.
    limit_logged: Option<Timestamp>,
    error_logged: Option<Timestamp>,
}

impl RuleState {
    fn new(metrics: &EngineMetrics, rule: &str) -> Self {
        Self {
            evaluations: metrics.evaluations(rule),
            series: HashMap::default(),
            limit_logged: None,
            error_logged: None,
        }
    }
}

/// The variables of one rule's evaluation of one event. Simple expressions are answered
/// natively ([`Expression::fast_bool`]); CEL variables are built only when an expression
/// needs the interpreter, once per event (`shared`) and adjusted per rule.
struct EvalCtx<'e, 'v> {
    event: &'e Event,
    shared: &'v mut Option<Vars>,
    /// Event labels with the pattern's captures, for rules whose expressions read them.
    labels: Option<Labels>,
    /// The rule's value as JSON; `None` while it is the event data.
    value: Option<serde_json::Value>,
    /// The same value as CEL produced it, when it did.
    value_cel: Option<RuleValue>,
}

impl EvalCtx<'_, '_> {
    fn value_json(&self) -> &serde_json::Value {
        self.value.as_ref().unwrap_or(&self.event.data)
    }

    fn set_value(&mut self, value: serde_json::Value) {
        self.value = Some(value);
        self.value_cel = None;
    }

    /// The CEL variables, with this rule's labels and value.
    fn vars(&mut self) -> &Vars {
        let event = self.event;
        let vars = self.shared.get_or_insert_with(|| {
            Vars::new(&event.data, &event.labels, &event.subject, event.time)
        });
        if let Some(labels) = &self.labels {
            vars.set_labels(labels);
        }
        match (&self.value_cel, &self.value) {
            (Some(v), _) => vars.set_value(v.clone()),
            (None, Some(json)) => vars.set_value(RuleValue::from_json(json)),
            (None, None) => vars.clear_value(),
        }
        vars
    }

    fn eval_value(&mut self, expression: &Expression) -> Result<(), EvalError> {
        if let Some(v) = expression.fast_value(self.value_json(), &self.event.data) {
            self.set_value(v);
            return Ok(());
        }
        let v = expression.eval(self.vars())?;
        self.value = Some(v.to_json());
        self.value_cel = Some(v);
        Ok(())
    }

    fn eval_bool(&mut self, expression: &Expression) -> Result<bool, EvalError> {
        if let Some(b) = expression.fast_bool(self.value_json(), &self.event.data) {
            return Ok(b);
        }
        expression.eval_bool(self.vars())
    }
}

/// Stores `value` as the series' value, copying only when it changed.
fn keep_value(series: &mut Series, value: &serde_json::Value) {
    if series.value != *value {
        series.value = value.clone();
    }
}

/// How an event names its series: by the pattern's captures (sorted by name), or by labels
/// chosen with `group_by`.
enum SeriesId<'a> {
    Captures(&'a [(&'a str, &'a str)]),
    Labels(Labels),
}

impl SeriesId<'_> {
    fn key(&self, rule: &str) -> u64 {
        match self {
            Self::Captures(pairs) => fingerprint_hash_sorted(rule, pairs.iter().copied()),
            Self::Labels(labels) => fingerprint_hash(rule, labels),
        }
    }

    fn labels(self) -> Labels {
        match self {
            Self::Captures(pairs) => pairs
                .iter()
                .map(|(name, token)| ((*name).to_owned(), (*token).to_owned()))
                .collect(),
            Self::Labels(labels) => labels,
        }
    }
}

impl Engine {
    pub fn new(rules: RuleSet, metrics: EngineMetrics) -> Self {
        let states = rules
            .rules
            .iter()
            .map(|r| RuleState::new(&metrics, &r.name))
            .collect();
        metrics.rules_loaded.set(rules.rules.len() as i64);
        Self {
            rules,
            states,
            deadlines: BTreeSet::new(),
            urgent: HashSet::default(),
            soft: VecDeque::new(),
            soft_queued: HashSet::default(),
            carried: Changes::default(),
            removed: Vec::new(),
            metrics,
        }
    }

    /// The rules in use.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules.rules
    }

    /// When [`Engine::on_tick`] next has something to do. It may be early: a deadline that
    /// moved later since it was queued (an absence timer restarted by an event) is found
    /// out, and queued again, by the tick at its old time.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _, _)| *t)
    }

    /// Evaluates `event` against the rules whose pattern matches its subject.
    pub fn on_event(&mut self, now: Timestamp, event: &Event) -> Vec<Output> {
        let mut out = self.on_tick(now);
        let ids = self.rules.index.matches(&event.subject);
        let mut vars: Option<Vars> = None;
        for id in ids {
            let rule = Arc::clone(&self.rules.rules[id]);
            if rule.source.as_ref().is_some_and(|s| *s != event.source)
                || rule
                    .event_type
                    .as_ref()
                    .is_some_and(|t| *t != event.event_type)
            {
                continue;
            }
            let Some(mut captures) = rule.pattern.captures(&event.subject) else {
                continue;
            };
            captures.sort_unstable();
            let owned = |pairs: &[(&str, &str)]| -> Labels {
                pairs
                    .iter()
                    .map(|(name, token)| ((*name).to_owned(), (*token).to_owned()))
                    .collect()
            };
            // Event labels with the captures on top: what expressions and `group_by` see.
            let all_labels = || {
                let mut labels = event.labels.clone();
                labels.extend(owned(&captures));
                labels
            };
            let mut ctx = EvalCtx {
                event,
                shared: &mut vars,
                labels: rule.uses_labels.then(all_labels),
                value: None,
                value_cel: None,
            };
            // The series: its key now, its labels only if it is new (most events are not).
            let series = match &rule.group_by {
                Some(names) => {
                    let labels = all_labels();
                    let chosen: Labels = names
                        .iter()
                        .map(|n| (n.clone(), labels.get(n).cloned().unwrap_or_default()))
                        .collect();
                    SeriesId::Labels(chosen)
                }
                None => SeriesId::Captures(&captures),
            };
            self.states[id].evaluations.inc();
            self.evaluate(id, &rule, series, &mut ctx, now, &mut out);
        }
        out
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one evaluation's whole context, passed once"
    )]
    fn evaluate(
        &mut self,
        id: usize,
        rule: &Rule,
        series_id: SeriesId<'_>,
        ctx: &mut EvalCtx<'_, '_>,
        now: Timestamp,
        out: &mut Vec<Output>,
    ) {
        let event = ctx.event;
        if let Some(expression) = &rule.value
            && let Err(e) = ctx.eval_value(expression)
        {
            return self.eval_error(id, rule, "value", &e.to_string(), now);
        }
        let number = ctx.value_json().as_f64();

        let key = series_id.key(&rule.name);
        let state = &mut self.states[id];
        if !state.series.contains_key(&key) {
            if state.series.len() >= rule.max_series {
                self.metrics.series_limit_hits(&rule.name).inc();
                if state
                    .limit_logged
                    .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
                {
                    state.limit_logged = Some(now);
                    warn!(rule = %rule.name, limit = rule.max_series, "Series limit reached; new series are ignored.");
                }
                return;
            }
            state
                .series
                .insert(key, Box::new(Series::new(series_id.labels(), now)));
            self.metrics.series(&rule.name).inc();
        }
        let mut series = match self.states[id].series.remove(&key) {
            Some(s) => s,
            None => return,
        };
        series.last_seen = now;
        if series.subject != event.subject.as_str() {
            series.subject = event.subject.to_string();
        }
        if rule.needs_data {
            series.data = Some(event.data.clone());
        }

        if rule.absent_for.is_some() {
            if rule.needs_value {
                keep_value(&mut series, ctx.value_json());
            }
            // It spoke: not absent.
            if series.is_firing() {
                self.resolve(rule, &mut series, now, out);
            }
        } else {
            match self.holds(id, rule, &mut series, ctx, number, now) {
                Some(holds) => {
                    // The value an alert shows: kept while the alert is (or becomes) active;
                    // an inactive series needs none, which spares a copy per event. A window
                    // rule's value is its aggregate, set by `holds`.
                    if rule.window.is_none() && (holds || series.phase != Phase::Inactive) {
                        keep_value(&mut series, ctx.value_json());
                    }
                    self.step(rule, &mut series, holds, now, out);
                }
                None => {
                    // Evaluation failed: counted and logged; the series keeps its state.
                }
            }
        }
        self.put_back(id, rule, key, series, now);
    }

    /// A window rule's condition once the window has slid to `at` (events age out without a
    /// new one arriving). `None` for rules without a window, or when evaluation failed.
    fn window_holds_at(
        &mut self,
        id: usize,
        rule: &Rule,
        series: &mut Series,
        at: Timestamp,
    ) -> Option<bool> {
        let window = rule.window.as_ref()?;
        series.prune(at, window.duration);
        let Some(agg) = aggregate(window.aggregate, &series.samples) else {
            series.value = Value::Null;
            return Some(false);
        };
        series.value = json!(agg);
        // Hysteresis as in `holds`: while active, the clearing condition decides.
        let (which, expression, inverted) = match (&rule.clear_condition, &series.phase) {
            (Some(clear), Phase::Pending { .. } | Phase::Firing { .. }) => {
                ("clear_condition", clear, true)
            }
            _ => ("condition", rule.condition.as_ref()?, false),
        };
        let result = match expression.fast_bool(&series.value, &Value::Null) {
            Some(b) => Ok(b),
            None => {
                let subject = Subject::parse(&series.subject).ok()?;
                let mut vars = Vars::new(&Value::Null, &series.labels, &subject, at);
                vars.set_value(RuleValue::from_json(&series.value));
                expression.eval_bool(&vars)
            }
        };
        match result {
            Ok(b) => Some(b != inverted && (rule.after.is_none() || series.armed)),
            Err(e) => {
                self.eval_error(id, rule, which, &e.to_string(), at);
                None
            }
        }
    }

    /// Whether the rule's condition holds for this event (window, transition, hysteresis
    /// and active hours applied). `None` when an expression failed.
    fn holds(
        &mut self,
        id: usize,
        rule: &Rule,
        series: &mut Series,
        ctx: &mut EvalCtx<'_, '_>,
        number: Option<f64>,
        now: Timestamp,
    ) -> Option<bool> {
        if let Some(window) = &rule.window {
            let include = match &window.filter {
                Some(filter) => match ctx.eval_bool(filter) {
                    Ok(b) => b,
                    Err(e) => {
                        self.eval_error(id, rule, "window.where", &e.to_string(), now);
                        return None;
                    }
                },
                None => true,
            };
            if include {
                series.push_sample(now, number.unwrap_or(f64::NAN), window.duration);
            } else {
                series.prune(now, window.duration);
            }
            let agg = aggregate(window.aggregate, &series.samples);
            series.value = json!(agg);
            match agg {
                Some(a) => ctx.set_value(json!(a)),
                // Nothing to aggregate: the condition cannot hold.
                None => return Some(false),
            }
        }
        if let Some(after) = &rule.after {
            match ctx.eval_bool(after) {
                Ok(true) => series.armed = true,
                Ok(false) => {}
                Err(e) => {
                    self.eval_error(id, rule, "after", &e.to_string(), now);
                    return None;
                }
            }
        }
        let (which, expression) = match (&rule.clear_condition, &series.phase) {
            (Some(clear), Phase::Pending { .. } | Phase::Firing { .. }) => {
                ("clear_condition", clear)
            }
            _ => match &rule.condition {
                Some(c) => ("condition", c),
                None => return Some(false),
            },
        };
        let result = match ctx.eval_bool(expression) {
            Ok(b) => b,
            Err(e) => {
                self.eval_error(id, rule, which, &e.to_string(), now);
                return None;
            }
        };
        let holds = if which == "clear_condition" {
            !result
        } else {
            result
        };
        let in_hours = rule.active.as_ref().is_none_or(|a| a.contains(now));
        Some(holds && (rule.after.is_none() || series.armed) && in_hours)
    }

    /// Moves the series' alert given whether the condition holds at `now`.
    fn step(
        &self,
        rule: &Rule,
        series: &mut Series,
        holds: bool,
        now: Timestamp,
        out: &mut Vec<Output>,
    ) {
        if rule.one_shot && !holds {
            series.latched = false;
        }
        match series.phase.clone() {
            Phase::Inactive => {
                if !holds || (rule.one_shot && series.latched) {
                    return;
                }
                series.active_since = Some(now);
                if rule.for_.is_zero() {
                    self.fire(rule, series, now, out);
                } else {
                    series.phase = Phase::Pending { since: now };
                    out.push(Output::Alert(self.alert(
                        rule,
                        series,
                        AlertState::Pending,
                        now,
                    )));
                }
            }
            Phase::Pending { since } => {
                if !holds {
                    series.phase = Phase::Inactive;
                    series.active_since = None;
                } else if now.duration_since(since) >= rule.for_ {
                    self.fire(rule, series, now, out);
                }
            }
            Phase::Firing {
                fired_at,
                clear_since,
            } => {
                if rule.one_shot {
                    return;
                }
                if holds {
                    series.phase = Phase::Firing {
                        fired_at,
                        clear_since: None,
                    };
                } else if rule.keep_firing_for.is_zero() {
                    self.resolve(rule, series, now, out);
                } else {
                    let since = clear_since.unwrap_or(now);
                    series.phase = Phase::Firing {
                        fired_at,
                        clear_since: Some(since),
                    };
                    if now.duration_since(since) >= rule.keep_firing_for {
                        self.resolve(rule, series, now, out);
                    }
                }
            }
        }
    }

    fn fire(&self, rule: &Rule, series: &mut Series, now: Timestamp, out: &mut Vec<Output>) {
        series.phase = Phase::Firing {
            fired_at: now,
            clear_since: None,
        };
        series.fired_at = Some(now);
        series.active_since.get_or_insert(now);
        let alert = self.alert(rule, series, AlertState::Firing, now);
        self.actions(rule, &alert, ActionTrigger::Firing, out);
        out.push(Output::Alert(alert));
        if rule.one_shot {
            series.latched = true;
            series.armed = false;
            if rule.keep_firing_for.is_zero() {
                self.resolve(rule, series, now, out);
            }
        }
    }

    fn resolve(&self, rule: &Rule, series: &mut Series, now: Timestamp, out: &mut Vec<Output>) {
        let mut alert = self.alert(rule, series, AlertState::Resolved, now);
        alert.resolved_at = Some(now);
        self.actions(rule, &alert, ActionTrigger::Resolved, out);
        out.push(Output::Alert(alert));
        series.phase = Phase::Inactive;
        series.armed = false;
        series.active_since = None;
        series.fired_at = None;
    }

    fn eval_error(&mut self, id: usize, rule: &Rule, what: &str, error: &str, now: Timestamp) {
        self.metrics.evaluation_errors(&rule.name).inc();
        let state = &mut self.states[id];
        if state
            .error_logged
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            state.error_logged = Some(now);
            warn!(rule = %rule.name, expression = what, error = %error, "Rule evaluation failed (logged at most once a minute per rule).");
        }
    }

    /// Stores the series back, rescheduling its deadline and marking it for persistence.
    fn put_back(
        &mut self,
        id: usize,
        rule: &Rule,
        key: u64,
        mut series: Box<Series>,
        now: Timestamp,
    ) {
        series.deadline = series.next_deadline(rule, now);
        self.schedule(id, key, &mut series);
        let state = series.alert_state();
        if series.counted != state {
            self.count(series.counted, -1);
            self.count(state, 1);
            series.counted = state;
        }
        if series.persisted.as_ref() != Some(&series.essentials()) {
            self.urgent.insert((id, key));
        } else if self.soft_queued.insert((id, key)) {
            let due = now.checked_add(SOFT_PERSIST_INTERVAL).unwrap_or(now);
            self.soft.push_back((due, id, key));
        }
        self.states[id].series.insert(key, series);
    }

    /// Keeps the series' entry in the deadline queue in step with its deadline. An entry
    /// due at or before the deadline stays: most events push a deadline later (every event
    /// restarts an absence timer), and moving the entry each time would cost a queue
    /// removal and insertion per event; the tick at the old time queues it again instead.
    /// An entry due after the deadline moves, so no deadline is ever processed late.
    fn schedule(&mut self, id: usize, key: u64, series: &mut Series) {
        match (series.scheduled, series.deadline) {
            (Some(queued), Some(deadline)) if queued <= deadline => {}
            (None, None) => {}
            (queued, deadline) => {
                if let Some(queued) = queued {
                    self.deadlines.remove(&(queued, id, key));
                }
                if let Some(deadline) = deadline {
                    self.deadlines.insert((deadline, id, key));
                }
                series.scheduled = deadline;
            }
        }
    }

    /// Processes every deadline up to `now`, each at its own instant.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(&(at, id, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let rule = Arc::clone(&self.rules.rules[id]);
            let Some(mut series) = self.states[id].series.remove(&key) else {
                continue;
            };
            series.scheduled = None;
            match series.deadline {
                // The deadline moved later since it was queued: queue it at its new time.
                Some(deadline) if deadline > at => {
                    self.schedule(id, key, &mut series);
                    self.states[id].series.insert(key, series);
                }
                _ => {
                    series.deadline = None;
                    self.on_deadline(id, &rule, &mut series, at, &mut out);
                    self.put_back(id, &rule, key, series, at);
                }
            }
        }
        out
    }

    fn on_deadline(
        &mut self,
        id: usize,
        rule: &Rule,
        series: &mut Series,
        at: Timestamp,
        out: &mut Vec<Output>,
    ) {
        // Conditions that change with time alone: the window slides, active hours end.
        let window_holds = self.window_holds_at(id, rule, series, at);
        let out_of_hours = rule.active.as_ref().is_some_and(|a| !a.contains(at));
        if out_of_hours {
            self.step(rule, series, false, at, out);
        } else if let Some(holds) = window_holds {
            self.step(rule, series, holds, at, out);
        }
        // Timers.
        match series.phase.clone() {
            Phase::Pending { since } if at.duration_since(since) >= rule.for_ => {
                self.fire(rule, series, at, out);
            }
            Phase::Firing { fired_at, .. }
                if rule.one_shot && at.duration_since(fired_at) >= rule.keep_firing_for =>
            {
                self.resolve(rule, series, at, out);
            }
            Phase::Firing {
                clear_since: Some(c),
                ..
            } if at.duration_since(c) >= rule.keep_firing_for => {
                self.resolve(rule, series, at, out);
            }
            Phase::Inactive => {
                if let Some(absent) = rule.absent_for
                    && at.duration_since(series.last_seen) >= absent
                {
                    series.active_since = Some(series.last_seen);
                    self.fire(rule, series, at, out);
                }
            }
            _ => {}
        }
    }
}
