//! [`Notifier`]: the one contract every receiver integration implements, and [`Notifiers`],
//! the integrations of a routing policy opened for delivery.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{DeliveryError, Notification};

/// What a [`Notifier::notify`] call returns: a boxed future, so notifiers of every kind sit
/// behind one `dyn Notifier`.
pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// One integration of one receiver, ready to deliver (Alertmanager's `Notifier`).
///
/// A call is one attempt: `Ok` when the notification was delivered, otherwise a
/// [`DeliveryError`] saying whether and when to try again. Attempts may repeat (after a
/// timeout, a crash, a restart): a notifier makes a repeat harmless where the receiving
/// system allows it (Telegram edits, mail `Message-ID`, Matrix transaction ids), keyed by
/// [`Notification::id`].
pub trait Notifier: Send + Sync {
    /// The kind, as in metrics and logs: `webhook`, `telegram`, `email`, …
    fn kind(&self) -> &'static str;

    /// One attempt at delivering `notification`.
    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a>;
}

/// The notifiers of every receiver of one routing policy: receiver name → its integrations,
/// in the policy's order (a notification's `integration` is an index into them). Rebuilt on
/// every policy reload.
#[derive(Clone, Default)]
pub struct Notifiers {
    receivers: HashMap<String, Vec<Arc<dyn Notifier>>>,
}

impl Notifiers {
    /// Adds (or replaces) `receiver` with its integrations' notifiers.
    pub fn insert(&mut self, receiver: impl Into<String>, integrations: Vec<Arc<dyn Notifier>>) {
        self.receivers.insert(receiver.into(), integrations);
    }

    /// The integrations of `receiver`; `None` when there is no such receiver.
    pub fn receiver(&self, receiver: &str) -> Option<&[Arc<dyn Notifier>]> {
        self.receivers.get(receiver).map(Vec::as_slice)
    }

    /// Every receiver with the kind of each of its integrations.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.receivers.iter().flat_map(|(name, integrations)| {
            integrations
                .iter()
                .map(move |notifier| (name.as_str(), notifier.kind()))
        })
    }
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, integrations) in &self.receivers {
            let kinds: Vec<&str> = integrations.iter().map(|n| n.kind()).collect();
            map.entry(name, &kinds);
        }
        map.finish()
    }
}
