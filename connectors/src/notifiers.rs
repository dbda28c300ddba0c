//! The receivers' registry: every integration kind this build delivers — how its policy
//! entries compile, and how they are opened as [`Notifier`]s. Adding a receiver is one folder
//! beside the others plus one line in [`receivers`] (see ARCHITECTURE.md, "Adding a
//! receiver").

use std::sync::{Arc, Mutex};

use atalaya_bus::delivery::integration::IntegrationSettings;
use atalaya_bus::delivery::{
    DeliveryError, Integration, IntegrationKind, Notification, Notifier, Notifiers, NotifyFuture,
    Receiver,
};
use atalaya_bus::store::Store;

use crate::console::ConsoleWriter;

/// One receiver kind: how entries of its `<name>_configs` compile (for the routing policy),
/// and how a compiled one is opened for delivery.
#[derive(Clone, Copy)]
pub struct ReceiverKind {
    pub integration: IntegrationKind,
    pub open: fn(&NotifierContext, &Integration) -> Arc<dyn Notifier>,
}

/// Every receiver kind of this build, in the order their keys are documented.
#[allow(
    clippy::vec_init_then_push,
    reason = "one line per kind, each behind its feature"
)]
pub fn receivers() -> Vec<ReceiverKind> {
    let mut kinds = Vec::new();
    #[cfg(feature = "webhook")]
    kinds.push(crate::webhook::RECEIVER);
    #[cfg(feature = "telegram")]
    kinds.push(crate::telegram::RECEIVER);
    #[cfg(feature = "mail")]
    kinds.push(crate::mail::RECEIVER);
    kinds.push(crate::console::RECEIVER);
    #[cfg(feature = "mqtt")]
    kinds.push(crate::mqtt::RECEIVER);
    #[cfg(feature = "nats")]
    kinds.push(crate::nats::RECEIVER);
    #[cfg(feature = "ntfy")]
    kinds.push(crate::ntfy::RECEIVER);
    #[cfg(feature = "gotify")]
    kinds.push(crate::gotify::RECEIVER);
    #[cfg(feature = "matrix")]
    kinds.push(crate::matrix::RECEIVER);
    #[cfg(feature = "discord")]
    kinds.push(crate::discord::RECEIVER);
    #[cfg(feature = "pushover")]
    kinds.push(crate::pushover::RECEIVER);
    kinds
}

/// The integration kinds the routing policy may use in this build (what
/// `atalaya_rules::routing::config::load_policy` takes).
pub fn integration_kinds() -> Vec<IntegrationKind> {
    receivers().into_iter().map(|k| k.integration).collect()
}

/// Opens `integration` with its settings as `T`, the type its kind compiled them into.
pub fn open_with<T: IntegrationSettings>(
    integration: &Integration,
    open: impl FnOnce(&T) -> Arc<dyn Notifier>,
) -> Arc<dyn Notifier> {
    match integration.settings::<T>() {
        Some(settings) => open(settings),
        // Only a hand-made `Integration` can get here: its kind compiled its own type.
        None => Arc::new(Unavailable {
            kind: integration.kind,
            error: DeliveryError::permanent(
                "invalid_settings",
                format!(
                    "the `{}` integration's settings are not its kind's",
                    integration.kind
                ),
            ),
        }),
    }
}

/// What notifiers share, built once at start: clients with their connection pools, the
/// broker connections, atalaya's own address. Cheap to clone.
#[derive(Clone)]
pub struct NotifierContext {
    /// atalaya's own address, the `externalURL` of webhook and broker payloads and the link
    /// in messages.
    pub external_url: Arc<str>,
    /// Where console notifications go: standard output, or a buffer in tests.
    pub console: ConsoleWriter,
    /// Where acknowledgements made in a receiver's app go (to the router), when the service
    /// takes them.
    pub acknowledgements: Option<atalaya_bus::delivery::Acknowledgements>,
    /// The webhooks' HTTP client (and its connection pool).
    #[cfg(feature = "webhook")]
    pub webhook: crate::webhook::WebhookSender,
    /// The `mqtt:` connection, when configured; MQTT integrations fail without it.
    #[cfg(feature = "mqtt")]
    pub mqtt: Option<crate::mqtt::MqttPublisher>,
    /// The `nats:` connection, when configured; NATS integrations fail without it.
    #[cfg(feature = "nats")]
    pub nats: Option<crate::nats::NatsPublisher>,
    /// Sends Telegram messages, remembering them in the store (for edits on resolve).
    #[cfg(feature = "telegram")]
    pub telegram: crate::telegram::TelegramSender,
    /// A pool of SMTP connections per server.
    #[cfg(feature = "mail")]
    pub mail: crate::mail::MailSender,
    /// The push receivers' HTTP client (and its connection pool).
    #[cfg(feature = "push")]
    pub http: reqwest::Client,
    /// The push receivers' message templates (custom ones compiled once).
    #[cfg(feature = "push")]
    pub templates: crate::templates::MessageTemplates,
}

/// Why the shared clients could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifierSetupError {
    #[cfg(feature = "webhook")]
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    #[cfg(feature = "telegram")]
    #[error(transparent)]
    Telegram(#[from] crate::telegram::TelegramError),
    #[cfg(feature = "push")]
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
}

impl NotifierContext {
    /// Webhooks through a default rustls client, the console on standard output, Telegram
    /// keeping its messages in `store`, mail; no broker (set `mqtt` / `nats` afterwards).
    pub fn new(external_url: &str, store: Arc<Store>) -> Result<Self, NotifierSetupError> {
        #[cfg(not(feature = "telegram"))]
        drop(store);
        Ok(Self {
            external_url: Arc::from(external_url),
            console: Arc::new(Mutex::new(std::io::stdout())),
            acknowledgements: None,
            #[cfg(feature = "webhook")]
            webhook: crate::webhook::WebhookSender::new(crate::webhook::default_client()?),
            #[cfg(feature = "mqtt")]
            mqtt: None,
            #[cfg(feature = "nats")]
            nats: None,
            #[cfg(feature = "telegram")]
            telegram: crate::telegram::TelegramSender::new(store)?,
            #[cfg(feature = "mail")]
            mail: crate::mail::MailSender::default(),
            #[cfg(feature = "push")]
            http: crate::http::client()?,
            #[cfg(feature = "push")]
            templates: crate::templates::MessageTemplates::default(),
        })
    }

    /// The notifier of one integration. A kind this build leaves out (the policy could not
    /// have named it, but a hand-made integration can) fails every attempt permanently.
    pub fn open(&self, integration: &Integration) -> Arc<dyn Notifier> {
        self.open_by(&receivers(), integration)
    }

    fn open_by(&self, kinds: &[ReceiverKind], integration: &Integration) -> Arc<dyn Notifier> {
        match kinds
            .iter()
            .find(|k| k.integration.name == integration.kind)
        {
            Some(kind) => (kind.open)(self, integration),
            None => Arc::new(Unavailable::not_built(integration.kind)),
        }
    }

    /// The notifiers of every receiver of a policy.
    pub fn open_all(&self, receivers: &[Receiver]) -> Notifiers {
        let kinds = self::receivers();
        let mut notifiers = Notifiers::default();
        for receiver in receivers {
            let integrations = receiver
                .integrations
                .iter()
                .map(|i| self.open_by(&kinds, i))
                .collect();
            notifiers.insert(receiver.name.clone(), integrations);
        }
        notifiers
    }
}

/// An integration that cannot deliver in this process: every attempt fails permanently with
/// the same error (dead-lettered at once, with the reason).
pub struct Unavailable {
    kind: &'static str,
    error: DeliveryError,
}

impl Unavailable {
    /// The kind's cargo feature is not in this build.
    pub fn not_built(kind: &'static str) -> Self {
        Self {
            kind,
            error: DeliveryError::permanent(
                "not_built",
                format!("this atalaya was built without the `{kind}` feature"),
            ),
        }
    }

    /// The policy publishes to a broker (`section`: `mqtt`, `nats`) that is not configured.
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    pub fn no_broker(section: &'static str, name: &str) -> Self {
        Self {
            kind: section,
            error: DeliveryError::permanent(
                "no_broker",
                format!(
                    "the policy has a {section} integration, but no {name} broker is configured (`{section}:`)"
                ),
            ),
        }
    }
}

impl Notifier for Unavailable {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn notify<'a>(&'a self, _: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(std::future::ready(Err(self.error.clone())))
    }
}

/// A JSON value's bytes (a `Value` always serializes: its map keys are strings).
#[cfg(any(feature = "mqtt", feature = "nats"))]
pub(crate) fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
