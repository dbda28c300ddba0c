//! Compiling `receivers:`: names, and the integrations atalaya delivers with their defaults.
//! Alertmanager's kinds atalaya does not deliver are refused at their key, so a migrated
//! configuration never silently loses a notification channel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::Compiler;
use super::spec::{
    ConsoleSpec, MqttSpec, NatsSpec, ReceiverSpec, SUPPORTED_KINDS, UNSUPPORTED_KINDS, WebhookSpec,
};
use crate::routing::receiver::{
    ConsoleConfig, Integration, MqttPublishConfig, NatsPublishConfig, Receiver, WebhookConfig,
};
use crate::yaml::{Node, NodeKind, Position};

/// A webhook request taking longer fails, unless `timeout` says otherwise.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MQTT_TOPIC: &str = "atalaya/notifications";
const DEFAULT_MQTT_STATE_TOPIC_PREFIX: &str = "atalaya/alerts";
const DEFAULT_NATS_SUBJECT: &str = "atalaya.notifications";

impl Compiler<'_> {
    /// Every receiver under `receivers:`; names must be unique.
    pub(super) fn receivers(&mut self, node: &Node) -> Vec<Receiver> {
        let mut receivers = Vec::new();
        let mut first_seen: HashMap<String, Position> = HashMap::new();
        for item in self.items(node, "receivers") {
            let Some(receiver) = self.receiver(item) else {
                continue;
            };
            let position = item.get("name").map_or(item.position, |n| n.position);
            match first_seen.get(&receiver.name) {
                Some(first) => self.error(
                    position,
                    format!(
                        "duplicate receiver name `{}`; first defined at {first}",
                        receiver.name
                    ),
                ),
                None => {
                    first_seen.insert(receiver.name.clone(), position);
                    receivers.push(receiver);
                }
            }
        }
        receivers
    }

    fn receiver(&mut self, node: &Node) -> Option<Receiver> {
        let label = match node.get("name").map(|n| &n.kind) {
            Some(NodeKind::String(name)) if !name.is_empty() => format!("receiver `{name}`"),
            _ => "receiver".to_owned(),
        };
        // Unsupported kinds are reported here, and left out of what is decoded.
        let node = match &node.kind {
            NodeKind::Map(entries) => {
                let mut kept = Vec::new();
                for (key, value) in entries {
                    let kind = UNSUPPORTED_KINDS
                        .iter()
                        .find(|(kind, _)| matches!(&key.kind, NodeKind::String(k) if k == kind));
                    match kind {
                        Some((kind, planned)) => self.error(
                            key.position,
                            format!(
                                "{label}: `{kind}` is not supported by atalaya{}; supported: \
                                 {SUPPORTED_KINDS}",
                                if *planned { " (planned)" } else { "" }
                            ),
                        ),
                        None => kept.push((key.clone(), value.clone())),
                    }
                }
                Node {
                    position: node.position,
                    kind: NodeKind::Map(kept),
                }
            }
            _ => node.clone(),
        };
        let spec = self.decode::<ReceiverSpec>(&node)?;
        let name = spec.name.filter(|n| !n.is_empty());
        if name.is_none() && Self::missing(&node, "name") {
            let position = node.get("name").map_or(node.position, |n| n.position);
            self.error(position, "a receiver needs a `name`");
        }
        let mut integrations = Vec::new();
        for item in self.integration_items(&node, "webhook_configs") {
            if let Some(spec) = self.decode::<WebhookSpec>(item) {
                integrations.extend(self.webhook(&label, item, &spec).map(Integration::Webhook));
            }
        }
        for item in self.integration_items(&node, "console_configs") {
            if let Some(spec) = self.decode::<ConsoleSpec>(item) {
                integrations.push(Integration::Console(console(&spec)));
            }
        }
        for item in self.integration_items(&node, "mqtt_configs") {
            if let Some(spec) = self.decode::<MqttSpec>(item) {
                integrations.extend(self.mqtt(&label, item, &spec).map(Integration::Mqtt));
            }
        }
        for item in self.integration_items(&node, "nats_configs") {
            if let Some(spec) = self.decode::<NatsSpec>(item) {
                integrations.extend(self.nats(&label, item, &spec).map(Integration::Nats));
            }
        }
        Some(Receiver {
            name: name?,
            integrations,
        })
    }

    /// The entries of the integration list `key` (already checked to be a list).
    fn integration_items<'n>(&mut self, node: &'n Node, key: &str) -> &'n [Node] {
        node.get(key)
            .map(|n| self.items(n, key))
            .unwrap_or_default()
    }

    fn webhook(&mut self, label: &str, node: &Node, spec: &WebhookSpec) -> Option<WebhookConfig> {
        let before = self.errors.len();
        if spec.http_config.is_some() {
            self.error(
                node.key_position("http_config").unwrap_or(node.position),
                format!(
                    "{label}: webhook `http_config` is not supported by atalaya yet (no \
                     authentication, TLS or proxy settings); put a token in the URL, written \
                     in a file named by `url_file`"
                ),
            );
        }
        match (&spec.url, &spec.url_file) {
            (Some(_), Some(_)) => self.error(
                node.key_position("url_file").unwrap_or(node.position),
                format!("{label}: give a webhook `url` or `url_file`, not both"),
            ),
            (None, None) => self.error(
                node.position,
                format!("{label}: a webhook needs `url` (or `url_file`, a file holding it)"),
            ),
            (Some(url), None) if !is_http_url(url) => self.error(
                node.get("url").map_or(node.position, |n| n.position),
                // The URL may hold a token: never repeated in messages.
                format!(
                    "{label}: the webhook `url` must be an http:// or https:// URL with a host"
                ),
            ),
            (None, Some(file)) if file.is_empty() => self.error(
                node.get("url_file").map_or(node.position, |n| n.position),
                format!("{label}: the webhook `url_file` is empty"),
            ),
            _ => {}
        }
        let max_alerts = usize::try_from(spec.max_alerts.unwrap_or(0));
        if max_alerts.is_err() {
            self.error(
                node.get("max_alerts").map_or(node.position, |n| n.position),
                format!("{label}: webhook `max_alerts` must be 0 (every alert) or more"),
            );
        }
        let timeout = self.duration(node, "timeout", spec.timeout.as_ref(), true);
        if self.errors.len() > before {
            return None;
        }
        Some(WebhookConfig {
            url: spec.url.clone(),
            url_file: spec.url_file.as_ref().map(PathBuf::from),
            send_resolved: spec.send_resolved.unwrap_or(true),
            max_alerts: max_alerts.unwrap_or(0),
            timeout: timeout.unwrap_or(DEFAULT_WEBHOOK_TIMEOUT),
        })
    }

    fn mqtt(&mut self, label: &str, node: &Node, spec: &MqttSpec) -> Option<MqttPublishConfig> {
        let topic = spec.topic.as_deref().unwrap_or(DEFAULT_MQTT_TOPIC);
        let prefix = spec
            .state_topic_prefix
            .as_deref()
            .unwrap_or(DEFAULT_MQTT_STATE_TOPIC_PREFIX);
        let mut ok = true;
        for (key, value, may_be_empty) in [
            ("topic", topic, false),
            ("state_topic_prefix", prefix, true),
        ] {
            if (value.is_empty() && !may_be_empty) || value.contains(['+', '#', '\0']) {
                let position = node.get(key).map_or(node.position, |n| n.position);
                self.error(
                    position,
                    format!(
                        "{label}: MQTT `{key}` `{value}` cannot be published to: it must be \
                         non-empty, without the wildcards `+` and `#`"
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| MqttPublishConfig {
            topic: topic.to_owned(),
            state_topic_prefix: prefix.to_owned(),
            send_resolved: spec.send_resolved.unwrap_or(true),
        })
    }

    fn nats(&mut self, label: &str, node: &Node, spec: &NatsSpec) -> Option<NatsPublishConfig> {
        let subject = spec.subject.as_deref().unwrap_or(DEFAULT_NATS_SUBJECT);
        let valid = !subject.is_empty()
            && !subject.contains(char::is_whitespace)
            && subject
                .split('.')
                .all(|token| !token.is_empty() && token != "*" && token != ">");
        if !valid {
            let position = node.get("subject").map_or(node.position, |n| n.position);
            self.error(
                position,
                format!(
                    "{label}: NATS `subject` `{subject}` cannot be published to: it must be \
                     dot-separated tokens, without spaces or the wildcards `*` and `>`"
                ),
            );
            return None;
        }
        Some(NatsPublishConfig {
            subject: subject.to_owned(),
            send_resolved: spec.send_resolved.unwrap_or(true),
        })
    }
}

fn console(spec: &ConsoleSpec) -> ConsoleConfig {
    ConsoleConfig {
        send_resolved: spec.send_resolved.unwrap_or(true),
    }
}

/// `http://host…` or `https://host…`, as Alertmanager requires of a webhook URL.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace)
    })
}
