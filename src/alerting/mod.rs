//! The alerting runner: the rule engine on the bus, the router beside it, the durable
//! outbox, and rule actions — everything between an event and a notification delivered.
//!
//! # Layout
//! - `runner`: [`runner::RulesRunner`], the engine fed from the bus, with persistence, reloads
//!   and the stall watchdog; one store commit per step, at most one per `state.commit_interval`
//!   while events pour in (group commit).
//! - `flapping`: rules whose alerts change state too often, reported once.
//! - `history`: what happened to each alert (state changes, notifications, attempts,
//!   silences), in the store, bounded; read by `explain` and the history API.
//! - `routing`: the router in the runner's task: alerts in, notifications to the outbox,
//!   its state persisted, the HTTP API's commands answered.
//! - `outbox`: notifications stored, then delivered through the receivers' notifiers with
//!   retries and dead letters.
//! - `actions`: rule actions published through the brokers.
//! - `acknowledgements`: alerts acknowledged in a receiver's app, silenced.
//! - `chat`: the Telegram bot's way to the router (alerts, silences, status).
//! - `tail`: each event evaluated, with the rules that took it, for `atalaya tail`.
//! - `retained`: what the MQTT keeper (alert state topics, Home Assistant discovery) reads
//!   from the router and the rules.

pub mod acknowledgements;
pub mod actions;
#[cfg(feature = "telegram")]
pub mod chat;
pub mod flapping;
pub mod history;
pub mod outbox;
#[cfg(feature = "mqtt")]
pub mod retained;
pub mod routing;
pub mod runner;
pub mod tail;
