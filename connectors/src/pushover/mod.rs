//! Pushover: each notification sent through Pushover's message API, with a priority from
//! the alerts' severity (or fixed): critical alerts go out as emergency messages (priority
//! 2), which the phone repeats every `retry` until someone acknowledges them, `expire`
//! passes, or the alerts resolve: the group's emergencies carry a tag, and the resolved
//! notification cancels them by it. The receipt Pushover returns is logged.
//!
//! The application token and the user (or group) key are secrets: `token_file`/`token_env`
//! and `user_key_file`/`user_key_env`, read at every send and never shown in an error.
//! Pushover has no idempotency key: a repeat after a lost answer is sent again.
//!
//! # Layout
//! - `config`: [`PushoverConfig`], and how a `pushover_configs` entry compiles into it.
//! - `notifier`: [`PushoverNotifier`], one message per notification.

mod config;
mod notifier;

pub use config::PushoverConfig;
pub use notifier::PushoverNotifier;

/// `pushover_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "pushover",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| {
            PushoverNotifier::open(context, config)
        })
    },
};
