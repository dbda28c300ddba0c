//! Alertmanager's API v2 as its own clients use it: Debian's `amtool` runs the same commands
//! against a real Alertmanager and against atalaya, fed the same alerts and routing file,
//! and the answers must agree (times and generated ids aside).

mod support;

use std::path::Path;
use std::process::Command;

use atalaya_test_kit::alertmanager::Alertmanager;
use atalaya_test_kit::openapi::OpenApi;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Atalaya, Options};

const ROUTING: &str = r#"global:
  resolve_timeout: 10m
route:
  receiver: family
  group_by: [alertname]
  group_wait: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: phone
      continue: true
    - matchers: ['room=~"kitchen|hall"']
      receiver: house
      group_by: [room]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [host]
receivers:
  - name: family
  - name: phone
  - name: house
"#;

/// Runs amtool against `url`; its stdout, or a panic with its stderr.
fn amtool(url: &str, args: &[&str]) -> String {
    let out = amtool_output(url, args);
    assert!(
        out.status.success(),
        "amtool {args:?} against {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn amtool_output(url: &str, args: &[&str]) -> std::process::Output {
    Command::new("amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .expect("amtool (apt-get install -y prometheus-alertmanager; scripts/test does this)")
}

/// A JSON answer with what legitimately differs between two servers (times, silence ids)
/// taken out.
fn comparable(text: &str) -> Value {
    let mut value: Value = serde_json::from_str(text).expect("JSON from amtool");
    strip(&mut value);
    value
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in ["startsAt", "endsAt", "updatedAt", "id", "silencedBy"] {
                if let Some(v) = map.get_mut(key) {
                    *v = match v {
                        Value::Array(items) => json!(items.len()),
                        _ => json!("…"),
                    };
                }
            }
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

async fn start_both(dir: &Path) -> (Alertmanager, Atalaya) {
    let alertmanager = Alertmanager::start(ROUTING).await;
    let atalaya = Atalaya::start_with(Options {
        routing: Some(ROUTING.to_owned()),
        rules: vec![("temperature.yaml", TEMPERATURE_RULE.to_owned())],
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    let _ = dir;
    (alertmanager, atalaya)
}

/// A rule of atalaya's own, for alerts that do not come from Prometheus.
const TEMPERATURE_RULE: &str = r#"rules:
  - name: TooHot
    subject: home/+room/temperature
    condition: value > 25
"#;

const ALERTS: [&[&str]; 4] = [
    &[
        "alertname=DiskFull",
        "host=pi-1",
        "severity=warning",
        "--annotation=summary=Disk full on pi-1",
    ],
    &["alertname=NodeDown", "host=pi-1", "severity=critical"],
    &["alertname=Hot", "room=kitchen", "severity=warning"],
    &["alertname=Leak", "room=hall"],
];

/// `alert add`, `alert query` (with matchers and filters), `config routes show`,
/// `silence add/query/expire/import`: the same answers from both.
#[tokio::test]
async fn amtool_gets_the_same_answers_from_atalaya_as_from_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let (alertmanager, atalaya) = start_both(dir.path()).await;
    let urls = [alertmanager.url(""), format!("http://{}", atalaya.addr)];
    for url in &urls {
        for alert in ALERTS {
            let mut args = vec!["alert", "add"];
            args.extend_from_slice(alert);
            amtool(url, &args);
        }
    }

    let both =
        |args: &[&str]| -> (String, String) { (amtool(&urls[0], args), amtool(&urls[1], args)) };
    for query in [
        &["alert", "query", "-o", "json"][..],
        &["alert", "query", "-o", "json", "alertname=DiskFull"],
        &["alert", "query", "-o", "json", "room=~\"k.*\""],
        &["alert", "query", "-o", "json", "--inhibited"],
        &["alert", "query", "-o", "json", "--receiver=house"],
    ] {
        let (theirs, ours) = both(query);
        assert_eq!(comparable(&ours), comparable(&theirs), "amtool {query:?}");
    }
    // The inhibited warning shows as suppressed by the critical alert on the same host.
    let listed = comparable(&amtool(&urls[1], &["alert", "query", "-o", "json", "-i"]));
    let disk = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .expect("DiskFull listed");
    assert_eq!(disk["status"]["state"], "suppressed", "{listed}");

    let (theirs, ours) = both(&["config", "routes", "show"]);
    assert_eq!(ours, theirs);
    let (theirs, ours) = both(&["config", "routes", "test", "severity=critical", "room=hall"]);
    assert_eq!(ours, theirs);
    let shown = amtool(&urls[1], &["config", "show"]);
    assert!(shown.contains("receiver: family"), "{shown}");

    // Silences: add, query, expire.
    let mut ids = Vec::new();
    for url in &urls {
        let id = amtool(
            url,
            &[
                "silence",
                "add",
                "alertname=Hot",
                "-c",
                "cooking",
                "-a",
                "ana",
                "-d",
                "1h",
            ],
        );
        ids.push(id.trim().to_owned());
    }
    assert!(!ids[1].is_empty());
    let (theirs, ours) = both(&["silence", "query", "-o", "json"]);
    assert_eq!(comparable(&ours), comparable(&theirs));
    let (theirs, ours) = both(&["silence", "query", "-o", "json", "alertname=Hot"]);
    assert_eq!(comparable(&ours), comparable(&theirs));
    let (theirs, ours) = both(&["alert", "query", "-o", "json", "-s", "alertname=Hot"]);
    assert_eq!(comparable(&ours), comparable(&theirs));
    let exported = amtool(&urls[1], &["silence", "query", "-o", "json"]);
    for (url, id) in urls.iter().zip(&ids) {
        amtool(url, &["silence", "expire", id]);
    }
    let (theirs, ours) = both(&["silence", "query", "-o", "json", "--expired"]);
    assert_eq!(comparable(&ours), comparable(&theirs));

    // Import what was exported: an id the server does not know is created anew.
    let file = dir.path().join("silences.json");
    std::fs::write(&file, &exported).unwrap();
    let file = file.display().to_string();
    let (theirs, ours) = both(&["silence", "import", &file]);
    assert_eq!(ours.lines().count(), theirs.lines().count());
    let (theirs, ours) = both(&["silence", "query", "-o", "json"]);
    assert_eq!(comparable(&ours), comparable(&theirs));

    // Cluster status: atalaya is one ready peer.
    let cluster = amtool(&urls[1], &["cluster", "show"]);
    assert!(cluster.contains("ready"), "{cluster}");
}

/// Bad input gets Alertmanager's status code, and the message as a JSON string (what a Go
/// client decodes); nothing is half-created.
#[tokio::test]
async fn malformed_silences_are_refused_as_alertmanager_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let (alertmanager, atalaya) = start_both(dir.path()).await;
    let client = reqwest::Client::new();
    let now = jiff::Timestamp::now();
    let later = |minutes: i64| (now + jiff::SignedDuration::from_mins(minutes)).to_string();
    let silence = |matchers: Value, starts: String, ends: String| {
        json!({"matchers": matchers, "startsAt": starts, "endsAt": ends,
               "createdBy": "ana", "comment": "test"})
    };
    let hot = json!([{"name": "alertname", "value": "Hot", "isRegex": false, "isEqual": true}]);
    let mut no_start = silence(hot.clone(), later(0), later(60));
    no_start.as_object_mut().unwrap().remove("startsAt");
    let cases = [
        ("no matchers", silence(json!([]), later(0), later(60))),
        ("no startsAt", no_start),
        (
            "end before start",
            silence(hot.clone(), later(60), later(1)),
        ),
        (
            "bad regex",
            silence(
                json!([{"name": "room", "value": "(", "isRegex": true, "isEqual": true}]),
                later(0),
                later(60),
            ),
        ),
        (
            "end in the past",
            silence(hot.clone(), later(-60), later(-30)),
        ),
        (
            "matches everything",
            silence(
                json!([{"name": "room", "value": "", "isRegex": false, "isEqual": true}]),
                later(0),
                later(60),
            ),
        ),
    ];
    for (what, body) in &cases {
        let mut statuses = Vec::new();
        for base in [alertmanager.url(""), format!("http://{}", atalaya.addr)] {
            let response = client
                .post(format!("{base}/api/v2/silences"))
                .json(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            statuses.push(status);
            let answer: Value = response.json().await.expect("a JSON answer");
            // Schema failures are go-openapi's `{"code", "message"}`, the rest a string.
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                assert!(answer["message"].is_string(), "{what}: {answer}");
            } else {
                assert!(answer.is_string(), "{what}: {answer}");
            }
        }
        assert_eq!(statuses[1], statuses[0], "{what}");
        assert!(statuses[1].is_client_error(), "{what}");
    }
    // An unknown id: 404 from both, for a GET and a POST that names it. A DELETE is 404
    // from atalaya and from newer Alertmanager releases; 0.25 answers 500.
    let unknown = "0b7c7b5e-7d67-4f0c-9a55-2a4d0d6e7a11";
    for base in [alertmanager.url(""), format!("http://{}", atalaya.addr)] {
        let url = format!("{base}/api/v2/silence/{unknown}");
        assert_eq!(
            client.get(&url).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        let deleted = client.delete(&url).send().await.unwrap().status();
        if base.contains(&atalaya.addr.to_string()) {
            assert_eq!(deleted, StatusCode::NOT_FOUND);
        } else {
            assert!(!deleted.is_success());
        }
        let mut body = silence(hot.clone(), later(0), later(60));
        body["id"] = json!(unknown);
        let response = client
            .post(format!("{base}/api/v2/silences"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{base}");
    }
    // Nothing was created by any of it.
    assert_eq!(atalaya.get_json("/api/v2/silences").await, json!([]));
    // A filter that does not parse is 400 with a string, as Alertmanager.
    let response = client
        .get(atalaya.url("/api/v2/alerts?filter=%7Bfoo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.json::<Value>().await.unwrap().is_string());
}

/// Every answer of the API has the shape Alertmanager's OpenAPI document gives it (the
/// document of 0.25, vendored in `tests/data/alertmanager/`): checked on atalaya's answers,
/// and on a real Alertmanager's to show the checker is fair.
#[tokio::test]
async fn every_answer_has_the_shape_of_alertmanager_s_openapi_document() {
    let spec = OpenApi::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alertmanager/openapi.yaml"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (alertmanager, atalaya) = start_both(dir.path()).await;
    let client = reqwest::Client::new();
    let now = jiff::Timestamp::now();
    for base in [alertmanager.url(""), format!("http://{}", atalaya.addr)] {
        let api = |path: &str| format!("{base}/api/v2{path}");
        let mut problems = Vec::new();
        let mut check = |path: &str, method: &str, status: StatusCode, body: &Value| {
            for problem in spec.check(path, method, status.as_u16(), body) {
                problems.push(format!("{method} {path}: {problem}"));
            }
        };
        let alerts = json!([
            {"labels": {"alertname": "DiskFull", "host": "pi-1", "severity": "warning"},
             "annotations": {"summary": "Disk full"}, "generatorURL": "http://prometheus/graph"},
            {"labels": {"alertname": "NodeDown", "host": "pi-1", "severity": "critical"}},
        ]);
        let response = client
            .post(api("/alerts"))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{base}");
        let silence = json!({
            "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true}],
            "startsAt": now.to_string(),
            "endsAt": (now + jiff::SignedDuration::from_hours(1)).to_string(),
            "createdBy": "ana", "comment": "disk being replaced",
        });
        let response = client
            .post(api("/silences"))
            .json(&silence)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        check("/silences", "post", status, &created);
        let id = created["silenceID"].as_str().unwrap_or_default().to_owned();
        if base.ends_with(&atalaya.addr.to_string()) {
            // An alert from a rule is listed like the posted ones.
            let event = client
                .post(atalaya.url("/api/v1/events/home/kitchen/temperature"))
                .body("30")
                .send()
                .await
                .unwrap();
            assert_eq!(event.status(), StatusCode::ACCEPTED);
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let listed: Value = client
                    .get(api("/alerts"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if listed.to_string().contains("TooHot") {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "TooHot never listed: {listed}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        for (path, url) in [
            ("/alerts", api("/alerts")),
            ("/alerts/groups", api("/alerts/groups")),
            ("/silences", api("/silences")),
            ("/silence/{silenceID}", api(&format!("/silence/{id}"))),
            ("/status", api("/status")),
            ("/receivers", api("/receivers")),
            ("/alerts", api("/alerts?filter=%7Bbroken")),
        ] {
            let response = client.get(url).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            check(path, "get", status, &body);
        }
        let response = client
            .delete(api(&format!("/silence/{id}")))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        check("/silence/{silenceID}", "delete", status, &body);
        assert!(problems.is_empty(), "{base}:\n{}", problems.join("\n"));
    }
}

/// amtool sends the token from its `--http.config.file`; a read token (for a LAN
/// dashboard) lists but cannot silence; `anonymous_read` opens reads without any token.
#[tokio::test]
async fn the_api_takes_the_token_and_reads_can_be_opened_apart_from_writes() {
    let dir = tempfile::tempdir().unwrap();
    let write = dir.path().join("token");
    let read = dir.path().join("read-token");
    std::fs::write(&write, "fake-write-token\n").unwrap();
    std::fs::write(&read, "fake-read-token\n").unwrap();
    let http_config = |name: &str, token: &Path| {
        let file = dir.path().join(name);
        std::fs::write(
            &file,
            format!("authorization:\n  credentials_file: {}\n", token.display()),
        )
        .unwrap();
        format!("--http.config.file={}", file.display())
    };
    let writer = http_config("writer.yml", &write);
    let reader = http_config("reader.yml", &read);
    let atalaya = Atalaya::start_with(Options {
        config: format!(
            "http:\n  token_file: {}\n  read_token_file: {}\n",
            write.display(),
            read.display()
        ),
        routing: Some(ROUTING.to_owned()),
        ..Options::default()
    })
    .await;
    let url = format!("http://{}", atalaya.addr);
    let add = ["alert", "add", "alertname=Hot", "room=kitchen"];
    let silence = [
        "silence",
        "add",
        "alertname=Hot",
        "-c",
        "cooking",
        "-d",
        "1h",
    ];
    let as_ = |config: &str, args: &[&str]| -> Vec<String> {
        std::iter::once(config)
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        amtool_output(&url, &args)
    };
    assert!(!amtool_output(&url, &["alert", "query"]).status.success());
    assert!(run(as_(&writer, &add)).status.success());
    let listed = run(as_(&reader, &["alert", "query", "-o", "json"]));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("kitchen"));
    assert!(!run(as_(&reader, &silence)).status.success());
    assert!(run(as_(&writer, &silence)).status.success());
    drop(atalaya);

    let atalaya = Atalaya::start_with(Options {
        config: format!(
            "http:\n  token_file: {}\n  anonymous_read: true\n",
            write.display()
        ),
        routing: Some(ROUTING.to_owned()),
        ..Options::default()
    })
    .await;
    let url = format!("http://{}", atalaya.addr);
    amtool(&url, &["alert", "query"]);
    amtool(&url, &["silence", "query"]);
    assert!(!amtool_output(&url, &add).status.success());
    let mut args = vec![writer.as_str()];
    args.extend(add);
    amtool(&url, &args);
}
