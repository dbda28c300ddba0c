//! Matrix: each notification sent to a room through the client-server API, as one
//! `m.room.message` — HTML (the same formatting as Telegram's messages) with a plain-text
//! body for clients that show no HTML.
//!
//! The message is sent with `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}`
//! and the notification id as the transaction id, so the homeserver recognises a retry after
//! a lost answer and does not post it twice. The access token (`access_token_file` or
//! `access_token_env`) is read at every send and never appears in an error.
//!
//! # Layout
//! - `config`: [`MatrixConfig`], and how a `matrix_configs` entry compiles into it.
//! - `notifier`: [`MatrixNotifier`], one message per notification.

mod config;
mod notifier;

pub use config::MatrixConfig;
pub use notifier::MatrixNotifier;

/// `matrix_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "matrix",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| MatrixNotifier::open(context, config))
    },
};
