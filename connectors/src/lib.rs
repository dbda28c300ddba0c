//! atalaya's connectors: the code that talks to systems outside the process.
//!
//! Sources turn what an outside system sends into [`atalaya_bus::Event`]s and publish them on
//! the bus; receivers deliver the router's notifications, each kind behind the one
//! [`Notifier`](atalaya_bus::delivery::Notifier) trait, with its settings and how they
//! compile from the routing policy beside its sender. This crate depends on `atalaya-bus`
//! only: a connector never knows about rules, and a receiver never knows where what it
//! delivers came from.
//!
//! Each outside system sits behind its own cargo feature — `mqtt`, `nats`, `kubernetes`,
//! `homeassistant`, `telegram`, `mail`, `webhook` — so a build carries only the clients it uses. The console
//! receiver needs nothing outside the process and is always built.
//!
//! # Layout
//! One module per system, split by job (`config.rs` for its settings, `source.rs` for a
//! source's loop, `sender.rs` and `notifier.rs` for a receiver):
//! - [`notifiers`]: the receivers' registry — every kind this build delivers, compiled from
//!   the policy and opened for the outbox (always built).
//! - [`console`]: the console receiver, which prints one readable line per event on standard
//!   output, and the console integration of routing (always built).
//! - [`payload`]: the one payload decoding policy of message brokers (always built).
//! - [`tls`]: TLS settings shared by the connectors that speak TLS.
//! - `log_throttle`: one log line per interval for a repeating problem (MQTT, Home
//!   Assistant).
//! - `mqtt` (feature `mqtt`): MQTT source and publisher, and `mqtt_configs` notifications.
//! - `nats` (feature `nats`): NATS core and JetStream source, and publisher, and
//!   `nats_configs` notifications.
//! - `kubernetes` (feature `kubernetes`): node, lease, pod and Event watches as a source.
//! - `homeassistant` (feature `homeassistant`): Home Assistant's state changes as a source,
//!   over its WebSocket API.
//! - `webhook` (feature `webhook`): notifications POSTed as Alertmanager's webhook JSON.
//! - `telegram` (feature `telegram`): notifications as Telegram messages (Bot API), within
//!   Telegram's limits, edited when their alerts resolve.
//! - `mail` (feature `mail`): notifications as mails over SMTP, threaded per group.
//! - `ntfy`, `gotify`, `matrix`, `discord`, `pushover` (features of the same names):
//!   notifications as push messages to those services.
//! - `http` (features of HTTP receivers): the client and [`http::HttpError`] they share.
//! - `push` (features of push receivers): the settings they share (`title`, `message`,
//!   `locale`, `timeout`) and a notification as a push message.
//! - [`secret`]: secrets read from files or the environment.
//! - `templates` (features of receivers that write messages): the text of those messages,
//!   from minijinja templates, built in for English and Spanish.

pub mod console;
#[cfg(feature = "discord")]
pub mod discord;
#[cfg(feature = "gotify")]
pub mod gotify;
#[cfg(feature = "homeassistant")]
pub mod homeassistant;
#[cfg(any(feature = "webhook", feature = "push"))]
pub mod http;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(any(feature = "mqtt", feature = "homeassistant"))]
mod log_throttle;
#[cfg(feature = "mail")]
pub mod mail;
#[cfg(feature = "matrix")]
pub mod matrix;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;
pub mod notifiers;
#[cfg(feature = "ntfy")]
pub mod ntfy;
pub mod payload;
#[cfg(feature = "push")]
pub mod push;
#[cfg(feature = "pushover")]
pub mod pushover;
pub mod secret;
#[cfg(feature = "telegram")]
pub mod telegram;
#[cfg(any(feature = "telegram", feature = "mail", feature = "push"))]
pub mod templates;
pub mod tls;
#[cfg(feature = "webhook")]
pub mod webhook;
