//! Telegram: a notification as one message per chat (in parts when longer than Telegram
//! takes), in Telegram's HTML, through the Bot API (teloxide's client, rustls; the base
//! URL configurable, so a local Bot API server or a test stand-in can take its place).
//!
//! - **Text.** The built-in templates (or the integration's `message`) write a severity
//!   marker, what happened, where, for how long, the value and a link; every value is
//!   HTML-escaped ([`crate::templates`]). Past 4096 characters the message is split
//!   between alerts, never inside a tag or an entity ([`split`]).
//! - **Resolved alerts** edit the message that announced them (or reply to it, or send a
//!   new one: `on_resolve`), rather than adding noise ([`sender`]).
//! - **Limits.** At most one message a second per chat and twenty a minute per group,
//!   waited for before sending; a 429 holds the chat for its `retry_after` ([`limiter`]).
//! - **At least once, not twice.** What was sent is recorded per part and chat in the state
//!   store (two days), so a retry sends only what is missing and a resend of a delivered
//!   notification nothing ([`messages`]).
//! - **The token** is read from its file or variable at every send and never appears in an
//!   error, a log line or a metric ([`error`]).
//!
//! # Layout
//! - `config`: [`TelegramConfig`], and how a `telegram_configs` entry compiles into it.
//! - `sender`: [`TelegramSender`], one notification to every chat.
//! - `notifier`: [`TelegramNotifier`], a `telegram_configs` entry as a delivery
//!   [`Notifier`](atalaya_bus::delivery::Notifier).
//! - `split`: splitting long HTML messages.
//! - `limiter`: the flood limits.
//! - `messages`: the store table of sent messages.
//! - `error`: [`TelegramError`].
//! - `tests`: the sender against the stand-in.

pub mod bot;
pub mod buttons;
mod config;
mod error;
pub mod limiter;
mod messages;
mod notifier;
mod sender;
pub mod split;
#[cfg(test)]
mod tests;

pub use config::{
    AllowedUser, DEFAULT_BUTTON_MAX_AGE, DEFAULT_TELEGRAM_API_URL, OnResolve, Role, TelegramChat,
    TelegramConfig,
};
pub use error::TelegramError;
pub use messages::{TELEGRAM_TABLE, messages_of};
pub use notifier::TelegramNotifier;
pub use sender::TelegramSender;

/// `telegram_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "telegram",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| {
            TelegramNotifier::open(context, config)
        })
    },
};
