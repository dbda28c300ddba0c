//! End-to-end: the binary with `homeassistant:` in its config, against the test kit's
//! stand-in of Home Assistant's WebSocket API. A freezer warming fires an alert carrying its
//! area and device; Home Assistant restarting is followed; a refused token is counted,
//! retried and never written anywhere; garbage and an oversized frame are counted and the
//! source goes on; HTTP ingest works all the while.

#![cfg(feature = "homeassistant")]

mod support;

use atalaya_test_kit::homeassistant::{FakeHomeAssistant, Seen};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Atalaya, CONSOLE_AT_ONCE, Options};

const TOKEN: &str = "e2e-long-lived-token-Zq9s3cr3t";

/// The example of docs/home-assistant.md, with its series labelled by area and device.
const FREEZER_RULE: &str = "rules:
  - name: freezer_warm
    subject: ha/sensor/freezer_temperature
    value: data.state
    condition: value > -10
    group_by: [entity_id, area, device_name]
    severity: critical
    annotations:
      summary: \"{{ labels.device_name }} in the {{ labels.area }} is at {{ value }} °C\"
  - name: kitchen_hot
    subject: home/+room/temperature
    condition: value > 25
";

/// Config for the stand-in, `token` in `token_file` (written into `dir`).
fn config(ha: &FakeHomeAssistant, dir: &std::path::Path, token: &str, extra: &str) -> String {
    let file = token_file(dir);
    std::fs::write(&file, format!("{token}\n")).unwrap();
    format!(
        "homeassistant:\n  url: {}\n  token_file: {}\n  reconnect: {{min: 50ms, max: 200ms}}\n  required_for_ready: true\n{extra}",
        ha.web_url,
        file.display()
    )
}

fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("ha-token")
}

async fn start(ha: &FakeHomeAssistant, token: &str, extra: &str) -> Atalaya {
    let dir = tempfile::tempdir().unwrap();
    let config = config(ha, dir.path(), token, extra);
    Atalaya::start_in(
        dir,
        Options {
            config,
            rules: vec![("home.yaml", FREEZER_RULE.to_owned())],
            routing: Some(CONSOLE_AT_ONCE.to_owned()),
            ..Options::default()
        },
    )
    .await
}

/// Subscribed to `state_changed` for the `count`-th time, on one open connection.
async fn subscribed(ha: &FakeHomeAssistant, count: usize) -> Seen {
    ha.wait_until("a state_changed subscriber", |s| {
        s.state_subscribers == 1 && s.state_subscriptions >= count
    })
    .await
}

fn errors(stage: &str) -> String {
    format!(r#"{{connector="homeassistant",stage="{stage}"}}"#)
}

#[tokio::test]
async fn a_warming_freezer_fires_with_its_area_and_device_across_a_home_assistant_restart() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let mut atalaya = start(&ha, TOKEN, "").await;
    subscribed(&ha, 1).await;
    atalaya.wait_ready().await;
    let readyz = atalaya.get_json("/readyz").await;
    assert_eq!(readyz["connections"]["homeassistant"], true, "{readyz}");

    ha.push_state(
        "sensor.freezer_temperature",
        Some("-18.5"),
        Some("-7.5"),
        json!({"unit_of_measurement": "°C", "friendly_name": "Freezer"}),
    );
    let line = atalaya.console_until(&["[firing:", "freezer_warm"]).await;
    assert!(
        line.contains("Freezer sensor in the Kitchen is at -7.5 °C"),
        "{line}"
    );
    let alerts = atalaya.get_json("/api/v1/alerts").await;
    let alert = alerts
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["labels"]["alertname"] == "freezer_warm")
        })
        .unwrap_or_else(|| panic!("{alerts}"));
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    for (label, value) in [
        ("area", "Kitchen"),
        ("device_name", "Freezer sensor"),
        ("entity_id", "sensor.freezer_temperature"),
        ("severity", "critical"),
    ] {
        assert_eq!(alert["labels"][label], value, "{alert}");
    }

    // Home Assistant restarts: the source connects again, subscribes again, and the next
    // state change resolves the alert.
    ha.drop_connections();
    atalaya
        .wait_for_metric(
            "atalaya_connector_reconnects_total",
            r#"{connector="homeassistant"}"#,
            |v| v >= 1.0,
        )
        .await;
    subscribed(&ha, 2).await;
    assert_eq!(ha.seen().ids_out_of_order, 0);
    ha.push_state(
        "sensor.freezer_temperature",
        Some("-7.5"),
        Some("-19"),
        json!({"unit_of_measurement": "°C"}),
    );
    atalaya.console_until(&["[resolved:", "freezer_warm"]).await;
    atalaya.signal(Signal::SIGTERM);
    assert!(atalaya.wait().await.success(), "{}", atalaya.logs());
}

#[tokio::test]
async fn a_refused_token_is_counted_retried_and_never_written_while_http_ingest_goes_on() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let wrong = "revoked-token-Kx7s3cr3t";
    let mut atalaya = start(&ha, wrong, "").await;
    ha.wait_until("three refused logins", |s| s.refused >= 3)
        .await;
    atalaya
        .wait_for_metric("atalaya_connector_errors_total", &errors("auth"), |v| {
            v >= 3.0
        })
        .await;
    atalaya
        .wait_for_logs(&["refused the access token", "ERROR"], 1)
        .await;
    let readyz = reqwest::get(atalaya.url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Meanwhile, events posted over HTTP go through.
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "31")
            .await,
        StatusCode::ACCEPTED
    );
    atalaya.console_until(&["[firing:", "kitchen_hot"]).await;

    // The Secret is updated in place: the next attempt reads the file again and logs in.
    std::fs::write(token_file(atalaya.dir.path()), format!("{TOKEN}\n")).unwrap();
    subscribed(&ha, 1).await;
    atalaya.wait_ready().await;
    let metrics = atalaya.metrics().await;
    assert!(!metrics.contains(TOKEN) && !metrics.contains(wrong));
    atalaya.signal(Signal::SIGTERM);
    assert!(atalaya.wait().await.success());
    let logs = atalaya.logs();
    assert_eq!(
        logs.matches("refused the access token").count(),
        1,
        "one line per outage: {logs}"
    );
    assert!(
        !logs.contains(TOKEN) && !logs.contains(wrong),
        "a token is never logged: {logs}"
    );
}

#[tokio::test]
async fn garbage_and_an_oversized_frame_are_counted_and_the_source_goes_on() {
    let ha = FakeHomeAssistant::start(TOKEN).await;
    let mut atalaya = start(&ha, TOKEN, "  max_frame_bytes: 65536\n").await;
    subscribed(&ha, 1).await;

    ha.send_text("<html>502 Bad Gateway</html>");
    ha.send_binary(&[0xde, 0xad, 0xbe, 0xef]);
    ha.push_event(
        "state_changed",
        json!({"entity_id": "not an entity id", "new_state": {"state": "1"}}),
    );
    atalaya
        .wait_for_metric("atalaya_connector_errors_total", &errors("decode"), |v| {
            v >= 2.0
        })
        .await;
    atalaya
        .wait_for_metric("atalaya_connector_errors_total", &errors("subject"), |v| {
            v >= 1.0
        })
        .await;
    // Garbage costs nothing but the frame.
    assert_eq!(ha.seen().connections, 1);

    let huge = json!({"id": 1, "type": "event", "event": {"event_type": "state_changed",
        "data": {"entity_id": "sensor.huge", "new_state": {"state": "x".repeat(100_000)}}}});
    ha.send_text(&huge.to_string());
    atalaya
        .wait_for_metric("atalaya_connector_errors_total", &errors("size"), |v| {
            v >= 1.0
        })
        .await;
    subscribed(&ha, 2).await;
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "20")
            .await,
        StatusCode::ACCEPTED
    );
    ha.push_state("sensor.freezer_temperature", None, Some("-3"), json!({}));
    let line = atalaya.console_until(&["[firing:", "freezer_warm"]).await;
    assert!(line.contains("at -3 °C"), "{line}");
    let metrics = atalaya.metrics().await;
    let received = support::sample(
        &metrics,
        "atalaya_connector_received_total",
        r#"{connector="homeassistant"}"#,
    );
    assert_eq!(received, Some(1.0), "only the good state change: {metrics}");
    let _: Value = atalaya.get_json("/api/v1/alerts").await;
    atalaya.signal(Signal::SIGTERM);
    assert!(atalaya.wait().await.success());
}
