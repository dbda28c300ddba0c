//! [`MqttNotifier`]: one `mqtt_configs` entry — the notification as JSON to a topic, and each
//! alert's state retained under `<state_topic_prefix>/<fingerprint>` for Home Assistant —
//! over the `mqtt:` connection. A one-shot alert's state is published firing and at once
//! resolved; the [`keeper`](super::keeper) resolves what the router no longer holds firing and
//! clears resolved states `clear_resolved_after` later.

use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::delivery::{
    DeliveryError, Integration, IntegrationContext, Notification, NotifiedAlert, Notifier,
    NotifyFuture,
};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;

use super::{MqttError, MqttPublisher};
use crate::notifiers::{NotifierContext, Unavailable, json_bytes};

const DEFAULT_TOPIC: &str = "atalaya/notifications";
const DEFAULT_STATE_TOPIC_PREFIX: &str = "atalaya/alerts";
const DEFAULT_CLEAR_RESOLVED_AFTER: Duration = Duration::from_secs(3600);

/// `mqtt_configs`: the notification as JSON to `topic`, and each alert's state retained
/// under `<state_topic_prefix>/<fingerprint>` so Home Assistant can show it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttPublishConfig {
    /// Default `atalaya/notifications`.
    pub topic: String,
    /// Default `atalaya/alerts`; empty: no per-alert state topics.
    pub state_topic_prefix: String,
    /// How long a resolved state stays retained before it is cleared. Default 1 h.
    pub clear_resolved_after: Duration,
}

/// `mqtt_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MqttSpec {
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    state_topic_prefix: Option<String>,
    #[serde(default)]
    send_resolved: Option<bool>,
    #[serde(default)]
    clear_resolved_after: Option<Text>,
}

/// Compiles one `mqtt_configs` entry; `send_resolved` defaults to true.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<MqttSpec>(node)?;
    let topic = spec.topic.as_deref().unwrap_or(DEFAULT_TOPIC);
    let prefix = spec
        .state_topic_prefix
        .as_deref()
        .unwrap_or(DEFAULT_STATE_TOPIC_PREFIX);
    let mut ok = true;
    for (key, value, may_be_empty) in [
        ("topic", topic, false),
        ("state_topic_prefix", prefix, true),
    ] {
        if (value.is_empty() && !may_be_empty) || value.contains(['+', '#', '\0']) {
            let position = node.get(key).map_or(node.position, |n| n.position);
            ctx.decoder.error(
                position,
                format!(
                    "{label}: MQTT `{key}` `{value}` cannot be published to: it must be \
                     non-empty, without the wildcards `+` and `#`"
                ),
            );
            ok = false;
        }
    }
    let clear_resolved_after = ctx.decoder.duration(
        node,
        "clear_resolved_after",
        spec.clear_resolved_after.as_ref(),
        true,
    );
    ok &= clear_resolved_after.is_some() || spec.clear_resolved_after.is_none();
    let config = MqttPublishConfig {
        topic: topic.to_owned(),
        state_topic_prefix: prefix.to_owned(),
        clear_resolved_after: clear_resolved_after.unwrap_or(DEFAULT_CLEAR_RESOLVED_AFTER),
    };
    ok.then(|| Integration::new("mqtt", spec.send_resolved.unwrap_or(true), config))
}

/// The longest a publish may wait for room in the connection's queue (the broker being
/// away) before the attempt fails and is retried later.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes notifications over the connector's connection (QoS 1).
pub struct MqttNotifier {
    publisher: MqttPublisher,
    config: MqttPublishConfig,
    external_url: Arc<str>,
}

impl MqttNotifier {
    /// Without an `mqtt:` connection every attempt fails permanently, saying so.
    pub fn open(context: &NotifierContext, config: &MqttPublishConfig) -> Arc<dyn Notifier> {
        match &context.mqtt {
            Some(publisher) => Arc::new(Self {
                publisher: publisher.clone(),
                config: config.clone(),
                external_url: Arc::clone(&context.external_url),
            }),
            None => Arc::new(Unavailable::no_broker("mqtt", "MQTT")),
        }
    }

    /// One publish, bounded by [`PUBLISH_TIMEOUT`].
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), DeliveryError> {
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.publisher.publish(topic, payload, retain),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ (MqttError::InvalidSubject { .. } | MqttError::PayloadTooLarge { .. }))) => {
                Err(DeliveryError::permanent("publish", e.to_string()))
            }
            Ok(Err(e)) => Err(DeliveryError::transient("publish", e.to_string())),
            Err(_) => Err(DeliveryError::transient(
                "timeout",
                format!(
                    "the MQTT connection had no room for {PUBLISH_TIMEOUT:?} (is the broker away?)"
                ),
            )),
        }
    }
}

impl Notifier for MqttNotifier {
    fn kind(&self) -> &'static str {
        "mqtt"
    }

    // A publish succeeds once the message is queued on the connection (QoS 1): the
    // connection's queue, not the broker, has it then. While the broker is away the queue
    // holds it (and a full queue makes the attempt time out and be retried); a crash in
    // between loses what was queued — MQTT delivery is at least once only up to there.
    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move {
            if !self.config.state_topic_prefix.is_empty() {
                let prefix = self.config.state_topic_prefix.trim_end_matches('/');
                for alert in &notification.alerts {
                    let topic = format!("{prefix}/{}", alert.fingerprint);
                    let state = alert_state(alert);
                    self.publish(&topic, json_bytes(&state), true).await?;
                    if alert.instant {
                        // It happened at one instant: what stays retained is resolved.
                        let mut resolved = state;
                        resolved["status"] = "resolved".into();
                        resolved["endsAt"] = alert.starts_at.to_string().into();
                        self.publish(&topic, json_bytes(&resolved), true).await?;
                    }
                }
            }
            let payload = notification.webhook_payload(&self.external_url, 0);
            self.publish(&self.config.topic, json_bytes(&payload), false)
                .await
        })
    }
}

/// One alert's current state, as retained on `<state_topic_prefix>/<fingerprint>` for Home
/// Assistant: `status`, `labels`, `annotations`, `startsAt`, `endsAt` (null while firing) and
/// the rule's `value`.
pub fn alert_state(alert: &NotifiedAlert) -> serde_json::Value {
    serde_json::json!({
        "status": alert.status.as_str(),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": alert.starts_at.to_string(),
        "endsAt": alert.ends_at.map(|t| t.to_string()),
        "value": alert.value,
    })
}
