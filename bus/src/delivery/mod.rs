//! The delivery contract: what the router hands over and the receivers deliver, below both
//! `atalaya-rules` (which builds notifications) and `atalaya-connectors` (which sends them),
//! so neither imports the other.
//!
//! # Layout
//! - [`notification`]: [`Notification`] and [`NotifiedAlert`], one per group, integration
//!   and flush; the Alertmanager webhook form.
//! - [`integration`]: [`Receiver`] and its [`Integration`]s as the routing policy
//!   configures them: what routing reads (kind, `send_resolved`, `quiet`) and the kind's
//!   own settings, opaque to routing.
//! - [`compile`]: [`IntegrationKind`], how a kind compiles its `<kind>_configs` entries,
//!   and the [`IntegrationContext`] the policy compiler gives it. The kinds themselves live
//!   with their senders in `atalaya-connectors`.
//! - [`notifier`]: [`Notifier`], the one trait every integration implements (one attempt:
//!   delivered, retry, or permanent failure), and [`Notifiers`], a policy's integrations
//!   opened for delivery.
//! - [`error`]: [`DeliveryError`], why an attempt failed.
//! - [`locale`]: [`locale::Locale`], the languages texts for people come in, and
//!   [`locale::duration_text`], how every one of them writes a duration.
//! - [`acknowledgement`]: [`Acknowledgement`], alerts a person acknowledged in a receiver's
//!   app, on their way back to the router.

pub mod acknowledgement;
pub mod compile;
pub mod error;
pub mod integration;
pub mod locale;
pub mod notification;
pub mod notifier;

pub use acknowledgement::{Acknowledgement, Acknowledgements};
pub use compile::{IntegrationContext, IntegrationKind};
pub use error::DeliveryError;
pub use integration::{Integration, Receiver};
pub use notification::{Notification, NotifiedAlert, Status};
pub use notifier::{Notifier, Notifiers, NotifyFuture};
