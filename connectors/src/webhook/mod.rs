//! Webhooks: a notification POSTed as Alertmanager's webhook JSON (version 4), so anything
//! that takes Alertmanager webhooks takes atalaya's.
//!
//! Every request carries the notification id twice — `Idempotency-Key` (the usual name) and
//! `X-Atalaya-Notification-Id` — because delivery is at-least-once: a notification whose
//! answer was lost (a timeout, a restart mid-request) is sent again with the same id, and a
//! receiver that cares drops the repeat.
//!
//! The URL may hold a token (chat bots put one in the path), so it is never part of an error
//! or a log line: reqwest's errors are stripped of it, and an invalid URL is reported without
//! being shown. With `url_file` the URL is read (and trimmed) at every send, so a rotated
//! secret is picked up without a reload.
//!
//! # Layout
//! - `config`: [`WebhookConfig`], and how a `webhook_configs` entry compiles into it.
//! - `error`: [`WebhookError`]: why a send failed, whether it is worth retrying, and when.
//! - `sender`: [`WebhookSender`]: builds and sends the request.
//! - `notifier`: [`WebhookNotifier`]: a `webhook_configs` entry as a delivery
//!   [`Notifier`](atalaya_bus::delivery::Notifier).
//! - `tests`: against a real HTTP server on loopback.

mod config;
mod error;
mod notifier;
mod sender;
#[cfg(test)]
mod tests;

pub use config::WebhookConfig;
pub use error::{WebhookError, status_is_retryable};
pub use notifier::WebhookNotifier;

use atalaya_bus::delivery::IntegrationKind;

use crate::notifiers::{ReceiverKind, open_with};

/// `webhook_configs`.
pub const RECEIVER: ReceiverKind = ReceiverKind {
    integration: IntegrationKind {
        name: "webhook",
        compile: config::compile,
    },
    open: |context, integration| {
        open_with(integration, |config| WebhookNotifier::open(context, config))
    },
};
pub use sender::{WebhookSender, default_client};
