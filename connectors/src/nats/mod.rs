//! The NATS connector: a source (core subscriptions, at most once; JetStream durable pull
//! consumers, at least once) and a publisher (rule actions), sharing one connection.
//!
//! ```text
//! NATS ─► core subscription ──► Event ─► bus.publish
//!      ─► JetStream consumer ─► Event ─► bus.publish_tracked ─► every bus consumer done ─► ack
//! rule action ─► NatsPublisher::publish ─► NATS (flush) or JetStream (PubAck)
//! ```
//!
//! [`NatsConnector::connect`] checks the whole config at once and sets up the client, which
//! connects in the background and reconnects by itself; [`NatsConnector::run`] runs until the
//! shutdown token fires. A NATS subject `sensors.kitchen.temp` becomes the subject
//! `sensors/kitchen/temp`; patterns are subscribed in NATS form (`+`, `+name` → `*`; `#`, `>` →
//! `>`), `+name` captures become labels, and each header becomes a `header_<name>` label.
//! Payloads follow the shared [`crate::payload`] policy. Events have the type
//! [`EVENT_TYPE`] and the source `nats://host:port`.
//!
//! Metrics go through [`ConnectorCounters`](atalaya_bus::connector_metrics::ConnectorCounters):
//! `received` per event on the bus, `sent` per publish, `errors` by the stages in
//! [`ERROR_STAGES`], and the `connected` gauge and `reconnects` counter.
//!
//! # Layout
//! - `config.rs`: [`NatsConfig`] and its parts, the settings.
//! - `error.rs`: [`NatsError`] and [`NatsConfigError`].
//! - `connection.rs`: auth and TLS options, and following the connection's life.
//! - `subject.rs`: subjects and patterns in NATS form.
//! - `message.rs`: a NATS message becomes an event.
//! - `source.rs`: [`NatsConnector`] and the core subscriptions.
//! - `jetstream.rs`: the JetStream pull consumers.
//! - `publisher.rs`: [`NatsPublisher`].
//! - `notifier.rs`: [`NatsNotifier`], the routing policy's `nats_configs`: notifications
//!   published over this connection.
//! - `internal_events.rs`: log lines and metrics, written together.

pub mod config;
mod connection;
mod error;
mod internal_events;
mod jetstream;
mod message;
mod notifier;
mod publisher;
mod source;
mod subject;

pub use config::{JetStreamConsumer, NatsAuth, NatsConfig, NatsSubscription};
pub use error::{NatsConfigError, NatsError};
pub use message::{EVENT_TYPE, HEADER_LABEL_PREFIX};
pub use notifier::{NatsNotifier, NatsPublishConfig};

/// `nats_configs`: notifications published over this connection.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "nats",
        compile: notifier::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| NatsNotifier::open(context, config))
    },
};
pub use publisher::NatsPublisher;

/// The checked servers and client options of `config`'s connection (servers, auth, TLS), for
/// another user of NATS than the connector (high availability's lease and journal), or every
/// problem found.
pub async fn client_options(
    config: &NatsConfig,
) -> Result<(Vec<async_nats::ServerAddr>, async_nats::ConnectOptions), Vec<NatsConfigError>> {
    let mut errors = Vec::new();
    let options = connection::connect_options(config, &mut errors).await;
    match options {
        Some(options) if errors.is_empty() => Ok(options),
        _ => Err(errors),
    }
}
pub use source::NatsConnector;

/// The `stage` labels of the connector's error counter, to create them at zero
/// (`ConnectorMetrics::connector("nats", ERROR_STAGES)`).
pub const ERROR_STAGES: &[&str] = &[
    "connect",
    "decode",
    "size",
    "publish",
    "ack",
    "subscribe",
    "overflow",
];
