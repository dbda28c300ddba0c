//! Whether a rule's condition holds: for an event (window, transition, hysteresis, active
//! hours), and at a deadline, when time alone changes it (a window slides, active hours
//! end) or a timer runs out.

use atalaya_bus::Subject;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::transitions::Transitions;
use super::{EvalCtx, Failure, Phase, Series, aggregate};
use crate::compile::Rule;
use crate::expr::{RuleValue, Vars};

/// A deadline of `series` has come: conditions that change with time alone, and timers.
pub(super) fn on_deadline(
    transitions: &mut Transitions<'_>,
    series: &mut Series,
    at: Timestamp,
) -> Result<(), Failure> {
    let rule = transitions.rule;
    // Conditions that change with time alone: the window slides, active hours end.
    let window_holds = window_holds_at(rule, series, at);
    let out_of_hours = rule.active.as_ref().is_some_and(|a| !a.contains(at));
    if out_of_hours {
        transitions.step(series, false, at);
    } else {
        // Inside the hours: a condition that held outside them (`evaluate_at_start`) is
        // counted from now, unless a window's aggregate decides afresh.
        let held = std::mem::take(&mut series.held_out_of_hours);
        if let Ok(Some(holds)) = window_holds {
            transitions.step(series, holds, at);
        } else if held {
            transitions.step(series, true, at);
        }
    }
    // Timers.
    match series.phase {
        Phase::Pending { since } if at.duration_since(since) >= rule.for_ => {
            transitions.fire(series, at);
        }
        Phase::Firing { fired_at, .. }
            if rule.one_shot && at.duration_since(fired_at) >= rule.keep_firing_for =>
        {
            transitions.resolve(series, at);
        }
        Phase::Firing {
            clear_since: Some(c),
            ..
        } if at.duration_since(c) >= rule.keep_firing_for => {
            transitions.resolve(series, at);
        }
        Phase::Inactive => {
            if let Some(absent) = rule.absent_for
                && at.duration_since(series.last_seen) >= absent
            {
                series.active_since = Some(series.last_seen);
                transitions.fire(series, at);
            }
        }
        _ => {}
    }
    window_holds.map(|_| ())
}

/// A window rule's condition once the window has slid to `at` (events age out without a
/// new one arriving). `None` for rules without a window.
fn window_holds_at(
    rule: &Rule,
    series: &mut Series,
    at: Timestamp,
) -> Result<Option<bool>, Failure> {
    let Some(window) = rule.window.as_ref() else {
        return Ok(None);
    };
    series.prune(at, window.duration);
    let Some(agg) = aggregate(window.aggregate, &series.samples) else {
        series.value = Value::Null;
        return Ok(Some(false));
    };
    series.value = json!(agg);
    // Hysteresis as in `holds`: while active, the clearing condition decides.
    let (which, expression, inverted) = match (&rule.clear_condition, &series.phase) {
        (Some(clear), Phase::Pending { .. } | Phase::Firing { .. }) => {
            ("clear_condition", clear, true)
        }
        _ => match rule.condition.as_ref() {
            Some(condition) => ("condition", condition, false),
            None => return Ok(None),
        },
    };
    let holds = match expression.fast_bool(&series.value, &Value::Null) {
        Some(b) => b,
        None => {
            let Ok(subject) = Subject::parse(&series.subject) else {
                return Ok(None);
            };
            let mut vars = Vars::new(&Value::Null, &series.labels, &subject, at);
            vars.set_value(RuleValue::from_json(&series.value));
            expression.eval_bool(&vars).map_err(Failure::of(which))?
        }
    };
    Ok(Some(
        holds != inverted && (rule.after.is_none() || series.armed),
    ))
}

/// Whether the rule's condition holds for this event (window, transition, hysteresis and
/// active hours applied).
pub(super) fn holds(
    rule: &Rule,
    series: &mut Series,
    ctx: &mut EvalCtx<'_, '_>,
    number: Option<f64>,
    now: Timestamp,
) -> Result<bool, Failure> {
    if let Some(window) = &rule.window {
        let include = match &window.filter {
            Some(filter) => ctx.eval_bool(filter).map_err(Failure::of("window.where"))?,
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
            None => return Ok(false),
        }
    }
    if let Some(after) = &rule.after
        && ctx.eval_bool(after).map_err(Failure::of("after"))?
    {
        series.armed = true;
    }
    let (which, expression) = match (&rule.clear_condition, &series.phase) {
        (Some(clear), Phase::Pending { .. } | Phase::Firing { .. }) => ("clear_condition", clear),
        _ => match &rule.condition {
            Some(c) => ("condition", c),
            None => return Ok(false),
        },
    };
    let result = ctx.eval_bool(expression).map_err(Failure::of(which))?;
    let holds = if which == "clear_condition" {
        !result
    } else {
        result
    };
    let in_hours = rule.active.as_ref().is_none_or(|a| a.contains(now));
    let holds = holds && (rule.after.is_none() || series.armed);
    series.held_out_of_hours =
        holds && !in_hours && rule.active.as_ref().is_some_and(|a| a.evaluate_at_start);
    Ok(holds && in_hours)
}
