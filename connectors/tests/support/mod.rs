//! Test support for the MQTT connector: a plain rumqttc client to publish and watch with, a
//! bus with one consumer, the connector's metrics read back from the registry; and, from the
//! test kit, a real mosquitto ([`Mosquitto`]), certificates and captured log lines.

#![allow(dead_code, reason = "each test uses a different part of the support")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atalaya_bus::bus::{BusBuilder, Consumer, Publisher, Received};
use atalaya_bus::connector_metrics::{ConnectorCounters, ConnectorMetrics};
use atalaya_connectors::mqtt::ERROR_STAGES;
use prometheus::Registry;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use atalaya_test_kit::metrics::sample;
pub use atalaya_test_kit::mosquitto::{Mosquitto, ServerTls, mosquitto_pub};
pub use atalaya_test_kit::{CapturedLogs, make_certs};

/// How long a test waits for anything before it fails; generous for a loaded machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// Installs the process's rustls crypto provider, as the binary does at start.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain rumqttc client on the broker's plain listener: publishes (waiting for the
/// broker's acknowledgement) and collects what its subscriptions receive.
pub struct TestClient {
    client: AsyncClient,
    /// SUBACKs and PUBACKs, in order.
    acks: mpsc::UnboundedReceiver<Packet>,
    pub messages: mpsc::UnboundedReceiver<Publish>,
    poll: JoinHandle<()>,
}

impl TestClient {
    pub async fn connect(port: u16, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let (connected_tx, mut connected) = mpsc::unbounded_channel();
        let poll = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = messages_tx.send(p);
                    }
                    Ok(Event::Incoming(ack @ (Packet::SubAck(_) | Packet::PubAck(_)))) => {
                        let _ = acks_tx.send(ack);
                    }
                    Ok(_) => {}
                    // The broker is down (a test restarts it): retry shortly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, connected.recv())
            .await
            .expect("the test client connects");
        Self {
            client,
            acks,
            messages,
            poll,
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("queue subscribe");
        let ack = tokio::time::timeout(WAIT, self.acks.recv()).await;
        assert!(
            matches!(ack, Ok(Some(Packet::SubAck(_)))),
            "no SUBACK: {ack:?}"
        );
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("queue publish");
        let ack = tokio::time::timeout(WAIT, self.acks.recv()).await;
        assert!(
            matches!(ack, Ok(Some(Packet::PubAck(_)))),
            "no PUBACK: {ack:?}"
        );
    }

    /// The next message its subscriptions received.
    pub async fn next_message(&mut self) -> Publish {
        tokio::time::timeout(WAIT, self.messages.recv())
            .await
            .expect("a message in time")
            .expect("the client is running")
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.poll.abort();
    }
}

/// A bus with one consumer, and the connector metrics in their own registry.
pub struct TestBus {
    pub registry: Registry,
    /// Taken by tests that consume in a task of their own.
    consumer: Option<Consumer>,
    pub publisher: Publisher,
    metrics: ConnectorMetrics,
}

impl TestBus {
    pub fn new() -> Self {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(1024, &registry).expect("bus metrics");
        let consumer = builder.consumer("test");
        let publisher = builder.build();
        let metrics = ConnectorMetrics::register(&registry).expect("connector metrics");
        Self {
            registry,
            consumer: Some(consumer),
            publisher,
            metrics,
        }
    }

    pub fn take_consumer(&mut self) -> Consumer {
        self.consumer.take().expect("the consumer is still here")
    }

    pub fn counters(&self) -> ConnectorCounters {
        self.metrics.connection("mqtt", ERROR_STAGES)
    }

    /// `atalaya_connector_errors_total{connector="mqtt", stage}`.
    pub fn errors(&self, stage: &str) -> u64 {
        self.registry
            .gather()
            .iter()
            .find(|family| family.name() == "atalaya_connector_errors_total")
            .and_then(|family| {
                family.get_metric().iter().find(|m| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == "stage" && l.value() == stage)
                })
            })
            .map(|m| m.get_counter().get_value() as u64)
            .unwrap_or(0)
    }

    /// The next event on the bus.
    pub async fn next(&mut self) -> Received {
        let consumer = self.consumer.as_mut().expect("the consumer is still here");
        tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("an event in time")
            .expect("the bus is open")
    }
}

/// Waits (polling: the connector reacts to an outside broker) until `condition` holds.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many times each number arrived.
pub type Seen = Arc<Mutex<BTreeMap<u64, u32>>>;

/// Consumes in a task: counts every number event, holding the events (so their messages stay
/// unacknowledged) while `hold` is true.
pub fn record_numbers(mut consumer: Consumer, hold: watch::Receiver<bool>) -> Seen {
    let seen = Seen::default();
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut hold = hold;
        let mut held: Vec<Received> = Vec::new();
        loop {
            tokio::select! {
                event = consumer.recv() => {
                    let Some(event) = event else { return };
                    if let Some(n) = event.data.as_u64() {
                        *recorded.lock().unwrap().entry(n).or_default() += 1;
                    }
                    if *hold.borrow() {
                        held.push(event);
                    }
                }
                changed = hold.changed() => {
                    if changed.is_err() || !*hold.borrow() {
                        held.clear();
                    }
                }
            }
        }
    });
    seen
}

/// Publishes `0..n` to `count/N` from a thread, each on a fresh `mosquitto_pub` connection,
/// counting attempts. At `pause_at` it tells the test (`paused`) and waits for `resume`. At QoS
/// 1 a publish is repeated until the broker acknowledges it; at QoS 0 a failure is a loss.
pub fn publish_numbers(
    port: u16,
    n: u64,
    qos: u8,
    pause_at: u64,
    paused: tokio::sync::oneshot::Sender<()>,
    resume: std::sync::mpsc::Receiver<()>,
    attempts: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut paused = Some(paused);
        for i in 0..n {
            if i == pause_at {
                if qos > 0 {
                    // One more acknowledged publish on a new connection: the broker has
                    // saved everything before it (autosave runs between its loop turns).
                    assert!(mosquitto_pub(port, "probe", "x", 1));
                }
                if let Some(paused) = paused.take() {
                    let _ = paused.send(());
                }
                let _ = resume.recv();
            }
            let sent = mosquitto_pub(port, &format!("count/{i}"), &i.to_string(), qos);
            attempts.fetch_add(1, Ordering::SeqCst);
            if qos > 0 && !sent {
                let deadline = std::time::Instant::now() + WAIT;
                while !mosquitto_pub(port, &format!("count/{i}"), &i.to_string(), qos) {
                    assert!(std::time::Instant::now() < deadline, "broker not back");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    })
}

pub async fn join(thread: std::thread::JoinHandle<()>) {
    tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || thread.join()))
        .await
        .expect("the publisher finishes in time")
        .expect("join")
        .expect("the publisher does not panic");
}
