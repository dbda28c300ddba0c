//! Between the connection and the bus: the bus stage turns received messages into events and
//! publishes them, the ack stage acknowledges each message, in arrival order, once every bus
//! consumer has finished with its event.
//!
//! Neither stage ever blocks the connection loop: it hands messages over through an
//! unbounded channel (bounded in practice, see the module docs of [`super`]) and the ack stage
//! queues PUBACKs through rumqttc's request channel, which only the connection loop drains.

use std::sync::Arc;

use atalaya_bus::bus::{Delivery, Publisher};
use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::MqttError;
use super::message::{Skip, Subscriptions};
use super::source::Queued;
use super::telemetry::MessageTelemetry;
use super::wire::{Received, WireClient};

/// A received message on its way to the bus stage.
pub(crate) struct Inbound {
    pub(crate) publish: Received,
    /// The connection it arrived on (see [`Link`]).
    pub(crate) connection: u64,
    /// When it was read: an MQTT 5 message expires this long after, less what it had left.
    pub(crate) arrived: Instant,
}

/// What the ack stage needs to know about the connection: the number of the connection that
/// is up (counting from 1), or `None` while it is down.
///
/// A message is acknowledged only on the connection it arrived on. After a reconnect the
/// broker offers every unacknowledged message again (a persistent session), or forgets them
/// (a new session, where the same packet id may mean another message): either way a PUBACK
/// from before the reconnect is useless or wrong, so it is dropped and the redelivered copy
/// is acknowledged in its turn.
pub(crate) type Link = Option<u64>;

/// A QoS 1 message waiting for its event to be done everywhere before its PUBACK.
pub(crate) struct PendingAck {
    publish: Received,
    /// `None` for a skipped message: acknowledged as soon as its turn comes.
    delivery: Option<Delivery>,
    connection: u64,
}

/// Decodes messages and publishes their events on the bus.
pub(crate) struct BusStage {
    pub(crate) subscriptions: Subscriptions,
    pub(crate) bus: Publisher,
    pub(crate) telemetry: MessageTelemetry,
    /// Messages handed over by the connection loop and not yet taken here; the connection
    /// loop stops reading beyond a bound.
    pub(crate) queued: Arc<Queued>,
}

impl BusStage {
    /// Runs until `stop`, or until the connection loop is gone. Messages not yet on the bus
    /// when it stops stay unacknowledged, and the broker offers them again next time.
    pub(crate) async fn run(
        mut self,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
        acks: mpsc::Sender<PendingAck>,
        stop: &CancellationToken,
    ) -> Result<(), MqttError> {
        loop {
            let Inbound {
                publish,
                connection,
                arrived,
            } = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                received = inbound.recv() => match received {
                    Some(received) => received,
                    None => return Ok(()),
                },
            };
            self.queued.taken();
            let expired = publish
                .expires_in
                .is_some_and(|left| arrived.elapsed().as_secs() >= u64::from(left));
            let event = if expired {
                Err(Skip::Expired)
            } else {
                self.subscriptions.to_event(&publish, Timestamp::now())
            };
            let delivery = match event {
                Ok(event) => {
                    // Both publishes are cancel-safe: nothing is published if stopped here.
                    let published = if publish.at_most_once {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            published = self.bus.publish(event) => published.map(|()| None),
                        }
                    } else {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            published = self.bus.publish_tracked(vec![event]) => published.map(Some),
                        }
                    };
                    // `BatchTooLarge` cannot happen with one event (queues hold at least
                    // one), so any error means the bus is closed.
                    let delivery = published.map_err(|_| MqttError::BusClosed)?;
                    self.telemetry.received();
                    delivery
                }
                Err(skip) => {
                    self.telemetry.skipped(&publish.topic, &skip);
                    None
                }
            };
            if publish.at_most_once {
                continue;
            }
            let pending = PendingAck {
                publish,
                delivery,
                connection,
            };
            // Waits while `max_inflight` deliveries await their PUBACK. Not cut short when
            // stopping: the ack stage keeps draining (within its grace), and an event already
            // on the bus should get its acknowledgement.
            if acks.send(pending).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Acknowledges messages in arrival order, each once its delivery is done, on the connection
/// it arrived on (see [`Link`]). Ends when the bus stage has ended and every pending message
/// is handled, or when the connection loop is gone.
pub(crate) async fn ack_stage(
    mut acks: mpsc::Receiver<PendingAck>,
    client: WireClient,
    mut link: watch::Receiver<Link>,
    queued: &Queued,
) {
    while let Some(pending) = acks.recv().await {
        if let Some(delivery) = pending.delivery {
            delivery.done().await;
        }
        let same_connection = loop {
            if let Some(up) = *link.borrow_and_update() {
                break up == pending.connection;
            }
            if link.changed().await.is_err() {
                return;
            }
        };
        // If the connection breaks before this PUBACK is written, rumqttc drops it; the
        // broker redelivers the message and its new copy is acknowledged in turn.
        if same_connection {
            if client.ack(&pending.publish).await.is_err() {
                return;
            }
            queued.requested();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use atalaya_bus::Pattern;
    use atalaya_bus::bus::BusBuilder;
    use atalaya_bus::connector_metrics::ConnectorMetrics;

    use super::*;
    use crate::mqtt::config::MqttSubscription;

    fn message(topic: &str, expires_in: Option<u32>) -> Received {
        Received {
            topic: topic.to_owned(),
            payload: b"1".to_vec().into(),
            at_most_once: true,
            retain: false,
            pkid: 0,
            user_properties: Vec::new(),
            expires_in,
        }
    }

    /// An MQTT 5 message whose expiry interval ran out while it waited for the bus stage is
    /// skipped and counted; one with time left, or without an expiry, becomes an event.
    #[tokio::test(start_paused = true)]
    async fn messages_that_expired_while_waiting_are_skipped_and_counted() {
        let registry = prometheus::Registry::new();
        let mut bus = BusBuilder::new(8, &registry).unwrap();
        let mut consumer = bus.consumer("test");
        let bus = bus.build();
        let counters = ConnectorMetrics::register(&registry)
            .unwrap()
            .connection("mqtt", crate::mqtt::ERROR_STAGES);
        let subscription = MqttSubscription {
            pattern: Pattern::parse("a/+name").unwrap(),
            qos: 0,
        };
        let stage = BusStage {
            subscriptions: Subscriptions::new(&[subscription], "mqtt://b:1883".to_owned(), 64),
            bus,
            telemetry: MessageTelemetry::new("mqtt://b:1883".to_owned(), counters.clone()),
            queued: Arc::new(Queued::default()),
        };
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        let arrived = Instant::now();
        for (topic, expires_in) in [("a/gone", Some(2)), ("a/left", Some(60)), ("a/plain", None)] {
            inbound_tx
                .send(Inbound {
                    publish: message(topic, expires_in),
                    connection: 1,
                    arrived,
                })
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(inbound_tx);
        let (acks, _acks_rx) = mpsc::channel(8);
        stage
            .run(inbound_rx, acks, &CancellationToken::new())
            .await
            .unwrap();
        let mut subjects = Vec::new();
        while let Some(received) = consumer.try_recv() {
            subjects.push(received.subject.as_str().to_owned());
        }
        assert_eq!(subjects, ["a/left", "a/plain"]);
        let expired = atalaya_test_kit::metrics::sample(
            &registry,
            "atalaya_connector_errors_total",
            &[("connector", "mqtt"), ("stage", "expired")],
        );
        assert_eq!(expired, 1.0);
    }
}
