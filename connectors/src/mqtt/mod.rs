//! `mqtt:` — one MQTT broker connection that is both a source (its subscriptions become events
//! on the bus) and a publisher (rule actions publish over the same connection).
//!
//! # How a message becomes an event
//! Each subscription pattern (`zigbee2mqtt/+device`, `home/#`, `tele/>`) is subscribed as the
//! equivalent MQTT filter (`+name` → `+`, `>` → `#`). A received message's topic becomes the
//! event's [`Subject`](atalaya_bus::Subject); the first subscription (in config order) whose
//! pattern matches it gives the captured labels — a message no pattern matches (`>` needs at
//! least one token, `#` does not; or a subscription left in the persistent session by an
//! earlier configuration) is skipped. The payload is decoded by the shared
//! [`payload`](crate::payload) policy. The event has source `mqtt://host:port`, type
//! [`EVENT_TYPE`], and label `mqtt_retained="true"` when the broker flagged the message as
//! retained: the broker replays retained messages whenever the connector subscribes (at every
//! start, and after the broker lost the session); the rule engine does not count a replay
//! that repeats what a series last saw (docs/rules.md, "Retained MQTT messages").
//!
//! With `protocol: 5` (MQTT 5; the default is 3.1.1) each user property of a message becomes
//! a label `property_<name>` (after the captures, as NATS headers become `header_<name>`); a
//! message whose expiry interval runs out while it waits for the bus is skipped and counted
//! (`errors{stage="expired"}`); and the persistent session is asked to outlive the
//! connection by `session_expiry` (MQTT 5 ends it with the connection otherwise).
//!
//! A message that cannot be an event (topic not a valid subject, payload too large or not
//! text) is counted (`errors{stage="decode"|"size"}`), logged at most once a minute per kind,
//! and skipped — and still acknowledged, so it is not redelivered forever. Payloads are read
//! off the connection up to four times `max_payload_bytes` (plus room for the topic); a
//! message larger still cannot be skipped (rumqttc drops the connection over it, and the
//! broker offers it again after the reconnect), so it is logged as an error and counted under
//! `size` at each reconnect: cap message sizes at the broker (mosquitto:
//! `message_size_limit`).
//!
//! # At-least-once
//! The session is persistent (`clean_session: false` by default) and acknowledgements are
//! manual: a QoS 1 message is acknowledged (PUBACK) only once every bus consumer has finished
//! with its event — the rule engine releases an event after persisting what it caused. PUBACKs
//! go out in the order the messages arrived, as MQTT requires, and only on the connection the
//! message arrived on: after a reconnect the broker offers every unacknowledged message again,
//! and the new copy is acknowledged in its turn. A message not acknowledged when atalaya, the
//! connection or the broker went away is redelivered; consumers may see it twice, never zero
//! times. Subscriptions asking for QoS 2 are made at QoS 1: the guarantee end to end is
//! at-least-once either way, and rumqttc cannot resume a half-done QoS 2 exchange after a
//! reconnect. QoS 0 messages are at-most-once.
//!
//! A connection answered without a session when the broker should hold one (this client id
//! connected before, in this process or, with [`MqttConnector::remember_sessions_in`], in an
//! earlier one) means messages queued for atalaya were lost: it is logged as a warning and
//! counted (`atalaya_connector_sessions_lost_total`). Gaps within a kept session (the broker's
//! queue limit) are not visible to a client; see docs/operations.md for the broker settings.
//!
//! Subscriptions are made on the first connection of the process (the configuration may have
//! changed since the session was created) and again whenever the broker answers without a
//! session; a resumed session keeps them. A subscription removed from the configuration stays
//! in the persistent session: its messages are skipped (and acknowledged), and a new
//! `client_id` or `clean_session: true` once drops it at the broker.
//!
//! # Tasks and bounds
//! [`MqttConnector::run`] drives three parts concurrently: the connection (rumqttc's
//! `EventLoop::poll`, which must keep running for requests to move), the bus stage (decodes
//! and publishes on the bus, waiting when the bus is full), and the ack stage (waits for each
//! delivery, in order, and queues its PUBACK).
//!
//! Backpressure, never loss when busy: once `max_inflight` received messages wait for the bus
//! stage, the connection loop stops polling — nothing more is read from the socket, so the
//! kernel's buffers fill and the broker holds the messages — until the bus stage takes one
//! (`paused_seconds_total` counts the time). It never pauses while PUBACKs wait to be sent:
//! the bus stage may be waiting for the ack stage, which waits for them to go out (reading
//! meanwhile is bounded by the broker's in-flight window). So that keep-alive pings and
//! action publishes still move when the whole pipeline is stalled, it polls once a second
//! anyway (reading at most a few packets). Memory stays bounded: unacknowledged QoS 1 messages by
//! the broker's in-flight window (mosquitto's `max_inflight_messages`; at most 65 535 by the
//! protocol), deliveries awaiting their PUBACK by `max_inflight`, messages waiting for the bus
//! by `max_inflight` (more only while stalled for seconds); a QoS 0 message arriving when twice
//! `max_inflight` wait — the bus stalled for a long time — is dropped and counted
//! (`errors{stage="overflow"}`).
//!
//! # Connection
//! Reconnects back off from `reconnect_min` to `reconnect_max`, doubling, ±20 % jitter, reset
//! once connected; an outage is logged once (and again when its reason changes), every failed
//! attempt is counted (`errors{stage="connect"}`). After connecting, the connector publishes a
//! retained `online` to `status_topic`; its last will, published by the broker when the
//! connection dies, is a retained `offline`.
//!
//! At shutdown the connector stops taking messages, gives events already on the bus up to
//! 5 s to be done (so their messages are acknowledged, not redelivered after the restart),
//! publishes `offline`, sends DISCONNECT and waits (up to 2 s) for the broker to close the
//! connection, which tells it everything before was read.
//!
//! # Layout
//! - [`config`]: the settings.
//! - `source`: [`MqttConnector`] — building the connection and the connection loop.
//! - `delivery`: the bus stage and the in-order ack stage.
//! - `message`: subscriptions as MQTT filters, and a message into an event.
//! - `publisher`: [`MqttPublisher`].
//! - `notifier`: [`MqttNotifier`], the routing policy's `mqtt_configs`: notifications and
//!   retained alert states published over this connection.
//! - [`keeper`]: [`MqttKeeper`](keeper::MqttKeeper), the task keeping what atalaya leaves
//!   retained true: alert state topics ([`state_topics`]) and Home Assistant discovery
//!   ([`discovery`]), read back through taps on this connection.
//! - `options`: config validation and rumqttc options (TLS, credentials, last will).
//! - `session`: whether the broker kept the persistent session (remembered in the store).
//! - `telemetry`: log lines and metrics, written together.
//! - `wire`: MQTT 3.1.1 and MQTT 5 (rumqttc's two clients) behind one face.

pub mod config;
mod delivery;
pub mod discovery;
pub mod keeper;
mod message;
mod notifier;
mod options;
mod publisher;
mod session;
mod source;
pub mod state_topics;
mod telemetry;
mod wire;

use atalaya_bus::subject::SubjectError;

pub use message::EVENT_TYPE;
pub use notifier::{MqttNotifier, MqttPublishConfig, alert_state};
pub use session::SESSIONS_TABLE;

/// `mqtt_configs`: notifications published over this connection.
pub const RECEIVER: crate::notifiers::ReceiverKind = crate::notifiers::ReceiverKind {
    integration: atalaya_bus::delivery::IntegrationKind {
        name: "mqtt",
        compile: notifier::compile,
    },
    open: |context, integration| {
        crate::notifiers::open_with(integration, |config| MqttNotifier::open(context, config))
    },
};
pub use publisher::MqttPublisher;
pub use source::{MqttConnector, Tapped};

use crate::tls::TlsError;

/// The error stages this connector counts under `atalaya_connector_errors_total{stage}`; pass
/// them to `ConnectorMetrics::connector` so they show at zero from the start.
pub const ERROR_STAGES: &[&str] = &[
    "connect",
    "subscribe",
    "decode",
    "size",
    "overflow",
    "expired",
    "publish",
];

/// What can go wrong with the MQTT connector. No variant carries the password.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// Every problem found in the configuration, at once.
    #[error("invalid mqtt configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("mqtt.tls: {0}")]
    Tls(#[from] TlsError),
    #[error("`{subject}` cannot be published to MQTT: {source}")]
    InvalidSubject {
        subject: String,
        #[source]
        source: SubjectError,
    },
    #[error("MQTT payload of {len} bytes is larger than mqtt.max_payload_bytes ({max})")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("the MQTT connector is not running (stopped, or never started)")]
    Stopped,
    #[error("the bus closed while the MQTT source was running")]
    BusClosed,
}
