//! The event side of atalaya: what an event is, how subjects and patterns work, and the
//! bounded in-process bus that carries events from sources to consumers.
//!
//! Every source (HTTP, MQTT, NATS, Kubernetes) turns what it receives into one [`Event`]
//! shape — CloudEvents attribute names plus flat string labels — and publishes it on the
//! [`bus`]. Consumers (the console receiver today, the rule engine next) read from their own
//! bounded queue, so a slow consumer slows publishers down instead of growing memory.
//!
//! # Layout
//! - [`event`]: the [`Event`] model and label rules.
//! - [`cloudevents`]: decoding CloudEvents structured JSON (one event or a batch).
//! - [`subject`]: [`Subject`], a token path shared by MQTT topics and NATS subjects.
//! - [`pattern`]: [`Pattern`], `+`, `+name` and `#`/`>` matching with label captures.
//! - [`bus`]: the bounded, fan-out [`bus::Publisher`] / [`bus::Consumer`] pair and its metrics.
//! - [`connector_metrics`]: received / sent / errors counters shared by every connector.
//! - [`readiness`]: components report whether they are ready; `/readyz` reads it.
//! - [`secret`]: [`secret::Secret`], a value that never reaches a log line.
//! - [`store`]: the embedded, crash-safe state store (redb) under the state directory.

pub mod bus;
pub mod cloudevents;
pub mod connector_metrics;
pub mod event;
pub mod pattern;
pub mod readiness;
pub mod secret;
pub mod store;
pub mod subject;

pub use event::{Event, Labels};
pub use pattern::Pattern;
pub use subject::Subject;
