//! What the push receivers share (ntfy, Gotify, Matrix, Discord, Pushover): the settings
//! every one of them has — `title` and `message` templates, `locale`, `timeout` — with how
//! they compile, and a notification rendered as a push message: a one-line title and a
//! short text, in English or Spanish, from the built-in templates or the integration's.

use std::time::Duration;

use atalaya_bus::delivery::{IntegrationContext, Notification, Status};
use atalaya_bus::yaml::{Node, Text};

use crate::templates::{Locale, MessagePart, MessageTemplates, locale, message_template};

/// The settings every push receiver has.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSettings {
    /// A minijinja template replacing the built-in title (one line).
    pub title: Option<String>,
    /// A minijinja template replacing the built-in text.
    pub message: Option<String>,
    pub locale: Locale,
    /// A request taking longer fails (and is retried).
    pub timeout: Duration,
}

/// A request to a push service takes at most this long, unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

impl PushSettings {
    /// Compiles the shared keys of an entry: `title`, `message`, `locale`, `timeout`.
    pub fn compile(
        ctx: &mut IntegrationContext<'_>,
        node: &Node,
        title: Option<String>,
        message: Option<String>,
        locale_name: Option<&str>,
        timeout: Option<&Text>,
    ) -> Self {
        let title = message_template(ctx, node, "title", title);
        let message = message_template(ctx, node, "message", message);
        let locale = locale(ctx, node, locale_name);
        let timeout = ctx.decoder.duration(node, "timeout", timeout, true);
        Self {
            title,
            message,
            locale,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

/// A notification as a push message.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// One line.
    pub title: String,
    pub text: String,
    /// Where the alert's source is, if it says (the first alert's link), else atalaya.
    pub link: Option<String>,
}

/// Renders `notification` for a push receiver; a custom template that fails is logged and
/// the built-in one used instead.
pub fn render(
    templates: &MessageTemplates,
    settings: &PushSettings,
    notification: &Notification,
    external_url: &str,
) -> PushMessage {
    let render = |part, custom: &Option<String>| {
        templates.render(
            part,
            settings.locale,
            custom.as_deref(),
            notification,
            external_url,
        )
    };
    let title = render(MessagePart::MailSubject, &settings.title);
    let text = render(MessagePart::PushText, &settings.message);
    for (key, rendered) in [("title", &title), ("message", &text)] {
        if let Some(error) = &rendered.custom_error {
            tracing::warn!(
                receiver = %notification.receiver,
                notification = %notification.id,
                template = key,
                error = %error,
                "A message template failed; the built-in one is sent instead."
            );
        }
    }
    let link = notification
        .alerts
        .iter()
        .find_map(|a| a.generator_url.clone())
        .or_else(|| (!external_url.is_empty()).then(|| external_url.to_owned()));
    PushMessage {
        title: title.text.lines().next().unwrap_or_default().to_owned(),
        text: text.text,
        link,
    }
}

/// How urgent a notification is, from its alerts' `severity` labels: the highest of its
/// firing alerts; a resolved notification is the least urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    Resolved,
    Info,
    Warning,
    Critical,
}

impl Urgency {
    pub fn of(notification: &Notification) -> Self {
        if notification.status == Status::Resolved {
            return Self::Resolved;
        }
        notification
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .map(|a| match a.labels.get("severity") {
                Some("critical" | "page" | "emergency") => Self::Critical,
                Some("warning" | "warn") => Self::Warning,
                _ => Self::Info,
            })
            .max()
            .unwrap_or(Self::Info)
    }
}
