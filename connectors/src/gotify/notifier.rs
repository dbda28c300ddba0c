//! [`GotifyNotifier`]: one `POST /message` per notification.

use std::sync::Arc;

use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture};
use serde_json::json;

use super::GotifyConfig;
use crate::http::{HttpError, send};
use crate::notifiers::NotifierContext;
use crate::push::{Urgency, render};
use crate::secret::read_secret;
use crate::templates::MessageTemplates;

/// Posts notifications to one Gotify application.
pub struct GotifyNotifier {
    client: reqwest::Client,
    templates: MessageTemplates,
    config: GotifyConfig,
    external_url: Arc<str>,
}

impl GotifyNotifier {
    pub fn open(context: &NotifierContext, config: &GotifyConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            client: context.http.clone(),
            templates: context.templates.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }

    async fn post(&self, notification: &Notification) -> Result<(), HttpError> {
        let token = read_secret(&self.config.token).await?;
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
                Urgency::Critical => 8,
                Urgency::Warning => 5,
                Urgency::Info => 3,
                Urgency::Resolved => 1,
            });
        let mut extras = json!({"client::display": {"contentType": "text/plain"}});
        if let Some(link) = &message.link {
            extras["client::notification"] = json!({"click": {"url": link}});
        }
        let body = json!({
            "title": message.title,
            "message": message.text,
            "priority": priority,
            "extras": extras,
        });
        let request = self
            .client
            .post(format!("{}/message", self.config.url))
            .header("X-Gotify-Key", token.as_str())
            .header("X-Atalaya-Notification-Id", notification.id.as_str())
            .json(&body);
        send(
            "Gotify server",
            request,
            self.config.push.timeout,
            &[&token],
        )
        .await?;
        Ok(())
    }
}

impl Notifier for GotifyNotifier {
    fn kind(&self) -> &'static str {
        "gotify"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { Ok(self.post(notification).await?) })
    }
}
