//! [`TelegramNotifier`]: one `telegram_configs` entry, ready to deliver.

use std::sync::Arc;

use super::TelegramConfig;
use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture};

use super::TelegramSender;
use crate::notifiers::NotifierContext;

/// Sends each notification to the integration's chats, silently when the router said so.
pub struct TelegramNotifier {
    sender: TelegramSender,
    config: TelegramConfig,
    external_url: Arc<str>,
}

impl TelegramNotifier {
    pub fn open(context: &NotifierContext, config: &TelegramConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            sender: context.telegram.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }
}

impl Notifier for TelegramNotifier {
    fn kind(&self) -> &'static str {
        "telegram"
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
