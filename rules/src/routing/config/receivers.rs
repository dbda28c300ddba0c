//! Compiling `receivers:`: names, and the integrations atalaya delivers with their defaults.
//! Alertmanager's kinds atalaya does not deliver are refused at their key, so a migrated
//! configuration never silently loses a notification channel.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::Compiler;
use super::email::SmtpDefaults;
use super::spec::{
    ConsoleSpec, MqttSpec, NatsSpec, ReceiverSpec, SUPPORTED_KINDS, UNSUPPORTED_KINDS, WebhookSpec,
};
use crate::template::Template;
use crate::yaml::{Node, NodeKind, Position};
use atalaya_bus::delivery::integration::{
    ConsoleConfig, Integration, Locale, MqttPublishConfig, NatsPublishConfig, Receiver,
    SecretSource, WebhookConfig,
};
use atalaya_bus::delivery::notification::MESSAGE_TEMPLATE_VARIABLES;

/// What integrations take from `global:` when they do not say.
#[derive(Debug, Default)]
pub(super) struct ReceiverDefaults {
    pub(super) smtp: SmtpDefaults,
    pub(super) telegram_api_url: Option<String>,
}

/// A webhook request taking longer fails, unless `timeout` says otherwise.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MQTT_TOPIC: &str = "atalaya/notifications";
const DEFAULT_MQTT_STATE_TOPIC_PREFIX: &str = "atalaya/alerts";
const DEFAULT_NATS_SUBJECT: &str = "atalaya.notifications";

impl Compiler<'_> {
    /// Every receiver under `receivers:`; names must be unique.
    pub(super) fn receivers(
        &mut self,
        node: &Node,
        defaults: &ReceiverDefaults,
        intervals: &HashSet<String>,
    ) -> Vec<Receiver> {
        let mut receivers = Vec::new();
        let mut first_seen: HashMap<String, Position> = HashMap::new();
        for item in self.items(node, "receivers") {
            let Some(receiver) = self.receiver(item, defaults, intervals) else {
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

    fn receiver(
        &mut self,
        node: &Node,
        defaults: &ReceiverDefaults,
        intervals: &HashSet<String>,
    ) -> Option<Receiver> {
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
        for item in self.integration_items(&node, "telegram_configs") {
            let api_url = defaults.telegram_api_url.as_deref();
            integrations.extend(
                self.telegram(&label, item, api_url, intervals)
                    .map(Integration::Telegram),
            );
        }
        for item in self.integration_items(&node, "email_configs") {
            integrations.extend(
                self.email(&label, item, &defaults.smtp)
                    .map(Integration::Email),
            );
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

impl Compiler<'_> {
    /// A secret's source: exactly one of a file (`file.0`, named by `file.1`) or an
    /// environment variable. `required`: complain when neither is given.
    pub(super) fn secret(
        &mut self,
        label: &str,
        node: &Node,
        file: (&str, Option<&str>),
        env: (&str, Option<&str>),
        required: bool,
    ) -> Option<SecretSource> {
        let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
        match (file.1, env.1) {
            (Some(_), Some(_)) => {
                self.error(
                    node.key_position(env.0).unwrap_or(node.position),
                    format!("{label}: give `{}` or `{}`, not both", file.0, env.0),
                );
                None
            }
            (None, None) => {
                if required {
                    self.error(
                        node.position,
                        format!(
                            "{label}: a secret is needed: `{}` (a file holding it) or `{}` (an \
                             environment variable holding it)",
                            file.0, env.0
                        ),
                    );
                }
                None
            }
            (Some(path), None) if path.trim().is_empty() => {
                self.error(at(file.0), format!("{label}: `{}` is empty", file.0));
                None
            }
            (Some(path), None) => Some(SecretSource::File(PathBuf::from(path.trim()))),
            (None, Some(name)) => {
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if valid {
                    Some(SecretSource::Env(name.to_owned()))
                } else {
                    self.error(
                        at(env.0),
                        format!(
                            "{label}: `{}` must name an environment variable (letters, digits \
                             and `_`), not hold the secret itself",
                            env.0
                        ),
                    );
                    None
                }
            }
        }
    }

    /// A minijinja template under `key` of a Telegram or email integration: it must compile
    /// and use only the variables a notification gives.
    pub(super) fn message_template(
        &mut self,
        label: &str,
        node: &Node,
        key: &str,
        source: Option<String>,
    ) -> Option<String> {
        let source = source?;
        let position = node.get(key).map_or(node.position, |n| n.position);
        if source.contains("{{ .") || source.contains("{{.") || source.contains("{{ template ") {
            self.error(
                position,
                format!(
                    "{label}: `{key}` looks like an Alertmanager Go template; atalaya's \
                     templates are minijinja (Jinja2), e.g. `{{{{ title }}}}` — or leave \
                     `{key}` out for the built-in one"
                ),
            );
            return None;
        }
        match Template::compile(&source) {
            Ok(template) => {
                let mut unknown: Vec<String> = template
                    .referenced_variables()
                    .into_iter()
                    .filter(|v| !MESSAGE_TEMPLATE_VARIABLES.contains(&v.as_str()))
                    .collect();
                unknown.sort();
                if let Some(first) = unknown.first() {
                    self.error(
                        position,
                        format!(
                            "{label}: `{key}` uses `{first}`, which a notification does not \
                             have; it has {}",
                            MESSAGE_TEMPLATE_VARIABLES
                                .iter()
                                .map(|v| format!("`{v}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    return None;
                }
                Some(source)
            }
            Err(e) => {
                self.error(
                    position,
                    format!("{label}: `{key}` template, line {}: {}", e.line, e.message),
                );
                None
            }
        }
    }

    /// `locale:`, `en` (the default) or `es`.
    pub(super) fn locale(&mut self, label: &str, node: &Node, locale: Option<&str>) -> Locale {
        match locale {
            None | Some("en") => Locale::En,
            Some("es") => Locale::Es,
            Some(other) => {
                self.error(
                    node.get("locale").map_or(node.position, |n| n.position),
                    format!("{label}: `locale` must be `en` or `es`, not `{other}`"),
                );
                Locale::En
            }
        }
    }
}

fn console(spec: &ConsoleSpec) -> ConsoleConfig {
    ConsoleConfig {
        send_resolved: spec.send_resolved.unwrap_or(true),
    }
}

/// `http://host…` or `https://host…`, as Alertmanager requires of a webhook URL.
pub(super) fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace)
    })
}
