//! The HTTP API under hostile or careless clients, with real sockets on loopback: idle and
//! header-dribbling connections are closed, slow bodies neither queue nor block other
//! requests, a connection flood is refused past the cap while the process stays reachable,
//! and a stalled rules runner shows in `/readyz`.
//!
//! Timeouts are configured short (1 s) so the tests run in seconds; every wait is bounded
//! by `PATIENCE`.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Atalaya, Options, PATIENCE, StdoutMode, http_errors};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(extra: &str) -> Options {
    options_with_request_timeout("1s", extra)
}

fn options_with_request_timeout(request_timeout: &str, extra: &str) -> Options {
    Options {
        config: format!(
            "http:\n  header_timeout: 1s\n  request_timeout: {request_timeout}\n  max_concurrent_requests: 2\n  max_connections: 8\n{extra}"
        ),
        ..Options::default()
    }
}

/// Reads until the peer closes the connection (within `PATIENCE`); what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection in time")
        .ok();
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn idle_and_dribbling_connections_are_closed() {
    let atalaya = Atalaya::start_with(options("")).await;
    let mut idle = TcpStream::connect(atalaya.addr).await.unwrap();
    let mut dribbling = TcpStream::connect(atalaya.addr).await.unwrap();
    dribbling
        .write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Both are closed after the header timeout, not held forever.
    read_to_close(&mut idle).await;
    let answer = read_to_close(&mut dribbling).await;
    assert!(answer.is_empty() || answer.contains("408"), "{answer}");
    // A keep-alive connection idle after a request is closed too.
    let mut kept = TcpStream::connect(atalaya.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn slow_bodies_are_cut_off_and_do_not_queue_other_requests() {
    // The slow requests hold both slots until the request timeout: long enough that a busy
    // machine still sees the third request refused inside that window.
    let atalaya = Atalaya::start_with(options_with_request_timeout("5s", "")).await;
    let client = reqwest::Client::new();
    // Two requests whose bodies never come take both request slots; a third is then refused
    // at once, not queued. On a loaded machine a pair may lose the race for the slots (their
    // time runs out before the third is tried): then another pair tries, within PATIENCE.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (response, mut slow) = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a third request was never refused while two slow bodies held the slots"
        );
        let mut slow = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(atalaya.addr).await.unwrap();
            stream
                .write_all(
                    b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                )
                .await
                .unwrap();
            slow.push(stream);
        }
        // Within the request timeout (5 s) of the pair.
        let window = tokio::time::Instant::now() + Duration::from_secs(4);
        let mut refused = None;
        while tokio::time::Instant::now() < window {
            let response = client
                .post(atalaya.url("/api/v1/events/home/x"))
                .body("1")
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                refused = Some(response);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(response) = refused {
            break (response, slow);
        }
    };
    assert_eq!(response.headers()["retry-after"], "1");
    // The probes are not behind the API's slots.
    let health = client.get(atalaya.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // The slow ones are answered 408 after the request timeout, and the slots are free.
    for stream in &mut slow {
        let answer = read_to_close(stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let response = client
        .post(atalaya.url("/api/v1/events/home/x"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let metrics = atalaya.metrics().await;
    assert!(http_errors(&metrics, "busy").unwrap() >= 1.0, "{metrics}");
    assert!(
        http_errors(&metrics, "timeout").unwrap() >= 2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_connection_flood_is_refused_past_the_cap_and_the_service_stays_reachable() {
    let atalaya = Atalaya::start_with(options("")).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(atalaya.addr).await.unwrap());
    }
    // The ninth is told why, and closed at once.
    let mut ninth = TcpStream::connect(atalaya.addr).await.unwrap();
    let answer = read_to_close(&mut ninth).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    // The held ones time out; the service answers again.
    for stream in &mut held {
        read_to_close(stream).await;
    }
    let health = reqwest::get(atalaya.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = atalaya.metrics().await;
    assert!(
        http_errors(&metrics, "connections").unwrap() >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stalled_bus_makes_the_service_not_ready() {
    // Nobody reads stdout: the console receiver blocks writing events, its bus queue fills,
    // and publishers wait — stalled, with events waiting.
    let atalaya = Atalaya::start_with(Options {
        config: "bus:\n  capacity: 64\nhttp:\n  publish_timeout: 100ms\n".into(),
        env: vec![("ATALAYA__RULES__STALL_TIMEOUT".into(), "1s".into())],
        stdout: StdoutMode::Unread,
        rules: vec![(
            "each.yaml",
            "rules:\n  - name: each\n    subject: stall/+n\n    condition: value > 0\n    max_series: 100000\n".into(),
        )],
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    let client = reqwest::Client::new();
    let not_ready = async {
        let mut n = 0;
        loop {
            let batch: Vec<Value> = (0..64)
                .map(|i| json!({"subject": format!("stall/s{n}-{i}"), "data": 1}))
                .collect();
            n += 1;
            let _ = client
                .post(atalaya.url("/api/v1/events"))
                .json(&batch)
                .send()
                .await;
            let ready = client.get(atalaya.url("/readyz")).send().await.unwrap();
            if ready.status() == StatusCode::SERVICE_UNAVAILABLE {
                return ready.json::<Value>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let body = tokio::time::timeout(PATIENCE, not_ready)
        .await
        .expect("/readyz reports the stalled runner");
    // Here the console's queue is the one full (its stdout blocks); a runner stuck on one
    // step turns `rules` off the same way.
    assert_eq!(body["components"]["bus"], false, "{body}");
    atalaya
        .wait_for_logs(&["A bus queue has stayed full", "console"], 1)
        .await;
}
