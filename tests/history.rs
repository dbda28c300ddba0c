//! Why did it fire, and what was sent: an alert's history over HTTP and in `atalaya
//! explain` (state changes with their values, the notifications that held it, each delivery
//! attempt, its silence), `atalaya notifications --failed`, and a dead letter retried once
//! the receiver is fixed — against the real binary and a real HTTP receiver.

mod support;

use atalaya_test_kit::http::{Answer, Recorder};
use serde_json::{Value, json};
use support::{Atalaya, Options, PATIENCE};

const RULE: &str = "rules:
  - name: kitchen_hot
    subject: home/+room/temperature
    condition: value > 70
    annotations:
      summary: \"{{ labels.room }} at {{ value }}\"
";

/// Runs `atalaya ARGS --url …` against `atalaya`; (success, stdout + stderr).
async fn cli(atalaya: &Atalaya, args: &[&str]) -> (bool, String) {
    let output = support::command(atalaya.dir.path())
        .args(args)
        .args(["--url", &atalaya.url("")])
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Polls `path` until `done` holds on its JSON.
async fn json_until(atalaya: &Atalaya, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let response = reqwest::get(atalaya.url(path)).await.unwrap();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never so: {body:#}\n{}",
            atalaya.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn kinds(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| match e["kind"].as_str().unwrap_or_default() {
            "state" => format!("state {}", e["state"].as_str().unwrap_or_default()),
            "attempt" => format!(
                "attempt {} {}",
                e["integration"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default()
            ),
            other => other.to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn an_alert_s_history_says_what_happened_and_a_dead_letter_is_retried() {
    let hook = Recorder::start().await;
    // The webhook refuses (a permanent failure): its notifications become dead letters.
    hook.answer("/", Answer::status(400));
    let routing = format!(
        "route:\n  receiver: home\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: home\n    console_configs: [{{}}]\n    webhook_configs:\n      - url: {}/hook\n        send_resolved: false\n",
        hook.url()
    );
    let atalaya = Atalaya::start_with(Options {
        rules: vec![("kitchen.yaml", RULE.to_owned())],
        routing: Some(routing),
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let send = |value: f64| {
        let request = client
            .post(atalaya.url("/api/v1/events/home/kitchen/temperature"))
            .body(value.to_string());
        async move { assert!(request.send().await.unwrap().status().is_success()) }
    };

    send(80.0).await;
    let alerts = json_until(&atalaya, "/api/v1/alerts", |a| {
        a[0]["status"]["state"] == "active"
    })
    .await;
    let fingerprint = alerts[0]["fingerprint"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/alerts/{fingerprint}/history");
    // Told (and refused by the webhook) before it is silenced.
    json_until(&atalaya, &path, |h| {
        kinds(h).contains(&"attempt webhook dead_letter".to_owned())
    })
    .await;
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "kitchen_hot", "isRegex": false}],
        "endsAt": "2099-01-01T00:00:00Z", "createdBy": "Ana", "comment": "opening the window",
    });
    let response = client
        .post(atalaya.url("/api/v1/silences"))
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    send(60.0).await;

    let path = format!("/api/v1/alerts/{fingerprint}/history");
    let entries = json_until(&atalaya, &path, |h| {
        let k = kinds(h);
        k.contains(&"state resolved".to_owned())
            && k.contains(&"attempt webhook dead_letter".to_owned())
    })
    .await;
    let k = kinds(&entries);
    for expected in [
        "state firing",
        "routed",
        "notified",
        "attempt console sent",
        "attempt webhook dead_letter",
        "silenced",
        "state resolved",
    ] {
        assert!(k.iter().any(|x| x == expected), "{expected} not in {k:?}");
    }
    let firing = &entries.as_array().unwrap()[0];
    assert_eq!(
        firing["value"], 80.0,
        "the value that caused it: {firing:#}"
    );
    assert_eq!(firing["labels"]["room"], "kitchen");
    assert!(firing["rule_hash"].is_string());

    // `atalaya explain`, by name and label, tells it as a person reads it.
    let (ok, text) = cli(&atalaya, &["explain", "kitchen_hot", "room=kitchen"]).await;
    assert!(ok, "{text}");
    for needle in [
        "kitchen_hot {room=\"kitchen\"",
        "firing (value 80)",
        "to home",
        "in a notification to home #0 as firing",
        "sent: home (console), attempt 1",
        "given up (dead letter): home (webhook)",
        "silenced by Ana",
        "opening the window",
        "resolved (value 60)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // And why the rule does not fire now.
    let (ok, text) = cli(&atalaya, &["explain", "--rule", "kitchen_hot"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("kitchen_hot (") && text.contains("1 series of at most"),
        "{text}"
    );
    assert!(
        text.contains("{room=\"kitchen\"}  condition false when last evaluated"),
        "{text}"
    );
    let (ok, text) = cli(&atalaya, &["explain", "--rule", "nope"]).await;
    assert!(!ok && text.contains("no rule named nope"), "{text}");
    let (ok, text) = cli(&atalaya, &["explain", "0123456789abcdef"]).await;
    assert!(!ok && text.contains("no history"), "{text}");

    // What failed, and the dead letter queued again once the receiver is fixed.
    let (ok, text) = cli(&atalaya, &["notifications", "--failed"]).await;
    assert!(
        ok && text.contains("dead_letter") && text.contains("home/webhook"),
        "{text}"
    );
    let letters = json_until(&atalaya, "/api/v1/dead-letters", |l| {
        l.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    let id = letters[0]["id"].as_str().unwrap().to_owned();
    let (ok, text) = cli(&atalaya, &["dead-letters", "list"]).await;
    assert!(ok && text.contains(&id), "{text}");
    hook.answer("/", Answer::status(200));
    let (ok, text) = cli(&atalaya, &["dead-letters", "retry", &id]).await;
    assert!(ok, "{text}");
    hook.wait_until("the retried notification", |r| {
        r.iter().any(|r| r.status == 200)
    })
    .await;
    json_until(&atalaya, "/api/v1/dead-letters", |l| l == &json!([])).await;
    let (ok, text) = cli(&atalaya, &["dead-letters", "drop", &id]).await;
    assert!(!ok && text.contains("no dead letter"), "{text}");
}

#[tokio::test]
async fn tail_prints_live_events_with_the_rules_that_took_them() {
    use tokio::io::AsyncBufReadExt;

    let atalaya = Atalaya::start_with(Options {
        rules: vec![("kitchen.yaml", RULE.to_owned())],
        routing: Some(support::CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    })
    .await;
    let mut tail = support::command(atalaya.dir.path())
        .args(["tail", "home/#", "--rules", "--url", &atalaya.url("")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    let client = reqwest::Client::new();
    let send = |subject: &str, value: f64| {
        let request = client
            .post(atalaya.url(&format!("/api/v1/events/{subject}")))
            .body(value.to_string());
        async move { assert!(request.send().await.unwrap().status().is_success()) }
    };
    // Until tail is listening, events pass unseen: send until one shows.
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            send("other/noise", 1.0).await;
            send("home/hall/temperature", 20.0).await;
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(std::time::Duration::from_millis(200), lines.next_line()).await
            {
                return line;
            }
        }
    })
    .await
    .expect("tail never printed an event");
    assert_eq!(
        first, "home/hall/temperature 20",
        "the pattern keeps other/noise out"
    );
    send("home/kitchen/temperature", 80.0).await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen
        .iter()
        .any(|l: &String| l.contains("kitchen_hot → firing"))
    {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("no firing line")
            .unwrap()
            .unwrap();
        assert!(!line.starts_with("other/"), "{line}");
        seen.push(line);
    }
    let at = seen
        .iter()
        .position(|l| l == "home/kitchen/temperature 80")
        .unwrap();
    assert_eq!(
        seen[at + 1],
        "    rules: kitchen_hot; kitchen_hot → firing",
        "{seen:#?}"
    );
    tail.kill().await.unwrap();
}
