//! End-to-end tests of the NATS connector against a real nats-server (v2.9) on loopback:
//! core subscriptions, JetStream consumers (acks only after the bus is done, redelivery, a
//! server killed mid-stream), the publisher, auth and TLS.

#![cfg(feature = "nats")]

#[path = "nats_support/mod.rs"]
mod nats_support;

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream;
use atalaya_bus::readiness::Readiness;
use atalaya_bus::secret::Secret;
use atalaya_connectors::nats::{
    EVENT_TYPE, JetStreamConsumer, NatsAuth, NatsConfig, NatsConnector, NatsError,
};
use atalaya_connectors::tls::TlsConfig;
use nats_support::jetstream::{
    consumer_info, jetstream_config, publish_numbers, stream, take_numbers, wait_for_consumer,
};
use nats_support::{
    CapturedLogs, NatsServer, Running, TestBus, WAIT, client, make_certs, subscription,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn core_messages_become_events_and_bad_ones_are_counted_and_skipped() {
    let server = NatsServer::started().await;
    let mut bus = TestBus::new(64);
    let mut config = NatsConfig::new(server.url());
    config.max_payload_bytes = 64;
    config.subscriptions = vec![
        subscription("sensors/+room/state", None),
        subscription("alarm/#", None),
    ];
    let running = Running::start(config, &bus, "nats").await;
    let nc = client(&server.url()).await;
    bus.until_subscribed(&nc, "sensors.warmup.state").await;
    bus.until_subscribed(&nc, "alarm.warmup").await;
    let received_before = bus.metric("atalaya_connector_received_total", &[("connector", "nats")]);

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Device", "esp-1");
    nc.publish_with_headers("sensors.kitchen.state", headers, r#"{"t": 21.5}"#.into())
        .await
        .unwrap();
    nc.publish("sensors.hall.state", "21.5".into())
        .await
        .unwrap();
    nc.publish("sensors.a/b.state", "1".into()).await.unwrap(); // not a subject
    nc.publish("sensors.hall.state", vec![0xff, 0xfe].into())
        .await
        .unwrap(); // not text
    nc.publish("sensors.hall.state", vec![b'1'; 100].into())
        .await
        .unwrap(); // too large
    nc.publish("sensors.cellar.state", "online".into())
        .await
        .unwrap();
    nc.publish("alarm", "ON".into()).await.unwrap(); // `#` matches zero tokens too
    nc.publish("alarm.door.front", "OFF".into()).await.unwrap();
    nc.flush().await.unwrap();

    let json_event = bus.next().await;
    assert_eq!(json_event.subject.as_str(), "sensors/kitchen/state");
    assert_eq!(json_event.data, json!({"t": 21.5}));
    assert_eq!(&json_event.labels["room"], "kitchen");
    assert_eq!(&json_event.labels["header_x_device"], "esp-1");
    assert_eq!(json_event.event_type, EVENT_TYPE);
    assert_eq!(json_event.source, server.url());
    let number = bus.next().await;
    assert_eq!(
        (number.data.clone(), &number.labels["room"]),
        (json!(21.5), "hall")
    );
    let text = bus.next().await;
    assert_eq!(
        (text.data.clone(), &text.labels["room"]),
        (json!("online"), "cellar")
    );
    // Two subscriptions: the order between them is not defined.
    let mut alarms: Vec<(String, serde_json::Value)> = Vec::new();
    for _ in 0..2 {
        let event = bus.next().await;
        alarms.push((event.subject.to_string(), event.data.clone()));
    }
    alarms.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        alarms,
        [
            ("alarm".to_owned(), json!(true)),
            ("alarm/door/front".to_owned(), json!(false))
        ]
    );

    assert_eq!(bus.errors("nats", "decode"), 2.0);
    assert_eq!(bus.errors("nats", "size"), 1.0);
    assert_eq!(
        bus.metric("atalaya_connector_received_total", &[("connector", "nats")]) - received_before,
        5.0
    );
    assert_eq!(
        bus.metric("atalaya_connector_connected", &[("connector", "nats")]),
        1.0
    );
    running.stop().await;
}

/// A core burst sent while nothing consumes the bus: up to `max_pending` messages wait in the
/// client and all arrive once the bus moves; past it the client drops them, counted under
/// `overflow` (core NATS has no flow control; this is the documented bound).
#[tokio::test]
async fn a_core_burst_while_the_bus_is_stalled_arrives_whole_up_to_max_pending() {
    let server = NatsServer::started().await;
    let nc = client(&server.url()).await;
    for (max_pending, burst, whole) in [(30_000, 20_000, true), (500, 5_000, false)] {
        let mut bus = TestBus::new(64);
        let mut config = NatsConfig::new(server.url());
        config.max_pending = max_pending;
        config.subscriptions = vec![subscription("burst/+n", None)];
        let running = Running::start(config, &bus, "nats").await;
        bus.until_subscribed(&nc, "burst.warmup").await;
        for n in 0..burst {
            nc.publish(format!("burst.{n}"), n.to_string().into())
                .await
                .unwrap();
        }
        nc.flush().await.unwrap();
        // Everything is at the client or on its way: only now does the bus move. The bus is
        // behind once a publish had to wait (a batch may wait for room before the queue holds
        // all 64, when the messages trickled in as smaller batches first); past max_pending,
        // once the client has started dropping.
        if whole {
            bus.wait_for("a publish to wait for the stalled bus", |bus| {
                bus.metric("atalaya_bus_publish_waits_total", &[]) >= 1.0
            })
            .await;
        } else {
            bus.wait_for("drops past max_pending", |bus| {
                bus.errors("nats", "overflow") > 0.0
            })
            .await;
        }
        let mut seen = BTreeSet::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(2), bus.consumer.recv()).await {
                Ok(Some(event)) => {
                    seen.insert(event.data.as_u64().expect("a number"));
                }
                _ => break,
            }
            if seen.len() == burst {
                break;
            }
        }
        let dropped = bus.errors("nats", "overflow");
        if whole {
            assert_eq!(seen.len(), burst, "below max_pending nothing is lost");
            assert_eq!(dropped, 0.0);
        } else {
            assert!(seen.len() < burst);
            assert!(dropped > 0.0, "drops past max_pending are counted");
        }
        running.stop().await;
    }
}

#[tokio::test]
async fn a_queue_group_shares_the_messages() {
    let server = NatsServer::started().await;
    let mut bus = TestBus::new(256);
    let mut runners = Vec::new();
    for name in ["nats-a", "nats-b"] {
        let mut config = NatsConfig::new(server.url());
        config.subscriptions = vec![subscription("jobs/>", Some("atalaya"))];
        runners.push(Running::start(config, &bus, name).await);
    }
    let nc = client(&server.url()).await;
    // Both members subscribed: each has taken at least one warmup.
    let received = |bus: &TestBus, name: &str| {
        bus.metric("atalaya_connector_received_total", &[("connector", name)])
    };
    let warmed = async {
        while received(&bus, "nats-a") == 0.0 || received(&bus, "nats-b") == 0.0 {
            nc.publish("jobs.warmup", "warmup".into()).await.unwrap();
            nc.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            while bus.consumer.try_recv().is_some() {}
        }
    };
    tokio::time::timeout(WAIT, warmed)
        .await
        .expect("both members subscribe");
    tokio::time::sleep(Duration::from_millis(100)).await;
    while bus.consumer.try_recv().is_some() {}

    for n in 0..100 {
        nc.publish("jobs.done", n.to_string().into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let event = bus.next().await;
        if let Some(n) = event.data.as_u64() {
            seen.push(n);
        }
    }
    // Nothing more comes: each message went to one member only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Some(event) = bus.consumer.try_recv() {
        seen.extend(event.data.as_u64());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<u64>>());
    for running in runners {
        running.stop().await;
    }
}

#[tokio::test]
async fn jetstream_messages_are_acked_only_once_the_bus_is_done() {
    let server = NatsServer::started().await;
    let nc = client(&server.url()).await;
    let js = stream(&nc, "EVENTS", "events.>").await;
    publish_numbers(&js, "events.door.front", 0..5).await;
    let mut bus = TestBus::new(64);
    let config = jetstream_config(server.url(), "EVENTS", "atalaya", Duration::from_secs(30));
    let running = Running::start(config, &bus, "nats").await;

    let (numbers, held) = take_numbers(&mut bus, 5).await;
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
    assert_eq!(&held[0].labels["kind"], "door");
    assert_eq!(held[0].subject.as_str(), "events/door/front");
    // Held by a bus consumer: delivered, not acked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(consumer_info(&js, "EVENTS", "atalaya").await, (5, 0));
    drop(held);
    wait_for_consumer(&js, "EVENTS", "atalaya", (0, 0)).await;

    // Poison messages are counted, and acked so they do not come back.
    js.publish("events.door.x", vec![0xff].into())
        .await
        .unwrap()
        .await
        .unwrap();
    publish_numbers(&js, "events.door.front", 5..6).await;
    let (numbers, held) = take_numbers(&mut bus, 1).await;
    assert_eq!(numbers, [5]);
    drop(held);
    wait_for_consumer(&js, "EVENTS", "atalaya", (0, 0)).await;
    assert_eq!(bus.errors("nats", "decode"), 1.0);
    assert_eq!(
        bus.metric("atalaya_connector_received_total", &[("connector", "nats")]),
        6.0
    );
    running.stop().await;
}

#[tokio::test]
async fn a_new_instance_gets_what_the_stopped_one_never_finished() {
    let server = NatsServer::started().await;
    let nc = client(&server.url()).await;
    let js = stream(&nc, "EVENTS", "events.>").await;
    publish_numbers(&js, "events.door.front", 0..3).await;
    let ack_wait = Duration::from_secs(2);

    let mut first_bus = TestBus::new(64);
    let first = Running::start(
        jetstream_config(server.url(), "EVENTS", "atalaya", ack_wait),
        &first_bus,
        "nats",
    )
    .await;
    let (numbers, held) = take_numbers(&mut first_bus, 3).await;
    assert_eq!(numbers, [0, 1, 2]);
    first.stop().await; // still held: never acked
    drop(held);
    drop(first_bus);
    assert_eq!(consumer_info(&js, "EVENTS", "atalaya").await.0, 3);

    let mut second_bus = TestBus::new(64);
    let second = Running::start(
        jetstream_config(server.url(), "EVENTS", "atalaya", ack_wait),
        &second_bus,
        "nats",
    )
    .await;
    let (numbers, held) = take_numbers(&mut second_bus, 3).await;
    assert_eq!(numbers, [0, 1, 2], "redelivered after ack_wait");
    drop(held);
    wait_for_consumer(&js, "EVENTS", "atalaya", (0, 0)).await;
    second.stop().await;
}

#[tokio::test]
async fn every_message_arrives_although_the_server_is_killed_mid_stream() {
    const COUNT: u64 = 300;
    let mut server = NatsServer::started().await;
    let nc = client(&server.url()).await;
    stream(&nc, "EVENTS", "events.>").await;
    let mut bus = TestBus::new(64);
    let running = Running::start(
        jetstream_config(server.url(), "EVENTS", "atalaya", Duration::from_secs(2)),
        &bus,
        "nats",
    )
    .await;

    // The test's publisher retries each number until the stream acks it.
    let js = jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(nc.clone());
    let publisher = tokio::spawn(async move {
        for n in 0..COUNT {
            loop {
                let acked = async {
                    js.publish("events.meter.power", n.to_string().into())
                        .await?
                        .await
                }
                .await;
                if acked.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });

    let mut seen = BTreeSet::new();
    let mut killed = false;
    let collected = async {
        while seen.len() < COUNT as usize {
            let event = bus.next().await;
            seen.extend(event.data.as_u64());
            if !killed && seen.len() >= 50 {
                killed = true;
                server.kill();
                tokio::time::sleep(Duration::from_millis(500)).await;
                server.start().await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), collected)
        .await
        .unwrap_or_else(|_| panic!("missing numbers; server log:\n{}", server.log()));
    publisher.await.expect("the test publisher finishes");
    assert_eq!(seen, (0..COUNT).collect());
    assert!(
        bus.metric(
            "atalaya_connector_reconnects_total",
            &[("connector", "nats")]
        ) >= 1.0
    );
    running.stop().await;
}

#[tokio::test]
async fn the_publisher_reaches_core_subscribers_and_jetstream_streams() {
    let server = NatsServer::started().await;
    let nc = client(&server.url()).await;
    let js = stream(&nc, "ACTIONS", "actions.>").await;
    let mut subscriber = nc.subscribe("home.notify").await.unwrap();
    nc.flush().await.unwrap();
    let bus = TestBus::new(8);

    let (_connector, core) = NatsConnector::connect(
        NatsConfig::new(server.url()),
        bus.publisher.clone(),
        bus.counters("nats-core"),
        None,
    )
    .await
    .unwrap();
    core.publish("home/notify", b"washer done".to_vec())
        .await
        .unwrap();
    let message = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut subscriber))
        .await
        .expect("the subscriber gets the message")
        .unwrap();
    assert_eq!(message.subject.as_str(), "home.notify");
    assert_eq!(&message.payload[..], b"washer done");
    let refused = core.publish("home/+who", Vec::new()).await.unwrap_err();
    assert!(
        matches!(refused, NatsError::InvalidSubject { .. }),
        "{refused}"
    );
    assert_eq!(
        bus.metric(
            "atalaya_connector_sent_total",
            &[("connector", "nats-core")]
        ),
        1.0
    );
    assert_eq!(bus.errors("nats-core", "publish"), 1.0);

    let mut config = NatsConfig::new(server.url());
    config.publish_jetstream = true;
    config.publish_timeout = Duration::from_secs(2);
    let (_connector, durable) =
        NatsConnector::connect(config, bus.publisher.clone(), bus.counters("nats-js"), None)
            .await
            .unwrap();
    durable
        .publish("actions/light", b"on".to_vec())
        .await
        .unwrap();
    let stored = js
        .get_stream("ACTIONS")
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .expect("the message is in the stream");
    assert_eq!(stored.subject.as_str(), "actions.light");
    assert_eq!(&stored.payload[..], b"on");
    // No stream takes `home.notify`: JetStream refuses, and that is an error.
    assert!(durable.publish("home/notify", b"x".to_vec()).await.is_err());
    assert_eq!(bus.errors("nats-js", "publish"), 1.0);
}

/// Starts a connector with `auth` (and `tls`) subscribed to `auth/test`, and checks that
/// events get through and readiness follows; `admin` publishes the warmup messages.
async fn connects_with(
    admin: &async_nats::Client,
    url: String,
    auth: NatsAuth,
    tls: Option<TlsConfig>,
) {
    let mut bus = TestBus::new(8);
    let mut config = NatsConfig::new(url);
    config.required_for_ready = true;
    config.auth = auth;
    config.tls = tls;
    config.subscriptions = vec![subscription("auth/test", None)];
    let readiness = Readiness::new(&prometheus::Registry::new()).unwrap();
    let (connector, _publisher) = NatsConnector::connect(
        config,
        bus.publisher.clone(),
        bus.counters("nats"),
        Some(readiness.register("nats")),
    )
    .await
    .expect("the connector starts");
    let stop = CancellationToken::new();
    let task = tokio::spawn(connector.run(stop.clone()));
    bus.until_subscribed(admin, "auth.test").await;
    assert!(readiness.report().ready);
    assert_eq!(
        bus.metric("atalaya_connector_connected", &[("connector", "nats")]),
        1.0
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn token_auth() {
    // A token and users cannot be mixed in one config: the test client uses the token too.
    let server = NatsServer::started_with(r#"authorization { token: "s3cret-token" }"#).await;
    let mut bus = TestBus::new(8);
    let mut config = NatsConfig::new(server.url());
    config.auth = NatsAuth::Token(Secret::new("s3cret-token".to_owned()));
    config.subscriptions = vec![subscription("auth/test", None)];
    let running = Running::start(config, &bus, "nats").await;
    let nc = async_nats::ConnectOptions::with_token("s3cret-token".to_owned())
        .connect(server.url())
        .await
        .unwrap();
    bus.until_subscribed(&nc, "auth.test").await;
    running.stop().await;
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error_counted_and_retried() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let server = NatsServer::started_with(r#"authorization { token: "s3cret-token" }"#).await;
    let bus = TestBus::new(8);
    let mut config = NatsConfig::new(server.url());
    config.auth = NatsAuth::Token(Secret::new("wrong-token-value".to_owned()));
    config.required_for_ready = true;
    let readiness = Readiness::new(&prometheus::Registry::new()).unwrap();
    let (connector, _publisher) = NatsConnector::connect(
        config,
        bus.publisher.clone(),
        bus.counters("nats"),
        Some(readiness.register("nats")),
    )
    .await
    .expect("a refused connection does not fail the start");
    let stop = CancellationToken::new();
    let task = tokio::spawn(connector.run(stop.clone()));
    bus.wait_for("two refused attempts", |bus| {
        bus.errors("nats", "connect") >= 2.0
    })
    .await;
    assert!(!task.is_finished(), "the connector keeps retrying");
    assert!(!readiness.report().ready);
    assert_eq!(
        bus.metric("atalaya_connector_connected", &[("connector", "nats")]),
        0.0
    );
    let text = logs.text();
    assert!(
        text.contains("the server refused the credentials"),
        "{text}"
    );
    assert_eq!(
        text.matches("Cannot connect to NATS").count(),
        1,
        "one line per outage, not per attempt: {text}"
    );
    assert!(
        !text.contains("wrong-token-value"),
        "the token never reaches a log line"
    );
    stop.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn user_password_and_nkey_auth() {
    let key = nkeys::KeyPair::new_user();
    let server = NatsServer::started_with(&format!(
        r#"authorization {{ users = [
            {{ user: "alice", password: "alice-pw" }},
            {{ user: "admin", password: "admin-pw" }},
            {{ nkey: "{}" }}
        ] }}"#,
        key.public_key()
    ))
    .await;
    let admin =
        async_nats::ConnectOptions::with_user_and_password("admin".into(), "admin-pw".into())
            .connect(server.url())
            .await
            .unwrap();
    let alice = NatsAuth::UserPassword {
        user: "alice".to_owned(),
        password: Secret::new("alice-pw".to_owned()),
    };
    connects_with(&admin, server.url(), alice, None).await;
    let seed = key.seed().expect("a user key pair has a seed");
    connects_with(
        &admin,
        server.url(),
        NatsAuth::NKey(Secret::new(seed)),
        None,
    )
    .await;
}

#[tokio::test]
async fn mutual_tls_with_a_ca_made_in_the_test() {
    let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
    let mut server = NatsServer::new("");
    let certs = make_certs(server.dir());
    server.set_extra_config(&format!(
        r#"tls {{ cert_file: "{}", key_file: "{}", ca_file: "{}", verify: true, timeout: 2 }}"#,
        certs.server_cert.display(),
        certs.server_key.display(),
        certs.ca.display(),
    ));
    server.start().await;
    let admin = async_nats::ConnectOptions::new()
        .add_root_certificates(certs.ca.clone())
        .add_client_certificate(certs.client_cert.clone(), certs.client_key.clone())
        .require_tls(true)
        .connect(server.url())
        .await
        .expect("the admin client connects over TLS");
    let tls = TlsConfig {
        ca_file: Some(certs.ca.clone()),
        cert_file: Some(certs.client_cert.clone()),
        key_file: Some(certs.client_key.clone()),
    };
    connects_with(&admin, server.url(), NatsAuth::None, Some(tls)).await;
}

#[tokio::test]
async fn the_whole_config_is_checked_at_once_without_leaking_secrets() {
    let bus = TestBus::new(8);
    let mut config = NatsConfig::new("nats://bob:hunter2@127.0.0.1:99999");
    config.auth = NatsAuth::Token(Secret::new("supersecret".to_owned()));
    config.tls = Some(TlsConfig {
        ca_file: Some("/nonexistent/ca.pem".into()),
        cert_file: Some("/nonexistent/client.pem".into()),
        key_file: None,
    });
    config.subscriptions = vec![subscription("sensors/a.b/+room", Some("bad group"))];
    let mut consumer = JetStreamConsumer::new("EVENTS", "at.alaya");
    consumer.max_ack_pending = 0;
    config.jetstream = vec![consumer];
    let Err(error) =
        NatsConnector::connect(config, bus.publisher.clone(), bus.counters("nats"), None).await
    else {
        panic!("an invalid config must not start");
    };
    let NatsError::Config(problems) = &error else {
        panic!("expected config errors, got {error}");
    };
    let text = error.to_string();
    for expected in [
        "server address `nats://[redacted]@127.0.0.1:99999` is invalid",
        "cannot read tls ca_file `/nonexistent/ca.pem`",
        "`cert_file` and `key_file` go together",
        "token `a.b` contains `.`",
        "queue group \"bad group\"",
        "durable name \"at.alaya\"",
        "`max_ack_pending` must be at least 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in: {text}");
    }
    assert_eq!(problems.len(), 7, "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("supersecret"),
        "{text}"
    );

    let mut config = NatsConfig::new("nats://127.0.0.1:4222");
    config.auth = NatsAuth::CredentialsFile("/nonexistent/atalaya.creds".into());
    let Err(error) =
        NatsConnector::connect(config, bus.publisher.clone(), bus.counters("nats"), None).await
    else {
        panic!("a missing credentials file must not start");
    };
    let text = error.to_string();
    assert!(
        text.contains("cannot read credentials file `/nonexistent/atalaya.creds`"),
        "{text}"
    );
}

#[tokio::test]
async fn starts_while_the_server_is_down_and_connects_when_it_comes() {
    let mut server = NatsServer::new("");
    let mut bus = TestBus::new(8);
    let mut config = NatsConfig::new(server.url());
    config.required_for_ready = true;
    config.subscriptions = vec![subscription("late/+x", None)];
    let readiness = Readiness::new(&prometheus::Registry::new()).unwrap();
    let (connector, _publisher) = NatsConnector::connect(
        config,
        bus.publisher.clone(),
        bus.counters("nats"),
        Some(readiness.register("nats")),
    )
    .await
    .expect("a server that is down does not fail the start");
    let stop = CancellationToken::new();
    let task = tokio::spawn(connector.run(stop.clone()));
    bus.wait_for("a refused attempt", |bus| {
        bus.errors("nats", "connect") >= 1.0
    })
    .await;
    assert!(!readiness.report().ready);
    server.start().await;
    bus.until_subscribed(&client(&server.url()).await, "late.arrival")
        .await;
    assert!(readiness.report().ready);
    assert_eq!(
        bus.metric(
            "atalaya_connector_reconnects_total",
            &[("connector", "nats")]
        ),
        0.0,
        "the first connection is not a reconnection"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}
