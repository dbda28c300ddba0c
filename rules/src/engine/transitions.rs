//! Moving one series' alert through its phases — inactive, pending, firing, resolved — and
//! rendering the alert and actions of each transition.

use jiff::Timestamp;

use super::alerts::{render_actions, render_alert};
use super::{Phase, Series};
use crate::alert::{AlertState, Output};
use crate::compile::Rule;
use crate::metrics::EngineMetrics;
use crate::model::ActionTrigger;

/// What a transition needs besides the series: its rule, the metrics that count template
/// errors, and where its alerts and actions go.
pub(super) struct Transitions<'a> {
    pub rule: &'a Rule,
    pub metrics: &'a EngineMetrics,
    pub out: &'a mut Vec<Output>,
}

impl Transitions<'_> {
    /// Moves the series' alert given whether the condition holds at `now`.
    pub fn step(&mut self, series: &mut Series, holds: bool, now: Timestamp) {
        let rule = self.rule;
        if rule.one_shot && !holds {
            series.latched = false;
        }
        match series.phase {
            Phase::Inactive => {
                if !holds || (rule.one_shot && series.latched) {
                    return;
                }
                series.active_since = Some(now);
                if rule.for_.is_zero() {
                    self.fire(series, now);
                } else {
                    series.phase = Phase::Pending { since: now };
                    let alert = render_alert(self.metrics, rule, series, AlertState::Pending, now);
                    self.out.push(Output::Alert(alert));
                }
            }
            Phase::Pending { since } => {
                if !holds {
                    series.phase = Phase::Inactive;
                    series.active_since = None;
                } else if now.duration_since(since) >= rule.for_ {
                    self.fire(series, now);
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
                    self.resolve(series, now);
                } else {
                    let since = clear_since.unwrap_or(now);
                    series.phase = Phase::Firing {
                        fired_at,
                        clear_since: Some(since),
                    };
                    if now.duration_since(since) >= rule.keep_firing_for {
                        self.resolve(series, now);
                    }
                }
            }
        }
    }

    pub fn fire(&mut self, series: &mut Series, now: Timestamp) {
        let rule = self.rule;
        series.phase = Phase::Firing {
            fired_at: now,
            clear_since: None,
        };
        series.fired_at = Some(now);
        series.fired_value = Some(series.value.clone());
        series.active_since.get_or_insert(now);
        let alert = render_alert(self.metrics, rule, series, AlertState::Firing, now);
        render_actions(self.metrics, rule, &alert, ActionTrigger::Firing, self.out);
        self.out.push(Output::Alert(alert));
        if rule.one_shot {
            series.latched = true;
            series.armed = false;
            if rule.keep_firing_for.is_zero() {
                self.resolve(series, now);
            }
        }
    }

    pub fn resolve(&mut self, series: &mut Series, now: Timestamp) {
        let rule = self.rule;
        let mut alert = render_alert(self.metrics, rule, series, AlertState::Resolved, now);
        alert.resolved_at = Some(now);
        render_actions(
            self.metrics,
            rule,
            &alert,
            ActionTrigger::Resolved,
            self.out,
        );
        self.out.push(Output::Alert(alert));
        series.phase = Phase::Inactive;
        series.armed = false;
        series.active_since = None;
        series.fired_at = None;
        series.fired_value = None;
    }
}
