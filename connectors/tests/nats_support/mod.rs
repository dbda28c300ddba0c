//! Test support for the NATS connector, shared by the tests in `nats.rs`.
//!
//! # Layout
//! - `server.rs`: [`NatsServer`], a real nats-server on a free loopback port, and [`client`].
//! - `bus.rs`: [`TestBus`], a bus with one consumer and the connector metrics, and [`WAIT`].
//! - `connector.rs`: [`Running`], a connector running in a task, and [`subscription`].
//! - `jetstream.rs`: streams, numbered messages and consumer state.
//! - `../support/certs.rs`: [`make_certs`], a CA and certificates made with the `openssl` CLI.
//! - `../support/logs.rs`: [`CapturedLogs`], what the connector logged.

mod bus;
#[allow(dead_code, reason = "shared with the MQTT tests, which use all of it")]
#[path = "../support/certs.rs"]
mod certs;
mod connector;
pub mod jetstream;
#[allow(dead_code, reason = "shared with the MQTT tests, which use all of it")]
#[path = "../support/logs.rs"]
mod logs;
#[path = "../support/metrics.rs"]
mod metrics;
mod server;

pub use bus::{TestBus, WAIT};
pub use certs::make_certs;
pub use connector::{Running, subscription};
pub use logs::CapturedLogs;
pub use server::{NatsServer, client};
