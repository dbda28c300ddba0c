//! The web page against the real binary: in a real browser (headless Chromium through
//! chromedriver, driven by `tests/web/browser.py` with Selenium, axe-core checking
//! accessibility), and under load (10 000 alerts render a page within a second, in bounded
//! memory, escaped and cut).
//!
//! `scripts/test` installs Chromium, chromedriver and Selenium (Debian packages) and
//! axe-core (npm, into `target/tools/`). Screenshots go to `target/web-screenshots/`; with
//! `ATALAYA_UPDATE_SCREENSHOTS=1` they are copied to `docs/images/` too.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Atalaya, Options, PATIENCE};

/// A fake token: never a real one in tests.
const TOKEN: &str = "fake-web-test-token-1f2e3d";

const RULE: &str = "rules:
  - name: kitchen_hot
    subject: home/+room/temperature
    condition: value > 70
    annotations:
      summary: \"{{ labels.room }} at {{ value }}\"
";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `request` with the test's bearer token.
fn bearer(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("Authorization", format!("Bearer {TOKEN}"))
}

/// Polls `GET path` (with the token) until `done` holds on its JSON.
async fn json_until(atalaya: &Atalaya, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let response = bearer(client.get(atalaya.url(path))).send().await.unwrap();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never so: {body:#}\n{}",
            atalaya.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// axe-core's script, installed from npm into `target/tools/` when missing.
fn axe_core() -> PathBuf {
    let tools = root().join("target/tools");
    let axe = tools.join("node_modules/axe-core/axe.min.js");
    if !axe.exists() {
        let status = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&tools)
            .arg("axe-core@4")
            .status()
            .expect("npm (scripts/test installs it) to install axe-core");
        assert!(status.success(), "npm install axe-core failed");
    }
    axe
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (scripts/test does)"
    );
}

#[tokio::test]
async fn the_page_in_a_real_browser() {
    require("/usr/bin/chromium", "chromium");
    require("/usr/bin/chromedriver", "chromium-driver");
    let axe = axe_core();
    let atalaya = Atalaya::start_with(Options {
        rules: vec![("kitchen.yaml", RULE.to_owned())],
        routing: Some(support::CONSOLE_AT_ONCE.to_owned()),
        env: vec![("ATALAYA__HTTP__TOKEN".to_owned(), TOKEN.to_owned())],
        ..Options::default()
    })
    .await;
    // A rule alert that fires and resolves: its history has both transitions.
    let client = reqwest::Client::new();
    for value in ["80", "60"] {
        let sent = bearer(client.post(atalaya.url("/api/v1/events/home/kitchen/temperature")))
            .body(value)
            .send()
            .await
            .unwrap();
        assert!(sent.status().is_success());
        if value == "80" {
            json_until(&atalaya, "/api/v1/alerts", |a| {
                a[0]["status"]["state"] == "active"
            })
            .await;
        }
    }
    let alerts = json_until(&atalaya, "/api/v1/alerts", |a| {
        a[0]["status"]["state"] == "resolved" || a.as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let history = json_until(&atalaya, "/api/v1/history?alertname=kitchen_hot", |h| {
        h[0]["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["state"] == "resolved"))
    })
    .await;
    let fingerprint = history[0]["fingerprint"].as_str().unwrap().to_owned();
    drop(alerts);

    let shots = root().join("target/web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut browser = tokio::process::Command::new("/usr/bin/python3");
    browser
        .arg(root().join("tests/web/browser.py"))
        .env("ATALAYA_URL", atalaya.url(""))
        .env("ATALAYA_TOKEN", TOKEN)
        .env("ALERT_FP", &fingerprint)
        .env("SHOTS", &shots)
        .env("AXE", &axe)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), browser.output())
        .await
        .expect("the browser checks finish within 10 minutes")
        .expect("python3 (Debian's, with python3-selenium) runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{printed}");
    assert!(
        output.status.success() && printed.contains("browser checks passed"),
        "the browser checks failed:\n{printed}\n{}",
        atalaya.logs()
    );
    if std::env::var_os("ATALAYA_UPDATE_SCREENSHOTS").is_some() {
        let images = root().join("docs/images");
        std::fs::create_dir_all(&images).unwrap();
        for entry in std::fs::read_dir(&shots).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, images.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// The resident memory of the service, from its own metrics.
async fn resident_bytes(atalaya: &Atalaya) -> f64 {
    let metrics = atalaya.metrics().await;
    support::sample(&metrics, "process_resident_memory_bytes", "").expect("process metrics")
}

#[tokio::test]
async fn ten_thousand_alerts_render_a_page_within_a_second_in_bounded_memory() {
    let atalaya = Atalaya::start_with(Options {
        config: "routing:\n  max_alerts: 20000\n".to_owned(),
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let huge = "\u{202e}<img src=x onerror=alert(1)>".to_owned() + &"A".repeat(64 * 1024);
    for batch in 0..10 {
        let alerts: Vec<Value> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                let severity = ["critical", "warning", "info"][n % 3];
                json!({
                    "labels": {
                        "alertname": format!("Load{}", n % 7),
                        "instance": format!("host-{n}"),
                        "severity": severity,
                        "note": if n % 1000 == 0 { huge.as_str() } else { "plain" },
                    },
                    "annotations": {"summary": format!("<b>host {n}</b> is loaded")},
                })
            })
            .collect();
        let posted = client
            .post(atalaya.url("/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(posted.status().is_success(), "{}", posted.status());
    }
    let listed = atalaya.get_json("/api/v2/alerts").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(10_000));

    let before = resident_bytes(&atalaya).await;
    let mut slowest = Duration::ZERO;
    let mut largest = 0;
    for path in [
        "/",
        "/?page=100",
        "/?page=200",
        "/?by=severity",
        "/?by=severity&page=150",
        "/?filter=severity%3D%22critical%22",
    ] {
        for _ in 0..3 {
            let started = Instant::now();
            let response = client.get(atalaya.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body = response.text().await.unwrap();
            slowest = slowest.max(started.elapsed());
            largest = largest.max(body.len());
            assert_eq!(
                body.matches("<article class=\"card alert").count(),
                50,
                "{path}"
            );
            assert!(!body.contains("<img"), "a hostile label value is escaped");
            assert!(!body.contains("<b>host"), "a hostile annotation is escaped");
            assert!(!body.contains(&"A".repeat(1000)), "a 64 KB value is cut");
        }
    }
    let after = resident_bytes(&atalaya).await;
    let mut assets = 0;
    for asset in ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"] {
        assets += client
            .get(atalaya.url(asset))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
    }
    println!(
        "10 000 alerts: slowest page {slowest:?}, largest page {largest} bytes + {assets} bytes of assets, resident memory {:.1} MB before, {:.1} MB after 18 pages",
        before / 1e6,
        after / 1e6
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a page took {slowest:?} to render"
    );
    assert!(
        largest + assets < 100_000,
        "a page weighs {largest} + {assets} bytes"
    );
    assert!(
        after - before < 64e6,
        "rendering grew the resident memory by {:.1} MB",
        (after - before) / 1e6
    );
}

/// The session cookie and CSRF token of a page, as a browser would keep and send them.
async fn session_of(client: &reqwest::Client, url: &str) -> (String, String) {
    let response = client.get(url).send().await.unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let csrf = csrf_in(&response.text().await.unwrap());
    (cookie, csrf)
}

/// The CSRF token of a page's forms.
fn csrf_in(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned()
}

/// The body of `GET path` with the session `cookie`.
async fn page_with_cookie(atalaya: &Atalaya, path: &str, cookie: &str) -> String {
    reqwest::Client::new()
        .get(atalaya.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_silence_until_resolved_ends_when_its_alert_resolves() {
    // No token configured: the page, like the API, is open (and still wants CSRF tokens).
    let atalaya = Atalaya::start_with(Options {
        rules: vec![("kitchen.yaml", RULE.to_owned())],
        routing: Some(support::CONSOLE_AT_ONCE.to_owned()),
        ..Options::default()
    })
    .await;
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "80")
            .await,
        202
    );
    let alerts = json_until(&atalaya, "/api/v2/alerts", |a| {
        a.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let fingerprint = alerts[0]["fingerprint"].as_str().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, csrf) = session_of(&client, &atalaya.url("/")).await;
    let action = "/alerts/silence";
    let asked = format!("{fingerprint} resolved");

    // Without the page's CSRF token, nothing is silenced.
    let refused = post_form(
        &atalaya,
        &cookie,
        action,
        &[("csrf", "forged"), ("silence", asked.as_str())],
    )
    .await;
    assert_eq!(refused.status(), 403);
    let silenced = post_form(
        &atalaya,
        &cookie,
        action,
        &[("csrf", csrf.as_str()), ("silence", asked.as_str())],
    )
    .await;
    assert_eq!(silenced.status(), 303, "{}", silenced.text().await.unwrap());
    let silences = json_until(&atalaya, "/api/v2/silences", |s| {
        s[0]["status"]["state"] == "active"
    })
    .await;
    assert_eq!(silences.as_array().map(Vec::len), Some(1));
    assert_eq!(
        silences[0]["createdBy"], "web",
        "no token: the page's user is `web`"
    );
    let alert = json_until(&atalaya, "/api/v2/alerts", |a| {
        a[0]["status"]["state"] == "suppressed"
    })
    .await;
    assert_eq!(alert[0]["status"]["silencedBy"][0], silences[0]["id"]);

    // The alert resolves: its silence ends with it (at the runner's next 10 s check).
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/kitchen/temperature", "60")
            .await,
        202
    );
    json_until(&atalaya, "/api/v2/silences", |s| {
        s[0]["status"]["state"] == "expired"
    })
    .await;
}

/// `POST path` with a form of `fields` and the session `cookie`, not following redirects.
async fn post_form(
    atalaya: &Atalaya,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(atalaya.url(path))
        .header("cookie", cookie)
        .form(fields)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_read_only_view_and_the_read_token_show_without_changing() {
    let read_token = "fake-web-read-token-9a8b";
    let dir = tempfile::tempdir().unwrap();
    let read_file = dir.path().join("read-token");
    std::fs::write(&read_file, read_token).unwrap();
    let atalaya = Atalaya::start_with(Options {
        config: format!(
            "http:\n  web_anonymous_read: true\n  read_token_file: {}\n",
            read_file.display()
        ),
        env: vec![("ATALAYA__HTTP__TOKEN".to_owned(), TOKEN.to_owned())],
        ..Options::default()
    })
    .await;
    let posted = bearer(reqwest::Client::new().post(atalaya.url("/api/v2/alerts")))
        .json(&json!([{"labels": {"alertname": "DoorOpen", "room": "hall"}}]))
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success());
    let fingerprint = json_until(&atalaya, "/api/v2/alerts", |a| {
        a.as_array().is_some_and(|a| a.len() == 1)
    })
    .await[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let asked = format!("{fingerprint} 1h");

    // A guest sees the alerts, without buttons, and cannot silence.
    let client = reqwest::Client::new();
    let page = client.get(atalaya.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(
        body.contains("DoorOpen") && body.contains("Log in"),
        "{body}"
    );
    assert!(
        !body.contains("name=\"silence\""),
        "no silence buttons for a guest"
    );
    let (cookie, csrf) = session_of(&client, &atalaya.url("/login")).await;
    let refused = post_form(
        &atalaya,
        &cookie,
        "/alerts/silence",
        &[("csrf", &csrf), ("silence", &asked)],
    )
    .await;
    assert_eq!(refused.status(), 401, "a guest is asked to log in");

    // The read token logs in read-only: still no silence.
    let login = post_form(
        &atalaya,
        &cookie,
        "/login",
        &[("csrf", &csrf), ("name", "Bob"), ("token", read_token)],
    )
    .await;
    assert_eq!(login.status(), 303);
    let reader = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let page = page_with_cookie(&atalaya, "/", &reader).await;
    assert!(
        page.contains("Logged in as <bdi>Bob</bdi> (read only)"),
        "{page}"
    );
    let csrf = csrf_in(&page);
    let refused = post_form(
        &atalaya,
        &reader,
        "/alerts/silence",
        &[("csrf", &csrf), ("silence", &asked)],
    )
    .await;
    assert_eq!(refused.status(), 403);
    let silences = json_until(&atalaya, "/api/v2/silences", |_| true).await;
    assert_eq!(silences, json!([]), "nothing was silenced");
}

#[tokio::test]
async fn dead_letters_are_retried_and_dropped_from_the_page() {
    let hook = atalaya_test_kit::http::Recorder::start().await;
    // The webhook refuses (a permanent failure): its notifications become dead letters.
    hook.answer("/", atalaya_test_kit::http::Answer::status(400));
    let routing = format!(
        "route:\n  receiver: home\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: home\n    webhook_configs:\n      - url: {}/hook\n        send_resolved: false\n",
        hook.url()
    );
    let atalaya = Atalaya::start_with(Options {
        routing: Some(routing),
        ..Options::default()
    })
    .await;
    let posted = reqwest::Client::new()
        .post(atalaya.url("/api/v2/alerts"))
        .json(&json!([
            {"labels": {"alertname": "DoorOpen"}},
            {"labels": {"alertname": "WindowOpen"}},
        ]))
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success());
    let letters = json_until(&atalaya, "/api/v1/dead-letters", |d| {
        d.as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    let ids: Vec<String> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let client = reqwest::Client::new();
    let (cookie, csrf) = session_of(&client, &atalaya.url("/deliveries")).await;
    let page = page_with_cookie(&atalaya, "/deliveries", &cookie).await;
    for id in &ids {
        assert!(page.contains(&format!("/deliveries/{id}/retry")), "{page}");
    }
    assert!(page.contains("Dead letters (2)"), "{page}");

    let forged = post_form(
        &atalaya,
        &cookie,
        &format!("/deliveries/{}/drop", ids[0]),
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(forged.status(), 403);
    let dropped = post_form(
        &atalaya,
        &cookie,
        &format!("/deliveries/{}/drop", ids[0]),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(dropped.status(), 303);
    let requests_before = hook.requests().len();
    let retried = post_form(
        &atalaya,
        &cookie,
        &format!("/deliveries/{}/retry", ids[1]),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(retried.status(), 303);
    // Retried: delivered (and refused) again, and back among the dead letters alone.
    hook.wait_until("the retried notification", |r| r.len() > requests_before)
        .await;
    json_until(&atalaya, "/api/v1/dead-letters", |d| {
        d.as_array()
            .is_some_and(|d| d.len() == 1 && d[0]["id"] == ids[1].as_str())
    })
    .await;
}

#[tokio::test]
async fn pending_series_show_on_the_alerts_and_rules_pages() {
    let rule = "rules:
  - name: freezer_warm
    subject: home/+room/freezer
    condition: value > -10
    for: 1h
";
    let atalaya = Atalaya::start_with(Options {
        rules: vec![("freezer.yaml", rule.to_owned())],
        ..Options::default()
    })
    .await;
    assert_eq!(
        atalaya
            .post("/api/v1/events/home/garage/freezer", "-4")
            .await,
        202
    );
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let alerts = loop {
        let page = client
            .get(atalaya.url("/"))
            .header("accept-language", "es-ES,es;q=0.9")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("freezer_warm") || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        alerts.contains("<span class=\"badge pending\">pendiente</span>"),
        "{alerts}"
    );
    assert!(
        alerts.contains("freezer_warm") && alerts.contains("se activa a las"),
        "{alerts}"
    );
    assert!(
        alerts.contains("<bdi>room</bdi>=<bdi>garage</bdi>"),
        "{alerts}"
    );

    let rules = client
        .get(atalaya.url("/rules"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(rules.contains("freezer.yaml:2"), "file:line: {rules}");
    assert!(rules.contains("fires at"), "{rules}");
    assert!(rules.contains("last value <code>-4</code>"), "{rules}");
}

#[tokio::test]
async fn logging_in_from_a_page_leads_back_to_it() {
    let atalaya = Atalaya::start_with(Options {
        env: vec![("ATALAYA__HTTP__TOKEN".to_owned(), TOKEN.to_owned())],
        ..Options::default()
    })
    .await;
    // A link to the silences page, followed without a session: the login form, which
    // carries where the visitor was going.
    let client = reqwest::Client::new();
    let asked = atalaya.url("/silences/new?matchers=room%3D%22hall%22");
    let page = client.get(&asked).send().await.unwrap();
    assert_eq!(page.status(), 401);
    let body = page.text().await.unwrap();
    let (cookie, csrf) = session_of(&client, &asked).await;
    let next = body
        .split("name=\"next\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form says where to go next")
        .replace("&amp;", "&");
    assert_eq!(next, "/silences/new?matchers=room%3D%22hall%22");

    // A wrong token keeps the way back; the right one follows it.
    let wrong = post_form(
        &atalaya,
        &cookie,
        "/login",
        &[("csrf", &csrf), ("token", "wrong"), ("next", &next)],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("name=\"next\""));
    let login = post_form(
        &atalaya,
        &cookie,
        "/login",
        &[
            ("csrf", &csrf),
            ("name", "Ana"),
            ("token", TOKEN),
            ("next", &next),
        ],
    )
    .await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], next.as_str());

    // Only to a path of this site.
    let elsewhere = post_form(
        &atalaya,
        &cookie,
        "/login",
        &[
            ("csrf", &csrf),
            ("token", TOKEN),
            ("next", "//evil.example/"),
        ],
    )
    .await;
    assert_eq!(elsewhere.headers()["location"], "/");
}
