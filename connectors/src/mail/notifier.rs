//! [`MailNotifier`]: one `email_configs` entry, ready to deliver.

use std::sync::Arc;

use super::EmailConfig;
use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture};

use super::MailSender;
use crate::notifiers::NotifierContext;

/// Mails each notification, over the shared pool of SMTP connections.
pub struct MailNotifier {
    sender: MailSender,
    config: EmailConfig,
    external_url: Arc<str>,
}

impl MailNotifier {
    pub fn open(context: &NotifierContext, config: &EmailConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            sender: context.mail.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }
}

impl Notifier for MailNotifier {
    fn kind(&self) -> &'static str {
        "email"
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
