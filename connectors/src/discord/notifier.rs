//! [`DiscordNotifier`]: the posts of one notification, and [`split_text`].

use std::sync::Arc;

use atalaya_bus::delivery::{Notification, Notifier, NotifyFuture, Status};
use serde_json::json;

use super::DiscordConfig;
use crate::http::{HttpError, send};
use crate::notifiers::NotifierContext;
use crate::push::render;
use crate::secret::read_secret;
use crate::templates::MessageTemplates;

/// The most characters one post's text holds (Discord's limit for a message's content;
/// an embed takes more, but parts of this size read well on a phone).
pub const MAX_PART_CHARS: usize = 2000;
/// Discord's limit on an embed's title.
const MAX_TITLE_CHARS: usize = 256;
const FIRING_COLOR: u32 = 0xE0_1E_5A;
const RESOLVED_COLOR: u32 = 0x2E_B6_7D;

/// Posts notifications to one Discord webhook.
pub struct DiscordNotifier {
    client: reqwest::Client,
    templates: MessageTemplates,
    config: DiscordConfig,
    external_url: Arc<str>,
}

impl DiscordNotifier {
    pub fn open(context: &NotifierContext, config: &DiscordConfig) -> Arc<dyn Notifier> {
        Arc::new(Self {
            client: context.http.clone(),
            templates: context.templates.clone(),
            config: config.clone(),
            external_url: Arc::clone(&context.external_url),
        })
    }

    async fn post(&self, notification: &Notification) -> Result<(), HttpError> {
        let url = read_secret(&self.config.webhook_url).await?;
        let parsed = reqwest::Url::parse(&url)
            .map_err(|_| HttpError::Invalid("the Discord webhook URL is not a URL".to_owned()))?;
        // The URL, and its token alone (the last part of its path), as the service may
        // repeat either back.
        let token = parsed
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .unwrap_or_default()
            .to_owned();
        let secrets = [url.as_str(), token.as_str()];
        let message = render(
            &self.templates,
            &self.config.push,
            notification,
            &self.external_url,
        );
        let color = match notification.status {
            Status::Firing => FIRING_COLOR,
            Status::Resolved => RESOLVED_COLOR,
        };
        let title: String = message.title.chars().take(MAX_TITLE_CHARS).collect();
        let parts = split_text(&message.text, MAX_PART_CHARS);
        for (i, part) in parts.iter().enumerate() {
            let mut embed = json!({"description": part, "color": color});
            if i == 0 {
                embed["title"] = json!(title);
                if let Some(link) = &message.link {
                    embed["url"] = json!(link);
                }
            }
            let mut body = json!({"embeds": [embed], "allowed_mentions": {"parse": []}});
            if let Some(name) = &self.config.username {
                body["username"] = json!(name);
            }
            if let Some(avatar) = &self.config.avatar_url {
                body["avatar_url"] = json!(avatar);
            }
            let request = self
                .client
                .post(parsed.clone())
                .header("X-Atalaya-Notification-Id", notification.id.as_str())
                .json(&body);
            send(
                "Discord webhook",
                request,
                self.config.push.timeout,
                &secrets,
            )
            .await?;
        }
        Ok(())
    }
}

impl Notifier for DiscordNotifier {
    fn kind(&self) -> &'static str {
        "discord"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { Ok(self.post(notification).await?) })
    }
}

/// `text` in parts of at most `max` characters, cut at the last line break (else space)
/// before the limit, so an alert's block stays whole where it can; never an empty part.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest
            .char_indices()
            .nth(max)
            .map_or(rest.len(), |(byte, _)| byte);
        let head = &rest[..limit];
        let cut = head
            .rfind('\n')
            .or_else(|| head.rfind(' '))
            .filter(|&cut| cut > 0)
            .unwrap_or(limit);
        parts.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_split_between_lines_within_the_limit() {
        let line = "🔥 pi-1 is at 81 °C\n";
        let text = line.repeat(300);
        let parts = split_text(&text, MAX_PART_CHARS);
        assert!(parts.len() > 1);
        for part in &parts {
            assert!(part.chars().count() <= MAX_PART_CHARS, "{}", part.len());
            assert!(part.ends_with('C'), "cut inside a line: {part:?}");
        }
        assert_eq!(parts.concat().replace('\n', ""), text.replace('\n', ""));
        // One word longer than a part is cut where it must be.
        let word = "x".repeat(4500);
        let parts = split_text(&word, MAX_PART_CHARS);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [2000, 2000, 500]
        );
        assert_eq!(split_text("", 10), [""]);
    }
}
