//! Receivers: a name and the integrations that notify it.
//!
//! Integrations keep Alertmanager's `<kind>_configs` keys where Alertmanager has the kind
//! (`webhook_configs`); atalaya's own kinds follow the same shape (`console_configs`,
//! `mqtt_configs`, `nats_configs`).

use std::path::PathBuf;
use std::time::Duration;

/// A receiver as compiled from the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    /// In the order written: webhooks first, then console, MQTT, NATS. Each is delivered and
    /// retried on its own; a notification's `integration` is an index into this list.
    pub integrations: Vec<Integration>,
}

/// One way of notifying a receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum Integration {
    Webhook(WebhookConfig),
    Console(ConsoleConfig),
    Mqtt(MqttPublishConfig),
    Nats(NatsPublishConfig),
}

impl Integration {
    /// Whether resolved alerts are notified (Alertmanager's `send_resolved`).
    pub fn send_resolved(&self) -> bool {
        match self {
            Self::Webhook(c) => c.send_resolved,
            Self::Console(c) => c.send_resolved,
            Self::Mqtt(c) => c.send_resolved,
            Self::Nats(c) => c.send_resolved,
        }
    }

    /// The kind, as in metrics and logs: `webhook`, `console`, `mqtt`, `nats`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Console(_) => "console",
            Self::Mqtt(_) => "mqtt",
            Self::Nats(_) => "nats",
        }
    }
}

/// `webhook_configs`: Alertmanager's webhook JSON (version 4), POSTed to a URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL, written in the policy. It may hold a token, so it is never logged.
    pub url: Option<String>,
    /// Or a file holding it (Alertmanager's `url_file`), read when delivering.
    pub url_file: Option<PathBuf>,
    /// Default true, as in Alertmanager.
    pub send_resolved: bool,
    /// At most this many alerts per notification (0: all); the rest are counted in
    /// `truncatedAlerts`.
    pub max_alerts: usize,
    /// A request taking longer fails (and is retried). Default 10 s.
    pub timeout: Duration,
}

/// `console_configs`: one line per notification on standard output.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// Default true.
    pub send_resolved: bool,
}

/// `mqtt_configs`: the notification as JSON to `topic`, and each alert's state retained
/// under `<state_topic_prefix>/<fingerprint>` so Home Assistant can show it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttPublishConfig {
    /// Default `atalaya/notifications`.
    pub topic: String,
    /// Default `atalaya/alerts`; empty: no per-alert state topics.
    pub state_topic_prefix: String,
    /// Default true.
    pub send_resolved: bool,
}

/// `nats_configs`: the notification as JSON to a NATS subject.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsPublishConfig {
    /// Default `atalaya.notifications`.
    pub subject: String,
    /// Default true.
    pub send_resolved: bool,
}
