//! MQTT 3.1.1 and MQTT 5 behind one face: rumqttc has a client and an event loop for each,
//! with their own types; the connector works with [`WireClient`], [`WireLoop`], [`Polled`]
//! and [`Received`], and only this file knows which version is spoken.
//!
//! MQTT 5 adds what the connector uses: user properties on messages (labels), the remaining
//! message expiry interval (a message that expires while it waits inside atalaya is
//! skipped), and a session expiry interval (how long the broker keeps the persistent session
//! after the connection ends).

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as packets5;
use rumqttc::{QoS, v5};

use super::telemetry::Failure;

/// The MQTT version spoken (`mqtt.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT 3.1.1, what every broker speaks.
    #[default]
    V311,
    /// MQTT 5.
    V5,
}

/// A received PUBLISH, whichever the version.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    /// QoS 0: nothing to acknowledge.
    pub(crate) at_most_once: bool,
    pub(crate) retain: bool,
    pub(crate) pkid: u16,
    /// MQTT 5 user properties, in order.
    pub(crate) user_properties: Vec<(String, String)>,
    /// MQTT 5: how many seconds the message has left before it expires.
    pub(crate) expires_in: Option<u32>,
}

/// What one poll of the event loop brought.
pub(crate) enum Polled {
    ConnAck {
        session_present: bool,
    },
    Publish(Received),
    /// The indexes of the filters the broker refused.
    SubAck {
        refused: Vec<usize>,
    },
    PubAckSent,
    DisconnectSent,
    Other,
}

/// A subscription filter, whichever the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) path: String,
    pub(crate) qos: QoS,
}

/// The client side: queues requests for the event loop. Cheap to clone.
#[derive(Clone)]
pub(crate) enum WireClient {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The client went away (the event loop is gone).
#[derive(Debug)]
pub(crate) struct Gone;

impl WireClient {
    /// Queues a QoS 1 publish, waiting for room in the request channel.
    pub(crate) async fn publish(
        &self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), Gone> {
        let sent = match self {
            Self::V311(c) => c
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .is_ok(),
            Self::V5(c) => c
                .publish(topic, v5_qos(QoS::AtLeastOnce), retain, payload)
                .await
                .is_ok(),
        };
        sent.then_some(()).ok_or(Gone)
    }

    /// Queues a QoS 1 publish if there is room.
    pub(crate) fn try_publish(&self, topic: &str, retain: bool, payload: &str) {
        let _ = match self {
            Self::V311(c) => c
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .is_ok(),
            Self::V5(c) => c
                .try_publish(topic, v5_qos(QoS::AtLeastOnce), retain, payload.to_owned())
                .is_ok(),
        };
    }

    /// Queues the acknowledgement of a QoS 1 message.
    pub(crate) async fn ack(&self, received: &Received) -> Result<(), Gone> {
        let queued = match self {
            Self::V311(c) => {
                let mut publish = rumqttc::Publish::new("", QoS::AtLeastOnce, Vec::new());
                publish.pkid = received.pkid;
                c.ack(&publish).await.is_ok()
            }
            Self::V5(c) => {
                let mut publish =
                    packets5::Publish::new("", v5_qos(QoS::AtLeastOnce), Vec::new(), None);
                publish.pkid = received.pkid;
                c.ack(&publish).await.is_ok()
            }
        };
        queued.then_some(()).ok_or(Gone)
    }

    pub(crate) fn try_disconnect(&self) {
        let _ = match self {
            Self::V311(c) => c.try_disconnect().is_ok(),
            Self::V5(c) => c.try_disconnect().is_ok(),
        };
    }
}

/// The connection itself; only the connection loop polls it.
#[allow(
    clippy::large_enum_variant,
    reason = "one per connection, made once and never moved while it runs"
)]
pub(crate) enum WireLoop {
    V311(rumqttc::EventLoop),
    V5(v5::EventLoop),
}

impl WireLoop {
    /// One step of the connection: connects when needed, sends queued requests, reads.
    pub(crate) async fn poll(&mut self, packet_limit: usize) -> Result<Polled, Failure> {
        match self {
            Self::V311(eventloop) => {
                use rumqttc::{Event, Outgoing, Packet, SubscribeReasonCode};
                let event = eventloop
                    .poll()
                    .await
                    .map_err(|e| Failure::of(&e, packet_limit))?;
                Ok(match event {
                    Event::Incoming(Packet::ConnAck(connack)) => Polled::ConnAck {
                        session_present: connack.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Polled::Publish(Received {
                        at_most_once: p.qos == QoS::AtMostOnce,
                        retain: p.retain,
                        pkid: p.pkid,
                        topic: p.topic,
                        payload: p.payload,
                        user_properties: Vec::new(),
                        expires_in: None,
                    }),
                    Event::Incoming(Packet::SubAck(suback)) => Polled::SubAck {
                        refused: indexes_where(&suback.return_codes, |code| {
                            *code == SubscribeReasonCode::Failure
                        }),
                    },
                    Event::Outgoing(Outgoing::PubAck(_)) => Polled::PubAckSent,
                    Event::Outgoing(Outgoing::Disconnect) => Polled::DisconnectSent,
                    _ => Polled::Other,
                })
            }
            Self::V5(eventloop) => {
                use packets5::{Packet, SubscribeReasonCode};
                use rumqttc::Outgoing;
                let event = eventloop
                    .poll()
                    .await
                    .map_err(|e| Failure::of_v5(&e, packet_limit))?;
                Ok(match event {
                    v5::Event::Incoming(Packet::ConnAck(connack)) => Polled::ConnAck {
                        session_present: connack.session_present,
                    },
                    v5::Event::Incoming(Packet::Publish(p)) => {
                        let properties = p.properties.unwrap_or_default();
                        Polled::Publish(Received {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload,
                            at_most_once: p.qos == v5_qos(QoS::AtMostOnce),
                            retain: p.retain,
                            pkid: p.pkid,
                            user_properties: properties.user_properties,
                            expires_in: properties.message_expiry_interval,
                        })
                    }
                    v5::Event::Incoming(Packet::SubAck(suback)) => Polled::SubAck {
                        refused: indexes_where(&suback.return_codes, |code| {
                            !matches!(code, SubscribeReasonCode::Success(_))
                        }),
                    },
                    v5::Event::Outgoing(Outgoing::PubAck(_)) => Polled::PubAckSent,
                    v5::Event::Outgoing(Outgoing::Disconnect) => Polled::DisconnectSent,
                    _ => Polled::Other,
                })
            }
        }
    }

    /// Puts a SUBSCRIBE to `filters` at the head of the queue of what is sent next (the event
    /// loop's own queue, not the bounded request channel: the connection loop never waits on
    /// itself).
    pub(crate) fn queue_subscribe(&mut self, filters: &[Filter]) {
        match self {
            Self::V311(eventloop) => {
                let request = rumqttc::Subscribe::new_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.path.clone(), f.qos)),
                );
                eventloop
                    .pending
                    .push_back(rumqttc::Request::Subscribe(request));
            }
            Self::V5(eventloop) => {
                let request = packets5::Subscribe::new_many(
                    filters
                        .iter()
                        .map(|f| packets5::Filter::new(f.path.clone(), v5_qos(f.qos))),
                    None,
                );
                eventloop.pending.push_back(v5::Request::Subscribe(request));
            }
        }
    }

    /// Puts a retained QoS 1 PUBLISH in the same queue.
    pub(crate) fn queue_retained(&mut self, topic: &str, payload: &str) {
        match self {
            Self::V311(eventloop) => {
                let mut publish = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload);
                publish.retain = true;
                eventloop
                    .pending
                    .push_back(rumqttc::Request::Publish(publish));
            }
            Self::V5(eventloop) => {
                let mut publish = packets5::Publish::new(
                    topic,
                    v5_qos(QoS::AtLeastOnce),
                    payload.as_bytes().to_vec(),
                    None,
                );
                publish.retain = true;
                eventloop.pending.push_back(v5::Request::Publish(publish));
            }
        }
    }
}

/// MQTT 5's QoS of a QoS.
pub(crate) fn v5_qos(qos: QoS) -> v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn indexes_where<T>(items: &[T], pick: impl Fn(&T) -> bool) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| pick(item))
        .map(|(i, _)| i)
        .collect()
}
