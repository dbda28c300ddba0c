//! The console receiver: one readable line per event on standard output.
//!
//! It is what `atalaya run` shows a newcomer with no configuration, and what a developer
//! reads while writing rules: `2026-11-22T10:00:00Z home/kitchen/temperature 21.5 room=kitchen
//! (/atalaya/http atalaya.event)`.
//!
//! - `config.rs`: [`ConsoleReceiverConfig`], its settings.
//! - `notification.rs`: [`render_notification`], the line of routing's console integration.
//! - `notifier.rs`: [`ConsoleNotifier`], that integration (`console_configs`) as a delivery
//!   [`Notifier`](atalaya_bus::delivery::Notifier), and how its entries compile.
//! - `receiver.rs`: [`render_event`], the line format, and [`ConsoleReceiver`], the loop that
//!   drains its bus consumer into a writer.

mod config;
mod notification;
mod notifier;
mod receiver;

pub use config::ConsoleReceiverConfig;
pub use notification::{MAX_LISTED_ALERTS, render_notification};
pub use notifier::{ConsoleNotifier, ConsoleWriter};

use atalaya_bus::delivery::IntegrationKind;

use crate::notifiers::ReceiverKind;

/// `console_configs`.
pub const RECEIVER: ReceiverKind = ReceiverKind {
    integration: IntegrationKind {
        name: "console",
        compile: notifier::compile,
    },
    open: |context, _| ConsoleNotifier::open(context),
};
pub use receiver::{ConsoleReceiver, MAX_DATA_BYTES, render_event};
