//! [`PushoverNotifier`]: one `POST /1/messages.json` per notification.

use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::delivery::{
    Acknowledgement, Acknowledgements, Notification, Notifier, NotifyFuture, Status,
};
use atalaya_bus::fingerprint::{fingerprint_text, fnv1a};

use super::PushoverConfig;
use crate::http::{HttpError, send};
use crate::notifiers::NotifierContext;
use crate::push::{Urgency, render};
use crate::secret::read_secret;
use crate::templates::MessageTemplates;

/// Pushover's limits on a message's title and text, in characters.
const MAX_TITLE_CHARS: usize = 250;
const MAX_MESSAGE_CHARS: usize = 1024;

/// Sends notifications to one Pushover user or group.
pub struct PushoverNotifier {
    client: reqwest::Client,
    templates: MessageTemplates,
    config: PushoverConfig,
    external_url: Arc<str>,
    /// Where acknowledgements go, when `silence_on_ack` is set and the service takes them.
    acknowledgements: Option<Acknowledgements>,
}

impl PushoverNotifier {
    pub fn open(context: &NotifierContext, config: &PushoverConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            client: context.http.clone(),
            templates: context.templates.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
            acknowledgements: context.acknowledgements.clone(),
        })
    }

    async fn send_message(&self, notification: &Notification) -> Result<(), HttpError> {
        let token = read_secret(&self.config.token).await?;
        let user = read_secret(&self.config.user_key).await?;
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
                Urgency::Critical => 2,
                Urgency::Warning => 1,
                Urgency::Info | Urgency::Resolved => 0,
            });
        let title: String = message.title.chars().take(MAX_TITLE_CHARS).collect();
        let mut text: String = message.text.chars().take(MAX_MESSAGE_CHARS).collect();
        if text.trim().is_empty() {
            text = title.clone();
        }
        let mut form: Vec<(&str, String)> = vec![
            ("token", token.clone()),
            ("user", user.clone()),
            ("title", title),
            ("message", text),
            ("priority", priority.to_string()),
            ("timestamp", notification.created_at.as_second().to_string()),
        ];
        let tag = group_tag(notification);
        if priority == 2 {
            form.push(("retry", self.config.retry.as_secs().to_string()));
            form.push(("expire", self.config.expire.as_secs().to_string()));
            form.push(("tags", tag.clone()));
        }
        if let Some(link) = &message.link {
            form.push(("url", link.clone()));
            form.push(("url_title", "Open".to_owned()));
        }
        if let Some(device) = &self.config.device {
            form.push(("device", device.clone()));
        }
        if let Some(sound) = &self.config.sound {
            form.push(("sound", sound.clone()));
        }
        let request = self
            .client
            .post(format!("{}/1/messages.json", self.config.api_url))
            .header("X-Atalaya-Notification-Id", notification.id.as_str())
            .form(&form);
        let response = send(
            "Pushover API",
            request,
            self.config.push.timeout,
            &[&token, &user],
        )
        .await?;
        if priority == 2 {
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            if let Some(receipt) = answer["receipt"].as_str() {
                tracing::info!(
                    receiver = %notification.receiver,
                    notification = %notification.id,
                    receipt,
                    "Pushover emergency message sent; it repeats until acknowledged or resolved."
                );
                if let (Some(duration), Some(acknowledgements)) =
                    (self.config.silence_on_ack, &self.acknowledgements)
                {
                    let watch = ReceiptWatch {
                        client: self.client.clone(),
                        url: format!("{}/1/receipts/{receipt}.json", self.config.api_url),
                        token: token.clone(),
                        interval: self.config.receipt_poll_interval,
                        until: tokio::time::Instant::now()
                            + self.config.expire
                            + self.config.receipt_poll_interval,
                        alerts: notification
                            .alerts
                            .iter()
                            .filter(|a| a.status == Status::Firing)
                            .map(|a| a.labels.clone())
                            .collect(),
                        duration,
                        acknowledgements: acknowledgements.clone(),
                    };
                    tokio::spawn(watch.run());
                }
            }
        }
        if notification.status == Status::Resolved {
            // The phone stops repeating the group's emergency: it is over.
            let request = self
                .client
                .post(format!(
                    "{}/1/receipts/cancel_by_tag/{tag}.json",
                    self.config.api_url
                ))
                .form(&[("token", token.as_str())]);
            send(
                "Pushover API",
                request,
                self.config.push.timeout,
                &[&token, &user],
            )
            .await?;
        }
        Ok(())
    }
}

/// Waits for an emergency to be acknowledged in the app, asking Pushover about its receipt,
/// and then has its alerts silenced. Ends when acknowledged, expired, past `until`, or when
/// the service stops taking acknowledgements (shutdown).
struct ReceiptWatch {
    client: reqwest::Client,
    url: String,
    token: String,
    interval: Duration,
    until: tokio::time::Instant,
    alerts: Vec<atalaya_bus::Labels>,
    duration: Duration,
    acknowledgements: Acknowledgements,
}

impl ReceiptWatch {
    async fn run(self) {
        while tokio::time::Instant::now() < self.until {
            tokio::select! {
                () = self.acknowledgements.closed() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
            let request = self
                .client
                .get(&self.url)
                .query(&[("token", self.token.as_str())]);
            let answer = match send("Pushover API", request, self.interval, &[&self.token]).await {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
                Err(e) => {
                    tracing::debug!(error = %e, "Cannot ask Pushover about a receipt; asking again.");
                    continue;
                }
            };
            if answer["acknowledged"] == 1 {
                let device = answer["acknowledged_by_device"].as_str().unwrap_or("");
                let by = if device.is_empty() {
                    "pushover".to_owned()
                } else {
                    format!("pushover:{device}")
                };
                let acknowledgement = Acknowledgement {
                    alerts: self.alerts,
                    by,
                    duration: self.duration,
                    comment: "acknowledged in Pushover".to_owned(),
                };
                let _ = self.acknowledgements.send(acknowledgement).await;
                return;
            }
            if answer["expired"] == 1 {
                return;
            }
        }
    }
}

/// The tag of a group's emergency messages, to cancel them when the group resolves:
/// stable per receiver, integration and group.
fn group_tag(notification: &Notification) -> String {
    let hash = fnv1a(&[
        &notification.receiver,
        &notification.integration.to_string(),
        &notification.group_key,
    ]);
    format!("atalaya-{}", fingerprint_text(hash))
}

impl Notifier for PushoverNotifier {
    fn kind(&self) -> &'static str {
        "pushover"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { Ok(self.send_message(notification).await?) })
    }
}
