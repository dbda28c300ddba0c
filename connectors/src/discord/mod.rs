//! Discord: each notification posted to a channel's webhook as an embed — title, text,
//! red while firing and green once resolved, a link — split into several posts when the text
//! is longer than Discord takes in one (2000 characters per part, cut between lines as
//! Telegram's messages are).
//!
//! The webhook URL holds its token, so it is a secret: `webhook_url_file` (Alertmanager's
//! key) or `webhook_url_env`, read at every send, never in an error. Discord has no
//! idempotency key: a repeat after a lost answer is posted again.
//!
//! # Layout
//! - `config`: [`DiscordConfig`], and how a `discord_configs` entry compiles into it.
//! - `notifier`: [`DiscordNotifier`], the posts of one notification.

mod config;
mod notifier;

pub use config::DiscordConfig;
pub use notifier::{DiscordNotifier, MAX_PART_CHARS, split_text};

/// `discord_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "discord",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| DiscordNotifier::open(context, config))
    },
};
