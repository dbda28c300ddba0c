//! Routing: from alerts to notifications, the way Alertmanager does it.
//!
//! The policy is written with Alertmanager's configuration keys (`route`, `receivers`,
//! `inhibit_rules`, `time_intervals`), so an existing Alertmanager configuration can be
//! brought over and `atalaya routes test` answers as `amtool config routes test` does. The
//! [`router::Router`] is a sans-IO state machine like the rule engine: alerts and time go in,
//! notifications come out; the service writes them to the durable outbox. Receivers, their
//! integrations' settings and notifications are the delivery contract in
//! [`atalaya_bus::delivery`], shared with the connectors that deliver them.
//!
//! # Layout
//! - [`matcher`]: label matchers (`severity="critical"`, `room=~"kitchen|hall"`).
//! - [`duration`]: Prometheus-style durations (`30s`, `1h30m`, `1d`, `1w`), from `atalaya-bus`.
//! - [`time_interval`]: named time intervals (times, weekdays, days of month, months, years,
//!   location) and whether an instant falls inside.
//! - [`config`]: the policy file as written (serde), compiled into a [`config::RoutingPolicy`]
//!   with every error as `file:line:col: message`.
//! - [`tree`]: the compiled route tree and which routes an alert's labels reach.
//! - [`inhibit`]: inhibition rules.
//! - [`silence`]: silences and their states.
//! - [`time_limits`]: how far ahead outside times may lie, and sums that cannot overflow.
//! - [`quiet`]: whether a notification goes out silently (Telegram's `quiet` rules).
//! - [`router`]: the sans-IO router: aggregation groups, inhibition, silences, time muting.

pub mod config;
pub use atalaya_bus::duration;
pub mod inhibit;
pub mod matcher;
pub mod quiet;
pub mod router;
pub mod silence;
pub mod time_interval;
pub mod time_limits;
pub mod tree;
