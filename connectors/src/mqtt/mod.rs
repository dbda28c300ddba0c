//! MQTT connector (being built).
pub mod config;
