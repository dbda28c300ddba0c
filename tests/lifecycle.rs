//! The service's life as an operator sees it: start, shutdown on signals, refusal of bad
//! config before any port is bound, and the `check`, `send` and `--version` commands.

mod support;

use std::net::TcpListener;
use std::process::Stdio;

use nix::sys::signal::Signal;
use support::{Atalaya, Options, PATIENCE, StdoutMode, command};

#[tokio::test]
async fn sigterm_drains_the_bus_and_exits_zero() {
    let mut atalaya = Atalaya::start().await;
    let client = reqwest::Client::new();
    let batch: Vec<_> = (0..50)
        .map(|i| serde_json::json!({"subject": "drain/test", "data": i}))
        .collect();
    let response = client
        .post(atalaya.url("/api/v1/events"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    atalaya.signal(Signal::SIGTERM);
    let status = atalaya.wait().await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", atalaya.logs());
    // Every accepted event was printed before exit.
    let mut printed = 0;
    while let Ok(Some(line)) = tokio::time::timeout(PATIENCE, atalaya.stdout.recv()).await {
        assert!(line.contains("drain/test"));
        printed += 1;
    }
    assert_eq!(printed, 50);
    let logs = atalaya.logs();
    assert!(logs.contains("\"signal\":\"SIGTERM\""), "{logs}");
    assert!(logs.contains("Shutdown complete."), "{logs}");
}

#[tokio::test]
async fn sigint_shuts_down_gracefully_too() {
    let mut atalaya = Atalaya::start().await;
    atalaya.signal(Signal::SIGINT);
    assert_eq!(atalaya.wait().await.code(), Some(0));
    assert!(atalaya.logs().contains("\"signal\":\"SIGINT\""));
}

#[tokio::test]
async fn a_config_with_three_mistakes_exits_64_listing_all_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    // A port that is free now: if atalaya bound it before failing, we could not bind it after.
    let port = atalaya_test_kit::free_port();
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(
        &config,
        format!("http:\n  listen: 127.0.0.1:{port}\n  publish_timeout: soon\nbus:\n  capacty: 10\nlog:\n  format: xml\n"),
    )
    .unwrap();
    let output = command(dir.path())
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let path = config.display().to_string();
    let expected = [
        format!("{path}:3:20: http.publish_timeout: `soon` is not a duration"),
        format!("{path}:5:3: bus.capacty: unknown key `capacty`; did you mean `capacity`?"),
        format!("{path}:7:11: log.format: `xml` is not a log format; use `text` or `json`"),
    ];
    for line in &expected {
        assert!(
            stderr.contains(line.as_str()),
            "missing `{line}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 configuration error(s)"), "{stderr}");
    TcpListener::bind(("127.0.0.1", port)).expect("the port was never bound");
}

#[tokio::test]
async fn check_prints_every_error_with_its_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "http:\n  listen: 127.0.0.1:9470\n").unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "http:\n  listen: nowhere\nreceivers:\n  consle: {}\n").unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("broken.yaml"), "rules:\n  - name: [unclosed\n").unwrap();

    let output = command(dir.path())
        .arg("check")
        .arg(&good)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok: config"));

    let output = command(dir.path())
        .arg("check")
        .args([&good, &bad, &rules])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let bad = bad.display();
    assert!(
        stdout.contains(&format!(
            "{bad}:2:11: http.listen: `nowhere` is not an address"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{bad}:4:3: receivers.consle: unknown key `consle`; did you mean `console`?"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:3:1: ", rules.join("broken.yaml").display())),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 error(s)"));
}

#[tokio::test]
async fn send_publishes_one_event_with_the_token_from_the_environment() {
    const TOKEN: &str = "fake-send-token";
    let mut atalaya = Atalaya::start_with(Options {
        env: vec![("ATALAYA__HTTP__TOKEN".into(), TOKEN.into())],
        ..Options::default()
    })
    .await;
    let (dir, url) = (atalaya.dir.path().to_owned(), atalaya.url(""));
    let send = |token: Option<&str>, args: &[&str]| {
        let mut cmd = command(&dir);
        cmd.arg("send")
            .args(args)
            .env("ATALAYA_URL", &url)
            .stdin(Stdio::null());
        if let Some(token) = token {
            cmd.env("ATALAYA_TOKEN", token);
        }
        cmd.output()
    };
    let output = send(
        Some(TOKEN),
        &[
            "home/laundry/washer",
            r#"{"state":"done"}"#,
            "-l",
            "room=laundry",
        ],
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("sent home/laundry/washer (id "));
    let line = atalaya.console_line().await;
    assert!(
        line.contains(
            r#"home/laundry/washer {"state":"done"} room=laundry (/atalaya/send atalaya.event)"#
        ),
        "{line}"
    );

    let output = send(Some(TOKEN), &["home/door", "open"]).await.unwrap();
    assert!(output.status.success());
    assert!(atalaya.console_line().await.contains("home/door open"));

    let output = send(None, &["home/door", "open"]).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("missing bearer token"),
        "{stderr}"
    );

    atalaya.signal(Signal::SIGTERM);
    atalaya.wait().await;
    let output = send(Some(TOKEN), &["home/door", "open"]).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach atalaya"));
}

#[tokio::test]
async fn a_state_directory_in_use_is_refused_with_a_clear_error() {
    let first = Atalaya::start().await;
    let config = first.dir.path().join("second.yaml");
    std::fs::write(
        &config,
        format!(
            "state:\n  dir: {}\n",
            first.dir.path().join("data").display()
        ),
    )
    .unwrap();
    let output = command(first.dir.path())
        .args(["run", "-c"])
        .arg(&config)
        .env("ATALAYA__HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another atalaya process"),
        "{stderr}"
    );
}

#[tokio::test]
async fn version_is_printed() {
    let output = command(std::path::Path::new("."))
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("atalaya {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn the_example_config_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/atalaya.yaml");
    let output = command(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .arg("check")
        .arg(&example)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn broken_rule_files_stop_the_start_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let rules = support::rules_dir(dir.path());
    std::fs::write(rules.join("a.yaml"), "- name: x\n  for: [\n").unwrap();
    std::fs::write(rules.join("b.yaml"), "key: value: other\n").unwrap();
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(
        &config,
        format!(
            "rules:\n  dir: {}\nstate:\n  dir: {}\n",
            rules.display(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let output = command(dir.path())
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .env("ATALAYA__HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a.yaml:3:1: "), "{stderr}");
    assert!(stderr.contains("b.yaml:1:11: "), "{stderr}");
    assert!(!stderr.contains("HTTP API listening"), "{stderr}");
}

#[tokio::test]
async fn a_failed_task_is_logged_counted_and_ends_the_process_non_zero() {
    // The console's stdout is closed: its next write fails, and the service must not go on
    // as if nothing happened.
    let mut atalaya = Atalaya::start_with(Options {
        stdout: StdoutMode::Closed,
        ..Options::default()
    })
    .await;
    let response = reqwest::Client::new()
        .post(atalaya.url("/api/v1/events"))
        .body(r#"{"subject":"lost/stdout"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(atalaya.wait().await.code(), Some(70), "{}", atalaya.logs());
    let logs = atalaya.logs();
    assert!(
        logs.contains("Task failed; shutting down.") && logs.contains("\"task\":\"console\""),
        "{logs}"
    );
}

#[tokio::test]
async fn the_example_rule_pack_passes_its_tests_and_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = command(root)
        .args(["test", "examples/rules"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    let output = command(root)
        .args(["check", "examples/rules"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn check_reports_every_kind_of_rule_mistake_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let rules = support::rules_dir(dir.path());
    std::fs::write(
        rules.join("a.yaml"),
        r#"rules:
  - name: typo
    subject: home/+room/temp
    conditon: value > 1
  - name: bad_duration
    subject: home/+room/temp
    condition: value > 1
    for: soon
  - name: bad_cel
    subject: home/+room/temp
    condition: value >> 3
  - name: bad_template
    subject: home/+room/temp
    condition: value > 1
    annotations:
      summary: "{{ labels.room }"
  - name: uncaptured
    subject: home/+room/temp
    condition: value > 1
    annotations:
      summary: "{{ labels.host }} is hot"
  - name: wrong_type
    subject: home/+room/temp
    condition: '"a" + 1 > 2'
"#,
    )
    .unwrap();
    std::fs::write(
        rules.join("b.yaml"),
        "rules:\n  - name: bad_duration\n    subject: x\n    condition: value > 1\n",
    )
    .unwrap();
    let output = command(dir.path())
        .arg("check")
        .arg(&rules)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let a = rules.join("a.yaml").display().to_string();
    let b = rules.join("b.yaml").display().to_string();
    for expected in [
        format!("{a}:4:5: unknown key `conditon`; did you mean `condition`?"),
        format!("{a}:8:10: for: `soon` is not a duration"),
        format!("{a}:11:23: condition: syntax error"),
        format!("{a}:16:32: annotations.summary: template: syntax error"),
        format!(
            "{a}:21:16: annotations.summary: the template uses label `host`, which the series never has (it has `room`"
        ),
        format!("{a}:24:16: condition: cannot apply '+' to string and int"),
        format!("{b}:2:11: duplicate rule name `bad_duration`; first defined at {a}:5:11"),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn a_failing_rule_test_prints_expected_against_got_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hot.yaml"),
        "rules:\n  - name: hot\n    subject: t/+room\n    condition: value > 30\n    for: 5m\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hot.test.yaml"),
        "rule_files: [hot.yaml]\ntests:\n  - name: fires too early, says the test\n    events:\n      - subject: t/attic\n        values: \"35x10\"\n    expect:\n      - at: 2m\n        alerts:\n          - {rule: hot, state: firing, labels: {room: attic}}\n",
    )
    .unwrap();
    let output = command(dir.path())
        .arg("test")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAIL "), "{stdout}");
    assert!(stdout.contains("at 2m, alerts:"), "{stdout}");
    assert!(
        stdout.contains("expected:\n      - rule=hot state=firing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("got:\n      - rule=hot state=pending"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[tokio::test]
async fn a_shutdown_stuck_on_a_blocked_write_still_exits() {
    // Nobody reads stdout: the console's write blocks in the runtime's blocking pool, where
    // no cancellation reaches it. The shutdown gives up after its timeout, and the process
    // must then exit rather than wait for that write forever.
    let mut atalaya = Atalaya::start_with(Options {
        config: "bus:\n  capacity: 8\nhttp:\n  publish_timeout: 200ms\nshutdown:\n  timeout: 1s\n"
            .into(),
        stdout: StdoutMode::Unread,
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let batch: Vec<_> = (0..8)
        .map(|i| serde_json::json!({"subject": "stuck/stdout", "data": "y".repeat(400), "n": i}))
        .collect();
    let mut full = false;
    for _ in 0..400 {
        let response = client
            .post(atalaya.url("/api/v1/events"))
            .json(&batch)
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            full = true;
            break;
        }
    }
    assert!(full, "the console never blocked");
    atalaya.signal(Signal::SIGTERM);
    let status = atalaya.wait().await;
    assert_eq!(status.code(), Some(1), "logs:\n{}", atalaya.logs());
    assert!(
        atalaya.logs().contains("Shutdown did not finish in time"),
        "{}",
        atalaya.logs()
    );
}

#[tokio::test]
async fn an_open_api_beyond_loopback_needs_a_token_or_an_explicit_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(&config, "http:\n  listen: 0.0.0.0:0\nstate:\n  dir: data\n").unwrap();
    let out = support::std_command(dir.path())
        .args(["run", "-c"])
        .arg(&config)
        .env_remove("ATALAYA__HTTP__LISTEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("atalaya.yaml:2:11: http.listen") && stderr.contains("no token guards"),
        "{stderr}"
    );
    assert!(!stderr.contains("HTTP API listening"), "{stderr}");
    // `atalaya check` says the same.
    let out = support::std_command(dir.path())
        .arg("check")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // With a token, or said to be insecure, it starts (and warns when open).
    let mut open = Atalaya::start_with(Options {
        env: vec![("ATALAYA__HTTP__INSECURE".into(), "true".into())],
        ..Options::default()
    })
    .await;
    open.signal(Signal::SIGTERM);
    open.wait().await;
    let out = support::std_command(dir.path())
        .arg("check")
        .arg(&config)
        .env("ATALAYA__HTTP__TOKEN", "fake-token-for-the-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With every log line silenced (`log.level: off`), a mistake that stops the start still
/// reaches stderr: a crash loop never has empty logs.
#[tokio::test]
async fn fatal_start_errors_reach_stderr_whatever_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let routing = dir.path().join("routing.yaml");
    std::fs::write(&routing, "route:\n  receiver: nobody\nreceivers: []\n").unwrap();
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(
        &config,
        format!(
            "log:\n  level: \"off\"\nstate:\n  dir: {}\nrouting:\n  file: {}\n",
            dir.path().join("data").display(),
            routing.display()
        ),
    )
    .unwrap();
    let output = support::command(dir.path())
        .args(["run", "-c"])
        .arg(&config)
        .env("ATALAYA__HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Invalid routing file."), "{stderr}");
    assert!(stderr.contains("routing.yaml:2:13"), "{stderr}");
    assert!(stderr.contains("atalaya cannot start."), "{stderr}");
}

/// `atalaya check` reports each mistake at its place, in the order a person reads the file:
/// config errors sorted by line whatever order the keys are checked in; a bare number as a
/// duration named with its key and what to write; an unknown key no longer hiding an
/// expression error in the same rule; an empty routing file and an unreadable one pointed
/// at.
#[tokio::test]
async fn check_reports_every_mistake_at_its_place_in_reading_order() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("home.yaml"),
        "rules:\n\
         \x20 - name: kitchen_hot\n\
         \x20   subject: home/+room/temperature\n\
         \x20   condition: value >\n\
         \x20   colour: red\n\
         \x20 - name: damp\n\
         \x20   subject: home/+room/humidity\n\
         \x20   condition: value > 70\n\
         \x20   for: 10\n",
    )
    .unwrap();
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(
        &config,
        "http:\n  listn: 127.0.0.1:9470\nlog:\n  level: verbose\nrouting:\n  file: missing.yaml\n",
    )
    .unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "routing:\n  file: routing.yaml\n").unwrap();
    let empty = dir.path().join("routing.yaml");
    std::fs::write(&empty, "").unwrap();

    let output = command(dir.path())
        .arg("check")
        .args([&config, &other, &rules])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let config = config.display();
    let home = rules.join("home.yaml");
    let home = home.display();
    let expected = [
        format!("{config}:2:3: http.listn: unknown key `listn`; did you mean `listen`?"),
        format!("{config}:4:10: log.level: `verbose` is not a log level"),
        format!("{config}:6:9: routing.file: cannot read missing.yaml:"),
        format!("ok: config {}", other.display()),
        "routing.yaml:1:1: the routing policy is empty; it needs `route:` and `receivers:`"
            .to_owned(),
        format!("{home}:4:23: condition: syntax error"),
        format!("{home}:5:5: unknown key `colour`"),
        format!(
            "{home}:9:10: for: `10` is a number without a unit; write a duration such as `10s`"
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, expected) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(expected.as_str()),
            "{line}\nexpected: {expected}"
        );
    }
}

/// `atalaya check` on a rule test file checks it as one (not as a config, which it is not),
/// and durations take days and weeks as Prometheus writes them (`5d9h`).
#[tokio::test]
async fn check_reads_a_test_file_as_one_and_durations_take_days() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.yaml"),
        "rules:\n  - name: slow\n    subject: a/b\n    condition: value > 1\n    for: 5d9h\n",
    )
    .unwrap();
    let test = dir.path().join("slow.test.yaml");
    std::fs::write(
        &test,
        "rule_files: [slow.yaml]\ntests:\n  - name: pending for days\n    events:\n      - subject: a/b\n        values: \"2\"\n    expect:\n      - at: 5d9h\n        alerts:\n          - {rule: slow, state: firing}\n",
    )
    .unwrap();
    let output = command(dir.path())
        .arg("check")
        .args([dir.path(), test.as_path()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ok: test file"), "{stdout}");
    let output = command(dir.path())
        .arg("test")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
}
