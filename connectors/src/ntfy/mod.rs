//! ntfy: each notification published to an ntfy topic (<https://ntfy.sh> or a self-hosted
//! server), as ntfy's JSON publish — title, text, a priority from the alerts' severity (or
//! fixed), tags, a click URL and a "view" action button, so a phone shows it at once.
//!
//! The access token (`token_file` or `token_env`, optional for public topics) is read at
//! every send and sent as `Authorization: Bearer`; it never appears in an error. ntfy has no
//! idempotency key: a repeat after a lost answer is published again — the same message, with
//! the notification id as `X-Atalaya-Notification-Id`.
//!
//! # Layout
//! - `config`: [`NtfyConfig`], and how an `ntfy_configs` entry compiles into it.
//! - `notifier`: [`NtfyNotifier`], one publish per notification.

mod config;
mod notifier;

pub use config::NtfyConfig;
pub use notifier::NtfyNotifier;

/// `ntfy_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "ntfy",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| NtfyNotifier::open(context, config))
    },
};
