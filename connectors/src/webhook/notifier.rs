//! [`WebhookNotifier`]: one `webhook_configs` entry, ready to deliver.

use std::sync::Arc;

use super::WebhookConfig;
use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture};

use super::WebhookSender;
use crate::notifiers::NotifierContext;

/// POSTs each notification to the webhook, through the shared client.
pub struct WebhookNotifier {
    sender: WebhookSender,
    config: WebhookConfig,
    external_url: Arc<str>,
}

impl WebhookNotifier {
    pub fn open(context: &NotifierContext, config: &WebhookConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            sender: context.webhook.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move {
            Ok(self
                .sender
                .send(&self.config, notification, &self.external_url)
                .await?)
        })
    }
}
