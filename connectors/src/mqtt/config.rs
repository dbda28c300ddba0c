//! `mqtt:` — the MQTT connection, its subscriptions (the source) and publishing (rule
//! actions). Parsed from the service config by the binary.

use std::time::Duration;

use atalaya_bus::Pattern;
use atalaya_bus::secret::Secret;

pub use super::discovery::DiscoveryConfig;
pub use super::wire::Protocol;
use crate::tls::TlsConfig;

/// One MQTT broker connection.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    /// Default 1883, or 8883 with TLS.
    pub port: u16,
    pub tls: Option<TlsConfig>,
    /// Default `atalaya`. Must be stable across restarts for the persistent session.
    pub client_id: String,
    pub username: Option<String>,
    /// From `password_file` or `ATALAYA__MQTT__PASSWORD`.
    pub password: Option<Secret>,
    /// Default 30 s.
    pub keep_alive: Duration,
    /// Default false: a persistent session, so QoS 1 messages wait at the broker while
    /// atalaya is down.
    pub clean_session: bool,
    pub subscriptions: Vec<MqttSubscription>,
    /// Larger payloads are counted, logged and skipped. Default 256 KiB.
    pub max_payload_bytes: usize,
    /// Availability topic: `online` (retained) after connecting, `offline` as last will.
    /// Default `atalaya/status`; `None` disables.
    pub status_topic: Option<String>,
    /// Reconnect back-off, doubling from `min` to `max`, with jitter. Default 1 s to 60 s.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Whether `/readyz` waits for (and follows) the broker connection. Default false: the
    /// connection is reported in `/readyz` and `atalaya_connector_connected`, but an
    /// outage does not take the HTTP API out of its Kubernetes Service.
    pub required_for_ready: bool,
    /// QoS 1/2 messages in flight, received but not yet acknowledged. Default 100.
    pub max_inflight: u16,
    /// `homeassistant:` with `discovery: true`: atalaya as a Home Assistant device.
    pub discovery: Option<DiscoveryConfig>,
    /// `protocol: 5` for MQTT 5 (user properties as labels, message and session expiry).
    /// Default MQTT 3.1.1.
    pub protocol: Protocol,
    /// MQTT 5 with a persistent session: how long the broker keeps it after the connection
    /// ends (MQTT 5 ends it at once unless told). Default 7 days.
    pub session_expiry: Duration,
}

/// One subscription: a subject pattern (`zigbee2mqtt/+device`, `home/#`) — subscribed as the
/// equivalent MQTT filter, with `+name` captures becoming labels — and its QoS.
#[derive(Debug, Clone)]
pub struct MqttSubscription {
    pub pattern: Pattern,
    /// 0, 1 or 2. Default 1.
    pub qos: u8,
}

impl MqttConfig {
    /// Defaults for a broker at `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: 1883,
            tls: None,
            client_id: "atalaya".to_owned(),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            clean_session: false,
            subscriptions: Vec::new(),
            max_payload_bytes: 256 * 1024,
            status_topic: Some("atalaya/status".to_owned()),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            required_for_ready: false,
            max_inflight: 100,
            discovery: None,
            protocol: Protocol::V311,
            session_expiry: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
