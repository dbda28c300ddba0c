//! NATS connector (being built).
pub mod config;
