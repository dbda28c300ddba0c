//! The engine's metrics. Counters are plain atomics, so the engine stays sans-IO.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::alert::AlertState;

/// Rule evaluation and alert metrics.
#[derive(Clone)]
pub struct EngineMetrics {
    evaluations: IntCounterVec,
    evaluation_errors: IntCounterVec,
    template_errors: IntCounterVec,
    series: IntGaugeVec,
    series_limit_hits: IntCounterVec,
    /// Alerts by state (`pending`, `firing`).
    pub alerts: IntGaugeVec,
    /// Rules in the running rule set.
    pub rules_loaded: IntGauge,
}

impl EngineMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered()?;
        registry.register(Box::new(m.evaluations.clone()))?;
        registry.register(Box::new(m.evaluation_errors.clone()))?;
        registry.register(Box::new(m.template_errors.clone()))?;
        registry.register(Box::new(m.series.clone()))?;
        registry.register(Box::new(m.series_limit_hits.clone()))?;
        registry.register(Box::new(m.alerts.clone()))?;
        registry.register(Box::new(m.rules_loaded.clone()))?;
        Ok(m)
    }

    /// Metrics that go nowhere, for `atalaya test` and benchmarks.
    pub fn unregistered() -> prometheus::Result<Self> {
        let rule = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["rule"]);
        Ok(Self {
            evaluations: rule(
                "atalaya_rule_evaluations_total",
                "Events evaluated by each rule.",
            )?,
            evaluation_errors: rule(
                "atalaya_rule_evaluation_errors_total",
                "Expression evaluations that failed (missing field, wrong type), per rule.",
            )?,
            template_errors: rule(
                "atalaya_rule_template_errors_total",
                "Template renderings that failed, per rule.",
            )?,
            series: IntGaugeVec::new(
                Opts::new("atalaya_rule_series", "Series each rule tracks."),
                &["rule"],
            )?,
            series_limit_hits: rule(
                "atalaya_rule_series_limit_hits_total",
                "Events ignored because their rule tracks max_series series already.",
            )?,
            alerts: IntGaugeVec::new(Opts::new("atalaya_alerts", "Alerts by state."), &["state"])?,
            rules_loaded: IntGauge::new("atalaya_rules_loaded", "Rules in the running rule set.")?,
        })
    }

    /// Creates every per-rule series of `rule` at zero, so `/metrics` shows them before the
    /// first error (an alert on `increase()` then sees the first one); returns its
    /// evaluation counter.
    pub(crate) fn know_rule(&self, rule: &str) -> prometheus::IntCounter {
        self.evaluation_errors(rule);
        self.template_errors(rule);
        self.series(rule);
        self.series_limit_hits(rule);
        self.evaluations(rule)
    }

    pub(crate) fn evaluations(&self, rule: &str) -> prometheus::IntCounter {
        self.evaluations.with_label_values(&[rule])
    }
    pub(crate) fn evaluation_errors(&self, rule: &str) -> prometheus::IntCounter {
        self.evaluation_errors.with_label_values(&[rule])
    }
    pub(crate) fn template_errors(&self, rule: &str) -> prometheus::IntCounter {
        self.template_errors.with_label_values(&[rule])
    }
    pub(crate) fn series(&self, rule: &str) -> prometheus::IntGauge {
        self.series.with_label_values(&[rule])
    }
    pub(crate) fn series_limit_hits(&self, rule: &str) -> prometheus::IntCounter {
        self.series_limit_hits.with_label_values(&[rule])
    }

    /// Moves the `atalaya_alerts{state}` gauge for one series entering (`delta` 1) or
    /// leaving (-1) `state`; `None` (inactive) has no gauge.
    pub(crate) fn count_alert(&self, state: Option<AlertState>, delta: i64) {
        if let Some(state) = state {
            self.alerts.with_label_values(&[state.as_str()]).add(delta);
        }
    }

    /// Drops a removed rule's label values so `/metrics` does not report it forever.
    pub(crate) fn forget_rule(&self, rule: &str) {
        let _ = self.evaluations.remove_label_values(&[rule]);
        let _ = self.evaluation_errors.remove_label_values(&[rule]);
        let _ = self.template_errors.remove_label_values(&[rule]);
        let _ = self.series.remove_label_values(&[rule]);
        let _ = self.series_limit_hits.remove_label_values(&[rule]);
    }
}
