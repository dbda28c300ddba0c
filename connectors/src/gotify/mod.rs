//! Gotify: each notification posted to a self-hosted Gotify server (`POST /message`, the
//! application token in `X-Gotify-Key`), with a title, Markdown text, a priority from the
//! alerts' severity (or fixed; 8 and above ring loudly on Android) and a click URL.
//!
//! The application token (`token_file` or `token_env`) is read at every send and never
//! appears in an error. Gotify has no idempotency key: a repeat after a lost answer is posted
//! again — the same message, with the notification id as `X-Atalaya-Notification-Id`.
//!
//! # Layout
//! - `config`: [`GotifyConfig`], and how a `gotify_configs` entry compiles into it.
//! - `notifier`: [`GotifyNotifier`], one post per notification.

mod config;
mod notifier;

pub use config::GotifyConfig;
pub use notifier::GotifyNotifier;

/// `gotify_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "gotify",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| GotifyNotifier::open(context, config))
    },
};
