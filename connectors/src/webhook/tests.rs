//! The sender against a real HTTP server on loopback.

use std::time::Duration;

use super::WebhookConfig;
use atalaya_bus::Labels;
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
use atalaya_test_kit::http::{Answer, Recorder};

use super::*;

const TOKEN: &str = "s3cr3t-t0ken";

/// A server on a free loopback port: `/hook/<token>` accepts, `/busy` answers 503 with
/// `Retry-After: 7`, `/refuse` 400, `/slow` takes 5 s.
async fn server() -> Recorder {
    let server = Recorder::start().await;
    server.answer("/busy", Answer::status(503).with_header("retry-after", "7"));
    server.answer("/refuse", Answer::status(400));
    server.answer("/slow", Answer::status(200).after(Duration::from_secs(5)));
    server
}

fn config(url: String) -> WebhookConfig {
    WebhookConfig {
        url: Some(url),
        url_file: None,
        max_alerts: 0,
        timeout: Duration::from_secs(5),
    }
}

fn notification() -> Notification {
    let labels = Labels::from([("alertname".to_owned(), "node_lost".to_owned())]);
    Notification {
        id: "01JNOTIFICATION".into(),
        receiver: "home".into(),
        integration: 0,
        group_key: "{}:{alertname=\"node_lost\"}".into(),
        status: Status::Firing,
        group_labels: labels.clone(),
        common_labels: labels.clone(),
        common_annotations: Default::default(),
        alerts: vec![NotifiedAlert {
            instant: false,
            status: Status::Firing,
            fingerprint: "00000000000000aa".into(),
            labels,
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            ends_at: None,
            value: serde_json::json!(1),
            generator_url: None,
        }],
        created_at: "2026-01-01T00:00:30Z".parse().unwrap(),
        silent: false,
    }
}

fn sender() -> WebhookSender {
    WebhookSender::new(default_client().unwrap())
}

#[tokio::test]
async fn posts_alertmanager_json_with_the_notification_id() {
    let server = server().await;
    let config = config(format!("{}/hook/{TOKEN}", server.url()));
    sender()
        .send(&config, &notification(), "http://atalaya.lan")
        .await
        .unwrap();
    let [request] = server.requests().try_into().unwrap();
    let body = request.json();
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some("01JNOTIFICATION"));
    assert_eq!(
        request.header("x-atalaya-notification-id"),
        Some("01JNOTIFICATION")
    );
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "home");
    assert_eq!(body["externalURL"], "http://atalaya.lan");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "node_lost");
}

#[tokio::test]
async fn the_url_file_is_read_and_trimmed_at_send_time() {
    let server = server().await;
    let base = server.url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    let mut config = config(String::new());
    config.url = None;
    config.url_file = Some(path.clone());

    let missing = sender()
        .send(&config, &notification(), "")
        .await
        .unwrap_err();
    assert!(missing.retryable(), "a secret may be mounted later");
    assert_eq!(missing.kind(), "url_file");

    std::fs::write(&path, format!("  {base}/hook/{TOKEN}\n")).unwrap();
    sender().send(&config, &notification(), "").await.unwrap();
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn unavailable_is_retried_after_the_servers_wish_and_bad_request_is_not() {
    let base = server().await.url();
    let busy = sender()
        .send(&config(format!("{base}/busy")), &notification(), "")
        .await
        .unwrap_err();
    assert!(busy.retryable());
    assert_eq!(busy.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(busy.kind(), "http_5xx");

    let refused = sender()
        .send(&config(format!("{base}/refuse")), &notification(), "")
        .await
        .unwrap_err();
    assert!(!refused.retryable());
    assert_eq!(refused.kind(), "http_4xx");
    assert_eq!(
        refused.to_string(),
        "the webhook answered HTTP 400 Bad Request"
    );
}

#[tokio::test]
async fn a_slow_webhook_times_out_and_is_retryable() {
    let base = server().await.url();
    let mut config = config(format!("{base}/slow"));
    config.timeout = Duration::from_millis(100);
    let error = sender()
        .send(&config, &notification(), "")
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Timeout { .. }), "{error:?}");
    assert!(error.retryable());
}

#[tokio::test]
async fn errors_never_show_the_url() {
    // A port nobody listens on.
    let address = format!("127.0.0.1:{}", atalaya_test_kit::free_port());
    let refused = sender()
        .send(
            &config(format!("http://{address}/hook/{TOKEN}")),
            &notification(),
            "",
        )
        .await
        .unwrap_err();
    assert!(refused.retryable());
    assert_eq!(refused.kind(), "connect");
    for text in [refused.to_string(), format!("{refused:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }

    let invalid = sender()
        .send(
            &config(format!("http//{TOKEN}@nowhere")),
            &notification(),
            "",
        )
        .await
        .unwrap_err();
    assert!(!invalid.retryable());
    assert!(!invalid.to_string().contains(TOKEN), "{invalid}");
    let ftp = sender()
        .send(&config(format!("ftp://host/{TOKEN}")), &notification(), "")
        .await
        .unwrap_err();
    assert_eq!(ftp.kind(), "invalid_url");
    assert!(!ftp.to_string().contains(TOKEN), "{ftp}");
}
