//! What `atalaya replay` prints: one line per transition, notification and action, as text
//! or as JSON lines, and a summary at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use atalaya_bus::Labels;
use atalaya_bus::delivery::notification::{Notification, Status};
use atalaya_rules::replay::Happening;
use atalaya_rules::routing::config::RoutingPolicy;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::cli::ReplayOutput;

/// Counts for the summary.
#[derive(Debug, Default)]
pub struct Summary {
    /// Lines read, blank and bad ones included.
    pub lines: u64,
    /// Events evaluated.
    pub events: u64,
    /// Lines that were not events (reported and skipped).
    pub bad_lines: u64,
    /// Events outside `--from`/`--to`.
    pub out_of_range: u64,
    /// Events older than the one before them (taken at the current virtual time).
    pub out_of_order: u64,
    pub transitions: u64,
    pub notifications: u64,
    pub actions: u64,
    /// Virtual time: the first event's time, and where it ended.
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub wall: Duration,
    /// Per rule, evaluations that failed (a missing field, a wrong type) and templates that
    /// failed to render; rules whose series limit was hit.
    pub evaluation_errors: BTreeMap<String, u64>,
    pub template_errors: BTreeMap<String, u64>,
    pub series_limit_hits: BTreeMap<String, u64>,
}

impl Summary {
    /// Reads the engine's per-rule error counters from its (private) registry.
    pub fn read_errors(&mut self, registry: &prometheus::Registry) {
        for family in registry.gather() {
            let target = match family.name() {
                "atalaya_rule_evaluation_errors_total" => &mut self.evaluation_errors,
                "atalaya_rule_template_errors_total" => &mut self.template_errors,
                "atalaya_rule_series_limit_hits_total" => &mut self.series_limit_hits,
                _ => continue,
            };
            for metric in family.get_metric() {
                let count = metric.get_counter().get_value() as u64;
                let rule = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "rule")
                    .map(|l| l.value().to_owned());
                if let (Some(rule), true) = (rule, count > 0) {
                    target.insert(rule, count);
                }
            }
        }
    }

    fn events_per_second(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }
}

/// Writes happenings as they come.
pub struct Report<'p, W: Write> {
    out: W,
    output: ReplayOutput,
    policy: &'p RoutingPolicy,
}

impl<'p, W: Write> Report<'p, W> {
    pub fn new(out: W, output: ReplayOutput, policy: &'p RoutingPolicy) -> Self {
        Self {
            out,
            output,
            policy,
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Writes one happening; `line` is the line of the event that caused it (none for a
    /// timer).
    pub fn happening(
        &mut self,
        happening: &Happening,
        line: Option<u64>,
        summary: &mut Summary,
    ) -> io::Result<()> {
        match happening {
            Happening::Transition { .. } => summary.transitions += 1,
            Happening::Notification { .. } => summary.notifications += 1,
            Happening::Action { .. } => summary.actions += 1,
        }
        match self.output {
            ReplayOutput::Text => {
                let text = self.text(happening);
                writeln!(self.out, "{text}")
            }
            ReplayOutput::Json => {
                let mut value = self.json(happening);
                if let (Some(line), Some(map)) = (line, value.as_object_mut()) {
                    map.insert("line".to_owned(), json!(line));
                }
                serde_json::to_writer(&mut self.out, &value)?;
                self.out.write_all(b"\n")
            }
        }
    }

    fn text(&self, happening: &Happening) -> String {
        match happening {
            Happening::Transition { at, alert } => {
                let labels: Labels = alert
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "alertname")
                    .collect();
                format!(
                    "{at} {:<8} {} {} value={}",
                    alert.state.as_str(),
                    alert.rule,
                    braces(&labels),
                    compact(&alert.value)
                )
            }
            Happening::Notification { at, notification } => {
                let mut text = format!(
                    "{at} {:<8} {}/{} [{}] {} ({})",
                    "notify",
                    self.kind(notification),
                    notification.receiver,
                    notification.status.as_str(),
                    alert_names(notification),
                    counts(notification),
                );
                let _ = write!(text, " group={}", braces(&notification.group_labels));
                if notification.silent {
                    text.push_str(" silent");
                }
                text
            }
            Happening::Action { at, action } => format!(
                "{at} {:<8} {} (rule {}, when {})",
                "publish",
                action.subject,
                action.rule,
                action.trigger.as_str()
            ),
        }
    }

    fn json(&self, happening: &Happening) -> Value {
        match happening {
            Happening::Transition { at, alert } => json!({
                "kind": "transition",
                "at": at,
                "state": alert.state,
                "rule": alert.rule,
                "fingerprint": alert.fingerprint,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "value": alert.value,
                "active_since": alert.active_since,
            }),
            Happening::Notification { at, notification } => {
                let mut value = json!({
                    "kind": "notification",
                    "at": at,
                    "integration_kind": self.kind(notification),
                });
                if let (Some(map), Ok(Value::Object(fields))) =
                    (value.as_object_mut(), serde_json::to_value(notification))
                {
                    map.extend(fields);
                }
                value
            }
            Happening::Action { at, action } => {
                let mut value = json!({"kind": "action", "at": at});
                if let (Some(map), Ok(Value::Object(fields))) =
                    (value.as_object_mut(), serde_json::to_value(action))
                {
                    map.extend(fields);
                }
                value
            }
        }
    }

    /// The integration's kind (`telegram`, `email`, `console`).
    fn kind(&self, notification: &Notification) -> &'static str {
        self.policy
            .receiver(&notification.receiver)
            .and_then(|r| r.integrations.get(notification.integration))
            .map_or("?", |i| i.kind)
    }

    pub fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        match self.output {
            ReplayOutput::Text => {
                let span = match (summary.first, summary.last) {
                    (Some(first), Some(last)) => {
                        format!("{first} to {last} ({})", span(last.duration_since(first)))
                    }
                    _ => "none (no events)".to_owned(),
                };
                writeln!(
                    self.out,
                    "-- {} lines, {} events, {} bad lines skipped, {} outside --from/--to, {} out of order",
                    summary.lines,
                    summary.events,
                    summary.bad_lines,
                    summary.out_of_range,
                    summary.out_of_order,
                )?;
                writeln!(
                    self.out,
                    "-- {} transitions, {} notifications, {} actions",
                    summary.transitions, summary.notifications, summary.actions
                )?;
                writeln!(
                    self.out,
                    "-- virtual time {span}; wall time {:.2}s ({:.0} events/s)",
                    summary.wall.as_secs_f64(),
                    summary.events_per_second()
                )?;
                for (what, counts) in [
                    ("evaluation errors", &summary.evaluation_errors),
                    ("template errors", &summary.template_errors),
                    ("series limit hits", &summary.series_limit_hits),
                ] {
                    if !counts.is_empty() {
                        let list: Vec<String> =
                            counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
                        writeln!(self.out, "-- {what}: {}", list.join(", "))?;
                    }
                }
                Ok(())
            }
            ReplayOutput::Json => {
                let value = json!({
                    "kind": "summary",
                    "lines": summary.lines,
                    "events": summary.events,
                    "bad_lines": summary.bad_lines,
                    "out_of_range": summary.out_of_range,
                    "out_of_order": summary.out_of_order,
                    "transitions": summary.transitions,
                    "notifications": summary.notifications,
                    "actions": summary.actions,
                    "from": summary.first,
                    "to": summary.last,
                    "wall_seconds": summary.wall.as_secs_f64(),
                    "events_per_second": summary.events_per_second(),
                    "evaluation_errors": summary.evaluation_errors,
                    "template_errors": summary.template_errors,
                    "series_limit_hits": summary.series_limit_hits,
                });
                serde_json::to_writer(&mut self.out, &value)?;
                self.out.write_all(b"\n")
            }
        }
    }
}

/// `{device="freezer", room="kitchen"}`, as Alertmanager writes label sets.
fn braces(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// A value as compact JSON (`-9.6`, `"warm"`, `{"t":1}`).
fn compact(value: &Value) -> String {
    value.to_string()
}

/// The rules of a notification's alerts: `freezer_warm`, or `a, b` for a mixed group.
fn alert_names(notification: &Notification) -> String {
    let mut names: Vec<&str> = notification
        .alerts
        .iter()
        .filter_map(|a| a.labels.get("alertname"))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "(no alertname)".to_owned()
    } else {
        names.join(", ")
    }
}

/// `1 alert`, `3 alerts`, `3 alerts: 2 firing, 1 resolved`.
fn counts(notification: &Notification) -> String {
    let total = notification.alerts.len();
    let firing = notification
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    let noun = if total == 1 { "alert" } else { "alerts" };
    if firing == 0 || firing == total {
        format!("{total} {noun}")
    } else {
        format!(
            "{total} {noun}: {firing} firing, {} resolved",
            total - firing
        )
    }
}

/// A span of virtual time: `6d 23h 59m`, `13h 5m`, `42s`.
fn span(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, hours, mins, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {s}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, m) => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_a_person_says_them() {
        let s = jiff::SignedDuration::from_secs;
        assert_eq!(span(s(42)), "42s");
        assert_eq!(span(s(125)), "2m 5s");
        assert_eq!(span(s(13 * 3600 + 300)), "13h 5m");
        assert_eq!(span(s(7 * 86_400 - 60)), "6d 23h 59m");
    }
}
