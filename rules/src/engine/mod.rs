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
//! - this file: the engine's state, and evaluation: events and deadlines reaching their
//!   series.
//! - `conditions`: whether a series' condition holds, for an event or at a deadline.
//! - `series`: one series' state and the pure functions that move it.
//! - `series_map`: a rule's series by fingerprint, stored densely.
//! - `transitions`: moving a series' alert through its phases given that decision.
//! - `alerts`: rendering a series' alert and actions from the rule's templates, listing the
//!   alerts now active, and the `atalaya_alerts{state}` gauge.
//! - `queues`: the deadline queue and the persistence queues.
//! - `persist`: handing out changed series for the store ([`Changes`]) and restoring them.
//! - `reload`: replacing the rules while keeping the state of unchanged ones.
//! - `explain`: why a rule does or does not fire, series by series.

mod alerts;
mod conditions;
mod explain;
mod persist;
mod queues;
mod reload;
#[cfg(test)]
mod restart_tests;
mod series;
mod series_map;
#[cfg(test)]
mod tests;
mod transitions;

use std::sync::Arc;

use atalaya_bus::{Event, Labels};
use jiff::{SignedDuration, Timestamp};
use tracing::warn;

use self::conditions::{holds, on_deadline};
pub use self::explain::{RuleExplanation, SeriesExplanation};
pub use self::persist::{Changes, SOFT_PERSIST_INTERVAL, Unreadable};
use self::queues::Queues;
pub use self::series::{KeyHash, MAX_WINDOW_SAMPLES, Phase, Series, aggregate};
use self::series_map::SeriesMap;
use self::transitions::Transitions;
use crate::alert::{Output, alert_time, fingerprint_hash_from, fingerprint_seed};
use crate::compile::{Rule, RuleSet};
use crate::expr::{EvalError, Expression, RuleValue, Vars};
use crate::metrics::EngineMetrics;

/// Subject tokens [`Engine::on_event`] splits on the stack; a longer subject goes to the heap.
const INLINE_TOKENS: usize = 16;

/// How often, at most, one rule logs the same kind of problem (virtual time).
const LOG_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// The rule engine.
pub struct Engine {
    rules: RuleSet,
    /// Per rule (same order as `rules.rules`): its series by fingerprint.
    states: Vec<RuleState>,
    /// Deadlines, and series to persist.
    queues: Queues,
    /// The ids of the rules an event's subject matches: kept to reuse its allocation.
    matched: Vec<usize>,
    /// Changes taken before a reload renumbered the rules, handed out with the next ones.
    carried: Changes,
    /// Series gone since the last `take_changes`: (rule name, fingerprint).
    removed: Vec<(String, String)>,
    /// Stored series the last restore could not read.
    unreadable: Vec<persist::Unreadable>,
    metrics: EngineMetrics,
}

struct RuleState {
    /// `atalaya_rule_evaluations_total{rule}`, looked up once: it moves on every event.
    evaluations: prometheus::IntCounter,
    /// Where its series' fingerprints start (the hash of the rule's name), computed once.
    fingerprint_seed: u64,
    /// Series by fingerprint hash.
    series: SeriesMap,
    /// Last time a series-limit or evaluation problem was logged, to keep logs quiet.
    limit_logged: Option<Timestamp>,
    error_logged: Option<Timestamp>,
    /// The last failure logged: when, and what (for `atalaya explain --rule`).
    last_error: Option<(Timestamp, String)>,
}

impl RuleState {
    fn new(metrics: &EngineMetrics, rule: &str) -> Self {
        Self {
            evaluations: metrics.know_rule(rule),
            fingerprint_seed: fingerprint_seed(rule),
            series: SeriesMap::default(),
            limit_logged: None,
            error_logged: None,
            last_error: None,
        }
    }

    /// Counts a failed evaluation, and logs it unless the rule logged one lately.
    fn log_failure(
        &mut self,
        metrics: &EngineMetrics,
        rule: &Rule,
        failure: Failure,
        now: Timestamp,
    ) {
        metrics.evaluation_errors(&rule.name).inc();
        if self
            .error_logged
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            self.error_logged = Some(now);
            self.last_error = Some((now, format!("{}: {}", failure.expression, failure.error)));
            warn!(rule = %rule.name, expression = failure.expression, error = %failure.error, "Rule evaluation failed (logged at most once a minute per rule).");
        }
    }
}

/// An evaluation that failed: which of the rule's expressions, and why. The series keeps
/// its state; the failure is counted and logged.
struct Failure {
    /// `value`, `condition`, `clear_condition`, `after` or `window.where`.
    expression: &'static str,
    error: EvalError,
}

impl Failure {
    fn of(expression: &'static str) -> impl FnOnce(EvalError) -> Self {
        move |error| Self { expression, error }
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

/// Stores `value` as the series' value, copying only when it changed; whether it did.
fn keep_value(series: &mut Series, value: &serde_json::Value) -> bool {
    let changed = series.value != *value;
    if changed {
        series.value = value.clone();
    }
    changed
}

/// How an event names its series: by the pattern's captures (`(label, token)` sorted by
/// label name), or by labels chosen with `group_by`.
enum SeriesId<C> {
    Captures(C),
    Labels(Labels),
}

impl<'a, C: Iterator<Item = (&'a str, &'a str)> + Clone> SeriesId<C> {
    /// The series' fingerprint hash, from its rule's [`fingerprint_seed`].
    fn key(&self, seed: u64) -> u64 {
        match self {
            Self::Captures(pairs) => fingerprint_hash_from(seed, pairs.clone()),
            Self::Labels(labels) => fingerprint_hash_from(seed, labels.iter()),
        }
    }

    fn labels(self) -> Labels {
        match self {
            Self::Captures(pairs) => pairs
                .map(|(name, token)| (name.to_owned(), token.to_owned()))
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
            queues: Queues::default(),
            matched: Vec::new(),
            carried: Changes::default(),
            removed: Vec::new(),
            unreadable: Vec::new(),
            metrics,
        }
    }

    /// The rules in use.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules.rules
    }

    /// Why rule `name` does or does not fire, series by series (`atalaya explain --rule`);
    /// `None` when there is no such rule.
    pub fn explain(&self, name: &str) -> Option<explain::RuleExplanation> {
        let id = self.rules.rules.iter().position(|r| r.name == name)?;
        let rule = &self.rules.rules[id];
        let state = &self.states[id];
        Some(explain::RuleExplanation::of(
            rule,
            state.series.iter().map(|(_, s)| s),
            state.limit_logged,
            state.last_error.clone(),
        ))
    }

    /// The names of the rules that take `event` (its subject matches their pattern, and
    /// their `source` and `type` when they set one): what `atalaya tail --rules` shows.
    pub fn rules_for(&self, event: &Event) -> Vec<&str> {
        self.rules
            .index
            .matches(&event.subject)
            .into_iter()
            .map(|id| &*self.rules.rules[id])
            .filter(|rule| {
                rule.source.as_ref().is_none_or(|s| *s == event.source)
                    && rule
                        .event_type
                        .as_ref()
                        .is_none_or(|t| *t == event.event_type)
            })
            .map(|rule| rule.name.as_str())
            .collect()
    }

    /// When [`Engine::on_tick`] next has something to do. It may be early: a deadline that
    /// moved later since it was queued (an absence timer restarted by an event) is found
    /// out, and queued again, by the tick at its old time.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.queues.deadlines.first().map(|(t, _, _)| *t)
    }

    /// Evaluates `event` against the rules whose pattern matches its subject.
    pub fn on_event(&mut self, now: Timestamp, event: &Event) -> Vec<Output> {
        let now = alert_time(now);
        let mut out = self.on_tick(now);
        let Self {
            rules,
            states,
            queues,
            metrics,
            matched,
            ..
        } = self;
        // The subject split once, for the index and every matched rule's pattern: on the
        // stack, unless it has more tokens than subjects usually do.
        let mut inline = [""; INLINE_TOKENS];
        let mut spilled = Vec::new();
        let mut count = 0;
        for token in event.subject.tokens() {
            if count < INLINE_TOKENS {
                inline[count] = token;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push(token);
            }
            count += 1;
        }
        let tokens = if spilled.is_empty() {
            &inline[..count]
        } else {
            &spilled[..]
        };
        rules.index.matches_tokens(tokens, matched);
        if matched.is_empty() {
            return out;
        }
        // Once per event, and only for one some rule may take.
        let sample = Sample::of(event);
        let mut vars: Option<Vars> = None;
        for &id in matched.iter() {
            let rule = &*rules.rules[id];
            if rule.source.as_ref().is_some_and(|s| *s != event.source)
                || rule
                    .event_type
                    .as_ref()
                    .is_some_and(|t| *t != event.event_type)
            {
                continue;
            }
            // The index's candidate really matches (see `index`); its captures come sorted
            // by label name, as label maps and fingerprints want them.
            let Some(captures) = rule.pattern.match_tokens(tokens) else {
                continue;
            };
            // Event labels with the captures on top: what expressions and `group_by` see.
            let all_labels = || {
                let mut labels = event.labels.clone();
                labels.extend(
                    captures
                        .clone()
                        .map(|(name, token)| (name.to_owned(), token.to_owned())),
                );
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
                        .map(|n| {
                            (
                                n.clone(),
                                labels.get(n).map(str::to_owned).unwrap_or_default(),
                            )
                        })
                        .collect();
                    SeriesId::Labels(chosen)
                }
                None => SeriesId::Captures(captures),
            };
            let state = &mut states[id];
            state.evaluations.inc();
            let evaluation = Evaluation {
                id,
                rule,
                state,
                queues,
                metrics,
                out: &mut out,
            };
            evaluation.event(series, &mut ctx, sample, now);
        }
        out
    }

    /// Processes every deadline up to `now`, each at its own instant.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Output> {
        let now = alert_time(now);
        let mut out = Vec::new();
        while let Some(&(at, id, key)) = self.queues.deadlines.first() {
            if at > now {
                break;
            }
            self.queues.deadlines.pop_first();
            let evaluation = Evaluation {
                id,
                rule: &self.rules.rules[id],
                state: &mut self.states[id],
                queues: &mut self.queues,
                metrics: &self.metrics,
                out: &mut out,
            };
            evaluation.deadline(key, at);
        }
        out
    }
}

/// What an event is as a sample: MQTT payloads are fingerprinted, so that a retained
/// message repeating what a series last saw is told apart.
#[derive(Clone, Copy)]
struct Sample {
    /// The payload's fingerprint, for MQTT events.
    payload: Option<u64>,
    /// A retained MQTT message: the broker's replay of a topic's last message.
    retained: bool,
}

impl Sample {
    fn of(event: &Event) -> Self {
        let mqtt = event.event_type == atalaya_bus::event::MQTT_EVENT_TYPE;
        Self {
            payload: mqtt.then(|| series::payload_fingerprint(&event.data)),
            retained: mqtt
                && event
                    .labels
                    .get(atalaya_bus::event::MQTT_RETAINED_LABEL)
                    .is_some_and(|v| v == "true"),
        }
    }
}

/// What one evaluation of one rule works on: the rule and its state, and the queues,
/// metrics and outputs all rules share. Borrowed apart from the engine, so that a series is
/// changed where it lies in its map.
struct Evaluation<'a> {
    id: usize,
    rule: &'a Rule,
    state: &'a mut RuleState,
    queues: &'a mut Queues,
    metrics: &'a EngineMetrics,
    out: &'a mut Vec<Output>,
}

impl Evaluation<'_> {
    /// Evaluates an event for the series it belongs to.
    fn event<'a>(
        self,
        series_id: SeriesId<impl Iterator<Item = (&'a str, &'a str)> + Clone>,
        ctx: &mut EvalCtx<'_, '_>,
        sample: Sample,
        now: Timestamp,
    ) {
        let Self {
            id,
            rule,
            state,
            queues,
            metrics,
            out,
        } = self;
        let event = ctx.event;
        if let Some(expression) = &rule.value
            && let Err(e) = ctx.eval_value(expression)
        {
            return state.log_failure(metrics, rule, Failure::of("value")(e), now);
        }
        let number = ctx.value_json().as_f64();

        // One lookup per event: the series is changed where it lies in its map.
        let key = series_id.key(state.fingerprint_seed);
        let count = state.series.len();
        let limit_logged = &mut state.limit_logged;
        let new_series = || {
            if count >= rule.max_series {
                metrics.series_limit_hits(&rule.name).inc();
                if limit_logged.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
                    *limit_logged = Some(now);
                    warn!(rule = %rule.name, limit = rule.max_series, "Series limit reached; new series are ignored.");
                }
                return None;
            }
            metrics.series(&rule.name).inc();
            Some(Series::new(series_id.labels(), now))
        };
        let Some(series) = state.series.get_or_insert_with(key, new_series) else {
            return;
        };
        // A retained message repeating the series' last payload is the broker's replay (at
        // a reconnect, a restart): not a sample. It counts in no window, restarts no
        // absence timer and arms no transition. A new series, or another payload, counts.
        let fresh = series.subject.is_empty();
        if sample.retained && !fresh && sample.payload.is_some() && series.payload == sample.payload
        {
            return;
        }
        // Kept in memory, stored with the series' next change: a window's or an absence
        // rule's every event is one; a threshold rule's replay re-evaluates the last payload
        // to the same result anyway.
        series.payload = sample.payload;
        series.last_seen = now;
        // Minor changes, persisted within `SOFT_PERSIST_INTERVAL` (a change of phase is
        // persisted at once, see `Queues::settle`): what a restart needs back. The time the
        // series last spoke is the anchor of an absence timer, and read by nothing else;
        // a window's samples and a payload kept for templates change with every event.
        let mut changed = rule.absent_for.is_some() || rule.window.is_some() || rule.needs_data;
        // Comparing the subjects reads the stored one, a cache miss per event: spared when
        // the series has one subject.
        if series.subject.is_empty()
            || (!rule.subject_per_series && series.subject != event.subject.as_str())
        {
            let new_series = series.subject.is_empty();
            series.subject = event.subject.to_string();
            // The head of its stored record: encoded now for a new series, so it lies beside
            // the labels in memory (an encoding at persistence time lands among the
            // records, farther away); after a change of subject, when next persisted.
            series.record_head = if new_series {
                persist::encode_head(series).ok()
            } else {
                None
            };
            changed = true;
        }
        if rule.needs_data {
            series.data = Some(event.data.clone());
        }

        let mut transitions = Transitions { rule, metrics, out };
        let result = if rule.absent_for.is_some() {
            if rule.needs_value {
                keep_value(series, ctx.value_json());
            }
            // It spoke: not absent.
            if series.is_firing() {
                transitions.resolve(series, now);
            }
            Ok(())
        } else {
            holds(rule, series, ctx, number, now).map(|holds| {
                // The value an alert shows: kept while the alert is (or becomes) active; an
                // inactive series needs none, which spares a copy per event. A window
                // rule's value is its aggregate, set by `holds`.
                if rule.window.is_none()
                    && (holds || series.held_out_of_hours || series.phase != Phase::Inactive)
                {
                    changed |= keep_value(series, ctx.value_json());
                }
                transitions.step(series, holds, now);
            })
        };
        // A failed evaluation is counted and logged; the series keeps its state.
        queues.settle(metrics, (id, key), rule, series, now, changed);
        if let Err(failure) = result {
            state.log_failure(metrics, rule, failure, now);
        }
    }

    /// Processes the deadline queued at `at` for the series `key`.
    fn deadline(self, key: u64, at: Timestamp) {
        let Self {
            id,
            rule,
            state,
            queues,
            metrics,
            out,
        } = self;
        let Some(series) = state.series.get_mut(key) else {
            return;
        };
        series.scheduled = None;
        if series.deadline.is_some_and(|deadline| deadline > at) {
            // The deadline moved later since it was queued: queue it at its new time.
            return queues.schedule(id, key, series);
        }
        series.deadline = None;
        let mut transitions = Transitions { rule, metrics, out };
        let result = on_deadline(&mut transitions, series, at);
        // Besides phases (persisted at once), time alone changes a window's samples.
        queues.settle(metrics, (id, key), rule, series, at, rule.window.is_some());
        if let Err(failure) = result {
            state.log_failure(metrics, rule, failure, at);
        }
    }
}
