//! Turning series into alerts: rendering a series' alert and its actions from the rule's
//! templates, listing the alerts now pending or firing, and keeping the
//! `atalaya_alerts{state}` gauge in step.

use atalaya_bus::Subject;
use atalaya_bus::labels::Annotations;
use jiff::Timestamp;
use serde_json::{Value, json};
use tracing::warn;

use super::{Engine, Phase, Series};
use crate::alert::{ActionRequest, Alert, AlertState, Output, fingerprint};
use crate::compile::Rule;
use crate::metrics::EngineMetrics;
use crate::model::ActionTrigger;

/// Renders the alert of `series` in `state`; `metrics` counts template errors.
pub(super) fn render_alert(
    metrics: &EngineMetrics,
    rule: &Rule,
    series: &Series,
    state: AlertState,
    now: Timestamp,
) -> Alert {
    // How long the alert has been active (pending or firing), up to now; when resolved,
    // how long it lasted.
    let lasted = series
        .active_since
        .map_or(0, |since| now.duration_since(since).as_secs().max(0));
    let mut context = json!({
        "labels": series.labels,
        "value": series.value,
        "subject": series.subject,
        "rule": rule.name,
        "state": state.as_str(),
        "resolved": state == AlertState::Resolved,
        "firing_value": series.fired_value.as_ref().unwrap_or(&series.value),
        "duration_seconds": lasted,
        "duration": crate::template::humanize_seconds(lasted),
        "time": now.to_string(),
    });
    if let Some(data) = &series.data {
        context["data"] = data.clone();
    }
    let render = |what: &str, template: &crate::template::Template, context: &Value| match template
        .render(context)
    {
        Ok(text) => text,
        Err(e) => {
            metrics.template_errors(&rule.name).inc();
            format!("<{what}: {e}>")
        }
    };
    let severity = render("severity", &rule.severity, &context);
    context["severity"] = Value::from(severity.clone());
    let mut labels = series.labels.clone();
    for (name, template) in &rule.labels {
        labels.insert(name.clone(), render(name, template, &context));
    }
    labels.insert("alertname".to_owned(), rule.name.clone());
    labels.insert("severity".to_owned(), severity);
    let annotations: Annotations = rule
        .annotations
        .iter()
        .map(|(name, template)| (name.clone(), render(name, template, &context)))
        .collect();
    Alert {
        rule: rule.name.clone(),
        fingerprint: fingerprint(&rule.name, &series.labels),
        state,
        labels,
        annotations,
        value: series.value.clone(),
        active_since: series.active_since.unwrap_or(now),
        fired_at: series.fired_at,
        resolved_at: None,
    }
}

/// Renders the actions of `rule` that run on `trigger` into `out`.
pub(super) fn render_actions(
    metrics: &EngineMetrics,
    rule: &Rule,
    alert: &Alert,
    trigger: ActionTrigger,
    out: &mut Vec<Output>,
) {
    for action in rule.actions.iter().filter(|a| a.on == trigger) {
        let context = json!({
            "labels": alert.labels,
            "annotations": alert.annotations,
            "value": alert.value,
            "rule": rule.name,
            "state": alert.state.as_str(),
        });
        let rendered = action.subject.render(&context).and_then(|subject| {
            let payload = match &action.payload {
                Some(p) => p.render(&context)?,
                None => serde_json::to_string(alert).unwrap_or_default(),
            };
            Ok((subject, payload))
        });
        match rendered {
            Ok((subject, payload)) if Subject::parse(&subject).is_ok() => {
                out.push(Output::Action(ActionRequest {
                    rule: rule.name.clone(),
                    fingerprint: alert.fingerprint.clone(),
                    trigger: alert.state,
                    subject,
                    payload,
                    retain: action.retain,
                }));
            }
            Ok((subject, _)) => {
                metrics.template_errors(&rule.name).inc();
                warn!(rule = %rule.name, subject = %subject, "Action subject is not a valid subject; skipped.");
            }
            Err(e) => {
                metrics.template_errors(&rule.name).inc();
                warn!(rule = %rule.name, error = %e, "Action template failed; skipped.");
            }
        }
    }
}

impl Engine {
    /// The alerts now pending or firing, rendered, in rule then fingerprint order.
    pub fn alerts(&self, now: Timestamp) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for (rule, state) in self.rules.rules.iter().zip(&self.states) {
            let mut series: Vec<(u64, &Series)> = state.series.iter().collect();
            series.sort_unstable_by_key(|(key, _)| *key);
            for (_, series) in series {
                let alert_state = match series.phase {
                    Phase::Inactive => continue,
                    Phase::Pending { .. } => AlertState::Pending,
                    Phase::Firing { .. } => AlertState::Firing,
                };
                alerts.push(render_alert(&self.metrics, rule, series, alert_state, now));
            }
        }
        alerts
    }

    /// Recounts `atalaya_alerts{state}` from scratch (after a reload or restore).
    pub(super) fn update_alert_gauges(&mut self) {
        let (mut pending, mut firing) = (0i64, 0i64);
        for state in &mut self.states {
            for (_, series) in state.series.iter_mut() {
                series.counted = series.alert_state();
                match series.counted {
                    Some(AlertState::Pending) => pending += 1,
                    Some(AlertState::Firing) => firing += 1,
                    _ => {}
                }
            }
        }
        self.metrics
            .alerts
            .with_label_values(&["pending"])
            .set(pending);
        self.metrics
            .alerts
            .with_label_values(&["firing"])
            .set(firing);
    }
}
