//! The MQTT and NATS integrations against real brokers (the test kit's mosquitto and
//! nats-server on free loopback ports), through the same connectors the service uses.

use atalaya_bus::bus::{BusBuilder, Consumer, Publisher};
use atalaya_bus::connector_metrics::{ConnectorCounters, ConnectorMetrics};

use super::*;

/// A bus with one consumer, and the connector counters, for a connector under test.
fn bus(
    registry: &Registry,
    connector: &str,
    stages: &[&str],
) -> (Publisher, Consumer, ConnectorCounters) {
    let mut bus = BusBuilder::new(64, registry).unwrap();
    let consumer = bus.consumer("test");
    let counters = ConnectorMetrics::register(registry)
        .unwrap()
        .connection(connector, stages);
    (bus.build(), consumer, counters)
}

fn home_policy(integration: Integration) -> Arc<RoutingPolicy> {
    policy(vec![receiver("home", vec![integration])])
}

#[cfg(feature = "mqtt")]
#[tokio::test]
async fn mqtt_gets_the_notification_and_each_alerts_retained_state() {
    use atalaya_bus::Pattern;
    use atalaya_connectors::mqtt::MqttPublishConfig;
    use atalaya_connectors::mqtt::config::{MqttConfig, MqttSubscription};
    use atalaya_connectors::mqtt::{ERROR_STAGES, MqttConnector};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let broker = atalaya_test_kit::mosquitto::Mosquitto::started().await;
    let registry = Registry::new();
    let (publisher, mut events, counters) = bus(&registry, "mqtt", ERROR_STAGES);
    // The connector also subscribes to what the outbox publishes, to show it arrived.
    let mut config = MqttConfig::new("127.0.0.1");
    config.port = broker.port;
    config.client_id = "outbox-test".to_owned();
    config.subscriptions = vec![MqttSubscription {
        pattern: Pattern::parse("atalaya/#").unwrap(),
        qos: 1,
    }];
    let (connector, mqtt) = MqttConnector::new(config, publisher, counters, None).unwrap();
    let shutdown = CancellationToken::new();
    let connector = tokio::spawn(connector.run(shutdown.clone()));

    // Subscribed once a probe comes back.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    'probe: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probe never came back"
        );
        mqtt.publish("atalaya/probe", b"1".to_vec(), false)
            .await
            .unwrap();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), events.recv()).await
        {
            if event.subject.as_str() == "atalaya/probe" {
                break 'probe;
            }
        }
    }

    let (outbox, registry, store) = open(dir.path(), fast());
    let mut integrations = integrations(&Captured::default(), &store);
    integrations.mqtt = Some(mqtt);
    let running = Running::start(
        &outbox,
        home_policy(Integration::new(
            "mqtt",
            true,
            MqttPublishConfig {
                topic: "atalaya/notifications".into(),
                state_topic_prefix: "atalaya/alerts".into(),
                clear_resolved_after: std::time::Duration::from_secs(3600),
            },
        )),
        integrations,
    );
    outbox
        .enqueue(vec![notification("home", 0, "mqtt-1")])
        .unwrap();

    let mut notified = None;
    let mut state = None;
    while notified.is_none() || state.is_none() {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the outbox publishes")
            .expect("the bus is open");
        match event.subject.as_str() {
            "atalaya/notifications" => notified = Some(event.data.clone()),
            "atalaya/alerts/00000000000000aa" => state = Some(event.data.clone()),
            _ => {}
        }
    }
    let (notified, state) = (notified.unwrap(), state.unwrap());
    assert_eq!(notified["version"], "4");
    assert_eq!(notified["receiver"], "home");
    assert_eq!(notified["externalURL"], "http://atalaya.test");
    assert_eq!(state["status"], "firing");
    assert_eq!(state["labels"]["alertname"], "node_lost");
    assert_eq!(state["endsAt"], serde_json::Value::Null);
    assert_eq!(state["value"], 1);
    eventually("delivered", || outbox.depth() == 0).await;
    assert_eq!(
        metric(
            &registry,
            "atalaya_notifications_sent_total",
            &[("integration", "mqtt")]
        ),
        1.0
    );

    // The state is retained: a newcomer (Home Assistant starting) gets it at once.
    let output = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", "atalaya/alerts/#", "-C", "1", "-W", "10", "-v"])
        .output()
        .await
        .expect("mosquitto_sub is installed");
    let line = String::from_utf8_lossy(&output.stdout);
    assert!(
        line.starts_with("atalaya/alerts/00000000000000aa {"),
        "retained state: {line:?}"
    );

    running.stop().await;
    shutdown.cancel();
    let _ = connector.await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_gets_the_notification_json() {
    use atalaya_connectors::nats::NatsPublishConfig;
    use atalaya_connectors::nats::{ERROR_STAGES, NatsConfig, NatsConnector};
    use futures_util::StreamExt;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = atalaya_test_kit::nats::NatsServer::started().await;
    let url = server.url();
    let client = async_nats::connect(&url).await.unwrap();
    let mut subscription = client.subscribe("atalaya.notifications").await.unwrap();
    client.flush().await.unwrap();

    let registry = Registry::new();
    let (publisher, _events, counters) = bus(&registry, "nats", ERROR_STAGES);
    let (connector, nats) = NatsConnector::connect(NatsConfig::new(url), publisher, counters, None)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let connector = tokio::spawn(connector.run(shutdown.clone()));

    let dir = tempfile::tempdir().unwrap();
    let (outbox, _registry, store) = open(dir.path(), fast());
    let mut integrations = integrations(&Captured::default(), &store);
    integrations.nats = Some(nats);
    let running = Running::start(
        &outbox,
        home_policy(Integration::new(
            "nats",
            true,
            NatsPublishConfig {
                subject: "atalaya.notifications".into(),
            },
        )),
        integrations,
    );
    outbox
        .enqueue(vec![notification("home", 0, "nats-1")])
        .unwrap();

    let message = tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("the outbox publishes")
        .expect("the subscription is open");
    let payload: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["receiver"], "home");
    assert_eq!(payload["alerts"][0]["fingerprint"], "00000000000000aa");
    eventually("delivered", || outbox.depth() == 0).await;

    running.stop().await;
    shutdown.cancel();
    let _ = connector.await;
}
