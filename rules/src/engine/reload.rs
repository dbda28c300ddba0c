//! Reloading: replacing the rules while keeping the series of rules whose definition did not
//! change, and resolving the alerts of rules changed or gone.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::{Engine, RuleState, Transitions};
use crate::alert::{Output, fingerprint_text};
use crate::compile::{Rule, RuleSet};

impl Engine {
    /// Replaces the rules. Rules whose definition did not change keep their series; the
    /// alerts of changed and removed rules resolve.
    pub fn reload(&mut self, rules: RuleSet, now: Timestamp) -> Vec<Output> {
        let now = crate::alert::alert_time(now);
        // Rule ids change below: encode what is pending under the old ones first.
        self.carried = self.take_all_changes();
        let mut old: HashMap<String, (Arc<Rule>, RuleState)> = self
            .rules
            .rules
            .drain(..)
            .zip(self.states.drain(..))
            .map(|(rule, state)| (rule.name.clone(), (rule, state)))
            .collect();
        self.queues.deadlines.clear();
        let mut out = Vec::new();
        let mut states = Vec::with_capacity(rules.rules.len());
        for rule in &rules.rules {
            match old.remove(&rule.name) {
                Some((previous, state)) if previous.hash == rule.hash => states.push(state),
                Some((previous, state)) => {
                    self.retire(&previous, state, now, &mut out);
                    states.push(RuleState::new(&self.metrics, &rule.name));
                }
                None => states.push(RuleState::new(&self.metrics, &rule.name)),
            }
        }
        for (_, (previous, state)) in old {
            self.retire(&previous, state, now, &mut out);
        }
        self.rules = rules;
        self.states = states;
        for (id, state) in self.states.iter_mut().enumerate() {
            for (key, series) in state.series.iter_mut() {
                series.scheduled = series.deadline;
                if let Some(d) = series.deadline {
                    self.queues.deadlines.insert((d, id, key));
                }
            }
        }
        self.metrics.rules_loaded.set(self.rules.rules.len() as i64);
        self.update_alert_gauges();
        out
    }

    /// Resolves the firing alerts of a rule that goes away and queues its series for
    /// deletion.
    fn retire(&mut self, rule: &Rule, state: RuleState, now: Timestamp, out: &mut Vec<Output>) {
        self.metrics.forget_rule(&rule.name);
        for (key, mut series) in state.series {
            if series.is_firing() {
                let mut transitions = Transitions {
                    rule,
                    metrics: &self.metrics,
                    out,
                };
                transitions.resolve(&mut series, now);
            }
            self.removed
                .push((rule.name.clone(), fingerprint_text(key)));
        }
    }
}
