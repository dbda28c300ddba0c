//! End-to-end tests of the MQTT connector against a real mosquitto (2.0) on loopback: messages
//! into events, the publisher, availability, TLS, credentials, a broker killed mid-stream (QoS
//! 1: nothing lost; QoS 0: losses counted), and at-least-once across a connector restart.

#![cfg(feature = "mqtt")]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use atalaya_bus::Pattern;
use atalaya_bus::readiness::{Readiness, ReadyHandle};
use atalaya_bus::secret::Secret;
use atalaya_connectors::mqtt::config::{MqttConfig, MqttSubscription};
use atalaya_connectors::mqtt::{EVENT_TYPE, MqttConnector, MqttError, MqttPublisher};
use atalaya_connectors::tls::TlsConfig;
use rumqttc::QoS;
use serde_json::json;
use support::{
    CapturedLogs, Mosquitto, ServerTls, TestBus, TestClient, WAIT, eventually, join, make_certs,
    mosquitto_pub, publish_numbers, record_numbers,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A config for the broker on `port`, reconnecting quickly, with `subscriptions`.
fn config(port: u16, client_id: &str, subscriptions: &[(&str, u8)]) -> MqttConfig {
    support::install_crypto_provider();
    let mut config = MqttConfig::new("127.0.0.1");
    config.port = port;
    client_id.clone_into(&mut config.client_id);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    config.subscriptions = subscriptions
        .iter()
        .map(|(pattern, qos)| MqttSubscription {
            pattern: Pattern::parse(pattern).expect("a valid pattern"),
            qos: *qos,
        })
        .collect();
    config
}

/// A connector running in a task.
struct Running {
    task: JoinHandle<Result<(), MqttError>>,
    shutdown: CancellationToken,
    publisher: MqttPublisher,
}

fn start(config: MqttConfig, bus: &TestBus, ready: Option<ReadyHandle>) -> Running {
    let (connector, publisher) =
        MqttConnector::new(config, bus.publisher.clone(), bus.counters(), ready)
            .expect("a valid config");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(connector.run(shutdown.clone()));
    Running {
        task,
        shutdown,
        publisher,
    }
}

impl Running {
    /// Graceful shutdown; returns what `run` returned.
    async fn stop(self) -> Result<(), MqttError> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the connector stops in time")
            .expect("the connector task does not panic")
    }

    /// Drops the connector mid-flight, as a crash would: no acknowledgement, no DISCONNECT.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn connected(bus: &TestBus) {
    let counters = bus.counters();
    eventually("the connector connects", || counters.is_connected()).await;
}

#[tokio::test]
async fn messages_become_events_with_labels_and_bad_ones_are_counted_skipped_and_acked() {
    let logs = CapturedLogs::default();
    let _logs = logs.install();
    let broker = Mosquitto::started().await;
    let mut client = TestClient::connect(broker.port, "devices").await;
    client.publish("sensors/old/state", "12", true).await;
    let mut bus = TestBus::new();
    let subscriptions = [("sensors/+device/state", 1), ("text/#", 1), ("gt/>", 1)];
    let mut config = config(broker.port, "decode", &subscriptions);
    config.max_payload_bytes = 1024;
    let running = start(config.clone(), &bus, None);

    // The retained message arrives first: the subscriptions are in place.
    let retained = bus.next().await;
    assert_eq!(retained.subject.as_str(), "sensors/old/state");
    assert_eq!(retained.data, json!(12));
    assert_eq!(&retained.labels["device"], "old");
    assert_eq!(&retained.labels["mqtt_retained"], "true");
    assert_eq!(retained.event_type, EVENT_TYPE);
    assert_eq!(retained.source, format!("mqtt://127.0.0.1:{}", broker.port));
    drop(retained);

    let messages: [(&str, Vec<u8>); 10] = [
        ("sensors/esp1/state", br#"{"temperature": 21.5}"#.to_vec()),
        ("sensors/esp2/state", b"21.5".to_vec()),
        ("sensors/plug/state", b"ON".to_vec()),
        ("text/status", b"idle".to_vec()),
        ("text/bin", vec![0xff, 0xfe]),
        ("text/big", vec![b'1'; 2000]),
        ("text//empty", b"1".to_vec()),
        ("gt", b"1".to_vec()),
        ("gt/x", b"2".to_vec()),
        ("text/after", b"still here".to_vec()),
    ];
    for (topic, payload) in messages {
        client.publish(topic, payload, false).await;
    }
    let mut got = Vec::new();
    loop {
        let event = bus.next().await;
        assert!(!event.labels.contains_key("mqtt_retained"), "{event:?}");
        got.push((
            event.subject.to_string(),
            event.data.clone(),
            event.labels.get("device").map(str::to_owned),
        ));
        if event.subject.as_str() == "text/after" {
            break;
        }
    }
    let device = |d: &str| Some(d.to_owned());
    assert_eq!(
        got,
        [
            (
                "sensors/esp1/state".to_owned(),
                json!({"temperature": 21.5}),
                device("esp1")
            ),
            ("sensors/esp2/state".to_owned(), json!(21.5), device("esp2")),
            ("sensors/plug/state".to_owned(), json!(true), device("plug")),
            ("text/status".to_owned(), json!("idle"), None),
            ("gt/x".to_owned(), json!(2), None),
            ("text/after".to_owned(), json!("still here"), None),
        ]
    );
    let counters = bus.counters();
    assert_eq!(counters.received.get(), 7);
    assert_eq!((bus.errors("decode"), bus.errors("size")), (2, 1));
    // Logged once a minute per kind: the second decode error is counted, not logged.
    assert_eq!(
        logs.lines_with(&["Skipped an MQTT message", "text/bin"])
            .len(),
        1
    );
    assert_eq!(
        logs.lines_with(&["text/big", "larger than the limit"])
            .len(),
        1
    );
    assert!(
        logs.lines_with(&["text//empty"]).is_empty(),
        "{}",
        logs.text()
    );
    running.stop().await.expect("a clean stop");

    // Everything was acknowledged, the skipped messages too: the next instance of the same
    // session gets only the retained replay of its subscription, then news.
    let running = start(config, &bus, None);
    let replay = bus.next().await;
    assert_eq!(replay.labels.get("mqtt_retained"), Some("true"));
    drop(replay);
    client.publish("text/marker", "m", false).await;
    assert_eq!(bus.next().await.subject.as_str(), "text/marker");
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_publisher_reaches_subscribers_and_retains_when_asked() {
    let broker = Mosquitto::started().await;
    let mut watcher = TestClient::connect(broker.port, "watcher").await;
    watcher.subscribe("out/#", QoS::AtLeastOnce).await;
    let bus = TestBus::new();
    let running = start(config(broker.port, "publisher", &[]), &bus, None);
    connected(&bus).await;
    let publisher = running.publisher.clone();

    publisher
        .publish("out/lamp", b"on".to_vec(), false)
        .await
        .expect("published");
    let message = watcher.next_message().await;
    assert_eq!(
        (message.topic.as_str(), &message.payload[..]),
        ("out/lamp", &b"on"[..])
    );
    assert_eq!(message.qos, QoS::AtLeastOnce);
    publisher
        .publish("out/mode", b"away".to_vec(), true)
        .await
        .expect("published");
    assert_eq!(watcher.next_message().await.topic, "out/mode");
    let mut late = TestClient::connect(broker.port, "late").await;
    late.subscribe("out/mode", QoS::AtLeastOnce).await;
    let retained = late.next_message().await;
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], b"away");

    let invalid = publisher.publish("out/+", b"x".to_vec(), false).await;
    assert!(
        matches!(invalid, Err(MqttError::InvalidSubject { .. })),
        "{invalid:?}"
    );
    let large = publisher
        .publish("out/big", vec![0; 300 * 1024], false)
        .await;
    assert!(
        matches!(large, Err(MqttError::PayloadTooLarge { .. })),
        "{large:?}"
    );
    let counters = bus.counters();
    assert_eq!((counters.sent.get(), bus.errors("publish")), (2, 2));

    running.stop().await.expect("a clean stop");
    let stopped = publisher.publish("out/lamp", b"off".to_vec(), false).await;
    assert!(matches!(stopped, Err(MqttError::Stopped)), "{stopped:?}");
    assert_eq!(bus.errors("publish"), 3);
}

#[tokio::test]
async fn status_is_online_while_connected_and_offline_after_a_crash_or_a_shutdown() {
    let broker = Mosquitto::started().await;
    let mut watcher = TestClient::connect(broker.port, "watcher").await;
    watcher.subscribe("atalaya/status", QoS::AtLeastOnce).await;
    let status = |m: rumqttc::Publish| String::from_utf8_lossy(&m.payload).into_owned();
    let bus = TestBus::new();
    let readiness = Readiness::new(&bus.registry).expect("readiness metrics");

    let running = start(config(broker.port, "avail", &[]), &bus, None);
    assert_eq!(status(watcher.next_message().await), "online");
    let mut late = TestClient::connect(broker.port, "late").await;
    late.subscribe("atalaya/status", QoS::AtLeastOnce).await;
    let retained = late.next_message().await;
    assert!(retained.retain);
    assert_eq!(status(retained), "online");
    // The TCP connection dies without a DISCONNECT: the broker publishes the last will.
    running.kill().await;
    assert_eq!(status(watcher.next_message().await), "offline");

    let running = start(
        config(broker.port, "avail", &[]),
        &bus,
        Some(readiness.register("mqtt")),
    );
    assert_eq!(status(watcher.next_message().await), "online");
    assert!(readiness.report().ready);
    running.stop().await.expect("a clean stop");
    assert_eq!(status(watcher.next_message().await), "offline");
    assert!(!readiness.report().ready);
    let mut later = TestClient::connect(broker.port, "later").await;
    later.subscribe("atalaya/status", QoS::AtLeastOnce).await;
    assert_eq!(status(later.next_message().await), "offline");
}

#[tokio::test]
async fn tls_with_a_test_ca_connects_and_a_wrong_ca_is_refused_clearly_and_retried() {
    let logs = CapturedLogs::default();
    let _logs = logs.install();
    let mut broker = Mosquitto::new();
    let certs = make_certs(broker.dir());
    broker.tls = Some(ServerTls {
        ca: certs.ca.clone(),
        cert: certs.server_cert.clone(),
        key: certs.server_key.clone(),
        require_client_cert: true,
    });
    broker.start().await;
    let tls = TlsConfig {
        ca_file: Some(certs.ca.clone()),
        cert_file: Some(certs.client_cert.clone()),
        key_file: Some(certs.client_key.clone()),
    };

    let mut bus = TestBus::new();
    let mut good = config(broker.tls_port, "tls", &[("tls/#", 1)]);
    good.tls = Some(tls.clone());
    let running = start(good, &bus, None);
    connected(&bus).await;
    let mut client = TestClient::connect(broker.port, "devices").await;
    client.publish("tls/hello", "1", false).await;
    assert_eq!(bus.next().await.subject.as_str(), "tls/hello");

    let wrong_bus = TestBus::new();
    let mut wrong = config(broker.tls_port, "tls-wrong-ca", &[("tls/#", 1)]);
    wrong.tls = Some(TlsConfig {
        ca_file: Some(certs.other_ca.clone()),
        ..tls
    });
    let wrong_running = start(wrong, &wrong_bus, None);
    eventually("failed attempts are counted and retried", || {
        wrong_bus.errors("connect") >= 3
    })
    .await;
    assert!(!wrong_bus.counters().is_connected());
    let broker_uri = format!("mqtt://127.0.0.1:{}", broker.tls_port);
    let lines = logs.lines_with(&["Cannot connect to the MQTT broker", &broker_uri]);
    assert_eq!(lines.len(), 1, "one line per outage:\n{}", logs.text());
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(lines[0].contains("TLS handshake failed"), "{}", lines[0]);
    assert!(lines[0].contains("UnknownIssuer"), "{}", lines[0]);
    wrong_running.stop().await.expect("a clean stop");
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn wrong_credentials_are_refused_clearly_retried_and_fixed_by_a_broker_restart() {
    let logs = CapturedLogs::default();
    let _logs = logs.install();
    let mut broker = Mosquitto::new();
    broker.set_password("atalaya", "the-right-one");
    broker.start().await;
    let bus = TestBus::new();
    let readiness = Readiness::new(&bus.registry).expect("readiness metrics");
    let mut config = config(broker.port, "auth", &[]);
    config.required_for_ready = true;
    config.username = Some("atalaya".to_owned());
    config.password = Some(Secret::new("not-the-secret".to_owned()));
    let running = start(config, &bus, Some(readiness.register("mqtt")));

    eventually("refusals are counted and retried", || {
        bus.errors("connect") >= 3
    })
    .await;
    assert!(!bus.counters().is_connected());
    assert!(!readiness.report().ready);
    let broker_uri = format!("mqtt://127.0.0.1:{}", broker.port);
    let lines = logs.lines_with(&["Cannot connect to the MQTT broker", &broker_uri]);
    assert_eq!(lines.len(), 1, "one line per outage:\n{}", logs.text());
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(
        lines[0].contains("username or password") || lines[0].contains("not authorized"),
        "{}",
        lines[0]
    );

    // The admin fixes the password file and restarts the broker; the connector comes in.
    broker.set_password("atalaya", "not-the-secret");
    broker.restart().await;
    connected(&bus).await;
    assert!(readiness.report().ready);
    assert_eq!(
        logs.lines_with(&["Connected to the MQTT broker again"])
            .len(),
        1
    );
    running.stop().await.expect("a clean stop");
    assert!(!logs.text().contains("not-the-secret"), "{}", logs.text());
}

#[tokio::test]
async fn qos1_messages_all_arrive_across_a_broker_crash_and_restart() {
    const N: u64 = 60;
    let mut broker = Mosquitto::started().await;
    let mut bus = TestBus::new();
    let running = start(
        config(broker.port, "crash-qos1", &[("count/+n", 1)]),
        &bus,
        None,
    );
    connected(&bus).await;
    let (hold_tx, hold) = watch::channel(true);
    let seen = record_numbers(bus.take_consumer(), hold);
    let (paused_tx, paused) = tokio::sync::oneshot::channel();
    let (resume, resume_rx) = std::sync::mpsc::channel();
    let attempts = Arc::default();
    let publisher = publish_numbers(broker.port, N, 1, N / 2, paused_tx, resume_rx, attempts);

    tokio::time::timeout(WAIT, paused)
        .await
        .expect("halfway")
        .expect("halfway");
    // The consumer holds what it got: those messages are unacknowledged at the crash.
    eventually("events in flight", || !seen.lock().unwrap().is_empty()).await;
    let held: Vec<u64> = seen.lock().unwrap().keys().copied().collect();
    broker.kill();
    broker.start().await;
    resume.send(()).expect("the publisher waits");
    join(publisher).await;
    hold_tx.send(false).expect("the consumer runs");
    eventually("every number arrives, and the held ones again", || {
        let seen = seen.lock().unwrap();
        seen.len() == N as usize && held.iter().all(|n| seen[n] >= 2)
    })
    .await;
    let seen: BTreeSet<u64> = seen.lock().unwrap().keys().copied().collect();
    assert_eq!(seen, (0..N).collect());
    assert!(bus.counters().reconnects.get() >= 1);
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn qos0_losses_across_a_broker_crash_are_counted() {
    const N: u64 = 60;
    let mut broker = Mosquitto::started().await;
    let mut bus = TestBus::new();
    let running = start(
        config(broker.port, "crash-qos0", &[("count/+n", 0)]),
        &bus,
        None,
    );
    connected(&bus).await;
    let (_hold_tx, hold) = watch::channel(false);
    let seen = record_numbers(bus.take_consumer(), hold);
    let (paused_tx, paused) = tokio::sync::oneshot::channel();
    let (resume, resume_rx) = std::sync::mpsc::channel();
    let attempts = Arc::new(AtomicU64::new(0));
    let publisher = publish_numbers(
        broker.port,
        N,
        0,
        N / 2,
        paused_tx,
        resume_rx,
        Arc::clone(&attempts),
    );

    tokio::time::timeout(WAIT, paused)
        .await
        .expect("halfway")
        .expect("halfway");
    broker.kill();
    resume.send(()).expect("the publisher waits");
    // Five publishes while the broker is down: lost at the source.
    eventually("publishes during the outage", || {
        attempts.load(Ordering::SeqCst) >= N / 2 + 5
    })
    .await;
    broker.start().await;
    join(publisher).await;
    connected(&bus).await;
    // A last number, sent until it arrives, marks the end of the stream.
    let end = N + 1000;
    let port = broker.port;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.lock().unwrap().contains_key(&end) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never resumed"
        );
        let send = move || mosquitto_pub(port, "count/end", &end.to_string(), 0);
        tokio::task::spawn_blocking(send).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: BTreeSet<u64> = seen.lock().unwrap().keys().copied().collect();
    let arrived = seen.iter().filter(|n| **n < N).count() as u64;
    let losses = N - arrived;
    println!("QoS 0 across a broker crash: {losses} of {N} messages lost");
    assert!(seen.iter().all(|n| *n < N || *n == end), "{seen:?}");
    assert!(
        losses > 0,
        "a broker crash with QoS 0 loses what was sent meanwhile"
    );
    running.stop().await.expect("a clean stop");
}

/// Backpressure: a QoS 0 burst far larger than every queue on atalaya's side, sent while
/// nothing consumes the bus, arrives whole once the consumer moves again: the connector stops
/// reading from the socket instead of dropping (it used to drop all but ~1 100 of them).
#[tokio::test]
async fn a_qos0_burst_while_the_bus_is_stalled_arrives_whole() {
    const N: u64 = 20_000;
    let broker = Mosquitto::started().await;
    let mut bus = TestBus::new();
    let running = start(
        config(broker.port, "burst-qos0", &[("burst", 0)]),
        &bus,
        None,
    );
    connected(&bus).await;
    let mut consumer = bus.take_consumer();

    // The whole burst, as fast as mosquitto_pub writes it, while nothing consumes.
    let port = broker.port;
    let publisher = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "0",
                "-t",
                "burst",
                "-l",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_pub runs");
        let lines: String = (0..N).map(|n| format!("{n}\n")).collect();
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), lines.as_bytes())
            .expect("write the burst");
        assert!(child.wait().expect("mosquitto_pub ends").success());
    });
    publisher.await.expect("the burst is sent");
    let depth = || support::sample(&bus.registry, "atalaya_bus_queue_depth", &[]);
    eventually("the bus queue fills", || depth() >= 1024.0).await;

    let mut seen = BTreeSet::new();
    while (seen.len() as u64) < N {
        let event = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {N} arrived, then nothing", seen.len()))
            .expect("the bus is open");
        seen.insert(event.data.as_u64().expect("a number"));
    }
    assert_eq!(seen.len() as u64, N);
    let counters = bus.counters();
    assert_eq!(
        support::sample(
            &bus.registry,
            "atalaya_connector_errors_total",
            &[("connector", "mqtt"), ("stage", "overflow")]
        ),
        0.0
    );
    assert!(counters.paused.get() > 0.0, "the connector paused reading");
    running.stop().await.expect("a clean stop");
}

/// Backpressure with QoS 1: while the consumer holds its events (as the rules runner does
/// until its group commit), the connector pauses reading; acknowledgements queued meanwhile
/// must not need the paused connection to make room (they once did: the stream then crawled
/// at one message a second).
#[tokio::test]
async fn a_qos1_stream_with_a_slow_consumer_never_stalls_on_its_own_acknowledgements() {
    const N: u64 = 3_000;
    let mut broker = Mosquitto::new();
    // The broker keeps the whole backlog for the session and sends up to 1 000 at once.
    broker.settings = vec![
        "max_queued_messages 0".to_owned(),
        "max_inflight_messages 1000".to_owned(),
    ];
    broker.start().await;
    let mut bus = TestBus::new();
    let mut config = config(broker.port, "slow-qos1", &[("slow/+n", 1)]);
    config.max_inflight = 16;
    let running = start(config, &bus, None);
    connected(&bus).await;
    let mut consumer = bus.take_consumer();
    // The backlog is published while nothing consumes: the bus fills, the connector pauses.
    let mut client = TestClient::connect(broker.port, "slow-publisher").await;
    for n in 0..N {
        client
            .publish(&format!("slow/{n}"), n.to_string(), false)
            .await;
    }
    let mut seen = BTreeSet::new();
    let taken = async {
        while (seen.len() as u64) < N {
            // A slow consumer: it holds what it took for a moment, then lets it all go.
            let first = consumer.recv().await.expect("the bus is open");
            let mut batch = vec![first];
            while let Some(event) = consumer.try_recv() {
                batch.push(event);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            for event in batch {
                seen.insert(event.data.as_u64().expect("a number"));
            }
        }
    };
    if tokio::time::timeout(WAIT, taken).await.is_err() {
        panic!("the stream stalled after {} of {N}", seen.len());
    }
    assert_eq!(seen.len() as u64, N);
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn unreleased_events_are_redelivered_to_the_next_instance_and_released_ones_are_not() {
    let broker = Mosquitto::started().await;
    let mut client = TestClient::connect(broker.port, "devices").await;
    let subscriptions = [("alo/+n", 1)];

    // A consumer that never finishes with its events (it holds every `Received`).
    let mut first_bus = TestBus::new();
    let first = start(config(broker.port, "alo", &subscriptions), &first_bus, None);
    connected(&first_bus).await;
    for n in 0..5 {
        client
            .publish(&format!("alo/{n}"), n.to_string(), false)
            .await;
    }
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(first_bus.next().await);
    }
    // atalaya dies before the events are done: nothing was acknowledged.
    first.kill().await;

    let mut second_bus = TestBus::new();
    let second = start(
        config(broker.port, "alo", &subscriptions),
        &second_bus,
        None,
    );
    let mut redelivered = Vec::new();
    for _ in 0..5 {
        let event = second_bus.next().await;
        redelivered.push(event.data.as_u64().expect("a number"));
    }
    redelivered.sort_unstable();
    assert_eq!(redelivered, [0, 1, 2, 3, 4]);
    // Released (dropped) above; a graceful stop sends their PUBACKs before disconnecting.
    second.stop().await.expect("a clean stop");
    drop(held);

    let mut third_bus = TestBus::new();
    let third = start(config(broker.port, "alo", &subscriptions), &third_bus, None);
    connected(&third_bus).await;
    client.publish("alo/marker", "m", false).await;
    assert_eq!(third_bus.next().await.subject.as_str(), "alo/marker");
    third.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn acknowledgements_keep_arrival_order_and_shutdown_does_not_wait_forever() {
    let broker = Mosquitto::started().await;
    let mut client = TestClient::connect(broker.port, "devices").await;
    let subscriptions = [("order/+n", 1)];
    let mut bus = TestBus::new();
    let running = start(config(broker.port, "order", &subscriptions), &bus, None);
    connected(&bus).await;
    for n in 0..3 {
        client
            .publish(&format!("order/{n}"), n.to_string(), false)
            .await;
    }
    let first = bus.next().await;
    // The later events are done first; their PUBACKs must still wait for the first's.
    drop(bus.next().await);
    drop(bus.next().await);
    // The first is never done: shutdown gives up after its grace, acknowledging nothing.
    running.stop().await.expect("a clean stop");
    drop(first);

    let mut next_bus = TestBus::new();
    let next = start(
        config(broker.port, "order", &subscriptions),
        &next_bus,
        None,
    );
    let mut redelivered = Vec::new();
    for _ in 0..3 {
        redelivered.push(next_bus.next().await.data.as_u64().expect("a number"));
    }
    assert_eq!(redelivered, [0, 1, 2]);
    next.stop().await.expect("a clean stop");
}
