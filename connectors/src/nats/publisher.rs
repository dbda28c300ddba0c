//! Publishing to NATS (rule actions): [`NatsPublisher`] shares the source's connection.
//!
//! A `/`-separated atalaya subject becomes the `.`-separated NATS subject. Core NATS publishes
//! and flushes (the server has the message); with `publish_jetstream` the message goes through
//! JetStream and the stream's ack is awaited (the stream has stored it). Either way a publish
//! fails after `publish_timeout` rather than hang through an outage, so the caller can retry.

use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::Context;
use atalaya_bus::connector_metrics::ConnectorCounters;
use tracing::debug;

use super::config::NatsConfig;
use super::error::NatsError;
use super::subject::publish_subject;

/// Publishes messages on the connector's connection. Cheap to clone.
#[derive(Clone)]
pub struct NatsPublisher {
    client: Client,
    /// `Some` when publishing through JetStream (`publish_jetstream`).
    jetstream: Option<Context>,
    counters: ConnectorCounters,
    timeout: Duration,
}

impl NatsPublisher {
    pub(crate) fn new(client: Client, config: &NatsConfig, counters: ConnectorCounters) -> Self {
        let jetstream = config
            .publish_jetstream
            .then(|| async_nats::jetstream::new(client.clone()));
        Self {
            client,
            jetstream,
            counters,
            timeout: config.publish_timeout,
        }
    }

    /// Publishes `payload` to `subject` (`home/notify` goes to NATS `home.notify`) and waits
    /// until the server has it (core: flushed; JetStream: the stream's ack). Counts `sent`, or
    /// an error at stage `publish`.
    pub async fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), NatsError> {
        let result = self.try_publish(subject, payload).await;
        match &result {
            Ok(()) => self.counters.sent.inc(),
            Err(error) => {
                self.counters.error(error.stage());
                debug!(subject, error = %error, "NATS publish failed.");
            }
        }
        result
    }

    async fn try_publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), NatsError> {
        let nats_subject =
            publish_subject(subject).map_err(|reason| NatsError::InvalidSubject {
                subject: subject.to_owned(),
                reason,
            })?;
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| NatsError::Publish {
            subject: nats_subject.clone(),
            source,
        };
        let attempt = async {
            match &self.jetstream {
                Some(jetstream) => {
                    let ack = jetstream
                        .publish(nats_subject.clone(), payload.into())
                        .await
                        .map_err(|e| failed(e.into()))?;
                    ack.await.map_err(|e| failed(e.into()))?;
                }
                None => {
                    self.client
                        .publish(nats_subject.clone(), payload.into())
                        .await
                        .map_err(|e| failed(e.into()))?;
                    self.client.flush().await.map_err(|e| failed(e.into()))?;
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(NatsError::PublishTimeout {
                subject: nats_subject.clone(),
                timeout: self.timeout,
            }),
        }
    }
}
