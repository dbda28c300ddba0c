//! End-to-end: the binary routing an alert to every push receiver (ntfy, Gotify, Matrix,
//! Discord, Pushover) at once, each pointed at an HTTP stand-in on loopback with its secret
//! in a file beside the policy — as a household would configure them. One of them fails for
//! a while: its notification is retried until it arrives, the others are not held up.

mod support;

use atalaya_test_kit::http::{Answer, Recorder};
use reqwest::StatusCode;
use support::{Atalaya, Options, sample};

const RULE: &str = r#"rules:
  - name: freezer_warm
    subject: home/+room/freezer
    condition: value > -10
    severity: critical
    annotations:
      summary: "Freezer in {{ labels.room }} at {{ value }} °C"
"#;

fn policy(url: &str) -> String {
    format!(
        r#"route:
  receiver: family
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: family
    ntfy_configs:
      - url: {url}/ntfy
        topic: home-alerts
        token_file: secrets/ntfy
    gotify_configs:
      - url: {url}/gotify
        token_file: secrets/gotify
        locale: es
    matrix_configs:
      - homeserver: {url}/matrix
        room_id: "!casa:matrix.home.lan"
        access_token_file: secrets/matrix
    discord_configs:
      - webhook_url_file: secrets/discord
    pushover_configs:
      - api_url: {url}/pushover
        user_key_file: secrets/pushover-user
        token_file: secrets/pushover-token
"#
    )
}

#[tokio::test]
async fn one_alert_reaches_every_push_receiver_and_a_failing_one_is_retried() {
    let service = Recorder::start().await;
    let url = service.url();
    service.answer(
        "/matrix",
        Answer::json(200, &serde_json::json!({"event_id": "$1"})),
    );
    service.answer(
        "/pushover",
        Answer::json(200, &serde_json::json!({"status": 1})),
    );
    // Discord is down until told otherwise.
    service.answer("/discord", Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for (name, value) in [
        ("ntfy", "tk_ntfy".to_owned()),
        ("gotify", "AgotifyToken".to_owned()),
        ("matrix", "syt_matrix".to_owned()),
        ("discord", format!("{url}/discord/api/webhooks/1/dtoken")),
        ("pushover-user", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG".to_owned()),
        (
            "pushover-token",
            "azGDORePK8gMaC0QOYAMyEEuzJnyUi".to_owned(),
        ),
    ] {
        std::fs::write(secrets.join(name), value).unwrap();
    }
    std::fs::write(dir.path().join("routing.yaml"), policy(&url)).unwrap();
    let options = Options {
        config: format!(
            "routing:\n  file: {}\noutbox:\n  initial_backoff: 50ms\n  max_backoff: 200ms\n",
            dir.path().join("routing.yaml").display()
        ),
        rules: vec![("freezer.yaml", RULE.to_owned())],
        ..Options::default()
    };
    let atalaya = Atalaya::start_in(dir, options).await;
    let status = reqwest::Client::new()
        .post(atalaya.url("/api/v1/events/home/garage/freezer"))
        .body("-2")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::ACCEPTED);

    let all = service
        .wait_until("a message at each service", |requests| {
            [
                "/ntfy",
                "/gotify/message",
                "/matrix/_matrix",
                "/pushover/1/messages.json",
            ]
            .iter()
            .all(|p| {
                requests
                    .iter()
                    .any(|r| r.path.starts_with(p) && r.status < 300)
            }) && requests
                .iter()
                .filter(|r| r.path.starts_with("/discord"))
                .count()
                >= 2
        })
        .await;
    let at = |prefix: &str| {
        all.iter()
            .find(|r| r.path.starts_with(prefix) && r.status < 300)
            .unwrap()
            .clone()
    };
    let ntfy = at("/ntfy").json();
    assert_eq!(ntfy["topic"], "home-alerts");
    assert_eq!(ntfy["priority"], 5, "critical is urgent");
    assert!(
        ntfy["title"]
            .as_str()
            .unwrap()
            .contains("Freezer in garage at -2 °C"),
        "{ntfy}"
    );
    assert_eq!(at("/ntfy").header("authorization"), Some("Bearer tk_ntfy"));
    let gotify = at("/gotify").json();
    assert_eq!(at("/gotify").header("x-gotify-key"), Some("AgotifyToken"));
    assert!(
        gotify["message"].as_str().unwrap().contains("desde hace"),
        "{gotify}"
    );
    let matrix = at("/matrix");
    assert_eq!(matrix.method, "PUT");
    assert!(
        matrix
            .path
            .contains("/rooms/!casa:matrix.home.lan/send/m.room.message/")
    );
    assert!(
        matrix.json()["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<b>")
    );
    let pushover = at("/pushover");
    assert_eq!(pushover.form("priority").as_deref(), Some("2"));
    assert_eq!(pushover.form("retry").as_deref(), Some("60"));

    // Discord comes back: its notification arrives, the failures were counted as retries.
    service.answer("/discord", Answer::status(204));
    service
        .wait_until("Discord's post", |requests| {
            requests
                .iter()
                .any(|r| r.path.starts_with("/discord") && r.status == 204)
        })
        .await;
    atalaya
        .wait_for_metric("atalaya_outbox_depth", "", |depth| depth == 0.0)
        .await;
    let metrics = atalaya.metrics().await;
    for kind in ["ntfy", "gotify", "matrix", "discord", "pushover"] {
        let labels = format!(r#"{{integration="{kind}",receiver="family"}}"#);
        assert_eq!(
            sample(&metrics, "atalaya_notifications_sent_total", &labels),
            Some(1.0),
            "{kind}: {metrics}"
        );
    }
    assert!(
        sample(
            &metrics,
            "atalaya_notifications_retried_total",
            r#"{integration="discord",receiver="family"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
}

/// An emergency acknowledged in the Pushover app silences its alert in atalaya for the
/// integration's `silence_on_ack`, created by the device that acknowledged it.
#[tokio::test]
async fn an_emergency_acknowledged_in_pushover_silences_its_alert() {
    let service = Recorder::start().await;
    let url = service.url();
    service.answer(
        "/1/messages.json",
        Answer::json(200, &serde_json::json!({"status": 1, "receipt": "rcpt1"})),
    );
    service.answer(
        "/1/receipts/rcpt1.json",
        Answer::json(
            200,
            &serde_json::json!({
                "status": 1, "acknowledged": 1, "acknowledged_by_device": "ana-phone",
                "expired": 0
            }),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pushover-user"),
        "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pushover-token"),
        "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("routing.yaml"),
        format!(
            "route: {{receiver: admin, group_by: [alertname], group_wait: 0s}}\n\
             receivers:\n  - name: admin\n    pushover_configs:\n      - api_url: {url}\n        \
             user_key_file: pushover-user\n        token_file: pushover-token\n        \
             silence_on_ack: 2h\n        receipt_poll_interval: 1s\n"
        ),
    )
    .unwrap();
    let options = Options {
        config: format!(
            "routing:\n  file: {}\n",
            dir.path().join("routing.yaml").display()
        ),
        rules: vec![("freezer.yaml", RULE.to_owned())],
        ..Options::default()
    };
    let atalaya = Atalaya::start_in(dir, options).await;
    let client = reqwest::Client::new();
    client
        .post(atalaya.url("/api/v1/events/home/garage/freezer"))
        .body("-2")
        .send()
        .await
        .unwrap();
    atalaya
        .wait_for_logs(&["Alert acknowledged; silenced.", "pushover:ana-phone"], 1)
        .await;
    let silences: serde_json::Value = client
        .get(atalaya.url("/api/v1/silences"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let [silence] = silences.as_array().unwrap().as_slice() else {
        panic!("one silence: {silences}");
    };
    assert_eq!(silence["createdBy"], "pushover:ana-phone", "{silence}");
    assert_eq!(silence["comment"], "acknowledged in Pushover");
    let matchers = silence["matchers"].to_string();
    assert!(
        matchers.contains("freezer_warm") && matchers.contains("garage"),
        "{matchers}"
    );
    let alerts = client
        .get(atalaya.url("/api/v1/alerts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(alerts.contains("suppressed"), "{alerts}");
}
