//! Routing in the running service: alerts grouped into webhook notifications, a receiver
//! that is down for a while (nothing lost, nothing twice), notifications queued at a
//! SIGKILL delivered after the restart, alerts from Prometheus, silences through the CLI, and
//! `atalaya routes test`.

mod support;

use std::path::Path;

use atalaya_bus::store::Store;
use atalaya_test_kit::alertmanager::Alertmanager;
use atalaya_test_kit::webhook::{Webhook, alert_names};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Atalaya, Options, command, sample};

const TEMP_RULE: &str = r#"rules:
  - name: temp_high
    subject: home/+room/temperature
    condition: value > 25
"#;

/// A policy sending everything to the webhook, grouped by alertname, quickly.
fn policy(url: &str) -> String {
    format!(
        r#"route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
"#
    )
}

fn options(dir: &Path, hook: &Webhook) -> Options {
    std::fs::write(dir.join("routing.yaml"), policy(&hook.url())).expect("write policy");
    Options {
        config: format!(
            "routing:\n  file: {}\noutbox:\n  initial_backoff: 50ms\n  max_backoff: 200ms\n",
            dir.join("routing.yaml").display()
        ),
        rules: vec![("temp.yaml", TEMP_RULE.to_owned())],
        ..Options::default()
    }
}

async fn temperature(atalaya: &Atalaya, room: &str, value: &str) {
    let path = format!("/api/v1/events/home/{room}/temperature");
    assert_eq!(atalaya.post(&path, value).await, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_webhook_down_for_a_while_gets_every_notification_once() {
    let hook = Webhook::start().await;
    hook.set_failing(true);
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, options).await;
    for room in ["kitchen", "hall", "attic"] {
        temperature(&atalaya, room, "30").await;
    }
    // Retried while down.
    hook.wait_refused(3).await;
    hook.set_failing(false);
    let got = hook
        .wait_until("the three rooms, grouped", |a| {
            a.iter().any(|p| alert_names(p).len() == 3)
        })
        .await;
    let first = &got[0];
    assert_eq!(first["version"], "4");
    assert_eq!(first["receiver"], "hook");
    assert_eq!(first["status"], "firing");
    assert_eq!(first["groupLabels"], json!({"alertname": "temp_high"}));

    // Resolving one room is told once the receiver takes it.
    temperature(&atalaya, "hall", "20").await;
    hook.wait_until("hall resolved", |a| {
        a.iter()
            .any(|p| alert_names(p).contains(&"temp_high/hall(resolved)".to_owned()))
    })
    .await;
    let labels = r#"{integration="webhook",receiver="hook"}"#;
    atalaya
        .wait_for_metric("atalaya_outbox_depth", "", |depth| depth == 0.0)
        .await;
    let metrics = atalaya.metrics().await;
    assert!(hook.duplicates().is_empty(), "{:?}", hook.duplicates());
    assert_eq!(
        sample(&metrics, "atalaya_notifications_sent_total", labels),
        Some(hook.accepted().len() as f64)
    );
    assert!(
        sample(&metrics, "atalaya_notifications_retried_total", labels).unwrap_or(0.0) >= 3.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn notifications_queued_at_a_sigkill_are_delivered_after_the_restart() {
    let hook = Webhook::start().await;
    hook.set_failing(true);
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let mut atalaya = Atalaya::start_in(dir, opts).await;
    temperature(&atalaya, "kitchen", "30").await;
    temperature(&atalaya, "cellar", "31").await;
    hook.wait_refused(2).await;
    atalaya.signal(Signal::SIGKILL);
    atalaya.wait().await;
    assert!(hook.accepted().is_empty());

    hook.set_failing(false);
    let dir = std::mem::replace(&mut atalaya.dir, tempfile::tempdir().unwrap());
    let opts = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let got = hook
        .wait_until("the queued notification", |a| !a.is_empty())
        .await;
    let mut names = alert_names(&got[0]);
    names.sort();
    assert_eq!(names, ["temp_high/cellar", "temp_high/kitchen"]);
    atalaya
        .wait_for_metric("atalaya_outbox_depth", "", |depth| depth == 0.0)
        .await;
    // The router remembers what it queued before the kill: after a new alert, the group's
    // next notification is the only other one, and nothing came twice.
    temperature(&atalaya, "attic", "33").await;
    let got = hook.wait_until("the attic", |a| a.len() >= 2).await;
    let mut names = alert_names(&got[1]);
    names.sort();
    assert_eq!(
        names,
        ["temp_high/attic", "temp_high/cellar", "temp_high/kitchen"]
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(hook.duplicates().is_empty());
}

#[tokio::test]
async fn a_firing_alert_the_router_lost_is_notified_after_the_restart() {
    // Earlier versions saved the engine's series and the router's state in two
    // transactions; a crash between them left a series firing that the router never heard
    // of, so it was never told. Such a store: the alert fired while its group waited, then
    // the router's state is gone.
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let waiting = policy(&hook.url()).replace("group_wait: 1s", "group_wait: 1h");
    std::fs::write(dir.path().join("routing.yaml"), waiting).unwrap();
    let mut atalaya = Atalaya::start_in(dir, opts).await;
    temperature(&atalaya, "kitchen", "30").await;
    atalaya
        .wait_for_metric("atalaya_routed_alerts", r#"{state="active"}"#, |n| n == 1.0)
        .await;
    atalaya.signal(Signal::SIGTERM);
    assert_eq!(atalaya.wait().await.code(), Some(0));
    let dir = std::mem::replace(&mut atalaya.dir, tempfile::tempdir().unwrap());
    {
        let store = Store::open(&dir.path().join("data")).unwrap();
        let keys: Vec<Vec<u8>> = store
            .scan("router")
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert!(!keys.is_empty());
        store.write_batch("router", &[], &keys).unwrap();
    }

    let opts = options(dir.path(), &hook);
    let _atalaya = Atalaya::start_in(dir, opts).await;
    let got = hook
        .wait_until("the reconciled alert", |a| !a.is_empty())
        .await;
    assert_eq!(alert_names(&got[0]), ["temp_high/kitchen"]);
}

#[tokio::test]
async fn stored_records_that_cannot_be_restored_are_set_aside_not_fatal() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let silence = |id: &str, value: &str, regex: bool| {
        json!({"id": id, "matchers": [{"name": "room", "value": value, "isRegex": regex, "isEqual": true}],
               "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2100-01-01T00:00:00Z",
               "createdBy": "ana", "comment": "x", "updatedAt": "2026-01-01T00:00:00Z"})
    };
    {
        let store = Store::open(&dir.path().join("data")).unwrap();
        store
            .put(
                "rule_series",
                b"temp_high\0deadbeefdeadbeef",
                b"{not a series",
            )
            .unwrap();
        let state = json!({"alerts": [], "groups": [],
                           "silences": [silence("good", "cellar", false), silence("bad", "(", true)]});
        store
            .put("router", b"state", state.to_string().as_bytes())
            .unwrap();
    }
    let opts = options(dir.path(), &hook);
    let mut atalaya = Atalaya::start_in(dir, opts).await;
    let metrics = atalaya.metrics().await;
    let aside = |table: &str| {
        sample(
            &metrics,
            "atalaya_state_records_set_aside_total",
            &format!("{{table=\"{table}\"}}"),
        )
    };
    assert_eq!(aside("rule_series"), Some(1.0));
    assert_eq!(aside("router"), Some(1.0));
    let silences: Value = reqwest::get(atalaya.url("/api/v1/silences"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(silences.as_array().unwrap().len(), 1);
    assert_eq!(silences[0]["id"], "good");
    // It works as ever.
    temperature(&atalaya, "kitchen", "30").await;
    hook.wait_until("the alert", |a| !a.is_empty()).await;
    atalaya.signal(Signal::SIGTERM);
    assert_eq!(atalaya.wait().await.code(), Some(0));
    let store = Store::open(&atalaya.dir.path().join("data")).unwrap();
    let kept = store.scan("set_aside").unwrap();
    assert_eq!(kept.len(), 2);
    // The whole-state record of earlier versions was rewritten as one record per item.
    let router: Vec<Vec<u8>> = store
        .scan("router")
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert!(!router.contains(&b"state".to_vec()), "{router:?}");
    assert!(router.contains(&b"silence\0good".to_vec()), "{router:?}");
    let texts: Vec<String> = kept
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("not a series")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("unclosed group")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn posted_alerts_are_bounded_per_request_and_in_total() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), &hook);
    opts.config = opts.config.replace(
        "routing:\n",
        "routing:\n  max_alerts_per_request: 3\n  max_alerts: 5\n",
    );
    let atalaya = Atalaya::start_in(dir, opts).await;
    let alerts = |names: &[&str]| {
        serde_json::to_string(
            &names
                .iter()
                .map(|n| json!({"labels": {"alertname": n}}))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let too_many = atalaya
        .post("/api/v2/alerts", &alerts(&["a", "b", "c", "d"]))
        .await;
    assert_eq!(too_many, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        atalaya
            .post("/api/v2/alerts", &alerts(&["a", "b", "c"]))
            .await,
        StatusCode::OK
    );
    // 3 held + 3 new > 5: refused whole, none of them taken.
    let full = atalaya
        .post("/api/v2/alerts", &alerts(&["d", "e", "f"]))
        .await;
    assert_eq!(full, StatusCode::TOO_MANY_REQUESTS);
    // Alerts already held are updates, not new: Prometheus re-sends them every minute.
    assert_eq!(
        atalaya
            .post("/api/v2/alerts", &alerts(&["a", "b", "c"]))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        atalaya.post("/api/v2/alerts", &alerts(&["d", "e"])).await,
        StatusCode::OK
    );
    let listed: Value = reqwest::get(atalaya.url("/api/v1/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
    let metrics = atalaya.metrics().await;
    let refused = |reason: &str| {
        sample(
            &metrics,
            "atalaya_posted_alerts_refused_total",
            &format!("{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("request"), Some(1.0));
    assert_eq!(refused("total"), Some(1.0));
}

#[tokio::test]
async fn alerts_from_prometheus_are_routed_listed_and_silenced() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let alerts = json!([
        {"labels": {"alertname": "NodeDown", "node": "pi1", "severity": "critical"},
         "annotations": {"summary": "pi1 is down"},
         "generatorURL": "http://prometheus/graph"},
    ]);
    let response = reqwest::Client::new()
        .post(atalaya.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let got = hook.wait_until("NodeDown", |a| !a.is_empty()).await;
    assert_eq!(
        got[0]["alerts"][0]["generatorURL"],
        "http://prometheus/graph"
    );
    assert_eq!(got[0]["commonAnnotations"]["summary"], "pi1 is down");

    // Bad input is refused whole, with a reason.
    let response = reqwest::Client::new()
        .post(atalaya.url("/api/v2/alerts"))
        .body(r#"[{"labels": {}}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The CLI: alerts, then a silence, which shows on the alert.
    let cli = |args: &[&str]| {
        let mut cmd = command(atalaya.dir.path());
        cmd.args(args).env("ATALAYA_URL", atalaya.url(""));
        cmd
    };
    let out = cli(&["alerts"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("NodeDown") && text.contains("active"),
        "{text}"
    );

    let out = cli(&[
        "silence",
        "add",
        "node=pi1",
        "-c",
        "rebooting",
        "-a",
        "ana",
        "-d",
        "2h",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!id.is_empty());

    let out = cli(&["alerts"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("suppressed (silenced by {id})")),
        "{text}"
    );
    let out = cli(&["silence", "list"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&id) && text.contains("node=\"pi1\"") && text.contains("rebooting"),
        "{text}"
    );
    let silences: Value = reqwest::get(atalaya.url("/api/v1/silences"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(silences[0]["status"]["state"], "active");
    assert_eq!(silences[0]["createdBy"], "ana");
    let metrics = atalaya.metrics().await;
    assert_eq!(
        sample(&metrics, "atalaya_silences", r#"{state="active"}"#),
        Some(1.0)
    );

    let out = cli(&["silence", "expire", &id]).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["silence", "expire", &id]).output().await.unwrap();
    assert!(!out.status.success(), "expiring twice is an error");
    let out = cli(&["silence", "add", "node=~\"(\"", "-c", "x"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("matcher"));
}

#[tokio::test]
async fn silences_that_mute_everything_or_last_past_a_century_are_refused() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let client = reqwest::Client::new();
    let post_json = |path: &str, body: Value| {
        let request = client.post(atalaya.url(path)).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let silence = |matcher: Value, ends: &str| json!({"matchers": [matcher], "endsAt": ends, "createdBy": "x", "comment": "y"});
    let everything = json!({"name": "alertname", "value": ".+", "isRegex": true});
    let disk = json!({"name": "alertname", "value": "disk", "isRegex": false});

    // The end of time once crash-looped the service; now it is a clear 400.
    let (status, body) = post_json(
        "/api/v1/silences",
        silence(disk.clone(), "9999-12-30T00:00:00Z"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("100 years ahead"),
        "{body}"
    );
    let (status, body) = post_json(
        "/api/v2/alerts",
        json!([{"labels": {"alertname": "x"}, "endsAt": "9999-12-30T00:00:00Z"}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Alertmanager's API answers errors as a JSON string.
    assert!(body.as_str().unwrap().contains("endsAt"), "{body}");

    // Muting every alert takes an explicit yes.
    let (status, body) = post_json(
        "/api/v1/silences",
        silence(everything.clone(), "2100-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("mute every alert"),
        "{body}"
    );
    let (status, body) = post_json(
        "/api/v1/silences?mute_all=true",
        silence(everything, "2100-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cli = |args: &[&str]| {
        let mut cmd = command(atalaya.dir.path());
        cmd.args(args).env("ATALAYA_URL", atalaya.url(""));
        cmd
    };
    let out = cli(&["silence", "add", "alertname!=\"\"", "-c", "all"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mute-all"));
    let out = cli(&[
        "silence",
        "add",
        "alertname!=\"\"",
        "-c",
        "all",
        "--mute-all",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The service is still there: no flush crashed it.
    temperature(&atalaya, "kitchen", "30").await;
    let (status, _) = post_json("/api/v1/silences", silence(disk, "2100-01-01T00:00:00Z")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn routes_test_prints_the_receivers_reached() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routing.yaml");
    std::fs::write(
        &file,
        r#"route:
  receiver: mail
  routes:
    - matchers: ['severity="critical"']
      receiver: phone
      continue: true
    - matchers: ['room=~"kitchen|hall"']
      receiver: family
receivers: [{name: mail}, {name: phone}, {name: family}]
"#,
    )
    .unwrap();
    let run = |labels: &[&str]| {
        let mut cmd = command(dir.path());
        cmd.args(["routes", "test", "--routing"])
            .arg(&file)
            .args(labels);
        cmd
    };
    let out = run(&["severity=critical", "room=kitchen"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "phone,family\n");
    let out = run(&["room=attic"]).output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mail\n");
    let out = run(&["room=attic", "--verify-receivers", "phone"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
}

/// `routes test` reads its arguments as `amtool config routes test` does: no labels at all
/// is the root route's answer, a quoted value is unescaped, and anything but `=` is refused.
/// Each answer is compared with the real amtool's on the same file.
#[tokio::test]
async fn routes_test_reads_labels_as_amtool_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routing.yaml");
    std::fs::write(
        &file,
        r#"route:
  receiver: mail
  routes:
    - matchers: ['summary="say \"hi\""']
      receiver: quoted
    - matchers: ['path="C:\\temp"']
      receiver: backslash
    - matchers: ['room=~"kitchen|hall"']
      receiver: family
receivers: [{name: mail}, {name: quoted}, {name: backslash}, {name: family}]
"#,
    )
    .unwrap();
    let cases: &[(&[&str], Option<&str>)] = &[
        (&[], Some("mail")),
        (&[r#"summary="say \"hi\"""#], Some("quoted")),
        (&[r#"path="C:\\temp""#], Some("backslash")),
        (&["room=kitchen", "severity=info"], Some("family")),
        (&[r#"room="hall""#], Some("family")),
        (&["room=~kitchen"], None),
        (&["room!=kitchen"], None),
        (&["room"], None),
    ];
    for (labels, expected) in cases {
        let atalaya = command(dir.path())
            .args(["routes", "test", "--routing"])
            .arg(&file)
            .args(*labels)
            .output()
            .await
            .unwrap();
        let amtool = std::process::Command::new("amtool")
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", file.display()))
            .args(*labels)
            .output()
            .expect("amtool (apt-get install -y prometheus-alertmanager; scripts/test does this)");
        let stdout = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
        match expected {
            Some(receivers) => {
                assert_eq!(
                    stdout(&amtool),
                    format!("{receivers}\n"),
                    "amtool {labels:?}"
                );
                assert_eq!(stdout(&atalaya), stdout(&amtool), "{labels:?}");
                assert!(atalaya.status.success(), "{labels:?}");
            }
            None => {
                assert!(!amtool.status.success(), "amtool {labels:?}");
                assert!(!atalaya.status.success(), "{labels:?}");
                let stderr = String::from_utf8_lossy(&atalaya.stderr);
                assert!(
                    stderr.contains(&format!("label `{}`", labels[0])),
                    "{stderr}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_broken_routing_file_keeps_the_running_policy() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let file = atalaya.dir.path().join("routing.yaml");
    std::fs::write(
        &file,
        "route:\n  receiver: nobody\n  group_wait: soon\nreceivers: []\n",
    )
    .unwrap();
    let response = reqwest::Client::new()
        .post(atalaya.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let errors = body["errors"].to_string();
    assert!(errors.contains("routing.yaml:3:15"), "{errors}");
    // Still routing by the old policy.
    temperature(&atalaya, "kitchen", "30").await;
    hook.wait_until("the alert", |a| !a.is_empty()).await;
    // Refused once over HTTP, and maybe once more for the file change the edit caused.
    let metrics = atalaya.metrics().await;
    let failures = sample(&metrics, "atalaya_rules_reload_failures_total", "").unwrap_or(0.0);
    assert!(failures >= 1.0, "{metrics}");
}

#[tokio::test]
async fn a_named_pipe_in_place_of_the_routing_file_is_refused_not_waited_on() {
    // Opening a pipe for reading blocks until a writer comes: it froze the rules runner for
    // good. Now a file that is not a regular one is an error, at reload, check and start.
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let file = atalaya.dir.path().join("routing.yaml");
    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let response = reqwest::Client::new()
        .post(atalaya.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"].to_string().contains("not a regular file"),
        "{body}"
    );
    // The runner is not stuck: alerts still go out by the old policy.
    temperature(&atalaya, "kitchen", "30").await;
    hook.wait_until("the alert", |a| !a.is_empty()).await;

    let out = command(atalaya.dir.path())
        .arg("check")
        .arg(atalaya.dir.path().join("atalaya.yaml"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("not a regular file") || stdout.contains("not a regular file"),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn check_reports_routing_mistakes_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/routing.yaml");
    let out = command(dir.path())
        .arg("check")
        .arg(&example)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ok: routing"), "{stdout}");

    // Brought over from an Alertmanager with receivers atalaya lacks, and a typo.
    let policy = dir.path().join("alertmanager.yml");
    std::fs::write(
        &policy,
        r#"route:
  receiver: team
  group_wiat: 30s
  routes:
    - matchers: ['severity=~"(critical"']
      receiver: pager
receivers:
  - name: team
    slack_configs:
      - channel: '#alerts'
"#,
    )
    .unwrap();
    // Named by a config, as `run` would use it.
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(&config, format!("routing:\n  file: {}\n", policy.display())).unwrap();
    let out = command(dir.path())
        .arg("check")
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let file = policy.display();
    assert!(
        stdout.contains(&format!("{file}:3:3: ")) && stdout.contains("group_wait"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{file}:5:")) && stdout.contains("invalid regular expression"),
        "{stdout}"
    );
    assert!(stdout.contains("`pager`"), "unknown receiver: {stdout}");
    assert!(
        stdout.contains(&format!("{file}:9:5: "))
            && stdout.contains("`slack_configs` is not supported"),
        "{stdout}"
    );
    // `run` refuses it before binding a port.
    let out = command(dir.path())
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[tokio::test]
async fn editing_the_routing_file_reloads_it() {
    let first = Webhook::start().await;
    let second = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &first);
    let atalaya = Atalaya::start_in(dir, opts).await;
    let file = atalaya.dir.path().join("routing.yaml");
    std::fs::write(&file, policy(&second.url())).unwrap();
    atalaya
        .wait_for_logs(&["Rules reloaded.", "file change"], 1)
        .await;
    temperature(&atalaya, "kitchen", "30").await;
    second.wait_until("the alert", |a| !a.is_empty()).await;
    assert!(first.accepted().is_empty());
}

#[tokio::test]
async fn an_alert_whose_rule_changed_while_down_is_told_resolved_after_the_restart() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let mut atalaya = Atalaya::start_in(dir, opts).await;
    temperature(&atalaya, "kitchen", "30").await;
    hook.wait_until("the alert", |a| !a.is_empty()).await;
    atalaya.signal(Signal::SIGTERM);
    assert!(atalaya.wait().await.success());

    let dir = std::mem::replace(&mut atalaya.dir, tempfile::tempdir().unwrap());
    let mut opts = options(dir.path(), &hook);
    opts.rules = vec![("temp.yaml", TEMP_RULE.replace("value > 25", "value > 35"))];
    let _atalaya = Atalaya::start_in(dir, opts).await;
    let got = hook
        .wait_until("the resolution", |a| {
            a.iter()
                .any(|p| alert_names(p) == ["temp_high/kitchen(resolved)"])
        })
        .await;
    assert_eq!(got.len(), 2, "{got:#?}");
}

/// `amtool alert add` sends unset times as Go's zero time (`0001-01-01T00:00:00Z`). As in
/// Alertmanager, an unset start is now (or the end, when only the end is given) and an unset
/// end is `global.resolve_timeout` from now: the alert fires, it is not dropped as "already
/// resolved" nor shown as firing for 2000 years.
#[tokio::test]
async fn amtool_alert_add_fires_and_unset_times_are_read_as_alertmanager_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("routing.yaml"),
        "global:\n  resolve_timeout: 2m\nroute:\n  receiver: console\nreceivers:\n  - name: console\n    console_configs: [{}]\n",
    )
    .unwrap();
    let config = format!(
        "routing:\n  file: {}\n",
        dir.path().join("routing.yaml").display()
    );
    let atalaya = Atalaya::start_in(
        dir,
        Options {
            config,
            ..Options::default()
        },
    )
    .await;
    let before = jiff::Timestamp::now();
    let out = std::process::Command::new("amtool")
        .arg(format!("--alertmanager.url=http://{}", atalaya.addr))
        .args([
            "alert",
            "add",
            "alertname=DiskFull",
            "host=pi-1",
            "--annotation=summary=Disk full",
        ])
        .output()
        .expect("amtool (apt-get install -y prometheus-alertmanager; scripts/test does this)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Raw: both times zero.
    let zero = "0001-01-01T00:00:00Z";
    let status = atalaya
        .post(
            "/api/v2/alerts",
            &json!([
                {"labels": {"alertname": "Zero", "host": "pi-2"}, "startsAt": zero, "endsAt": zero},
            ])
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = jiff::Timestamp::now();

    let alerts: Vec<Value> = reqwest::get(atalaya.url("/api/v1/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let find = |name: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("{name} not held: {alerts:?}"))
            .clone()
    };
    let time = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    for name in ["DiskFull", "Zero"] {
        let alert = find(name);
        assert_eq!(alert["status"]["state"], "active", "{alert}");
        let starts = time(&alert["startsAt"]);
        assert!(before <= starts && starts <= after, "{alert}");
        let ends = time(&alert["endsAt"]);
        let lasts = ends.duration_since(starts);
        assert!(
            lasts >= jiff::SignedDuration::from_mins(2)
                && lasts <= jiff::SignedDuration::from_mins(2) + (after.duration_since(before)),
            "resolve_timeout from global: {alert}"
        );
    }
}

/// [`policy`] with `max_alerts: 1` on its webhook, for Alertmanager and atalaya alike.
fn truncating_policy(url: &str) -> String {
    policy(url) + "        max_alerts: 1\n"
}

/// The parts of a webhook payload both must agree on.
fn comparable(payload: &Value) -> Value {
    let alerts: Vec<Value> = payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!({"fingerprint": a["fingerprint"], "labels": a["labels"], "status": a["status"]}))
        .collect();
    json!({
        "alerts": alerts,
        "commonLabels": payload["commonLabels"],
        "commonAnnotations": payload["commonAnnotations"],
        "groupLabels": payload["groupLabels"],
        "truncatedAlerts": payload["truncatedAlerts"],
        "status": payload["status"],
        "version": payload["version"],
    })
}

/// Fingerprints are Alertmanager's, and a webhook cut to `max_alerts` has the common
/// labels and annotations of the alerts it carries: the same alerts and routing file go to a
/// real Alertmanager and to atalaya, and their webhooks must agree. An alert from a rule
/// carries the fingerprint Alertmanager gives its labels too.
#[tokio::test]
async fn webhook_fingerprints_and_common_labels_are_alertmanagers() {
    let am_hook = Webhook::start().await;
    let alertmanager = Alertmanager::start(&truncating_policy(&am_hook.url())).await;
    let hook = Webhook::start().await;
    let atalaya = Atalaya::start_with(Options {
        routing: Some(truncating_policy(&hook.url())),
        rules: vec![("temp.yaml", TEMP_RULE.to_owned())],
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    let alerts = json!([
        {"labels": {"alertname": "DiskFull", "host": "pi-1", "severity": "warning"},
         "annotations": {"summary": "Disk full on pi-1", "runbook": "disks"}},
        {"labels": {"alertname": "DiskFull", "host": "pi-2", "severity": "warning"},
         "annotations": {"summary": "Disk full on pi-2", "runbook": "disks"}},
    ])
    .to_string();
    let client = reqwest::Client::new();
    let status = client
        .post(alertmanager.url("/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(alerts.clone())
        .send()
        .await
        .expect("POST to Alertmanager")
        .status();
    assert_eq!(status, StatusCode::OK, "{}", alertmanager.log());
    assert_eq!(
        atalaya.post("/api/v2/alerts", &alerts).await,
        StatusCode::OK
    );

    let from_am = am_hook
        .wait_until("Alertmanager's webhook", |p| !p.is_empty())
        .await;
    let from_atalaya = hook
        .wait_until("atalaya's webhook", |p| !p.is_empty())
        .await;
    let expected = comparable(&from_am[0]);
    assert_eq!(expected["truncatedAlerts"], 1, "{expected}");
    assert_eq!(comparable(&from_atalaya[0]), expected);

    // A rule's alert: Alertmanager, sent the labels atalaya notified, shows the same
    // fingerprint.
    temperature(&atalaya, "kitchen", "30").await;
    let payloads = hook
        .wait_until("the rule's alert", |p| {
            p.iter()
                .any(|n| n["groupLabels"]["alertname"] == "temp_high")
        })
        .await;
    let notified = payloads
        .iter()
        .find(|n| n["groupLabels"]["alertname"] == "temp_high")
        .unwrap()["alerts"][0]
        .clone();
    let status = client
        .post(alertmanager.url("/api/v2/alerts"))
        .json(&json!([{"labels": notified["labels"]}]))
        .send()
        .await
        .expect("POST to Alertmanager")
        .status();
    assert_eq!(status, StatusCode::OK);
    let listed: Value = client
        .get(alertmanager.url("/api/v2/alerts?filter=alertname%3D%22temp_high%22"))
        .send()
        .await
        .expect("GET from Alertmanager")
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed[0]["fingerprint"], notified["fingerprint"],
        "{listed}"
    );
    // And atalaya's own list shows the same.
    let ours = atalaya
        .get_json("/api/v1/alerts")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "temp_high")
        .unwrap()
        .clone();
    assert_eq!(ours["fingerprint"], notified["fingerprint"]);
}

/// An alert's `startsAt` is told with one precision, the same when it fires and when it
/// resolves after a restart: a receiver that keys alerts by fingerprint and start sees one
/// alert, not two.
#[tokio::test]
async fn an_alert_s_start_is_told_the_same_before_and_after_a_restart() {
    let hook = Webhook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &hook);
    let mut atalaya = Atalaya::start_in(dir, opts).await;
    temperature(&atalaya, "kitchen", "30").await;
    let got = hook.wait_until("the firing alert", |a| !a.is_empty()).await;
    let fired = got[0]["alerts"][0].clone();
    atalaya.signal(Signal::SIGTERM);
    atalaya.wait().await;

    let dir = std::mem::replace(&mut atalaya.dir, tempfile::tempdir().unwrap());
    let opts = options(dir.path(), &hook);
    let atalaya = Atalaya::start_in(dir, opts).await;
    temperature(&atalaya, "kitchen", "20").await;
    let got = hook
        .wait_until("the resolved alert", |a| {
            a.iter().any(|n| n["alerts"][0]["status"] == "resolved")
        })
        .await;
    let resolved = got
        .iter()
        .find(|n| n["alerts"][0]["status"] == "resolved")
        .unwrap()["alerts"][0]
        .clone();
    assert_eq!(resolved["fingerprint"], fired["fingerprint"]);
    assert_eq!(
        resolved["startsAt"], fired["startsAt"],
        "{fired}\n{resolved}"
    );
    // Milliseconds, as Prometheus and Alertmanager send an alert's times.
    let start = fired["startsAt"].as_str().unwrap();
    let fraction = start.split('.').nth(1).unwrap_or("Z");
    assert!(fraction.len() <= 4, "{start}");
}
