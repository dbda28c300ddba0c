//! Log lines and metrics of the MQTT connector, written together so they never disagree, and
//! throttled so a broker that is down or a device that sends garbage cannot flood the log.

use std::time::{Duration, Instant};

use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use rumqttc::{ConnectReturnCode, ConnectionError, StateError};
use tracing::{debug, error, info, warn};

use super::message::Skip;
use crate::log_throttle::LogThrottle;

/// At most one line per kind of repeated problem in this interval.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a connection attempt failed or a connection broke, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The broker answered CONNECT with a refusal.
    Refused(String),
    Tls(String),
    Network(String),
    /// An incoming message larger than the connection's packet limit.
    TooLarge(String),
    Protocol(String),
}

impl Failure {
    pub(crate) fn of(error: &ConnectionError, packet_limit: usize) -> Self {
        match error {
            ConnectionError::ConnectionRefused(code) => Self::Refused(refusal(*code).to_owned()),
            ConnectionError::Tls(e) => Self::Tls(format!(
                "TLS handshake failed: {e} (check mqtt.tls.ca_file, the client certificate if \
                 the broker requires one, and that the broker's certificate names mqtt.host)"
            )),
            ConnectionError::Io(e) | ConnectionError::MqttState(StateError::Io(e)) => {
                Self::Network(format!("cannot reach the broker: {e}"))
            }
            ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => {
                Self::Network("the broker did not answer in time".to_owned())
            }
            ConnectionError::MqttState(StateError::ConnectionAborted) => {
                Self::Network("the broker closed the connection".to_owned())
            }
            ConnectionError::MqttState(StateError::AwaitPingResp) => {
                Self::Network("the broker stopped answering keep-alive pings".to_owned())
            }
            ConnectionError::MqttState(StateError::Deserialization(
                rumqttc::Error::PayloadSizeLimitExceeded(len),
            )) => Self::too_large(*len, packet_limit),
            other => Self::Protocol(other.to_string()),
        }
    }

    pub(crate) fn of_v5(error: &rumqttc::v5::ConnectionError, packet_limit: usize) -> Self {
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code;
        use rumqttc::v5::{ConnectionError as E, StateError as S};
        match error {
            E::ConnectionRefused(code) | E::MqttState(S::ConnFail { reason: code }) => {
                Self::Refused(
                    match code {
                        Code::BadUserNamePassword => refusal(ConnectReturnCode::BadUserNamePassword),
                        Code::NotAuthorized => refusal(ConnectReturnCode::NotAuthorized),
                        Code::ClientIdentifierNotValid | Code::BadClientId => {
                            refusal(ConnectReturnCode::BadClientId)
                        }
                        Code::ServerUnavailable | Code::ServerBusy => {
                            refusal(ConnectReturnCode::ServiceUnavailable)
                        }
                        Code::UnsupportedProtocolVersion | Code::RefusedProtocolVersion => {
                            "the broker refused MQTT 5 (enable it on the broker, or use mqtt.protocol: 3.1.1)"
                        }
                        _ => return Self::Refused(format!("the broker refused the connection: {code:?}")),
                    }
                    .to_owned(),
                )
            }
            E::Tls(e) => Self::Tls(format!(
                "TLS handshake failed: {e} (check mqtt.tls.ca_file, the client certificate if \
                 the broker requires one, and that the broker's certificate names mqtt.host)"
            )),
            E::Io(e) | E::MqttState(S::Io(e)) => {
                Self::Network(format!("cannot reach the broker: {e}"))
            }
            E::Timeout(_) => Self::Network("the broker did not answer in time".to_owned()),
            E::MqttState(S::ConnectionAborted) => {
                Self::Network("the broker closed the connection".to_owned())
            }
            E::MqttState(S::AwaitPingResp) => {
                Self::Network("the broker stopped answering keep-alive pings".to_owned())
            }
            E::MqttState(S::ServerDisconnect {
                reason_code,
                reason_string,
            }) => Self::Network(format!(
                "the broker disconnected: {reason_code:?}{}",
                reason_string
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )),
            E::MqttState(S::IncomingPacketTooLarge { pkt_size, .. })
            | E::MqttState(S::Deserialization(
                rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded {
                    pkt_size, ..
                },
            )) => Self::too_large(*pkt_size, packet_limit),
            other => Self::Protocol(other.to_string()),
        }
    }

    fn too_large(len: usize, packet_limit: usize) -> Self {
        Self::TooLarge(format!(
            "a message of {len} bytes is over this connection's limit of {packet_limit}; \
             the broker offers it again after every reconnect: raise \
             mqtt.max_payload_bytes, or cap message sizes at the broker (mosquitto: \
             message_size_limit)"
        ))
    }

    fn text(&self) -> &str {
        match self {
            Self::Refused(t) | Self::Tls(t) | Self::Network(t) | Self::TooLarge(t) => t,
            Self::Protocol(t) => t,
        }
    }

    /// Configuration problems (credentials, certificates, sizes) are errors; the network
    /// coming and going is a warning.
    fn needs_attention(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::Tls(_) | Self::TooLarge(_))
    }
}

fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::BadUserNamePassword => {
            "the broker refused the username or password (check mqtt.username and the password)"
        }
        ConnectReturnCode::NotAuthorized => {
            "the broker refused the connection as not authorized (check mqtt.username, the \
             password and the broker's access rules)"
        }
        ConnectReturnCode::BadClientId => "the broker refused the client id (check mqtt.client_id)",
        ConnectReturnCode::ServiceUnavailable => "the broker refused the connection as unavailable",
        ConnectReturnCode::RefusedProtocolVersion => {
            "the broker refused MQTT 3.1.1 (enable it on the broker)"
        }
        ConnectReturnCode::Success => "the broker refused the connection",
    }
}

/// The state of the connection, its metrics, readiness and log lines.
pub(crate) struct ConnectionTelemetry {
    broker: String,
    counters: ConnectorCounters,
    ready: Option<ReadyHandle>,
    required_for_ready: bool,
    /// Set while not connected: when the outage began and what was last logged about it.
    outage: Option<Outage>,
    lost: LogThrottle,
    overflow: LogThrottle,
    subscribe: LogThrottle,
}

struct Outage {
    since: Instant,
    attempts: u64,
    /// The failure last written to the log in this outage; a new line only when its kind
    /// changes (the network still down: debug; now the password is refused: error).
    logged: Option<Failure>,
}

impl ConnectionTelemetry {
    pub(crate) fn new(
        broker: String,
        counters: ConnectorCounters,
        ready: Option<ReadyHandle>,
        required_for_ready: bool,
    ) -> Self {
        Self {
            broker,
            counters,
            ready,
            required_for_ready,
            outage: Some(Outage {
                since: Instant::now(),
                attempts: 0,
                logged: None,
            }),
            lost: LogThrottle::new(LOG_EVERY),
            overflow: LogThrottle::new(LOG_EVERY),
            subscribe: LogThrottle::new(LOG_EVERY),
        }
    }

    /// The connector starts: ready now unless readiness follows the broker connection.
    pub(crate) fn starting(&self) {
        self.set_ready(!self.required_for_ready);
        self.counters.set_connected(false);
    }

    /// Connected; `session_lost` when the broker should have held a session and had none.
    pub(crate) fn connected(&mut self, session_present: bool, session_lost: bool) {
        self.counters.set_connected(true);
        self.set_ready(true);
        if session_lost {
            self.counters.session_lost();
            warn!(
                broker = %self.broker,
                "The MQTT broker had no session for atalaya: messages published for it while it was away were not kept (broker restarted without persistence, or the session expired: mosquitto's persistent_client_expiration)."
            );
        }
        match self.outage.take() {
            Some(outage) if outage.logged.is_some() => info!(
                broker = %self.broker,
                session_present,
                attempts = outage.attempts + 1,
                down_for = ?outage.since.elapsed(),
                "Connected to the MQTT broker again."
            ),
            _ => info!(broker = %self.broker, session_present, "Connected to the MQTT broker."),
        }
    }

    /// An established connection broke.
    pub(crate) fn lost(&mut self, failure: Failure) {
        self.counters.set_connected(false);
        self.counters.reconnects.inc();
        self.set_ready(!self.required_for_ready);
        if failure.needs_attention() {
            self.counters.error(stage_of(&failure));
        }
        if let Some(suppressed) = self.lost.check(Instant::now()) {
            if failure.needs_attention() {
                error!(broker = %self.broker, reason = failure.text(), suppressed, "Lost the connection to the MQTT broker; reconnecting.");
            } else {
                warn!(broker = %self.broker, reason = failure.text(), suppressed, "Lost the connection to the MQTT broker; reconnecting.");
            }
        }
        self.outage = Some(Outage {
            since: Instant::now(),
            attempts: 0,
            logged: Some(failure),
        });
    }

    /// A connection attempt failed; `retry_in` is the back-off before the next one.
    pub(crate) fn connect_failed(&mut self, failure: Failure, retry_in: Duration) {
        self.counters.error(stage_of(&failure));
        let outage = self.outage.get_or_insert_with(|| Outage {
            since: Instant::now(),
            attempts: 0,
            logged: None,
        });
        outage.attempts += 1;
        let attempts = outage.attempts;
        let same_kind = outage.logged.as_ref().is_some_and(|logged| {
            std::mem::discriminant(logged) == std::mem::discriminant(&failure)
        });
        if same_kind {
            debug!(broker = %self.broker, reason = failure.text(), attempts, ?retry_in, "Still cannot connect to the MQTT broker.");
            return;
        }
        if failure.needs_attention() {
            error!(broker = %self.broker, reason = failure.text(), attempts, ?retry_in, "Cannot connect to the MQTT broker; retrying with back-off.");
        } else {
            warn!(broker = %self.broker, reason = failure.text(), attempts, ?retry_in, "Cannot connect to the MQTT broker; retrying with back-off.");
        }
        outage.logged = Some(failure);
    }

    pub(crate) fn subscribe_failed(&mut self, filter: &str) {
        self.counters.error("subscribe");
        if let Some(suppressed) = self.subscribe.check(Instant::now()) {
            error!(broker = %self.broker, filter, suppressed, "The MQTT broker refused a subscription (check its access rules); messages on it will not arrive.");
        }
    }

    /// A QoS 0 message was dropped: the bus stage has been stalled long enough for twice
    /// `max_inflight` messages to wait for it.
    pub(crate) fn overflow(&mut self, topic: &str) {
        self.counters.error("overflow");
        if let Some(suppressed) = self.overflow.check(Instant::now()) {
            warn!(broker = %self.broker, topic = %shorten(topic), suppressed, "Dropped a QoS 0 MQTT message: the rules runner has been stalled for seconds (subscribe with qos 1 to have the broker keep messages instead).");
        }
    }

    /// The connection stopped reading for `paused` because the bus stage was behind.
    pub(crate) fn paused(&self, paused: std::time::Duration) {
        self.counters.paused.inc_by(paused.as_secs_f64());
    }

    /// The connector stopped.
    pub(crate) fn stopped(&self) {
        self.counters.set_connected(false);
        self.set_ready(false);
        info!(broker = %self.broker, "MQTT connector stopped.");
    }

    fn set_ready(&self, ready: bool) {
        if let Some(handle) = &self.ready {
            handle.set(ready);
        }
    }
}

fn stage_of(failure: &Failure) -> &'static str {
    match failure {
        Failure::TooLarge(_) => "size",
        _ => "connect",
    }
}

/// Metrics and log lines of the bus stage.
pub(crate) struct MessageTelemetry {
    broker: String,
    counters: ConnectorCounters,
    decode: LogThrottle,
    size: LogThrottle,
}

impl MessageTelemetry {
    pub(crate) fn new(broker: String, counters: ConnectorCounters) -> Self {
        Self {
            broker,
            counters,
            decode: LogThrottle::new(LOG_EVERY),
            size: LogThrottle::new(LOG_EVERY),
        }
    }

    /// An event is on the bus.
    pub(crate) fn received(&self) {
        self.counters.received.inc();
    }

    pub(crate) fn skipped(&mut self, topic: &str, skip: &Skip) {
        let Some(stage) = skip.stage() else {
            debug!(broker = %self.broker, topic = %shorten(topic), "Skipped an MQTT message no subscription pattern matches.");
            return;
        };
        self.counters.error(stage);
        let throttle = if stage == "size" {
            &mut self.size
        } else {
            &mut self.decode
        };
        if let Some(suppressed) = throttle.check(Instant::now()) {
            warn!(broker = %self.broker, topic = %shorten(topic), reason = %skip, suppressed, "Skipped an MQTT message that cannot be an event.");
        }
    }
}

/// A topic for a log line: escaped (it may hold control characters) and cut to 200 bytes.
fn shorten(topic: &str) -> String {
    let mut end = topic.len().min(200);
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    let escaped = topic[..end].escape_debug().to_string();
    if end < topic.len() {
        format!("{escaped}…")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_to_check() {
        let failure = Failure::of(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
            1024,
        );
        assert!(failure.needs_attention());
        assert!(failure.text().contains("username or password"));
        let network = Failure::of(
            &ConnectionError::Io(std::io::ErrorKind::ConnectionRefused.into()),
            1024,
        );
        assert!(!network.needs_attention());
        let large = Failure::of(
            &ConnectionError::MqttState(StateError::Deserialization(
                rumqttc::Error::PayloadSizeLimitExceeded(5000),
            )),
            1024,
        );
        assert_eq!(stage_of(&large), "size");
    }

    #[test]
    fn topics_in_logs_are_escaped_and_short() {
        assert_eq!(shorten("a/b\n"), "a/b\\n");
        assert_eq!(shorten(&"é".repeat(150)).chars().count(), 101);
    }
}
