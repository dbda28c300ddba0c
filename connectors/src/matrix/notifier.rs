//! [`MatrixNotifier`]: one `m.room.message` per notification, the notification id as its
//! transaction id.

use std::sync::Arc;

use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture};
use serde_json::json;

use super::MatrixConfig;
use crate::http::{HttpError, send};
use crate::notifiers::NotifierContext;
use crate::push::render;
use crate::secret::read_secret;
use crate::templates::{MessagePart, MessageTemplates};

/// Sends notifications to one Matrix room.
pub struct MatrixNotifier {
    client: reqwest::Client,
    templates: MessageTemplates,
    config: MatrixConfig,
    external_url: Arc<str>,
}

impl MatrixNotifier {
    pub fn open(context: &NotifierContext, config: &MatrixConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            client: context.http.clone(),
            templates: context.templates.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }

    async fn send_message(&self, notification: &Notification) -> Result<(), HttpError> {
        let token = read_secret(&self.config.access_token).await?;
        // The plain body: the title and the push text (the built-in ones; `message` is HTML).
        let plain_settings = crate::push::PushSettings {
            message: None,
            ..self.config.push.clone()
        };
        let plain = render(
            &self.templates,
            &plain_settings,
            notification,
            &self.external_url,
        );
        let html = self.templates.render(
            MessagePart::TelegramHtml,
            self.config.push.locale,
            self.config.push.message.as_deref(),
            notification,
            &self.external_url,
        );
        if let Some(error) = &html.custom_error {
            tracing::warn!(
                receiver = %notification.receiver,
                notification = %notification.id,
                error = %error,
                "The Matrix message template failed; the built-in one is sent instead."
            );
        }
        let body = json!({
            "msgtype": "m.text",
            "body": format!("{}\n\n{}", plain.title, plain.text),
            "format": "org.matrix.custom.html",
            "formatted_body": html.text.replace('\n', "<br>"),
        });
        let mut url = reqwest::Url::parse(&self.config.homeserver)
            .map_err(|_| HttpError::Invalid("the Matrix homeserver is not a URL".to_owned()))?;
        url.path_segments_mut()
            .map_err(|()| HttpError::Invalid("the Matrix homeserver is not a URL".to_owned()))?
            .pop_if_empty()
            .extend([
                "_matrix",
                "client",
                "v3",
                "rooms",
                &self.config.room_id,
                "send",
                "m.room.message",
                &notification.id,
            ]);
        let request = self.client.put(url).bearer_auth(&token).json(&body);
        send(
            "Matrix homeserver",
            request,
            self.config.push.timeout,
            &[&token],
        )
        .await?;
        Ok(())
    }
}

impl Notifier for MatrixNotifier {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { Ok(self.send_message(notification).await?) })
    }
}
