//! Rules in the running service: alerts from posted events, hot reload (file change,
//! SIGHUP, POST /-/reload) that never replaces working rules with broken ones, and alert
//! state that survives SIGKILL.

mod support;

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::Value;
use support::{Atalaya, CONSOLE_AT_ONCE, Options, rules_dir, sample};

const TEMP_RULE: &str = r#"rules:
  - name: temp_high
    subject: home/+room/temperature
    condition: value > 25
    annotations:
      summary: "{{ labels.room }} at {{ value }} °C"
"#;

#[tokio::test]
async fn an_event_fires_an_alert_and_another_resolves_it() {
    let mut atalaya = Atalaya::start_with(Options {
        rules: vec![("temp.yaml", TEMP_RULE.to_owned())],
        routing: Some(CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    })
    .await;
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "30")
            .await,
        StatusCode::ACCEPTED
    );
    let line = atalaya.console_until(&["[firing:"]).await;
    assert!(
        line.contains("[firing:1] console temp_high — temp_high room=kitchen")
            && line.contains("summary=\"kitchen at 30 °C\""),
        "{line}"
    );
    let metrics = atalaya.metrics().await;
    assert_eq!(
        sample(&metrics, "atalaya_alerts", r#"{state="firing"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "atalaya_rule_evaluations_total",
            r#"{rule="temp_high"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "atalaya_rules_loaded", ""), Some(1.0));

    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "21")
            .await,
        StatusCode::ACCEPTED
    );
    let line = atalaya.console_until(&["[resolved:"]).await;
    assert!(line.contains("temp_high room=kitchen"), "{line}");
    // Garbage for the rule (a string where a number is compared) is counted, not fatal.
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "\"warm\"")
            .await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/hall/temperature", "26")
            .await,
        StatusCode::ACCEPTED
    );
    assert!(
        atalaya
            .console_until(&["[firing:"])
            .await
            .contains("room=hall")
    );
    let metrics = atalaya.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "atalaya_rule_evaluation_errors_total",
            r#"{rule="temp_high"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn reloads_apply_good_rules_and_keep_running_rules_over_broken_ones() {
    let mut atalaya = Atalaya::start_with(Options {
        rules: vec![("temp.yaml", TEMP_RULE.to_owned())],
        routing: Some(CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    })
    .await;
    let rules = rules_dir(atalaya.dir.path());

    // A new file is picked up by the directory watch.
    std::fs::write(
        rules.join("door.yaml"),
        "rules:\n  - name: door_open\n    subject: home/door\n    condition: value == \"open\"\n",
    )
    .unwrap();
    atalaya
        .wait_for_logs(&["Rules reloaded.", "\"rules\":2"], 1)
        .await;
    atalaya.post("/api/v1/events/home/door", "\"open\"").await;
    assert!(
        atalaya
            .console_until(&["[firing:"])
            .await
            .contains("door_open")
    );

    // A broken file: refused, counted, and the running rules keep working.
    std::fs::write(
        rules.join("broken.yaml"),
        "rules:\n  - name: oops\n    subject: home/+x\n    condition: value >\n",
    )
    .unwrap();
    atalaya.wait_for_logs(&["Rule reload refused"], 1).await;
    let metrics = atalaya.metrics().await;
    assert!(sample(&metrics, "atalaya_rules_reload_failures_total", "").unwrap() >= 1.0);
    atalaya
        .post("/api/v1/events/home/attic/temperature", "40")
        .await;
    assert!(
        atalaya
            .console_until(&["[firing:"])
            .await
            .contains("temp_high room=attic")
    );

    // POST /-/reload says what is wrong, with the position.
    let response = reqwest::Client::new()
        .post(atalaya.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let errors = body["errors"].to_string();
    assert!(errors.contains("broken.yaml:4:"), "{body}");

    // Fixed, then SIGHUP: reloaded, and the door alert kept its state (so it resolves).
    std::fs::write(
        rules.join("broken.yaml"),
        "rules:\n  - name: fixed\n    subject: home/+x\n    condition: value == 1\n",
    )
    .unwrap();
    atalaya.signal(Signal::SIGHUP);
    atalaya
        .wait_for_logs(&["Rules reloaded.", "SIGHUP"], 1)
        .await;
    let response = reqwest::Client::new()
        .post(atalaya.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["rules"], 3);
    atalaya.post("/api/v1/events/home/door", "\"closed\"").await;
    let line = atalaya.console_until(&["[resolved:", "door_open"]).await;
    assert!(!line.contains("temp_high"), "{line}");
}

#[tokio::test]
async fn firing_alerts_survive_a_sigkill() {
    let mut first = Atalaya::start_with(Options {
        rules: vec![("temp.yaml", TEMP_RULE.to_owned())],
        routing: Some(CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    })
    .await;
    first
        .post("/api/v1/events/home/garage/temperature", "35")
        .await;
    first.console_until(&["[firing:", "room=garage"]).await;
    first.signal(Signal::SIGKILL);
    first.wait().await;

    let Atalaya { dir, .. } = first;
    let mut second = Atalaya::start_in(
        dir,
        Options {
            rules: vec![("temp.yaml", TEMP_RULE.to_owned())],
            routing: Some(CONSOLE_AT_ONCE.to_owned()),
            ..Options::default()
        },
    )
    .await;
    second.wait_for_logs(&["Rule state restored."], 1).await;
    let metrics = second.metrics().await;
    assert_eq!(
        sample(&metrics, "atalaya_alerts", r#"{state="firing"}"#),
        Some(1.0)
    );
    // Still firing: a hotter reading is no news, a cool one resolves it. (The firing
    // notification may be sent again: its delivery may not have been recorded before the
    // kill, and delivery is at least once.)
    second
        .post("/api/v1/events/home/garage/temperature", "36")
        .await;
    second
        .post("/api/v1/events/home/garage/temperature", "20")
        .await;
    second.console_until(&["[resolved:1]", "room=garage"]).await;
}
