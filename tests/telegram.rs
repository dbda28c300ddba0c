//! Telegram in the running service, against the Bot API stand-in: an alert from
//! Prometheus reaches the chat and its resolve edits the message; the bot token stays out
//! of the logs and `/metrics`. And (ignored, run by hand) the latency from an alert reaching
//! the router to the message reaching the Bot API.

mod support;

use std::path::Path;
use std::time::Duration;

use atalaya_test_kit::telegram::BotApi;
use reqwest::StatusCode;
use serde_json::json;
use support::{Atalaya, Options, PATIENCE};
use tokio::time::Instant;

const TOKEN: &str = "123456:FAKE-token-e2e-abcdefghijklmnop";

/// A policy sending every alert to the stand-in's chat 42, one group per alert.
fn options(dir: &Path, api: &BotApi, group_wait: &str) -> Options {
    std::fs::write(dir.join("bot-token"), format!("{TOKEN}\n")).unwrap();
    let policy = format!(
        r#"route:
  receiver: family
  group_by: ['...']
  group_wait: {group_wait}
  group_interval: 1s
receivers:
  - name: family
    telegram_configs:
      - bot_token_file: bot-token
        chat_id: 42
        api_url: {url}
"#,
        url = api.url()
    );
    std::fs::write(dir.join("routing.yaml"), policy).unwrap();
    Options {
        config: format!(
            "routing:\n  file: {}\noutbox:\n  initial_backoff: 100ms\n  max_backoff: 1s\n",
            dir.join("routing.yaml").display()
        ),
        ..Options::default()
    }
}

async fn post(atalaya: &Atalaya, alerts: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(atalaya.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Waits until the stand-in has `n` requests to chat 42.
async fn wait_for(api: &BotApi, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while api.to_chat("42").len() < n {
        assert!(Instant::now() < deadline, "{:?}", api.recorded());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_alert_reaches_the_chat_and_its_resolve_edits_the_message() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &api, "0s");
    let atalaya = Atalaya::start_in(dir, opts).await;
    let alert = |ends: Option<&str>| {
        let mut alert = json!({
            "labels": {"alertname": "FreezerWarm", "room": "kitchen", "severity": "critical"},
            "annotations": {"summary": "Freezer at -2 °C & rising"},
            "startsAt": "2026-01-10T10:00:00Z",
        });
        if let Some(ends) = ends {
            alert["endsAt"] = json!(ends);
        }
        json!([alert])
    };
    post(&atalaya, alert(None)).await;
    wait_for(&api, 1).await;
    post(&atalaya, alert(Some("2026-01-10T10:20:00Z"))).await;
    wait_for(&api, 2).await;

    let messages = api.to_chat("42");
    assert_eq!(messages[0].method, "sendMessage");
    assert!(
        messages[0]
            .text
            .starts_with("🔴 <b>Freezer at -2 °C &amp; rising</b>\n📍 kitchen\n🕐 for "),
        "{}",
        messages[0].text
    );
    assert_eq!(messages[1].method, "editMessageText");
    assert_eq!(messages[1].message_id, messages[0].message_id);
    assert!(
        messages[1]
            .text
            .starts_with("✅ <b>Freezer at -2 °C &amp; rising</b> · resolved"),
        "{}",
        messages[1].text
    );

    let metrics = atalaya
        .wait_for_metric(
            "atalaya_notifications_sent_total",
            r#"{integration="telegram",receiver="family"}"#,
            |sent| sent == 2.0,
        )
        .await;
    assert!(!metrics.contains("FAKE-token"));
    assert!(!atalaya.logs().contains("FAKE-token"));

    // The alert's history names the message sent (and `atalaya explain` shows it).
    let history = atalaya
        .get_json("/api/v1/history?alertname=FreezerWarm")
        .await;
    let sent: Vec<&serde_json::Value> = history[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt" && e["outcome"] == "sent")
        .collect();
    assert_eq!(sent.len(), 2, "{history:#}");
    assert_eq!(
        sent[0]["messages"],
        json!([{"chat": "42", "part": 0, "message_id": messages[0].message_id}]),
        "{history:#}"
    );
    // The resolve edited that message: its delivery names it too.
    assert_eq!(sent[1]["messages"], sent[0]["messages"], "{history:#}");
}

/// The time from an alert posted to the router (`POST /api/v2/alerts`) to its message
/// reaching the Bot API, over a run: median and p99. Run by hand:
/// `ATALAYA_LATENCY_GROUP_WAIT=1s cargo nextest run -p atalaya --test telegram
/// latency --run-ignored only --no-capture`.
#[tokio::test]
#[ignore = "a measurement taking about a minute; see docs/benchmarks.md"]
async fn latency_from_alert_to_bot_api() {
    let group_wait =
        std::env::var("ATALAYA_LATENCY_GROUP_WAIT").unwrap_or_else(|_| "1s".to_owned());
    let count: usize = std::env::var("ATALAYA_LATENCY_ALERTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &api, &group_wait);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let posted = Instant::now();
        post(
            &atalaya,
            json!([{
                "labels": {"alertname": format!("Latency{i:03}"), "severity": "warning"},
                "annotations": {"summary": format!("latency probe {i:03}")},
            }]),
        )
        .await;
        wait_for(&api, i + 1).await;
        let message = &api.to_chat("42")[i];
        assert!(message.text.contains(&format!("latency probe {i:03}")));
        latencies.push(message.at - posted);
        // Past the chat's one-message-a-second limit, so the limit adds no wait.
        let next = posted + Duration::from_millis(1100);
        tokio::time::sleep_until(next).await;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "telegram latency over {count} alerts, group_wait {group_wait}: median {:?}, p99 {:?}, \
         min {:?}, max {:?}",
        at(0.5),
        at(0.99),
        latencies[0],
        latencies[latencies.len() - 1]
    );
}

/// What the household's phone shows for the example pack, end to end: a zigbee2mqtt leak
/// sensor's whole payload and an OOM kill, through the rules, the router and the Telegram
/// receiver. A one-shot alert says when it happened, not "for" the group wait; the payload's
/// fields stay out of the message; a count is a whole number.
#[tokio::test]
async fn the_example_pack_reads_well_on_a_phone() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), &api, "1s");
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rules");
    opts.rules = ["home.yaml", "pods.yaml"]
        .iter()
        .map(|file| (*file, std::fs::read_to_string(pack.join(file)).unwrap()))
        .collect();
    let atalaya = Atalaya::start_in(dir, opts).await;
    let client = reqwest::Client::new();
    let day = || jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let first_day = day();
    for (subject, body) in [
        (
            "zigbee2mqtt/leak_kitchen",
            r#"{"water_leak": true, "battery": 97, "battery_low": false, "linkquality": 120, "tamper": false, "voltage": 3000}"#,
        ),
        (
            "k8s/pod/home/mosquitto-0/broker/OOMKilled",
            r#"{"reason": "OOMKilled"}"#,
        ),
    ] {
        let response = client
            .post(atalaya.url(&format!("/api/v1/events/{subject}")))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    wait_for(&api, 2).await;
    let texts: Vec<String> = api.to_chat("42").into_iter().map(|r| r.text).collect();
    let leak = texts
        .iter()
        .find(|t| t.contains("Water leak at leak_kitchen!"))
        .unwrap_or_else(|| panic!("{texts:?}"));
    assert!(
        [first_day, day()]
            .iter()
            .any(|d| leak.contains(&format!("🕐 {d} "))),
        "{leak}"
    );
    assert!(
        !leak.contains("for 1s") && !leak.contains("🕐 for"),
        "{leak}"
    );
    for field in ["battery", "linkquality", "voltage", "{"] {
        assert!(
            !leak.contains(field),
            "the payload leaked into the message: {leak}"
        );
    }
    let oom = texts
        .iter()
        .find(|t| t.contains("OOM-killed"))
        .unwrap_or_else(|| panic!("{texts:?}"));
    assert!(oom.contains("was OOM-killed once in 30 minutes"), "{oom}");
}
