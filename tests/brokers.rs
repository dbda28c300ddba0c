//! The service with real brokers: MQTT and NATS messages become events that fire rules, rule
//! actions publish back, notifications reach MQTT receivers (with a retained state per
//! alert), and nothing acknowledged is lost when atalaya is SIGKILLed and restarted while
//! the broker keeps publishing.

mod support;

use std::collections::BTreeSet;
use std::io::Read;

use atalaya_test_kit::mosquitto::{Mosquitto, printed};
use atalaya_test_kit::nats::NatsServer;
use nix::sys::signal::Signal;
use support::{Atalaya, CONSOLE_AT_ONCE, Options};

const LEAK_RULE: &str = r#"rules:
  - name: water_leak
    subject: zigbee2mqtt/+device
    condition: has(data.water_leak) && data.water_leak == true
    one_shot: true
    severity: critical
    actions:
      - on: firing
        publish: "home/alerts/{{ labels.device }}"
        payload: "leak at {{ labels.device }}"
"#;

fn mqtt_config(broker: &Mosquitto, topic: &str) -> String {
    format!(
        "mqtt:\n  host: 127.0.0.1\n  port: {}\n  client_id: atalaya-test\n  reconnect: {{min: 100ms, max: 1s}}\n  subscriptions:\n    - topic: {topic}\n      qos: 1\n",
        broker.port
    )
}

/// Reads console lines until every number below `n` was seen; on timeout, says which are
/// missing.
async fn collect_until_all(atalaya: &mut Atalaya, seen: &mut BTreeSet<u32>, n: u32) {
    while seen.len() < n as usize {
        match tokio::time::timeout(support::PATIENCE, atalaya.stdout.recv()).await {
            Ok(Some(line)) => seen.extend(numbers(&[line])),
            _ => {
                let missing: Vec<u32> = (0..n).filter(|i| !seen.contains(i)).collect();
                panic!("missing {missing:?}; logs:\n{}", atalaya.logs());
            }
        }
    }
}

/// Numbers found as the data of `count` events in console lines.
fn numbers(lines: &[String]) -> BTreeSet<u32> {
    lines
        .iter()
        .filter_map(|l| l.split(" count ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn mqtt_messages_fire_rules_and_actions_publish_back() {
    let broker = Mosquitto::started().await;
    let mut atalaya = Atalaya::start_with(Options {
        config: mqtt_config(&broker, "zigbee2mqtt/+device"),
        rules: vec![("leak.yaml", LEAK_RULE.to_owned())],
        routing: Some(CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    let mut actions = broker.subscribe("home/alerts/#", 1);
    let mut status = broker.subscribe("atalaya/status", 1);

    broker.publish("zigbee2mqtt/leak_kitchen", r#"{"water_leak": true}"#, 1);
    let line = atalaya.console_until(&["[firing:"]).await;
    assert!(line.contains("water_leak device=leak_kitchen"), "{line}");

    let mut published = String::new();
    let out = tokio::task::spawn_blocking(move || {
        actions
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut published)
            .unwrap();
        actions.wait().unwrap();
        published
    });
    assert_eq!(
        out.await.unwrap().trim(),
        "home/alerts/leak_kitchen leak at leak_kitchen"
    );
    let mut online = String::new();
    status
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut online)
        .unwrap();
    status.wait().unwrap();
    assert_eq!(online.trim(), "atalaya/status online");
    let metrics = atalaya.metrics().await;
    assert!(
        metrics.contains("atalaya_connector_received_total{connector=\"mqtt\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("atalaya_connector_connected{connector=\"mqtt\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_qos1_message_is_lost_when_atalaya_is_killed_and_restarted() {
    let broker = Mosquitto::started().await;
    let options = || Options {
        config: mqtt_config(&broker, "count"),
        ..Options::default()
    };
    let mut first = Atalaya::start_with(options()).await;
    first.wait_ready().await;
    for n in 0..50 {
        broker.publish("count", &n.to_string(), 1);
    }
    // Some got through; then SIGKILL, mid-stream.
    let mut seen = BTreeSet::new();
    collect_until_all(&mut first, &mut seen, 10).await;
    first.signal(Signal::SIGKILL);
    first.wait().await;
    seen.extend(numbers(&first.drain_console().await));
    // The broker keeps the persistent session's messages while atalaya is down.
    for n in 50..100 {
        broker.publish("count", &n.to_string(), 1);
    }
    let Atalaya { dir, .. } = first;
    let mut second = Atalaya::start_in(dir, options()).await;
    collect_until_all(&mut second, &mut seen, 100).await;
}

#[tokio::test]
async fn no_jetstream_message_is_lost_when_atalaya_is_killed_and_restarted() {
    let server = NatsServer::started().await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["count".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let publish = |n: u32| {
        let js = js.clone();
        async move {
            js.publish("count", n.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let options = || Options {
        config: format!(
            "nats:\n  servers: [\"{}\"]\n  jetstream:\n    - stream: EVENTS\n      durable: atalaya\n      ack_wait: 2s\n",
            server.url()
        ),
        ..Options::default()
    };
    let mut first = Atalaya::start_with(options()).await;
    first.wait_ready().await;
    for n in 0..50 {
        publish(n).await;
    }
    let mut seen = BTreeSet::new();
    collect_until_all(&mut first, &mut seen, 10).await;
    first.signal(Signal::SIGKILL);
    first.wait().await;
    seen.extend(numbers(&first.drain_console().await));
    for n in 50..100 {
        publish(n).await;
    }
    let Atalaya { dir, .. } = first;
    let mut second = Atalaya::start_in(dir, options()).await;
    collect_until_all(&mut second, &mut seen, 100).await;
}

#[tokio::test]
async fn mqtt_receivers_get_notifications_and_a_retained_state_per_alert() {
    let broker = Mosquitto::started().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("routing.yaml"),
        "route:\n  receiver: ha\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: ha\n    mqtt_configs:\n      - topic: home/notifications\n        state_topic_prefix: ha/alerts\n",
    )
    .unwrap();
    let config = format!(
        "{}routing:\n  file: {}\n",
        mqtt_config(&broker, "zigbee2mqtt/+device"),
        dir.path().join("routing.yaml").display()
    );
    let atalaya = Atalaya::start_in(
        dir,
        Options {
            config,
            rules: vec![(
                "leak.yaml",
                LEAK_RULE.replace("one_shot: true", "").replace(
                    "condition: has(data.water_leak) && data.water_leak == true",
                    "condition: data.water_leak == true",
                ),
            )],
            ..Options::default()
        },
    )
    .await;
    atalaya.wait_ready().await;
    let notifications = broker.subscribed("home/notifications", 2).await;
    broker.publish("zigbee2mqtt/leak_kitchen", r#"{"water_leak": true}"#, 1);

    // The state is retained: a subscriber arriving later still sees it.
    atalaya
        .wait_for_metric(
            "atalaya_notifications_sent_total",
            r#"{integration="mqtt",receiver="ha"}"#,
            |n| n >= 1.0,
        )
        .await;
    let state = printed(broker.subscribe("ha/alerts/#", 1)).await;
    let (topic, payload) = state.trim().split_once(' ').expect("topic and payload");
    assert!(topic.starts_with("ha/alerts/"), "{state}");
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
    assert_eq!(payload["status"], "firing", "{payload}");
    assert_eq!(payload["labels"]["device"], "leak_kitchen");

    broker.publish("zigbee2mqtt/leak_kitchen", r#"{"water_leak": false}"#, 1);
    let both = printed(notifications).await;
    let statuses: Vec<String> = both
        .lines()
        .map(|l| {
            let json: serde_json::Value =
                serde_json::from_str(l.split_once(' ').unwrap().1).unwrap();
            json["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    let state = printed(broker.subscribe(topic, 1)).await;
    assert!(state.contains(r#""status":"resolved""#), "{state}");
}

/// An MQTT outage is reported (`/readyz` connections, `atalaya_connector_connected`) but
/// leaves the pod in its Service, since HTTP ingest and Prometheus's pushes still work; with
/// `required_for_ready: true`, readiness follows the broker.
#[tokio::test]
async fn a_broker_outage_is_reported_and_keeps_the_api_ready_unless_required() {
    let mut broker = Mosquitto::started().await;
    let atalaya = Atalaya::start_with(Options {
        config: mqtt_config(&broker, "home/#"),
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    broker.kill();
    atalaya
        .wait_for_metric(
            "atalaya_connector_connected",
            r#"{connector="mqtt"}"#,
            |v| v == 0.0,
        )
        .await;
    let readyz = reqwest::get(atalaya.url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 200);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["connections"]["mqtt"], false, "{body}");
    assert!(body["components"].get("mqtt").is_none(), "{body}");
    // The API still takes events.
    let sent = reqwest::Client::new()
        .post(atalaya.url("/api/v1/events/home/hello"))
        .body(r#"{"msg": "hi"}"#)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());

    let required = Atalaya::start_with(Options {
        config: format!(
            "{}  required_for_ready: true\n",
            mqtt_config(&broker, "home/#")
        ),
        ..Options::default()
    })
    .await;
    let readyz = reqwest::get(required.url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["components"]["mqtt"], false, "{body}");

    broker.restart().await;
    required.wait_ready().await;
    atalaya.wait_ready().await;
}

/// A broker that lost atalaya's persistent session (restarted without its persistence file)
/// lost the QoS 1 messages queued for it: invisible as a gap, but visible as a connection
/// answered "no session" when one was expected — also across atalaya's own restart, when
/// the broker had the most to keep. A session kept is not reported.
#[tokio::test]
async fn a_broker_that_forgot_the_session_is_reported_also_across_a_restart() {
    let mut broker = Mosquitto::started().await;
    let config = mqtt_config(&broker, "home/#");
    let options = || Options {
        config: config.clone(),
        ..Options::default()
    };
    let lost = r#"{connector="mqtt"}"#;
    let mut first = Atalaya::start_with(options()).await;
    first.wait_ready().await;
    first
        .wait_for_metric("atalaya_connector_sessions_lost_total", lost, |v| v == 0.0)
        .await;
    first.signal(Signal::SIGTERM);
    assert!(first.wait().await.success());
    let Atalaya { dir, .. } = first;

    // Restarted, the broker still up: the session was kept.
    let mut second = Atalaya::start_in(dir, options()).await;
    second.wait_ready().await;
    second
        .wait_for_metric("atalaya_connector_sessions_lost_total", lost, |v| v == 0.0)
        .await;
    second.signal(Signal::SIGTERM);
    assert!(second.wait().await.success());
    let Atalaya { dir, .. } = second;

    // While atalaya is down, the broker loses everything it kept.
    broker.kill();
    std::fs::remove_file(broker.dir().join("mosquitto.db")).unwrap();
    broker.start().await;
    let third = Atalaya::start_in(dir, options()).await;
    third.wait_ready().await;
    third
        .wait_for_metric("atalaya_connector_sessions_lost_total", lost, |v| v == 1.0)
        .await;
    third
        .wait_for_logs(&["The MQTT broker had no session for atalaya"], 1)
        .await;

    // And while it runs.
    broker.kill();
    std::fs::remove_file(broker.dir().join("mosquitto.db")).ok();
    broker.start().await;
    third
        .wait_for_metric("atalaya_connector_sessions_lost_total", lost, |v| v == 2.0)
        .await;
}

/// A retained message replayed at every start is not counted again: one real message and
/// two restarts do not make three (a `count >= 3` window rule stays quiet), while three real
/// messages with the same payload do.
#[tokio::test]
async fn retained_replays_at_restarts_are_not_counted_again() {
    let broker = Mosquitto::started().await;
    let rule = "rules:\n  - name: door_flapping\n    subject: zigbee2mqtt/+device\n    value: data.battery\n    window: {duration: 1h, aggregate: count}\n    condition: value >= 3\n";
    let payload = r#"{"contact": true, "battery": 97}"#;
    broker.publish_retained("zigbee2mqtt/door", payload);
    let options = || Options {
        config: mqtt_config(&broker, "zigbee2mqtt/+device"),
        rules: vec![("door.yaml", rule.to_owned())],
        routing: Some(CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    };
    let evaluated = r#"{rule="door_flapping"}"#;
    let dir = tempfile::tempdir().unwrap();
    let mut atalaya = Atalaya::start_in(dir, options()).await;
    // The first start, and two restarts: each time the broker replays the retained message.
    for run in 0..3 {
        atalaya
            .wait_for_metric("atalaya_rule_evaluations_total", evaluated, |n| n >= 1.0)
            .await;
        let alerts = atalaya.get_json("/api/v1/alerts").await;
        assert_eq!(alerts, serde_json::json!([]), "run {run}");
        atalaya.signal(Signal::SIGTERM);
        atalaya.wait().await;
        let dir = atalaya.dir;
        atalaya = Atalaya::start_in(dir, options()).await;
    }
    atalaya
        .wait_for_metric("atalaya_rule_evaluations_total", evaluated, |n| n >= 1.0)
        .await;
    atalaya.wait_ready().await;
    // Real messages count, the same payload or not: two more make three.
    broker.publish("zigbee2mqtt/door", payload, 1);
    broker.publish("zigbee2mqtt/door", payload, 1);
    let line = atalaya.console_until(&["[firing:"]).await;
    assert!(line.contains("door_flapping"), "{line}");
}

#[tokio::test]
async fn mqtt_5_user_properties_become_labels_and_the_session_outlives_a_restart() {
    let broker = Mosquitto::started().await;
    let rule = "rules:\n  - name: plug_on\n    subject: plugs/+plug\n    condition: data.state == true\n    group_by: [plug, property_room]\n";
    let options = || Options {
        config: format!("{}  protocol: 5\n", mqtt_config(&broker, "plugs/+plug")),
        rules: vec![("plugs.yaml", rule.to_owned())],
        routing: Some(CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut atalaya = Atalaya::start_in(dir, options()).await;
    atalaya.wait_ready().await;
    broker.publish_v5("plugs/tv", r#"{"state": true}"#, &[("Room", "living")]);
    let line = atalaya.console_until(&["[firing:"]).await;
    assert!(line.contains("plug_on"), "{line}");
    let alerts = atalaya.get_json("/api/v1/alerts").await;
    assert_eq!(alerts[0]["labels"]["property_room"], "living", "{alerts:#}");

    // MQTT 5 ends a session with its connection unless the client asks otherwise: atalaya
    // asks for mqtt.session_expiry, so what is published while it is down waits for it.
    atalaya.signal(Signal::SIGTERM);
    atalaya.wait().await;
    broker.publish_v5("plugs/lamp", r#"{"state": true}"#, &[("Room", "hall")]);
    let dir = atalaya.dir;
    let mut atalaya = Atalaya::start_in(dir, options()).await;
    let line = atalaya.console_until(&["[firing:", "lamp"]).await;
    assert!(line.contains("plug_on"), "{line}");
}
