//! Flap detection, as Nagios and Icinga do it: a rule whose alerts change state (pending,
//! firing, resolved) more than `rules.flap_threshold` times within `rules.flap_window` is
//! *flapping*. That is reported once — a warning and `atalaya_rule_flapping{rule} 1` — not
//! per change (each change is a debug line only), and once more when the rule has calmed
//! down to at most half the threshold within the window (hysteresis, so a rule near the
//! limit does not report on and off). Notifications are not held back: routing's
//! `group_interval` already bounds how often a flapping alert is told.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tracing::{info, warn};

pub struct FlapDetector {
    /// More changes than this within `window` is flapping; 0 turns detection off.
    threshold: usize,
    window: Duration,
    rules: HashMap<String, RuleChanges>,
    flapping: IntGaugeVec,
    changes: IntCounterVec,
}

/// The times of one rule's latest state changes (at most `threshold + 1`).
#[derive(Default)]
struct RuleChanges {
    times: VecDeque<Timestamp>,
    flapping: bool,
}

impl RuleChanges {
    fn within(&self, now: Timestamp, window: Duration) -> usize {
        let since = now - window;
        self.times.iter().filter(|t| **t > since).count()
    }
}

impl FlapDetector {
    pub fn register(
        registry: &Registry,
        threshold: usize,
        window: Duration,
    ) -> prometheus::Result<Self> {
        let flapping = IntGaugeVec::new(
            Opts::new(
                "atalaya_rule_flapping",
                "1 while a rule's alerts change state more than rules.flap_threshold times within rules.flap_window.",
            ),
            &["rule"],
        )?;
        let changes = IntCounterVec::new(
            Opts::new(
                "atalaya_rule_state_changes_total",
                "State changes (pending, firing, resolved) of each rule's alerts.",
            ),
            &["rule"],
        )?;
        registry.register(Box::new(flapping.clone()))?;
        registry.register(Box::new(changes.clone()))?;
        Ok(Self {
            threshold,
            window,
            rules: HashMap::new(),
            flapping,
            changes,
        })
    }

    /// An alert of `rule` changed state at `now`.
    pub fn observe(&mut self, rule: &str, now: Timestamp) {
        self.changes.with_label_values(&[rule]).inc();
        if self.threshold == 0 {
            return;
        }
        let changes = match self.rules.get_mut(rule) {
            Some(changes) => changes,
            None => self.rules.entry(rule.to_owned()).or_default(),
        };
        changes.times.push_back(now);
        if changes.times.len() > self.threshold + 1 {
            changes.times.pop_front();
        }
        if !changes.flapping
            && changes.times.len() > self.threshold
            && changes
                .times
                .front()
                .is_some_and(|t| *t > now - self.window)
        {
            changes.flapping = true;
            self.flapping.with_label_values(&[rule]).set(1);
            warn!(
                rule,
                changes = changes.times.len(),
                window = %atalaya_bus::duration::format_duration(self.window),
                "Rule is flapping: its alerts change state too often; reported once, until it calms down."
            );
        }
    }

    /// Ends flapping for rules calm again, and forgets rules quiet for a whole window.
    pub fn check(&mut self, now: Timestamp) {
        let (threshold, window) = (self.threshold, self.window);
        let gauge = &self.flapping;
        self.rules.retain(|rule, changes| {
            let recent = changes.within(now, window);
            if changes.flapping && recent <= threshold / 2 {
                changes.flapping = false;
                gauge.with_label_values(&[rule]).set(0);
                info!(rule, changes = recent, "Rule no longer flapping.");
            }
            changes.flapping || recent > 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn reported_once_past_the_threshold_and_again_when_calm() {
        let registry = Registry::new();
        let mut detector = FlapDetector::register(&registry, 4, Duration::from_secs(60)).unwrap();
        let gauge = || detector_gauge(&registry);
        for second in 0..4 {
            detector.observe("door", at(second));
        }
        assert_eq!(gauge(), 0, "4 changes is not more than 4");
        detector.observe("door", at(4));
        assert_eq!(gauge(), 1);
        // Hundreds more changes: still one rule flapping, the window's memory stays small.
        for second in 5..500 {
            detector.observe("door", at(second / 10 + 5));
        }
        assert_eq!(detector.rules["door"].times.len(), 5);
        // A minute later with two changes: calm (at most half the threshold).
        detector.observe("door", at(200));
        detector.observe("door", at(201));
        detector.check(at(202));
        assert_eq!(gauge(), 0);
        detector.check(at(400));
        assert!(detector.rules.is_empty(), "quiet rules are forgotten");
    }

    #[test]
    fn changes_spread_wider_than_the_window_are_not_flapping() {
        let registry = Registry::new();
        let mut detector = FlapDetector::register(&registry, 4, Duration::from_secs(60)).unwrap();
        for n in 0..100 {
            detector.observe("door", at(n * 20));
        }
        assert_eq!(detector_gauge(&registry), 0);
    }

    #[test]
    fn a_threshold_of_zero_turns_detection_off() {
        let registry = Registry::new();
        let mut detector = FlapDetector::register(&registry, 0, Duration::from_secs(60)).unwrap();
        for n in 0..100 {
            detector.observe("door", at(n));
        }
        assert!(detector.rules.is_empty());
    }

    fn detector_gauge(registry: &Registry) -> i64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == "atalaya_rule_flapping")
            .and_then(|f| {
                f.get_metric()
                    .first()
                    .map(|m| m.get_gauge().get_value() as i64)
            })
            .unwrap_or(0)
    }
}
