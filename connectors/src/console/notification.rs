//! The console integration of routing: one readable line per notification.

use atalaya_bus::delivery::notification::{Notification, Status};

use super::receiver::{render_time, text};

/// Most alerts listed on one line; the rest are counted.
pub const MAX_LISTED_ALERTS: usize = 10;

/// Renders a notification as one line, without the trailing newline:
///
/// ```text
/// 2026-11-22T10:00:30Z [firing:2] home node_lost (node=pi1) — node_lost instance=a; node_lost instance=b
/// ```
///
/// That is: when the router created it, the status with the number of alerts in it, the
/// receiver, the group (its `alertname`, then its other labels in parentheses), and each alert
/// by name, the labels the group does not already say and its `summary` annotation — resolved
/// ones in a firing notification marked so. At most [`MAX_LISTED_ALERTS`] alerts are listed. Like every console
/// line, it holds no newline or control character whatever the labels hold.
pub fn render_notification(notification: &Notification) -> String {
    let count = notification
        .alerts
        .iter()
        .filter(|a| a.status == notification.status)
        .count();
    let mut line = render_time(notification.created_at);
    line.push_str(&format!(" [{}:{count}] ", notification.status.as_str()));
    line.push_str(&text(&notification.receiver));
    if let Some(name) = notification.group_labels.get("alertname") {
        line.push(' ');
        line.push_str(&text(name));
    }
    let others: Vec<String> = notification
        .group_labels
        .iter()
        .filter(|(name, _)| *name != "alertname")
        .map(|(name, value)| format!("{}={}", text(name), text(value)))
        .collect();
    if !others.is_empty() {
        line.push_str(&format!(" ({})", others.join(" ")));
    }
    for (i, alert) in notification
        .alerts
        .iter()
        .take(MAX_LISTED_ALERTS)
        .enumerate()
    {
        line.push_str(if i == 0 { " — " } else { "; " });
        line.push_str(&text(alert.labels.get("alertname").unwrap_or("?")));
        for (name, value) in &alert.labels {
            if name == "alertname" || notification.group_labels.contains_key(name) {
                continue;
            }
            line.push(' ');
            line.push_str(&text(name));
            line.push('=');
            line.push_str(&text(value));
        }
        if let Some(summary) = alert.annotations.get("summary") {
            line.push_str(" summary=");
            line.push_str(&text(summary));
        }
        if alert.status == Status::Resolved && notification.status == Status::Firing {
            line.push_str(" (resolved)");
        }
    }
    if let Some(more) = notification.alerts.len().checked_sub(MAX_LISTED_ALERTS)
        && more > 0
    {
        line.push_str(&format!("; … and {more} more"));
    }
    line
}

#[cfg(test)]
mod tests {

    use atalaya_bus::Labels;
    use atalaya_bus::delivery::notification::NotifiedAlert;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn alert(status: Status, pairs: &[(&str, &str)]) -> NotifiedAlert {
        NotifiedAlert {
            instant: false,
            status,
            fingerprint: "00000000000000aa".into(),
            labels: labels(pairs),
            annotations: Default::default(),
            starts_at: "2026-11-22T10:00:00Z".parse().unwrap(),
            ends_at: None,
            value: serde_json::Value::Null,
            generator_url: None,
        }
    }

    fn notification(status: Status, alerts: Vec<NotifiedAlert>) -> Notification {
        Notification {
            id: "n1".into(),
            receiver: "home".into(),
            integration: 0,
            group_key: String::new(),
            status,
            group_labels: labels(&[("alertname", "node_lost"), ("node", "pi1")]),
            common_labels: Labels::new(),
            common_annotations: Default::default(),
            alerts,
            created_at: "2026-11-22T10:00:30Z".parse().unwrap(),
            silent: false,
        }
    }

    #[test]
    fn a_line_says_status_count_receiver_group_and_alerts() {
        let n = notification(
            Status::Firing,
            vec![
                alert(
                    Status::Firing,
                    &[("alertname", "node_lost"), ("node", "pi1"), ("disk", "sda")],
                ),
                alert(
                    Status::Firing,
                    &[("alertname", "node_lost"), ("node", "pi1"), ("disk", "sdb")],
                ),
                alert(
                    Status::Resolved,
                    &[("alertname", "node_lost"), ("node", "pi1"), ("disk", "sdc")],
                ),
            ],
        );
        assert_eq!(
            render_notification(&n),
            "2026-11-22T10:00:30Z [firing:2] home node_lost (node=pi1) — node_lost disk=sda; \
             node_lost disk=sdb; node_lost disk=sdc (resolved)"
        );
        let resolved = notification(
            Status::Resolved,
            vec![alert(Status::Resolved, &[("alertname", "node_lost")])],
        );
        assert_eq!(
            render_notification(&resolved),
            "2026-11-22T10:00:30Z [resolved:1] home node_lost (node=pi1) — node_lost"
        );
    }

    #[test]
    fn long_lists_are_cut_and_hostile_labels_stay_on_one_line() {
        let alerts = (0..12)
            .map(|i| alert(Status::Firing, &[("alertname", "x"), ("n", &i.to_string())]))
            .collect();
        let line = render_notification(&notification(Status::Firing, alerts));
        assert!(line.ends_with("; … and 2 more"), "{line}");
        let hostile = notification(
            Status::Firing,
            vec![alert(Status::Firing, &[("alertname", "a\nFAKE LINE")])],
        );
        let line = render_notification(&hostile);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(r#""a\nFAKE LINE""#), "{line}");
    }
}
