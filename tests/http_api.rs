//! End to end through the real binary: events posted over HTTP travel the bus, come out of
//! the console receiver, and show in /metrics; bad input is rejected whole and counted.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Atalaya, Options, StdoutMode, http_errors, published, sample};

async fn post(
    client: &reqwest::Client,
    url: String,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let response = client.post(url).body(body).send().await.expect("POST");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_posted_event_reaches_the_console_and_the_metrics() {
    let mut atalaya = Atalaya::start().await;
    let client = reqwest::Client::new();
    let event = json!({
        "specversion": "1.0", "id": "e-1", "source": "/esp32/kitchen", "type": "sensor.reading",
        "subject": "home/kitchen/temperature", "data": 21.5, "labels": {"room": "kitchen"}
    });
    let (status, body) = post(&client, atalaya.url("/api/v1/events"), event.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 1, "ids": ["e-1"], "durable": false})
    );

    let line = atalaya.console_line().await;
    assert!(
        line.contains("home/kitchen/temperature 21.5 room=kitchen (/esp32/kitchen sensor.reading)"),
        "{line}"
    );

    let metrics = atalaya.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "atalaya_connector_received_total",
            r#"{connector="http"}"#
        ),
        Some(1.0)
    );
    assert_eq!(published(&metrics), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            "atalaya_bus_events_delivered_total",
            r#"{consumer="console"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "atalaya_bus_queue_depth",
            r#"{consumer="console"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_batch_is_accepted_whole_and_in_order() {
    let mut atalaya = Atalaya::start().await;
    let batch = json!([
        {"subject": "zigbee2mqtt/door_front", "data": {"contact": false}},
        {"subject": "zigbee2mqtt/door_back", "data": {"contact": true}},
        {"subject": "k8s/node/pi-3/ready", "data": "False", "node": "pi-3"}
    ]);
    let (status, body) = post(
        &reqwest::Client::new(),
        atalaya.url("/api/v1/events"),
        batch.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 3);
    assert!(
        atalaya
            .console_line()
            .await
            .contains("zigbee2mqtt/door_front {\"contact\":false}")
    );
    assert!(
        atalaya
            .console_line()
            .await
            .contains("zigbee2mqtt/door_back")
    );
    assert!(
        atalaya
            .console_line()
            .await
            .contains("k8s/node/pi-3/ready False node=pi-3")
    );
}

#[tokio::test]
async fn plain_json_to_a_subject_path_with_labels_from_the_query() {
    let mut atalaya = Atalaya::start().await;
    let client = reqwest::Client::new();
    let (status, _) = post(
        &client,
        atalaya.url("/api/v1/events/home/garage/power?device=washer"),
        "1520.5",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let line = atalaya.console_line().await;
    assert!(
        line.contains("home/garage/power 1520.5 device=washer (/atalaya/http atalaya.event)"),
        "{line}"
    );

    // An empty body is a null payload; a bad subject or bad JSON is rejected.
    let (status, _) = post(&client, atalaya.url("/api/v1/events/home/door/bell"), "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(atalaya.console_line().await.contains("home/door/bell null"));
    let (status, body) = post(&client, atalaya.url("/api/v1/events/home/%2B/x"), "1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("wildcard"),
        "{body}"
    );
    let (status, body) = post(
        &client,
        atalaya.url("/api/v1/events/home/x"),
        "{\"on\": tru}",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(1), Some(11)),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_input_is_rejected_whole_and_counted() {
    let mut atalaya = Atalaya::start().await;
    let client = reqwest::Client::new();

    let (status, body) = post(
        &client,
        atalaya.url("/api/v1/events"),
        "{\n  \"subject\": \"a/b\",\n  \"data\": [1, 2,\n}",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("invalid JSON: "), "{error}");
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(4), Some(1)),
        "{body}"
    );

    // One bad event rejects the batch: the good one before it is not published either.
    let (status, body) = post(
        &client,
        atalaya.url("/api/v1/events"),
        r#"[{"subject":"ok/1"},{"data":5}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("/1/subject: missing"),
        "{body}"
    );

    let (status, body) = post(
        &client,
        atalaya.url("/api/v1/events"),
        r#"{"subject":"a","time":"noon"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("/time: `noon` is not an RFC 3339 time"),
        "{body}"
    );

    // The service kept working, and only this event was published.
    let (status, _) = post(
        &client,
        atalaya.url("/api/v1/events"),
        r#"{"subject":"after/garbage"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(atalaya.console_line().await.contains("after/garbage"));
    let metrics = atalaya.metrics().await;
    assert_eq!(http_errors(&metrics, "decode"), Some(3.0));
    assert_eq!(published(&metrics), Some(1.0));
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let atalaya = Atalaya::start_with(Options {
        config: "http:\n  max_body_bytes: 1024\n".into(),
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let big = json!({"subject": "a/b", "data": "x".repeat(2000)}).to_string();
    let (status, body) = post(&client, atalaya.url("/api/v1/events"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body["error"],
        "request body is larger than http.max_body_bytes"
    );
    // Without a Content-Length (chunked), the limit holds too.
    let chunk = "{\"subject\":\"a\"},".repeat(100);
    assert_eq!(
        post_chunked(&atalaya, &["[", &chunk, "{\"subject\":\"a\"}]"]).await,
        413
    );
    let metrics = atalaya.metrics().await;
    assert_eq!(http_errors(&metrics, "read"), Some(2.0));
    assert_eq!(published(&metrics), Some(0.0));
}

/// Posts `chunks` with `Transfer-Encoding: chunked` over a raw connection; returns the status.
async fn post_chunked(atalaya: &Atalaya, chunks: &[&str]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(atalaya.addr).await.unwrap();
    let mut request = String::from(
        "POST /api/v1/events HTTP/1.1\r\nHost: atalaya\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for chunk in chunks {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().expect("a status code")
}

#[tokio::test]
async fn the_bearer_token_guards_the_api_but_not_the_probes() {
    const TOKEN: &str = "fake-token-7f3a9c";
    let mut atalaya = Atalaya::start_with(Options {
        env: vec![("ATALAYA__HTTP__TOKEN".into(), TOKEN.into())],
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let event = r#"{"subject":"secure/x"}"#;
    let missing = client
        .post(atalaya.url("/api/v1/events"))
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let wrong = client
        .post(atalaya.url("/api/v1/events"))
        .bearer_auth("fake-token-7f3a9d")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client
        .post(atalaya.url("/api/v1/events"))
        .bearer_auth(TOKEN)
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::ACCEPTED);
    assert!(atalaya.console_line().await.contains("secure/x"));

    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            client
                .get(atalaya.url(probe))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK,
            "{probe}"
        );
    }
    let metrics = atalaya.metrics().await;
    assert_eq!(http_errors(&metrics, "auth"), Some(2.0));
    assert!(!metrics.contains(TOKEN));
    atalaya.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(atalaya.wait().await.success());
    assert!(
        !atalaya.logs().contains(TOKEN),
        "the token leaked into the logs"
    );
}

#[tokio::test]
async fn probes_report_health_and_readiness() {
    let atalaya = Atalaya::start().await;
    let client = reqwest::Client::new();
    let health = client.get(atalaya.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = client.get(atalaya.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(
        body["components"],
        json!({"bus": true, "console": true, "http": true, "rules": true})
    );
    let missing = client.get(atalaya.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_console_events_off_the_console_takes_nothing_from_the_bus() {
    let atalaya = Atalaya::start_with(Options {
        config: "receivers:\n  console:\n    events: false\n".into(),
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let event = json!({"subject": "home/kitchen/temperature", "data": 21.5});
    let (status, body) = post(&client, atalaya.url("/api/v1/events"), event.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        atalaya.get_json("/readyz").await["components"],
        json!({"bus": true, "http": true, "rules": true})
    );
    let metrics = atalaya.metrics().await;
    assert_eq!(published(&metrics), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            "atalaya_bus_events_delivered_total",
            r#"{consumer="console"}"#
        ),
        None
    );
    assert!(sample(&metrics, "atalaya_bus_queue_depth", r#"{consumer="rules"}"#).is_some());
}

#[tokio::test]
async fn promtool_accepts_the_metrics() {
    let atalaya = Atalaya::start().await;
    let client = reqwest::Client::new();
    // Exercise the labelled families first so every kind of sample is in the output.
    post(
        &client,
        atalaya.url("/api/v1/events"),
        r#"{"subject":"a/b","data":1}"#,
    )
    .await;
    post(&client, atalaya.url("/api/v1/events"), "garbage").await;
    let metrics = atalaya.metrics().await;
    assert!(metrics.contains("atalaya_build_info{version="), "{metrics}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is on PATH (scripts/test installs Debian's `prometheus` package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_flood_meets_backpressure_not_unbounded_memory() {
    // Nobody reads the console's stdout: once the pipe is full the console blocks, its bus
    // queue fills, and ingest answers 503 instead of queueing more.
    let atalaya = Atalaya::start_with(Options {
        config: "bus:\n  capacity: 8\nhttp:\n  publish_timeout: 200ms\n".into(),
        stdout: StdoutMode::Unread,
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let batch = serde_json::to_string(
        &(0..8)
            .map(|i| json!({"subject": "flood/x", "data": "y".repeat(400), "n": i}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..200 {
        let (status, body) = post(&client, atalaya.url("/api/v1/events"), batch.clone()).await;
        match status {
            StatusCode::ACCEPTED => accepted += 8,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some(body);
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let body = refused.expect("the flood is refused once the bus is full");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the bus stayed full"),
        "{body}"
    );
    let metrics = atalaya.metrics().await;
    let depth = sample(
        &metrics,
        "atalaya_bus_queue_depth",
        r#"{consumer="console"}"#,
    )
    .unwrap();
    assert!(depth <= 8.0, "queue depth {depth} exceeds the capacity");
    assert_eq!(published(&metrics), Some(accepted as f64));
    assert!(http_errors(&metrics, "publish").unwrap() >= 1.0);
    // A batch larger than the bus can ever hold is 413, not a wait.
    let huge = serde_json::to_string(&(0..9).map(|_| json!({"subject": "x"})).collect::<Vec<_>>())
        .unwrap();
    let (status, _) = post(&client, atalaya.url("/api/v1/events"), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn events_posted_with_wait_durable_survive_a_sigkill_right_after_the_answer() {
    // A window count is a minor change, written within 30 s unless a publisher waits for
    // durability: a kill right after a plain 202 loses it, after `wait=durable` never.
    let rule = "rules:\n  - name: door_busy\n    subject: door/+name\n    window:\n      duration: 1h\n      aggregate: count\n    condition: value >= 3\n";
    let mut atalaya = Atalaya::start_with(Options {
        rules: vec![("door.yaml", rule.to_owned())],
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let response = client
        .post(atalaya.url("/api/v1/events?wait=durable"))
        .json(&json!([{"subject": "door/front", "data": 1}, {"subject": "door/front", "data": 1}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["durable"], true);
    let response = client
        .post(atalaya.url("/api/v1/events/door/back?wait=durable"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    atalaya.signal(nix::sys::signal::Signal::SIGKILL);
    atalaya.wait().await;

    let dir = std::mem::replace(&mut atalaya.dir, tempfile::tempdir().unwrap());
    let atalaya = Atalaya::start_in(
        dir,
        Options {
            rules: vec![("door.yaml", rule.to_owned())],
            ..Options::default()
        },
    )
    .await;
    // The third event fires the count: the first two were on disk.
    let response = client
        .post(atalaya.url("/api/v1/events/door/front"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    atalaya
        .wait_for_metric("atalaya_alerts", r#"{state="firing"}"#, |n| n == 1.0)
        .await;
    // `wait` is not a label, and takes only `durable`.
    let response = client
        .post(atalaya.url("/api/v1/events/door/back?wait=soon"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
