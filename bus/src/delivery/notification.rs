//! Notifications: what the router hands to the outbox, one per aggregation group, receiver
//! integration and flush; and its Alertmanager webhook form (version 4).

use crate::Labels;
use crate::labels::Annotations;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Whether an alert (or a whole notification) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert as notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    pub status: Status,
    /// Alertmanager's fingerprint of `labels` ([`crate::fingerprint::labels_fingerprint`]).
    pub fingerprint: String,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Annotations,
    pub starts_at: Timestamp,
    /// When it resolved; `None` while firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// The rule's value when the alert last changed (`null` for alerts from Prometheus).
    #[serde(default)]
    pub value: serde_json::Value,
    /// Where the alert came from, when known (Prometheus' `generatorURL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// A one-shot alert (a water leak, a door opened at night): it happened at `starts_at`
    /// and has no duration, so a text says when, not "for how long".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instant: bool,
}

/// One notification: the state of one aggregation group, for one integration of one
/// receiver, at one flush.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique and stable: the outbox key and the idempotency key receivers see, so a retry
    /// after a crash is recognisable as the same notification.
    pub id: String,
    pub receiver: String,
    /// Index into the receiver's integrations.
    pub integration: usize,
    /// The aggregation group: route id and group labels (Alertmanager's group key).
    pub group_key: String,
    pub status: Status,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: Annotations,
    /// Firing alerts first, then resolved; each by start time.
    pub alerts: Vec<NotifiedAlert>,
    pub created_at: Timestamp,
    /// Whether to send it without a sound (Telegram's `disable_notification`): decided by
    /// the router from the integration's `disable_notifications` and `quiet` rules when it
    /// created the notification, so every attempt and every receiver agree.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
}

/// The zero time Alertmanager writes as `endsAt` of a firing alert.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Notification {
    /// Alertmanager's webhook payload, version 4, keeping at most `max_alerts` alerts
    /// (0: all) and counting the rest in `truncatedAlerts`.
    pub fn webhook_payload(&self, external_url: &str, max_alerts: usize) -> serde_json::Value {
        let keep = if max_alerts == 0 {
            self.alerts.len()
        } else {
            max_alerts.min(self.alerts.len())
        };
        let sent = &self.alerts[..keep];
        let alerts: Vec<serde_json::Value> = sent
            .iter()
            .map(|a| {
                serde_json::json!({
                    "status": a.status.as_str(),
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.starts_at.to_string(),
                    "endsAt": a.ends_at.map_or_else(|| GO_ZERO_TIME.to_owned(), |t| t.to_string()),
                    "generatorURL": a.generator_url.as_deref().unwrap_or(""),
                    "fingerprint": a.fingerprint,
                })
            })
            .collect();
        serde_json::json!({
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": self.alerts.len() - keep,
            "status": self.status.as_str(),
            "receiver": self.receiver,
            "groupLabels": self.group_labels,
            // As Alertmanager: over the alerts sent, not all the group's.
            "commonLabels": common(sent.iter().map(|a| &a.labels)),
            "commonAnnotations": common(sent.iter().map(|a| &a.annotations)),
            "externalURL": external_url,
            "alerts": alerts,
        })
    }

    /// How many alerts are firing.
    pub fn firing(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .count()
    }
}

/// The pairs every map holds with the same value (Alertmanager's common labels and
/// annotations); empty when there are no maps.
pub fn common<'a>(mut maps: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut common = first.clone();
    for map in maps {
        common.retain(|k, v| map.get(k) == Some(v));
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: Status, name: &str) -> NotifiedAlert {
        NotifiedAlert {
            instant: false,
            status,
            fingerprint: format!("fp-{name}"),
            labels: Labels::from([("alertname".to_owned(), name.to_owned())]),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            ends_at: (status == Status::Resolved).then(|| "2026-01-01T01:00:00Z".parse().unwrap()),
            value: serde_json::Value::Null,
            generator_url: None,
        }
    }

    #[test]
    fn webhook_payload_is_alertmanager_version_4() {
        let n = Notification {
            id: "n1".into(),
            receiver: "home".into(),
            integration: 0,
            group_key: "{}:{alertname=\"a\"}".into(),
            status: Status::Firing,
            group_labels: Labels::from([("alertname".to_owned(), "a".to_owned())]),
            common_labels: Labels::new(),
            common_annotations: Default::default(),
            alerts: vec![alert(Status::Firing, "a"), alert(Status::Resolved, "b")],
            created_at: "2026-01-01T01:00:00Z".parse().unwrap(),
            silent: false,
        };
        let full = n.webhook_payload("http://atalaya", 0);
        assert_eq!(full["version"], "4");
        assert_eq!(full["status"], "firing");
        assert_eq!(full["truncatedAlerts"], 0);
        assert_eq!(full["alerts"][0]["endsAt"], GO_ZERO_TIME);
        assert_eq!(full["alerts"][1]["endsAt"], "2026-01-01T01:00:00Z");
        assert_eq!(full["alerts"][1]["status"], "resolved");
        assert_eq!(full["externalURL"], "http://atalaya");
        let cut = n.webhook_payload("", 1);
        assert_eq!(cut["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(cut["truncatedAlerts"], 1);
        // Common labels over the alerts sent, as Alertmanager: "a" and "b" share none, the
        // one kept has its own.
        assert_eq!(full["commonLabels"], serde_json::json!({}));
        assert_eq!(cut["commonLabels"], serde_json::json!({"alertname": "a"}));
    }
}
