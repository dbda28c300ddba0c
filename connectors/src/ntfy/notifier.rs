//! [`NtfyNotifier`]: one JSON publish per notification.

use std::sync::Arc;

use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture, Status};
use serde_json::json;

use super::NtfyConfig;
use crate::http::{HttpError, send};
use crate::notifiers::NotifierContext;
use crate::push::{Urgency, render};
use crate::secret::read_secret;
use crate::templates::MessageTemplates;

/// Publishes notifications to one ntfy topic.
pub struct NtfyNotifier {
    client: reqwest::Client,
    templates: MessageTemplates,
    config: NtfyConfig,
    external_url: Arc<str>,
}

impl NtfyNotifier {
    pub fn open(context: &NotifierContext, config: &NtfyConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            client: context.http.clone(),
            templates: context.templates.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }

    async fn publish(&self, notification: &Notification) -> Result<(), HttpError> {
        let token = match &self.config.token {
            Some(source) => Some(read_secret(source).await?),
            None => None,
        };
        let message = render(
            &self.templates,
            &self.config.push,
            notification,
            &self.external_url,
        );
        let priority = self
            .config
            .priority
            .unwrap_or(match Urgency::of(notification) {
                Urgency::Critical => 5,
                Urgency::Warning => 4,
                Urgency::Info => 3,
                Urgency::Resolved => 2,
            });
        let mut tags = vec![
            match notification.status {
                Status::Firing => "rotating_light",
                Status::Resolved => "white_check_mark",
            }
            .to_owned(),
        ];
        tags.extend(self.config.tags.iter().cloned());
        let click = self.config.click.clone().or(message.link);
        let mut body = json!({
            "topic": self.config.topic,
            "title": message.title,
            "message": message.text,
            "priority": priority,
            "tags": tags,
        });
        if let Some(click) = &click {
            body["click"] = json!(click);
            body["actions"] = json!([{"action": "view", "label": "Open", "url": click}]);
        }
        let mut request = self
            .client
            .post(format!("{}/", self.config.url))
            .header("X-Atalaya-Notification-Id", notification.id.as_str())
            .json(&body);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let secrets: Vec<&str> = token.as_deref().into_iter().collect();
        send("ntfy server", request, self.config.push.timeout, &secrets).await?;
        Ok(())
    }
}

impl Notifier for NtfyNotifier {
    fn kind(&self) -> &'static str {
        "ntfy"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { Ok(self.publish(notification).await?) })
    }
}
