//! [`NatsNotifier`]: one `nats_configs` entry — the notification as JSON to a subject — over
//! the `nats:` connection.

use std::sync::Arc;

use atalaya_bus::delivery::{
    DeliveryError, Integration, IntegrationContext, Notification, Notifier, NotifyFuture,
};
use atalaya_bus::yaml::Node;
use serde::Deserialize;

use super::{NatsError, NatsPublisher};
use crate::notifiers::{NotifierContext, Unavailable, json_bytes};

const DEFAULT_SUBJECT: &str = "atalaya.notifications";

/// `nats_configs`: the notification as JSON to a NATS subject.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsPublishConfig {
    /// Default `atalaya.notifications`.
    pub subject: String,
}

/// `nats_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsSpec {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    send_resolved: Option<bool>,
}

/// Compiles one `nats_configs` entry; `send_resolved` defaults to true.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<NatsSpec>(node)?;
    let subject = spec.subject.as_deref().unwrap_or(DEFAULT_SUBJECT);
    let valid = !subject.is_empty()
        && !subject.contains(char::is_whitespace)
        && subject
            .split('.')
            .all(|token| !token.is_empty() && token != "*" && token != ">");
    if !valid {
        let position = node.get("subject").map_or(node.position, |n| n.position);
        ctx.decoder.error(
            position,
            format!(
                "{label}: NATS `subject` `{subject}` cannot be published to: it must be \
                 dot-separated tokens, without spaces or the wildcards `*` and `>`"
            ),
        );
        return None;
    }
    let config = NatsPublishConfig {
        subject: subject.to_owned(),
    };
    Some(Integration::new(
        "nats",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}

/// Publishes notifications on the connector's connection (core or JetStream).
pub struct NatsNotifier {
    publisher: NatsPublisher,
    /// In atalaya's `/`-separated form, as the publisher takes it; the policy writes NATS
    /// subjects the NATS way (`atalaya.notifications`).
    subject: String,
    external_url: Arc<str>,
}

impl NatsNotifier {
    /// Without a `nats:` connection every attempt fails permanently, saying so.
    pub fn open(context: &NotifierContext, config: &NatsPublishConfig) -> Arc<dyn Notifier> {
        match &context.nats {
            Some(publisher) => Arc::new(Self {
                publisher: publisher.clone(),
                subject: config.subject.replace('.', "/"),
                external_url: Arc::clone(&context.external_url),
            }),
            None => Arc::new(Unavailable::no_broker("nats", "NATS")),
        }
    }
}

impl Notifier for NatsNotifier {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move {
            let payload = notification.webhook_payload(&self.external_url, 0);
            // The publisher bounds its own wait (`nats.publish_timeout`).
            self.publisher
                .publish(&self.subject, json_bytes(&payload))
                .await
                .map_err(|e| match e {
                    NatsError::InvalidSubject { .. } => {
                        DeliveryError::permanent("publish", e.to_string())
                    }
                    NatsError::PublishTimeout { .. } => {
                        DeliveryError::transient("timeout", e.to_string())
                    }
                    _ => DeliveryError::transient("publish", e.to_string()),
                })
        })
    }
}
