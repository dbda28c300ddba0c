//! The Home Assistant source against the test kit's stand-in of its WebSocket API: state
//! changes on the bus with their labels, reconnection and resubscription, a refused token,
//! garbage and oversized frames, a dead connection found by its heartbeat, and a full bus
//! making it wait rather than drop.

#![cfg(feature = "homeassistant")]

use std::time::Duration;

use atalaya_bus::bus::{BusBuilder, Consumer, Received};
use atalaya_bus::connector_metrics::ConnectorMetrics;
use atalaya_bus::readiness::Readiness;
use atalaya_bus::secret::Secret;
use atalaya_connectors::homeassistant::config::Endpoint;
use atalaya_connectors::homeassistant::{
    ERROR_STAGES, EVENT_TYPE, HomeAssistantConfig, HomeAssistantConnector, HomeAssistantError,
};
use atalaya_test_kit::CapturedLogs;
use atalaya_test_kit::homeassistant::FakeHomeAssistant;
use prometheus::Registry;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "fake-long-lived-token.abc123";

fn config(ha: &FakeHomeAssistant, token: &str) -> HomeAssistantConfig {
    let mut config = HomeAssistantConfig::new(
        Endpoint::parse(&ha.web_url).expect("the stand-in's address"),
        Secret::new(token.to_owned()),
    );
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(100);
    config
}

/// The source running on a bus with one consumer of `capacity` events.
struct Source {
    registry: Registry,
    consumer: Consumer,
    readiness: Readiness,
    stop: CancellationToken,
    task: JoinHandle<Result<(), HomeAssistantError>>,
}

impl Source {
    fn start(config: HomeAssistantConfig, capacity: usize) -> Self {
        let registry = Registry::new();
        let mut bus = BusBuilder::new(capacity, &registry).expect("bus metrics");
        let consumer = bus.consumer("test");
        let metrics = ConnectorMetrics::register(&registry).expect("connector metrics");
        let readiness = Readiness::new(&registry).expect("readiness metrics");
        let connector = HomeAssistantConnector::new(
            config,
            bus.build(),
            metrics.connection("homeassistant", ERROR_STAGES),
            Some(readiness.register("homeassistant")),
        )
        .expect("the connector builds");
        let stop = CancellationToken::new();
        let task = tokio::spawn(connector.run(stop.clone()));
        Self {
            registry,
            consumer,
            readiness,
            stop,
            task,
        }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.consumer.recv())
            .await
            .expect("an event within the wait")
            .expect("the bus is open")
    }

    fn errors(&self, stage: &str) -> f64 {
        atalaya_test_kit::metrics::sample(
            &self.registry,
            "atalaya_connector_errors_total",
            &[("connector", "homeassistant"), ("stage", stage)],
        )
    }

    fn metric(&self, family: &str) -> f64 {
        atalaya_test_kit::metrics::sample(&self.registry, family, &[("connector", "homeassistant")])
    }

    fn ready(&self) -> bool {
        self.readiness.report().ready
    }

    /// Polls `condition` (in-process metrics have nothing to wait on) every 10 ms, failing
    /// the test after [`WAIT`].
    async fn wait_for(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let waited = async {
            while !condition(self) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(WAIT, waited).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the source stops within the wait")
            .expect("the source task does not panic");
        result.expect("the source ends without error");
    }
}

async fn subscribed(ha: &FakeHomeAssistant, count: usize) {
    ha.wait_until("a state_changed subscription", |s| {
        s.state_subscribers == 1 && s.state_subscriptions >= count
    })
    .await;
}

#[tokio::test]
async fn state_changes_arrive_labelled_and_follow_a_reconnection() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let mut source = Source::start(config(&ha, TOKEN), 64);
    subscribed(&ha, 1).await;
    source.wait_for("readiness", Source::ready).await;
    assert_eq!(source.metric("atalaya_connector_connected"), 1.0);

    ha.push_state(
        "sensor.freezer_temperature",
        Some("-18.5"),
        Some("-12"),
        json!({"unit_of_measurement": "°C", "friendly_name": "Freezer"}),
    );
    let event = source.next().await;
    assert_eq!(event.subject.as_str(), "ha/sensor/freezer_temperature");
    assert_eq!(event.event_type, EVENT_TYPE);
    assert_eq!(
        event.source,
        ha.web_url.replace("http://", "homeassistant://")
    );
    assert_eq!(event.data["state"], json!(-12));
    assert_eq!(event.data["old_state"], json!(-18.5));
    assert_eq!(event.data["attributes"]["unit_of_measurement"], "°C");
    let labels: Vec<(&str, &str)> = event.labels.iter().collect();
    assert_eq!(
        labels,
        [
            ("area", "Kitchen"),
            ("device", "d-freezer"),
            ("device_name", "Freezer sensor"),
            ("domain", "sensor"),
            ("entity_id", "sensor.freezer_temperature"),
        ]
    );

    // Home Assistant restarts: the source connects again and subscribes again.
    ha.drop_connections();
    source
        .wait_for("the lost connection counted", |s| {
            s.metric("atalaya_connector_reconnects_total") >= 1.0
        })
        .await;
    subscribed(&ha, 2).await;
    ha.push_state(
        "binary_sensor.front_door",
        Some("off"),
        Some("on"),
        json!({}),
    );
    let event = source.next().await;
    assert_eq!(event.subject.as_str(), "ha/binary_sensor/front_door");
    assert_eq!(event.data["state"], "on");
    assert_eq!(&event.labels["area"], "Hall");
    assert_eq!(&event.labels["device_name"], "Door contact");

    // A registry changes: labels follow.
    ha.set_registries(
        json!([{"entity_id": "binary_sensor.front_door", "device_id": "d-door", "area_id": "porch"}]),
        json!([{"id": "d-door", "name": "Door contact", "area_id": null}]),
        json!([{"area_id": "porch", "name": "Porch"}]),
    );
    let lists = ha.seen().registry_lists;
    for kind in ["entity", "device", "area"] {
        ha.push_event(
            &format!("{kind}_registry_updated"),
            json!({"action": "update"}),
        );
    }
    ha.wait_until("the registries listed again", |s| {
        s.registry_lists >= lists + 3
    })
    .await;
    // The stand-in answered the lists before it sends the next event on that connection.
    ha.push_state(
        "binary_sensor.front_door",
        Some("on"),
        Some("off"),
        json!({}),
    );
    let event = source.next().await;
    assert_eq!(&event.labels["area"], "Porch");
    assert_eq!(&event.labels["device_name"], "Door contact");
    assert_eq!(
        ha.seen().ids_out_of_order,
        0,
        "command ids increase per connection"
    );
    source.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_token_is_counted_logged_without_the_token_and_retried() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let source = Source::start(config(&ha, "wrong-token-s3cr3t"), 64);
    ha.wait_until("three refused logins", |s| s.refused >= 3)
        .await;
    source
        .wait_for("the refusals counted", |s| s.errors("auth") >= 3.0)
        .await;
    assert!(!source.ready());
    let text = logs.text();
    assert_eq!(
        logs.lines_with(&["refused the access token"]).len(),
        1,
        "logged once per outage: {text}"
    );
    assert!(text.contains("ERROR"), "{text}");
    assert!(
        !text.contains("s3cr3t"),
        "the token is never logged: {text}"
    );
    let metrics = prometheus::TextEncoder::new()
        .encode_to_string(&source.registry.gather())
        .unwrap();
    assert!(!metrics.contains("s3cr3t"));
    source.stop().await;
}

#[tokio::test]
async fn garbage_and_oversized_frames_are_counted_and_the_source_goes_on() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let mut config = config(&ha, TOKEN);
    config.max_frame_bytes = 64 * 1024;
    let mut source = Source::start(config, 64);
    subscribed(&ha, 1).await;

    ha.send_frame(Message::text("this is not JSON"));
    ha.send_frame(Message::text(r#"{"type":"surprise"}"#));
    ha.send_frame(Message::binary(vec![0u8, 1, 2]));
    ha.push_event(
        "state_changed",
        json!({"entity_id": "no_dot_here", "new_state": {"state": "1"}}),
    );
    ha.push_event("state_changed", json!({"no": "entity"}));
    ha.push_state("sensor.freezer_temperature", None, Some("-17"), json!({}));
    assert_eq!(source.next().await.data["state"], json!(-17));
    assert_eq!(source.errors("decode"), 4.0);
    assert_eq!(source.errors("subject"), 1.0);
    assert_eq!(
        ha.seen().connections,
        1,
        "garbage does not cost the connection"
    );

    // Over max_frame_bytes: counted, the connection made again.
    ha.send_frame(Message::text(format!(
        r#"{{"type":"result","id":999,"success":true,"result":"{}"}}"#,
        "x".repeat(100 * 1024)
    )));
    source
        .wait_for("the oversized frame counted", |s| s.errors("size") == 1.0)
        .await;
    subscribed(&ha, 2).await;
    ha.push_state(
        "sensor.freezer_temperature",
        Some("-17"),
        Some("-16"),
        json!({}),
    );
    assert_eq!(source.next().await.data["state"], json!(-16));
    source.stop().await;
}

#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_made_again() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    ha.answer_pings(false);
    let mut config = config(&ha, TOKEN);
    config.heartbeat = Duration::from_millis(100);
    let source = Source::start(config, 64);
    source
        .wait_for("a missing pong counted", |s| s.errors("heartbeat") >= 1.0)
        .await;
    ha.answer_pings(true);
    ha.wait_until("a connection answered by pongs", |s| {
        s.connections >= 2 && s.pings >= 3
    })
    .await;
    source.stop().await;
}

#[tokio::test]
async fn a_full_bus_makes_the_source_wait_and_nothing_is_dropped() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let mut source = Source::start(config(&ha, TOKEN), 2);
    subscribed(&ha, 1).await;
    for i in 0..20 {
        ha.push_state("sensor.counter", None, Some(&i.to_string()), json!({}));
    }
    source
        .wait_for("the bus to fill", |s| {
            atalaya_test_kit::metrics::sample(&s.registry, "atalaya_bus_publish_waits_total", &[])
                >= 1.0
        })
        .await;
    for i in 0..20 {
        assert_eq!(source.next().await.data["state"], json!(i));
    }
    assert_eq!(source.metric("atalaya_connector_received_total"), 20.0);
    assert_eq!(ha.seen().connections, 1);
    source.stop().await;
}

#[tokio::test]
async fn without_admin_rights_events_go_without_registry_labels() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    ha.forbid_registries(true);
    let mut source = Source::start(config(&ha, TOKEN), 64);
    subscribed(&ha, 1).await;
    ha.push_state("sensor.freezer_temperature", None, Some("-18"), json!({}));
    let event = source.next().await;
    let names: Vec<&str> = event.labels.keys().collect();
    assert_eq!(names, ["domain", "entity_id"]);
    assert_eq!(source.errors("registry"), 3.0);
    source.stop().await;
}

#[tokio::test]
async fn wss_with_a_private_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let certs = atalaya_test_kit::make_certs(dir.path());
    let ha = FakeHomeAssistant::start_tls(TOKEN, &certs.server_cert, &certs.server_key).await;
    assert!(ha.url.starts_with("wss://"));

    // A CA that did not sign the server's certificate: refused, counted, retried.
    let mut untrusted = config(&ha, TOKEN);
    untrusted.tls = Some(atalaya_connectors::tls::TlsConfig {
        ca_file: Some(certs.other_ca.clone()),
        ..Default::default()
    });
    let source = Source::start(untrusted, 64);
    source
        .wait_for("refused TLS handshakes counted", |s| {
            s.errors("connect") >= 2.0
        })
        .await;
    assert_eq!(ha.seen().logins, 0);
    source.stop().await;

    let mut trusted = config(&ha, TOKEN);
    trusted.tls = Some(atalaya_connectors::tls::TlsConfig {
        ca_file: Some(certs.ca.clone()),
        ..Default::default()
    });
    let mut source = Source::start(trusted, 64);
    subscribed(&ha, 1).await;
    ha.push_state("sensor.freezer_temperature", None, Some("-20"), json!({}));
    let event = source.next().await;
    assert_eq!(event.data["state"], json!(-20));
    assert!(event.source.starts_with("homeassistant://127.0.0.1:"));
    source.stop().await;
}
