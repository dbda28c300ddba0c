//! Checking an [`MqttConfig`] and turning it into rumqttc's options: TLS, credentials, the
//! last will, packet size limits and flow control.
//!
//! Everything rumqttc would panic on (an empty client id with a persistent session, a zero
//! in-flight window, a keep-alive under a second) is refused here, with every problem at once.

use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::Subject;
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport, v5};

use super::MqttError;
use super::config::MqttConfig;
use super::wire::{Protocol, WireClient, WireLoop, v5_qos};
use crate::tls;

/// Payload of the retained status message after connecting.
pub(crate) const ONLINE: &str = "online";
/// Payload of the last will, and of the status message at a graceful shutdown.
pub(crate) const OFFLINE: &str = "offline";

/// The largest packet MQTT can carry (its remaining-length field tops out here). Outgoing
/// payloads are checked against `max_payload_bytes` before they are queued, so rumqttc never
/// meets a packet it would refuse — which would break the connection and, the publish still
/// queued, break it again after every reconnect.
const MQTT_MAX_PACKET: usize = 268_435_455;

/// Headroom over `max_payload_bytes` for the topic (at most 64 KiB) and the packet header.
const PACKET_OVERHEAD: usize = 64 * 1024 + 16;

/// The largest incoming packet read off the connection. Messages up to this size but over
/// `max_payload_bytes` are counted and skipped; a larger one breaks the connection (rumqttc
/// cannot skip it), so the limit is generous: four times the payload limit.
pub(crate) fn incoming_packet_limit(max_payload_bytes: usize) -> usize {
    max_payload_bytes
        .saturating_mul(4)
        .saturating_add(PACKET_OVERHEAD)
        .min(MQTT_MAX_PACKET)
}

/// `mqtt://host:port` (with or without TLS): the broker in log lines and the source of events.
pub(crate) fn broker_uri(config: &MqttConfig) -> String {
    format!("mqtt://{}:{}", config.host, config.port)
}

/// The client and the event loop of `config`'s connection, in its MQTT version (nothing
/// connects yet); every problem of `config` at once otherwise.
pub(crate) fn connection(config: &MqttConfig) -> Result<(WireClient, WireLoop), MqttError> {
    let options = mqtt_options(config)?;
    let capacity = options.request_channel_capacity();
    Ok(match config.protocol {
        Protocol::V311 => {
            let (client, eventloop) = rumqttc::AsyncClient::new(options, capacity);
            (WireClient::V311(client), WireLoop::V311(eventloop))
        }
        Protocol::V5 => {
            let options = mqtt5_options(config, &options);
            let (client, eventloop) = v5::AsyncClient::new(options, capacity);
            (WireClient::V5(client), WireLoop::V5(eventloop))
        }
    })
}

/// The MQTT 5 options of `config`, after the 3.1.1 ones (checked, TLS read): the same
/// connection, plus the session expiry and flow control MQTT 5 negotiates.
fn mqtt5_options(config: &MqttConfig, v311: &MqttOptions) -> v5::MqttOptions {
    let mut options = v5::MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_start(config.clean_session)
        .set_manual_acks(true)
        // What the broker may send before acknowledgements: MQTT 5's in-flight window.
        .set_receive_maximum(Some(config.max_inflight))
        .set_request_channel_capacity(v311.request_channel_capacity())
        .set_max_packet_size(Some(
            u32::try_from(incoming_packet_limit(config.max_payload_bytes)).unwrap_or(u32::MAX),
        ))
        .set_transport(v311.transport());
    if !config.clean_session {
        options.set_session_expiry_interval(Some(
            u32::try_from(config.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ));
    }
    if let Some(username) = &config.username {
        let password = config.password.as_ref().map(|s| s.expose()).unwrap_or("");
        options.set_credentials(username, password);
    }
    if let Some(topic) = &config.status_topic {
        options.set_last_will(v5::mqttbytes::v5::LastWill::new(
            topic,
            OFFLINE,
            v5_qos(QoS::AtLeastOnce),
            true,
            None,
        ));
    }
    options
}

/// Every problem of `config`, or the rumqttc options (TLS files are read here, so a missing
/// file is a startup error rather than an endless reconnect loop).
pub(crate) fn mqtt_options(config: &MqttConfig) -> Result<MqttOptions, MqttError> {
    let problems = check(config);
    if !problems.is_empty() {
        return Err(MqttError::Config(problems));
    }
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_session(config.clean_session)
        .set_manual_acks(true)
        .set_inflight(config.max_inflight)
        // Room for the PUBACKs of a full pipeline (queued, awaiting the bus, awaiting their
        // turn) besides action publishes, so the ack stage rarely waits for the connection.
        .set_request_channel_capacity((2 * usize::from(config.max_inflight)).max(64))
        .set_max_packet_size(
            incoming_packet_limit(config.max_payload_bytes),
            MQTT_MAX_PACKET,
        );
    if let Some(username) = &config.username {
        let password = config.password.as_ref().map(|s| s.expose()).unwrap_or("");
        options.set_credentials(username, password);
    }
    if let Some(topic) = &config.status_topic {
        options.set_last_will(LastWill::new(topic, OFFLINE, QoS::AtLeastOnce, true));
    }
    if let Some(tls) = &config.tls {
        let client_config = tls::client_config(tls)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(client_config),
        )));
    }
    Ok(options)
}

fn check(config: &MqttConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if config.host.trim().is_empty() {
        problems.push("mqtt.host is empty".to_owned());
    }
    if config.client_id.is_empty() && !config.clean_session {
        problems.push(
            "mqtt.client_id is empty: a persistent session (clean_session: false) needs a stable client id"
                .to_owned(),
        );
    }
    if !config.keep_alive.is_zero()
        && (config.keep_alive < Duration::from_secs(1)
            || config.keep_alive > Duration::from_secs(u64::from(u16::MAX)))
    {
        problems.push(format!(
            "mqtt.keep_alive is {:?}: use 0 (off) or whole seconds from 1 s to 65535 s",
            config.keep_alive
        ));
    }
    if config.max_inflight == 0 {
        problems.push("mqtt.max_inflight must be at least 1".to_owned());
    }
    if config.protocol == Protocol::V5
        && !config.clean_session
        && config.session_expiry < Duration::from_secs(1)
    {
        problems.push(
            "mqtt.session_expiry must be at least 1s with a persistent session (MQTT 5 ends the session with the connection otherwise)"
                .to_owned(),
        );
    }
    if config.reconnect_min.is_zero() {
        problems.push("mqtt.reconnect_min must be more than 0".to_owned());
    }
    if config.reconnect_min > config.reconnect_max {
        problems.push(format!(
            "mqtt.reconnect_min ({:?}) is larger than mqtt.reconnect_max ({:?})",
            config.reconnect_min, config.reconnect_max
        ));
    }
    if config.username.is_none() && config.password.is_some() {
        problems.push("mqtt.password is set without mqtt.username".to_owned());
    }
    if let Some(topic) = &config.status_topic
        && let Err(e) = Subject::parse(topic)
    {
        problems.push(format!("mqtt.status_topic `{topic}`: {e}"));
    }
    if let Some(discovery) = &config.discovery {
        problems.extend(
            discovery
                .problems()
                .into_iter()
                .map(|(key, problem)| format!("mqtt.homeassistant.{key}: {problem}")),
        );
    }
    for (i, subscription) in config.subscriptions.iter().enumerate() {
        if subscription.qos > 2 {
            problems.push(format!(
                "mqtt.subscriptions[{i}] (`{}`): qos is {}; use 0, 1 or 2",
                subscription.pattern, subscription.qos
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use atalaya_bus::Pattern;
    use atalaya_bus::secret::Secret;

    use super::*;
    use crate::mqtt::config::MqttSubscription;

    #[test]
    fn reports_every_problem_at_once_and_never_the_password() {
        let mut config = MqttConfig::new("");
        config.client_id = String::new();
        config.keep_alive = Duration::from_millis(500);
        config.max_inflight = 0;
        config.reconnect_min = Duration::from_secs(9);
        config.reconnect_max = Duration::from_secs(1);
        config.password = Some(Secret::new("hunter2".to_owned()));
        config.status_topic = Some("a/+".to_owned());
        config.subscriptions = vec![MqttSubscription {
            pattern: Pattern::parse("a/#").unwrap(),
            qos: 3,
        }];
        let Err(MqttError::Config(problems)) = mqtt_options(&config) else {
            panic!("config should be refused");
        };
        assert_eq!(problems.len(), 8, "{problems:#?}");
        let text = MqttError::Config(problems).to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn defaults_build_options() {
        let mut config = MqttConfig::new("broker.lan");
        config.username = Some("atalaya".to_owned());
        config.password = Some(Secret::new("hunter2".to_owned()));
        let options = mqtt_options(&config).unwrap();
        assert!(options.manual_acks());
        assert!(!options.clean_session());
        assert_eq!(options.last_will().unwrap().topic, "atalaya/status");
        assert_eq!(broker_uri(&config), "mqtt://broker.lan:1883");
        assert!(incoming_packet_limit(256 * 1024) > 256 * 1024);
    }
}
