//! The delivery contract: what the router hands over and the receivers deliver, below both
//! `atalaya-rules` (which builds notifications) and `atalaya-connectors` (which sends them),
//! so neither imports the other.
//!
//! # Layout
//! - [`notification`]: [`Notification`] and [`NotifiedAlert`], one per group, integration
//!   and flush; the Alertmanager webhook form.
//! - [`integration`]: [`Receiver`] and its [`Integration`]s as the routing policy
//!   configures them (`webhook_configs`, `telegram_configs`, …), plain data.
//! - [`notifier`]: [`Notifier`], the one trait every integration implements (one attempt:
//!   delivered, retry, or permanent failure), and [`Notifiers`], a policy's integrations
//!   opened for delivery.
//! - [`error`]: [`DeliveryError`], why an attempt failed.

pub mod error;
pub mod integration;
pub mod notification;
pub mod notifier;

pub use error::DeliveryError;
pub use integration::{Integration, Receiver};
pub use notification::{MESSAGE_TEMPLATE_VARIABLES, Notification, NotifiedAlert, Status};
pub use notifier::{Notifier, Notifiers, NotifyFuture};
