//! Mail: a notification as one mail over SMTP — a subject, a plain text part and an HTML
//! part, from the built-in templates (English or Spanish) or the integration's own —
//! threaded per aggregation group, so a group's firing and resolved mails read as one
//! conversation.
//!
//! - **Threading.** Each mail's `Message-ID` is `<notification-id@domain>` (the domain of
//!   `from`), so a repeat of the same notification is recognisably the same mail. Every mail
//!   of a group carries `In-Reply-To` and `References` pointing at `<group-HASH@domain>`,
//!   derived from the receiver, integration and group key: no state is needed, and mail
//!   clients thread them (Gmail also wants the same subject, so a `subject` without the
//!   status threads there too).
//! - **Transport.** lettre over rustls: STARTTLS (required, or opportunistic with
//!   `require_tls: false`), implicit TLS (port 465), or plain for a local relay; PLAIN or
//!   LOGIN authentication. One pooled transport per server and account, reused.
//! - **The password** is read from its file or variable at every send (a new one gets a
//!   new pool) and never appears in an error, a log line or a metric.
//!
//! # Layout
//! - `config`: [`EmailConfig`], and how an `email_configs` entry compiles into it.
//! - `message`: building the mail.
//! - `sender`: [`MailSender`], the transports and sending.
//! - `notifier`: [`MailNotifier`], an `email_configs` entry as a delivery
//!   [`Notifier`](atalaya_bus::delivery::Notifier).
//! - `error`: [`MailError`].

mod config;
mod error;
mod message;
mod notifier;
mod sender;

pub use config::{EmailConfig, MailTls};
pub use error::MailError;
pub use message::{build_message, thread_id};
pub use notifier::MailNotifier;
pub use sender::MailSender;

/// `email_configs`.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "email",
        compile: config::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| MailNotifier::open(context, config))
    },
};
