//! [`NatsNotifier`]: one `nats_configs` entry — the notification as JSON to a subject — over
//! the `nats:` connection.

use std::sync::Arc;

use atalaya_bus::delivery::integration::NatsPublishConfig;
use atalaya_bus::delivery::{DeliveryError, Notification, Notifier, NotifyFuture};

use super::{NatsError, NatsPublisher};
use crate::notifiers::{NotifierContext, Unavailable, json_bytes};

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
