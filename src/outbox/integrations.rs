//! [`Integrations`]: what delivering needs (an HTTP client, the console writer, the broker
//! publishers, the Telegram and mail senders), and one delivery attempt of a notification
//! to one integration.

use std::io::Write;
use std::sync::{Arc, Mutex};
#[cfg(feature = "mqtt")]
use std::time::Duration;

use atalaya_bus::store::Store;
use atalaya_connectors::console::render_notification;
use atalaya_rules::routing::config::RoutingPolicy;
use atalaya_rules::routing::notification::{Notification, NotifiedAlert};
use atalaya_rules::routing::receiver::Integration;

use super::retry::DeliveryFailure;

/// Where console notifications are written: standard output in the service, a buffer in
/// tests. One line is written with one call, under the lock.
pub type ConsoleWriter = Arc<Mutex<dyn Write + Send>>;

/// The longest an MQTT publish may wait for room in the connection's queue (the broker
/// being away) before the attempt fails and is retried later.
#[cfg(feature = "mqtt")]
const MQTT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the integrations need to deliver. Cheap to clone.
#[derive(Clone)]
pub struct Integrations {
    /// Sends webhooks, with its HTTP client (and connection pool).
    #[cfg(feature = "webhook")]
    pub webhook: atalaya_connectors::webhook::WebhookSender,
    /// atalaya's own address, the `externalURL` of webhook and broker payloads.
    pub external_url: String,
    pub console: ConsoleWriter,
    /// The `mqtt:` connection, when configured; MQTT integrations fail without it.
    #[cfg(feature = "mqtt")]
    pub mqtt: Option<atalaya_connectors::mqtt::MqttPublisher>,
    /// The `nats:` connection, when configured; NATS integrations fail without it.
    #[cfg(feature = "nats")]
    pub nats: Option<atalaya_connectors::nats::NatsPublisher>,
    /// Sends Telegram messages, remembering them in the store (for edits on resolve).
    #[cfg(feature = "telegram")]
    pub telegram: atalaya_connectors::telegram::TelegramSender,
    /// Sends mail, with a pool of SMTP connections per server.
    #[cfg(feature = "mail")]
    pub mail: atalaya_connectors::mail::MailSender,
}

impl Integrations {
    /// Webhooks through a default rustls client, the console on standard output, Telegram
    /// keeping its messages in `store`, mail; no broker (set `mqtt` / `nats` afterwards).
    pub fn new(external_url: impl Into<String>, store: Arc<Store>) -> anyhow::Result<Self> {
        #[cfg(not(feature = "telegram"))]
        drop(store);
        Ok(Self {
            #[cfg(feature = "webhook")]
            webhook: atalaya_connectors::webhook::WebhookSender::new(
                atalaya_connectors::webhook::default_client()?,
            ),
            external_url: external_url.into(),
            console: Arc::new(Mutex::new(std::io::stdout())),
            #[cfg(feature = "mqtt")]
            mqtt: None,
            #[cfg(feature = "nats")]
            nats: None,
            #[cfg(feature = "telegram")]
            telegram: atalaya_connectors::telegram::TelegramSender::new(store)?,
            #[cfg(feature = "mail")]
            mail: atalaya_connectors::mail::MailSender::default(),
        })
    }

    /// One attempt at delivering `notification` through `integration` of `policy` (whose
    /// time intervals say when Telegram messages are quiet).
    pub async fn deliver(
        &self,
        integration: &Integration,
        notification: &Notification,
        policy: &RoutingPolicy,
    ) -> Result<(), DeliveryFailure> {
        match integration {
            Integration::Webhook(config) => self.webhook(config, notification).await,
            Integration::Console(_) => self.console(notification),
            Integration::Mqtt(config) => self.mqtt(config, notification).await,
            Integration::Nats(config) => self.nats(config, notification).await,
            Integration::Telegram(config) => self.telegram(config, notification, policy).await,
            Integration::Email(config) => self.mail(config, notification).await,
        }
    }

    #[cfg(feature = "telegram")]
    async fn telegram(
        &self,
        config: &atalaya_rules::routing::receiver::TelegramConfig,
        notification: &Notification,
        policy: &RoutingPolicy,
    ) -> Result<(), DeliveryFailure> {
        let silent = config.is_quiet(notification, &policy.time_intervals, jiff::Timestamp::now());
        self.telegram
            .send(config, notification, &self.external_url, silent)
            .await
            .map_err(|e| DeliveryFailure {
                retryable: e.retryable(),
                retry_after: e.retry_after(),
                reason: e.kind(),
                message: e.to_string(),
            })
    }

    #[cfg(not(feature = "telegram"))]
    async fn telegram(
        &self,
        _: &atalaya_rules::routing::receiver::TelegramConfig,
        _: &Notification,
        _: &RoutingPolicy,
    ) -> Result<(), DeliveryFailure> {
        Err(not_built("telegram"))
    }

    #[cfg(feature = "mail")]
    async fn mail(
        &self,
        config: &atalaya_rules::routing::receiver::EmailConfig,
        notification: &Notification,
    ) -> Result<(), DeliveryFailure> {
        self.mail
            .send(config, notification, &self.external_url)
            .await
            .map_err(|e| DeliveryFailure {
                retryable: e.retryable(),
                retry_after: None,
                reason: e.kind(),
                message: e.to_string(),
            })
    }

    #[cfg(not(feature = "mail"))]
    async fn mail(
        &self,
        _: &atalaya_rules::routing::receiver::EmailConfig,
        _: &Notification,
    ) -> Result<(), DeliveryFailure> {
        Err(not_built("mail"))
    }

    #[cfg(feature = "webhook")]
    async fn webhook(
        &self,
        config: &atalaya_rules::routing::receiver::WebhookConfig,
        notification: &Notification,
    ) -> Result<(), DeliveryFailure> {
        self.webhook
            .send(config, notification, &self.external_url)
            .await
            .map_err(|e| DeliveryFailure {
                retryable: e.retryable(),
                retry_after: e.retry_after(),
                reason: e.kind(),
                message: e.to_string(),
            })
    }

    #[cfg(not(feature = "webhook"))]
    async fn webhook(
        &self,
        _: &atalaya_rules::routing::receiver::WebhookConfig,
        _: &Notification,
    ) -> Result<(), DeliveryFailure> {
        Err(not_built("webhook"))
    }

    fn console(&self, notification: &Notification) -> Result<(), DeliveryFailure> {
        let mut line = render_notification(notification);
        line.push('\n');
        let mut out = self.console.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| DeliveryFailure::transient("write", format!("cannot write: {e}")))
    }

    #[cfg(feature = "mqtt")]
    async fn mqtt(
        &self,
        config: &atalaya_rules::routing::receiver::MqttPublishConfig,
        notification: &Notification,
    ) -> Result<(), DeliveryFailure> {
        use atalaya_connectors::mqtt::MqttError;

        let Some(mqtt) = &self.mqtt else {
            return Err(no_broker("MQTT", "mqtt"));
        };
        // A publish succeeds once the message is queued on the connection (QoS 1): the
        // connection's queue, not the broker, has it then. While the broker is away the queue
        // holds it (and a full queue makes the attempt time out and be retried); a crash in
        // between loses what was queued — MQTT delivery is at least once only up to there.
        let publish = |topic: String, payload: Vec<u8>, retain: bool| async move {
            match tokio::time::timeout(MQTT_PUBLISH_TIMEOUT, mqtt.publish(&topic, payload, retain))
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(
                    e @ (MqttError::InvalidSubject { .. } | MqttError::PayloadTooLarge { .. }),
                )) => Err(DeliveryFailure::permanent("publish", e.to_string())),
                Ok(Err(e)) => Err(DeliveryFailure::transient("publish", e.to_string())),
                Err(_) => Err(DeliveryFailure::transient(
                    "timeout",
                    format!(
                        "the MQTT connection had no room for {MQTT_PUBLISH_TIMEOUT:?} (is the broker away?)"
                    ),
                )),
            }
        };
        if !config.state_topic_prefix.is_empty() {
            let prefix = config.state_topic_prefix.trim_end_matches('/');
            for alert in &notification.alerts {
                publish(
                    format!("{prefix}/{}", alert.fingerprint),
                    json_bytes(&alert_state(alert)),
                    true,
                )
                .await?;
            }
        }
        let payload = notification.webhook_payload(&self.external_url, 0);
        publish(config.topic.clone(), json_bytes(&payload), false).await
    }

    #[cfg(not(feature = "mqtt"))]
    async fn mqtt(
        &self,
        _: &atalaya_rules::routing::receiver::MqttPublishConfig,
        _: &Notification,
    ) -> Result<(), DeliveryFailure> {
        Err(not_built("mqtt"))
    }

    #[cfg(feature = "nats")]
    async fn nats(
        &self,
        config: &atalaya_rules::routing::receiver::NatsPublishConfig,
        notification: &Notification,
    ) -> Result<(), DeliveryFailure> {
        use atalaya_connectors::nats::NatsError;

        let Some(nats) = &self.nats else {
            return Err(no_broker("NATS", "nats"));
        };
        // The policy writes NATS subjects the NATS way (`atalaya.notifications`); the
        // publisher takes atalaya's `/`-separated form.
        let subject = config.subject.replace('.', "/");
        let payload = notification.webhook_payload(&self.external_url, 0);
        // The publisher bounds its own wait (`nats.publish_timeout`).
        nats.publish(&subject, json_bytes(&payload))
            .await
            .map_err(|e| match e {
                NatsError::InvalidSubject { .. } => {
                    DeliveryFailure::permanent("publish", e.to_string())
                }
                NatsError::PublishTimeout { .. } => {
                    DeliveryFailure::transient("timeout", e.to_string())
                }
                _ => DeliveryFailure::transient("publish", e.to_string()),
            })
    }

    #[cfg(not(feature = "nats"))]
    async fn nats(
        &self,
        _: &atalaya_rules::routing::receiver::NatsPublishConfig,
        _: &Notification,
    ) -> Result<(), DeliveryFailure> {
        Err(not_built("nats"))
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

/// A JSON value's bytes (a `Value` always serializes: its map keys are strings).
#[cfg(any(feature = "mqtt", feature = "nats"))]
fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(any(feature = "mqtt", feature = "nats"))]
fn no_broker(name: &str, section: &str) -> DeliveryFailure {
    DeliveryFailure::permanent(
        "no_broker",
        format!(
            "the policy has a {section} integration, but no {name} broker is configured (`{section}:`)"
        ),
    )
}

#[cfg(not(all(
    feature = "webhook",
    feature = "mqtt",
    feature = "nats",
    feature = "telegram",
    feature = "mail"
)))]
fn not_built(kind: &str) -> DeliveryFailure {
    DeliveryFailure::permanent(
        "not_built",
        format!("this atalaya was built without the `{kind}` feature"),
    )
}
