//! What every other atalaya crate shares: the event model, subjects and patterns, the
//! bounded in-process bus, the state store, and the delivery contract.
//!
//! Every source (HTTP, MQTT, NATS, Kubernetes) turns what it receives into one [`Event`]
//! shape — CloudEvents attribute names plus flat string labels — and publishes it on the
//! [`bus`]. Consumers (the console receiver and the rules runner) read from their own bounded
//! queue, so a slow consumer slows publishers down instead of growing memory. At the other
//! end, the router's [`delivery::Notification`]s reach the receivers through one
//! [`delivery::Notifier`] trait, defined here so that the rules and the connectors never
//! import each other.
//!
//! # Layout
//! - [`event`]: the [`Event`] model and label rules.
//! - [`cloudevents`]: decoding CloudEvents structured JSON (one event or a batch).
//! - [`subject`]: [`Subject`], a token path shared by MQTT topics and NATS subjects.
//! - [`pattern`]: [`Pattern`], `+`, `+name` and `#`/`>` matching with label captures.
//! - [`bus`]: the bounded, fan-out [`bus::Publisher`] / [`bus::Consumer`] pair and its metrics.
//! - [`backoff`]: the one back-off (doubling, capped, jittered) of reconnects and retries.
//! - [`delivery`]: the delivery contract — notifications, receiver configs, the
//!   [`delivery::Notifier`] trait — shared by the rules (which route) and the connectors
//!   (which deliver).
//! - [`labels`]: [`Labels`], flat string labels as a small sorted vector.
//! - [`fingerprint`]: the stable hash behind alert, series and notification ids.
//! - [`yaml`]: YAML that keeps every node's position, and serde over it: rule files, the
//!   routing policy and receivers' settings all report `file:line:col`.
//! - [`duration`]: Prometheus-style durations (`30s`, `1h30m`, `1d`, `1w`).
//! - [`connector_metrics`]: received / sent / errors counters shared by every connector.
//! - [`readiness`]: components report whether they are ready; `/readyz` reads it.
//! - [`secret`]: [`secret::Secret`], a value that never reaches a log line.
//! - [`store`]: the embedded, crash-safe state store (redb) under the state directory.

pub mod backoff;
pub mod bus;
pub mod cloudevents;
pub mod connector_metrics;
pub mod delivery;
pub mod duration;
pub mod event;
pub mod fingerprint;
pub mod labels;
pub mod pattern;
pub mod readiness;
pub mod secret;
pub mod store;
pub mod subject;
pub mod yaml;

pub use event::{Event, Labels};
pub use pattern::Pattern;
pub use subject::Subject;
