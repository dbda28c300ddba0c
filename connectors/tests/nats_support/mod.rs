//! Test support for the NATS connector, shared by the tests in `nats.rs`.
//!
//! # Layout
//! - `bus.rs`: [`TestBus`], a bus with one consumer and the connector metrics, and [`WAIT`].
//! - `connector.rs`: [`Running`], a connector running in a task, and [`subscription`].
//! - `jetstream.rs`: streams, numbered messages and consumer state.
//! - from the test kit: [`NatsServer`] and [`client`], [`make_certs`], [`CapturedLogs`].

mod bus;
mod connector;
pub mod jetstream;

pub use atalaya_test_kit::nats::{NatsServer, client};
pub use atalaya_test_kit::{CapturedLogs, make_certs};
pub use bus::{TestBus, WAIT};
pub use connector::{Running, subscription};
