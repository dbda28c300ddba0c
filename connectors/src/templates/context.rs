//! The context templates render against: a notification as a person reads it — a severity
//! marker, what happened, where, for how long, the current value, a link.

use super::Locale;
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Labels that say where something happened, in the order shown.
const WHERE_LABELS: &[&str] = &[
    "room",
    "location",
    "node",
    "host",
    "instance",
    "namespace",
    "pod",
    "device",
];

/// The marker of an alert: 🔴 critical, 🟠 warning, 🔵 info, ⚪ no known severity, ✅
/// resolved.
pub fn marker(alert: &NotifiedAlert) -> &'static str {
    if alert.status == Status::Resolved {
        return "✅";
    }
    match rank(alert) {
        3 => "🔴",
        2 => "🟠",
        1 => "🔵",
        _ => "⚪",
    }
}

/// How severe an alert is, from its `severity` label: 3 critical, 2 warning, 1 info, 0
/// unknown.
fn rank(alert: &NotifiedAlert) -> u8 {
    match alert
        .labels
        .get("severity")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        Some("critical" | "error" | "page" | "high" | "emergency" | "alert") => 3,
        Some("warning" | "warn" | "medium") => 2,
        Some("info" | "low" | "notice" | "none") => 1,
        _ => 0,
    }
}

/// The notification as templates see it: the names in
/// [`atalaya_bus::delivery::notification::MESSAGE_TEMPLATE_VARIABLES`]. Durations are
/// counted up to the notification's creation, so a message renders the same on every
/// attempt.
pub fn context(notification: &Notification, external_url: &str, locale: Locale) -> Value {
    let now = notification.created_at;
    let alerts: Vec<Value> = notification
        .alerts
        .iter()
        .map(|a| alert_context(a, now, locale))
        .collect();
    let firing = notification.firing();
    let marker = if notification.status == Status::Resolved {
        "✅"
    } else {
        notification
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .max_by_key(|a| rank(a))
            .map_or("⚪", marker)
    };
    let link = if external_url.is_empty() {
        notification
            .alerts
            .iter()
            .find_map(|a| a.generator_url.clone())
            .unwrap_or_default()
    } else {
        external_url.to_owned()
    };
    json!({
        "status": notification.status.as_str(),
        "marker": marker,
        "title": title(notification),
        "receiver": notification.receiver,
        "alerts": alerts,
        "firing": firing,
        "resolved": notification.alerts.len() - firing,
        "group_labels": notification.group_labels,
        "common_labels": notification.common_labels,
        "common_annotations": notification.common_annotations,
        "external_url": external_url,
        "link": link,
        "locale": locale.as_str(),
    })
}

fn alert_context(alert: &NotifiedAlert, now: Timestamp, locale: Locale) -> Value {
    let name = alert
        .labels
        .get("alertname")
        .map(str::to_owned)
        .unwrap_or_default();
    let where_ = WHERE_LABELS
        .iter()
        .filter_map(|l| alert.labels.get(l))
        .filter(|v| !v.is_empty())
        .fold(Vec::<&str>::new(), |mut seen, v| {
            if !seen.contains(&v) {
                seen.push(v);
            }
            seen
        })
        .join(" · ");
    let until = match alert.status {
        Status::Firing => now,
        Status::Resolved => alert.ends_at.unwrap_or(now),
    };
    json!({
        "status": alert.status.as_str(),
        "marker": marker(alert),
        "severity": alert.labels.get("severity").map(str::to_owned).unwrap_or_default(),
        "name": name,
        "summary": summary(alert),
        "description": annotation(alert, &["description", "message"]).unwrap_or_default(),
        "where": where_,
        "since": duration_text(until.duration_since(alert.starts_at), locale),
        "instant": alert.instant,
        "starts_at": alert.starts_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        "ends_at": alert.ends_at.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()),
        "value": value_text(&alert.value),
        "link": alert.generator_url.clone().unwrap_or_default(),
        "labels": alert.labels,
        "annotations": alert.annotations,
    })
}

fn annotation(alert: &NotifiedAlert, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| alert.annotations.get(n))
        .find(|v| !v.trim().is_empty())
        .map(str::to_owned)
}

/// What happened, in a few words: the `summary` (or `title`) annotation, else the alert's
/// name.
fn summary(alert: &NotifiedAlert) -> String {
    annotation(alert, &["summary", "title"])
        .or_else(|| alert.labels.get("alertname").map(str::to_owned))
        .unwrap_or_else(|| "alert".to_owned())
}

/// The headline of a notification: its one alert's summary; else the summary all share;
/// else the alert name all share; else the group's label values.
fn title(notification: &Notification) -> String {
    if let [only] = notification.alerts.as_slice() {
        return summary(only);
    }
    if let Some(summary) = notification
        .common_annotations
        .get("summary")
        .filter(|s| !s.trim().is_empty())
    {
        return summary.to_owned();
    }
    if let Some(name) = notification.common_labels.get("alertname") {
        return name.to_owned();
    }
    let values: Vec<&str> = notification.group_labels.values().collect();
    if values.is_empty() {
        format!("{} alerts", notification.alerts.len())
    } else {
        values.join(" · ")
    }
}

pub use atalaya_bus::delivery::locale::duration_text;

/// The rule's value as text: numbers with at most two decimals, strings and booleans as they
/// are; nothing for null, and nothing for an object or a list (a rule without a `value:` has
/// the whole event payload as its value, a zigbee2mqtt device's dozen fields: not a text for
/// a phone).
fn value_text(value: &Value) -> String {
    match value {
        Value::Null | Value::Object(_) | Value::Array(_) => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => {
                let text = format!("{f:.2}");
                text.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_short() {
        assert_eq!(value_text(&json!(21.456)), "21.46");
        assert_eq!(value_text(&json!(21.5)), "21.5");
        assert_eq!(value_text(&json!(3.0)), "3");
        assert_eq!(value_text(&json!(-4)), "-4");
        assert_eq!(value_text(&json!("on")), "on");
        assert_eq!(value_text(&Value::Null), "");
    }
}
