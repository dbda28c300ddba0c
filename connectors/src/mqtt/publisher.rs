//! [`MqttPublisher`]: publishing over the connector's connection (rule actions).

use atalaya_bus::Subject;
use atalaya_bus::connector_metrics::ConnectorCounters;

use super::MqttError;
use super::wire::WireClient;

/// Publishes messages over the [`MqttConnector`](super::MqttConnector)'s connection. Cheap to
/// clone.
#[derive(Clone)]
pub struct MqttPublisher {
    client: WireClient,
    counters: ConnectorCounters,
    /// Larger payloads are refused before they are queued: rumqttc would otherwise break the
    /// connection over them, again after every reconnect.
    max_payload_bytes: usize,
}

impl MqttPublisher {
    pub(crate) fn new(
        client: WireClient,
        counters: ConnectorCounters,
        max_payload_bytes: usize,
    ) -> Self {
        Self {
            client,
            counters,
            max_payload_bytes,
        }
    }

    /// Publishes `payload` at QoS 1 to the topic of `subject` (its tokens joined by `/`),
    /// retained if asked. Returns once the message is queued on the connection; while the
    /// broker is unreachable the queue holds it (and, once full, this waits — put a timeout
    /// around it). Counts `sent`, or `errors{stage="publish"}`.
    pub async fn publish(
        &self,
        subject: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), MqttError> {
        let result = self.try_publish(subject, payload, retain).await;
        match &result {
            Ok(()) => self.counters.sent.inc(),
            Err(_) => self.counters.error("publish"),
        }
        result
    }

    async fn try_publish(
        &self,
        subject: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), MqttError> {
        let topic = Subject::parse(subject).map_err(|source| MqttError::InvalidSubject {
            subject: subject.to_owned(),
            source,
        })?;
        if payload.len() > self.max_payload_bytes {
            return Err(MqttError::PayloadTooLarge {
                len: payload.len(),
                max: self.max_payload_bytes,
            });
        }
        self.client
            .publish(topic.as_str(), retain, payload)
            .await
            .map_err(|_| MqttError::Stopped)
    }
}
