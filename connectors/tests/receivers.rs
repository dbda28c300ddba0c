//! The receiver compliance suite: every receiver that talks to an HTTP service is held to
//! the same contract, against a stand-in on loopback (the test kit's recorder), through the
//! same path the service uses — its `<kind>_configs` entry compiled by its kind, opened by
//! the registry, one `notify` per attempt:
//!
//! - it renders firing and resolved notifications, and a person can tell them apart;
//! - 5xx, timeouts and refused connections are retried; 429 is retried after the service's
//!   `Retry-After`; any other 4xx is not retried;
//! - no error, whatever the service answers, shows the integration's secret;
//! - sending the same notification again sends the same request, with the notification id
//!   where the service takes one (so a repeat is recognisable or, for Matrix, dropped).
//!
//! Telegram runs it too, with the Bot API's own answers (JSON errors, `retry_after` in the
//! body). Mail speaks SMTP; its own suite (`tests/mail.rs`, a real SMTP server) holds it to
//! the same points.

#![cfg(all(
    feature = "webhook",
    feature = "telegram",
    feature = "ntfy",
    feature = "gotify",
    feature = "matrix",
    feature = "discord",
    feature = "pushover"
))]

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::Labels;
use atalaya_bus::delivery::{
    DeliveryError, Integration, IntegrationContext, Notification, NotifiedAlert, Notifier, Status,
};
use atalaya_bus::store::Store;
use atalaya_bus::yaml::{DecodeError, Decoder, parse_documents};
use atalaya_connectors::notifiers::{NotifierContext, receivers};
use atalaya_test_kit::http::{Answer, Recorder, Request};
use serde_json::json;

/// The secret every case hides somewhere: in a URL, a header or a form field.
const SECRET: &str = "S3CRET-0123456789abcdef";

/// One receiver under test.
struct Case {
    kind: &'static str,
    /// Its `<kind>_configs` entry, given the stand-in's URL; the secret is in the file
    /// `secret` next to the policy.
    entry: fn(url: &str) -> String,
    /// What goes in the secret file, given the stand-in's URL.
    secret_file: fn(url: &str) -> String,
    /// What the service answers on success.
    ok: fn() -> Answer,
    /// The text a person reads, out of one request.
    text: fn(&Request) -> String,
    /// The notification id the request carries, if the service takes one.
    id: fn(&Request) -> Option<String>,
    /// The service unavailable, and the `reason` that gives.
    unavailable: fn() -> (Answer, &'static str),
    /// The service asking to wait this many seconds.
    busy: fn(u64) -> Answer,
    /// The service refusing, saying `detail`.
    refusal: fn(&str) -> Answer,
    /// Whether a resend of a delivered notification sends it again (a stateless service), or
    /// nothing (a kind that remembers what it delivered: Telegram).
    resends: bool,
}

fn http_unavailable() -> (Answer, &'static str) {
    (Answer::status(503), "http_5xx")
}

fn http_busy(seconds: u64) -> Answer {
    Answer::status(429).with_header("retry-after", &seconds.to_string())
}

fn http_refusal(detail: &str) -> Answer {
    Answer::json(400, &json!({ "error": detail }))
}

fn header_id(request: &Request) -> Option<String> {
    request
        .header("x-atalaya-notification-id")
        .map(str::to_owned)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            kind: "webhook",
            entry: |_| "url_file: secret\ntimeout: 300ms\n".to_owned(),
            secret_file: |url| format!("{url}/hook/{SECRET}"),
            ok: || Answer::status(200),
            text: |r| r.body.clone(),
            id: |r| r.header("idempotency-key").map(str::to_owned),
            unavailable: http_unavailable,
            busy: http_busy,
            refusal: http_refusal,
            resends: true,
        },
        Case {
            kind: "ntfy",
            entry: |url| format!("url: {url}\ntopic: alerts\ntoken_file: secret\ntimeout: 300ms\n"),
            secret_file: |_| SECRET.to_owned(),
            ok: || Answer::json(200, &json!({"id": "x1", "event": "message"})),
            text: |r| format!("{} {}", r.json()["title"], r.json()["message"]),
            id: header_id,
            unavailable: http_unavailable,
            busy: http_busy,
            refusal: http_refusal,
            resends: true,
        },
        Case {
            kind: "gotify",
            entry: |url| format!("url: {url}\ntoken_file: secret\ntimeout: 300ms\n"),
            secret_file: |_| SECRET.to_owned(),
            ok: || Answer::json(200, &json!({"id": 7})),
            text: |r| format!("{} {}", r.json()["title"], r.json()["message"]),
            id: header_id,
            unavailable: http_unavailable,
            busy: http_busy,
            refusal: http_refusal,
            resends: true,
        },
        Case {
            kind: "matrix",
            entry: |url| {
                format!(
                    "homeserver: {url}\nroom_id: \"!room:home.lan\"\naccess_token_file: secret\ntimeout: 300ms\n"
                )
            },
            secret_file: |_| SECRET.to_owned(),
            ok: || Answer::json(200, &json!({"event_id": "$e1"})),
            text: |r| format!("{} {}", r.json()["body"], r.json()["formatted_body"]),
            id: |r| r.path.rsplit('/').next().map(str::to_owned),
            unavailable: http_unavailable,
            busy: http_busy,
            refusal: http_refusal,
            resends: true,
        },
        Case {
            kind: "discord",
            entry: |_| "webhook_url_file: secret\ntimeout: 300ms\n".to_owned(),
            secret_file: |url| format!("{url}/api/webhooks/42/{SECRET}"),
            ok: || Answer::status(204),
            text: |r| {
                let embed = &r.json()["embeds"][0];
                format!("{} {}", embed["title"], embed["description"])
            },
            id: header_id,
            unavailable: http_unavailable,
            busy: http_busy,
            refusal: http_refusal,
            resends: true,
        },
        Case {
            kind: "pushover",
            entry: |url| {
                format!(
                    "api_url: {url}\ntoken_file: secret\nuser_key_file: secret\ntimeout: 300ms\n"
                )
            },
            secret_file: |_| SECRET.to_owned(),
            ok: || Answer::json(200, &json!({"status": 1, "request": "r1"})),
            text: |r| {
                format!(
                    "{} {}",
                    r.form("title").unwrap_or_default(),
                    r.form("message").unwrap_or_default()
                )
            },
            id: header_id,
            unavailable: http_unavailable,
            busy: http_busy,
            refusal: http_refusal,
            resends: true,
        },
        Case {
            kind: "telegram",
            entry: |url| {
                format!("bot_token_file: secret\nchat_id: 42\napi_url: {url}\ntimeout: 300ms\n")
            },
            secret_file: |_| format!("123456:{SECRET}"),
            ok: || {
                Answer::json(
                    200,
                    &json!({"ok": true, "result": {
                        "message_id": 1, "date": 0, "text": "x",
                        "chat": {"id": 42, "type": "private"}
                    }}),
                )
            },
            text: |r| r.json()["text"].to_string(),
            id: |_| None,
            unavailable: || {
                let body =
                    json!({"ok": false, "error_code": 500, "description": "Internal Server Error"});
                // teloxide waits 10 s after a 5xx before reading the answer
                // (`DELAY_ON_SERVER_ERROR`): within this integration's 300 ms the attempt ends
                // as a timeout — retried all the same.
                (Answer::json(500, &body), "timeout")
            },
            busy: |seconds| {
                Answer::json(
                    429,
                    &json!({"ok": false, "error_code": 429,
                        "description": format!("Too Many Requests: retry after {seconds}"),
                        "parameters": {"retry_after": seconds}}),
                )
            },
            refusal: |detail| {
                Answer::json(
                    400,
                    &json!({"ok": false, "error_code": 400,
                        "description": format!("Bad Request: chat not found ({detail})")}),
                )
            },
            // Telegram remembers the parts of a notification it sent (two days): a resend
            // of a delivered notification sends nothing.
            resends: false,
        },
    ]
}

fn alert(status: Status) -> NotifiedAlert {
    NotifiedAlert {
        instant: false,
        status,
        fingerprint: "00000000000000aa".to_owned(),
        labels: Labels::from([
            ("alertname".to_owned(), "freezer_warm".to_owned()),
            ("severity".to_owned(), "critical".to_owned()),
        ]),
        annotations: Labels::from([("summary".to_owned(), "Freezer at -2 °C".to_owned())]),
        starts_at: "2026-01-10T10:00:00Z".parse().unwrap(),
        ends_at: (status == Status::Resolved).then(|| "2026-01-10T10:20:00Z".parse().unwrap()),
        value: json!(-2),
        generator_url: None,
    }
}

fn notification(id: &str, status: Status) -> Notification {
    Notification {
        id: id.to_owned(),
        receiver: "family".to_owned(),
        integration: 0,
        group_key: "{}:{alertname=\"freezer_warm\"}".to_owned(),
        status,
        group_labels: Labels::from([("alertname".to_owned(), "freezer_warm".to_owned())]),
        common_labels: Labels::new(),
        common_annotations: Default::default(),
        alerts: vec![alert(status)],
        created_at: "2026-01-10T10:20:30Z".parse().unwrap(),
        silent: false,
    }
}

/// The case's entry compiled by its kind, as the routing policy would.
fn compile(case: &Case, url: &str, dir: &Path) -> Integration {
    std::fs::write(dir.join("secret"), (case.secret_file)(url)).unwrap();
    let yaml = (case.entry)(url);
    let node = parse_documents(&yaml).unwrap().remove(0);
    compile_node(case, &node, dir)
}

fn compile_node(case: &Case, node: &atalaya_bus::yaml::Node, dir: &Path) -> Integration {
    let (integration, errors) = compile_entry(case.kind, node, dir);
    assert!(errors.is_empty(), "{}: {errors:?}", case.kind);
    integration.expect("it compiles")
}

/// One `<kind>_configs` entry compiled by its kind, with the mistakes it reported.
fn compile_entry(
    kind: &str,
    node: &atalaya_bus::yaml::Node,
    dir: &Path,
) -> (Option<Integration>, Vec<DecodeError>) {
    let kind = receivers()
        .into_iter()
        .find(|k| k.integration.name == kind)
        .expect("the kind is built");
    let mut decoder = Decoder::default();
    let mut context = IntegrationContext {
        decoder: &mut decoder,
        label: "receiver `r`",
        global: None,
        time_intervals: &HashSet::new(),
        base_dir: dir,
    };
    let integration = (kind.integration.compile)(&mut context, node);
    (integration, decoder.errors)
}

/// The notifiers' shared context, with its store in `dir`.
fn context(dir: &Path) -> NotifierContext {
    let store = Arc::new(Store::open(&dir.join("data")).unwrap());
    NotifierContext::new("http://atalaya.test", store).unwrap()
}

/// The case of `kind`.
fn case(kind: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.kind == kind)
        .expect("a case for every kind")
}

/// The requests that carry a message, without bookkeeping (Pushover's cancellations).
fn messages(service: &Recorder) -> Vec<Request> {
    service
        .requests()
        .into_iter()
        .filter(|r| !r.path.contains("/receipts/"))
        .collect()
}

/// Every line of an error a person or a log could see.
fn shown(error: &DeliveryError) -> String {
    format!("{error} {error:?}")
}

async fn compliance(case: Case) {
    let service = Recorder::start().await;
    let url = service.url();
    service.answer("/", (case.ok)());
    let dir = tempfile::tempdir().unwrap();
    let integration = compile(&case, &url, dir.path());
    let context = context(dir.path());
    let notifier: Arc<dyn Notifier> = context.open(&integration);
    assert_eq!(notifier.kind(), case.kind);
    let kind = case.kind;
    let mut errors = Vec::new();

    // Firing, then resolved: both rendered, told apart.
    let firing = notification("n-firing", Status::Firing);
    notifier.notify(&firing).await.expect("delivered");
    let resolved = notification("n-resolved", Status::Resolved);
    notifier.notify(&resolved).await.expect("delivered");
    let requests = messages(&service);
    assert_eq!(requests.len(), 2, "{kind}: {requests:#?}");
    let (firing_text, resolved_text) = ((case.text)(&requests[0]), (case.text)(&requests[1]));
    assert!(
        firing_text.contains("Freezer at -2"),
        "{kind}: {firing_text}"
    );
    assert!(
        resolved_text.to_lowercase().contains("resolved"),
        "{kind}: {resolved_text}"
    );
    assert_ne!(firing_text, resolved_text, "{kind}");

    // Sent again: the same request with the same id, or nothing when the kind remembers.
    notifier.notify(&firing).await.expect("delivered again");
    if case.resends {
        let again = service.requests().pop().unwrap();
        assert_eq!(
            again.body, requests[0].body,
            "{kind}: a repeat renders the same"
        );
        assert_eq!((case.id)(&again), (case.id)(&requests[0]), "{kind}");
        if let Some(id) = (case.id)(&again) {
            assert_eq!(id, "n-firing", "{kind}: the notification id travels");
        }
    } else {
        assert_eq!(
            messages(&service).len(),
            2,
            "{kind}: a repeat sends nothing"
        );
    }
    // New notifications from here on, so that a kind that remembers sends them too.
    let firing = |id: &str| notification(id, Status::Firing);

    // The service's trouble is retried; 429 after its Retry-After.
    let (unavailable, reason) = (case.unavailable)();
    service.fail_next(1, unavailable);
    let error = notifier.notify(&firing("n-5xx")).await.unwrap_err();
    assert!(error.retryable, "{kind}: 5xx is retried: {error:?}");
    assert_eq!(error.reason, reason, "{kind}: {error:?}");
    errors.push(error);
    service.fail_next(1, (case.busy)(2));
    let error = notifier.notify(&firing("n-429")).await.unwrap_err();
    assert!(error.retryable, "{kind}: 429 is retried: {error:?}");
    assert_eq!(error.retry_after, Some(Duration::from_secs(2)), "{kind}");
    errors.push(error);

    // A refusal is not retried; what the service says back shows, its secret does not.
    let secret = (case.secret_file)(&url);
    service.fail_next(1, (case.refusal)(&format!("bad token {secret} {SECRET}")));
    let error = notifier.notify(&firing("n-400")).await.unwrap_err();
    assert!(!error.retryable, "{kind}: 400 is not retried: {error:?}");
    assert!(
        error.message.contains("400") || error.message.contains("bad token"),
        "{kind}: {error}"
    );
    errors.push(error);

    // Too slow: a timeout, retried.
    service.fail_next(1, (case.ok)().after(Duration::from_secs(3)));
    let error = notifier.notify(&firing("n-slow")).await.unwrap_err();
    assert!(error.retryable, "{kind}: a timeout is retried: {error:?}");
    assert_eq!(error.reason, "timeout", "{kind}");
    errors.push(error);

    // Down: retried, and the URL (which may hold the secret) is not shown.
    service.stop();
    let error = notifier.notify(&firing("n-down")).await.unwrap_err();
    assert!(
        error.retryable,
        "{kind}: a refused connection is retried: {error:?}"
    );
    assert_eq!(error.reason, "connect", "{kind}");
    errors.push(error);
    service.resume().await;
    notifier
        .notify(&firing("n-back"))
        .await
        .expect("delivered once back");

    for error in &errors {
        assert!(
            !shown(error).contains(SECRET),
            "{kind}: the secret shows: {error:?}"
        );
    }
    // The secret was used, where the kind puts it.
    let last = service.requests().pop().unwrap();
    let carried = format!("{} {:?} {}", last.path, last.headers, last.body);
    assert!(
        carried.contains(SECRET),
        "{kind}: the secret is used: {carried}"
    );

    // In Spanish, with `locale: es`.
    if kind != "webhook" {
        let yaml = format!("{}locale: es\n", (case.entry)(&url));
        let node = parse_documents(&yaml).unwrap().remove(0);
        let integration = compile_node(&case, &node, dir.path());
        let notifier = context.open(&integration);
        let resolved = notification("n-resolved-es", Status::Resolved);
        notifier.notify(&resolved).await.expect("delivered");
        let text = (case.text)(&messages(&service).pop().unwrap());
        assert!(text.contains("resuelta"), "{kind}: {text}");
    }
}

#[tokio::test]
async fn webhook_complies() {
    compliance(case("webhook")).await;
}

#[tokio::test]
async fn ntfy_complies() {
    compliance(case("ntfy")).await;
}

#[tokio::test]
async fn gotify_complies() {
    compliance(case("gotify")).await;
}

#[tokio::test]
async fn matrix_complies() {
    compliance(case("matrix")).await;
}

#[tokio::test]
async fn discord_complies() {
    compliance(case("discord")).await;
}

#[tokio::test]
async fn pushover_complies() {
    compliance(case("pushover")).await;
}

#[tokio::test]
async fn telegram_complies() {
    compliance(case("telegram")).await;
}

/// A critical alert goes out as an emergency the phone repeats; its resolution cancels the
/// repeats, by the tag the emergency carried.
#[tokio::test]
async fn a_resolved_emergency_stops_ringing() {
    let case = case("pushover");
    let service = Recorder::start().await;
    service.answer(
        "/",
        Answer::json(200, &json!({"status": 1, "receipt": "rcpt1"})),
    );
    let dir = tempfile::tempdir().unwrap();
    let integration = compile(&case, &service.url(), dir.path());
    let notifier = context(dir.path()).open(&integration);
    notifier
        .notify(&notification("n1", Status::Firing))
        .await
        .unwrap();
    notifier
        .notify(&notification("n2", Status::Resolved))
        .await
        .unwrap();
    let [emergency, resolved, cancel] = service.requests().try_into().unwrap();
    assert_eq!(emergency.form("priority").as_deref(), Some("2"));
    assert_eq!(emergency.form("retry").as_deref(), Some("60"));
    assert_eq!(emergency.form("expire").as_deref(), Some("3600"));
    let tag = emergency.form("tags").expect("the emergency is tagged");
    assert_eq!(resolved.form("priority").as_deref(), Some("0"));
    assert_eq!(
        cancel.path,
        format!("/1/receipts/cancel_by_tag/{tag}.json"),
        "{cancel:?}"
    );
    assert_eq!(cancel.form("token").as_deref(), Some(SECRET));
}

/// The errors of one `<kind>_configs` entry, as `line:col: message`.
fn mistakes(kind: &str, yaml: &str) -> Vec<String> {
    let node = parse_documents(yaml).unwrap().remove(0);
    let (integration, mut errors) = compile_entry(kind, &node, Path::new(""));
    assert!(integration.is_none());
    // In file order, as the policy compiler reports them.
    errors.sort_by_key(|e| e.position);
    errors
        .iter()
        .map(|e| match e.position {
            Some(p) => format!("{}:{}: {}", p.line, p.column, e.message),
            None => e.message.clone(),
        })
        .collect()
}

#[test]
fn secrets_in_the_policy_and_impossible_settings_are_refused_at_their_place() {
    assert_eq!(
        mistakes(
            "ntfy",
            "url: ntfy.lan\ntopic: \"a b\"\ntoken: tk_x\npriority: 9\nclick: nowhere\nlocale: fr\n"
        ),
        [
            "1:6: receiver `r`: ntfy `url` must be the server's http:// or https:// URL",
            "2:8: receiver `r`: ntfy needs a `topic`: 1 to 64 letters, digits, `-` or `_` (as ntfy allows)",
            "3:1: receiver `r`: `token` would put a secret in the policy file; write it in a file named by `token_file` (or name an environment variable holding it with `token_env`)",
            "4:11: receiver `r`: ntfy `priority` must be 1 (min) to 5 (max), not 9",
            "5:8: receiver `r`: ntfy `click` must be an http:// or https:// URL",
            "6:9: receiver `r`: `locale` must be `en` or `es`, not `fr`",
        ]
    );
    assert_eq!(
        mistakes("gotify", "url: http://gotify.lan\npriority: 11\n"),
        [
            "1:1: receiver `r`: a secret is needed: `token_file` (a file holding it) or `token_env` (an environment variable holding it)",
            "2:11: receiver `r`: gotify `priority` must be 0 to 10, not 11",
        ]
    );
    assert_eq!(
        mistakes(
            "matrix",
            "homeserver: https://matrix.lan\nroom_id: \"#home:matrix.lan\"\naccess_token: syt_x\n"
        ),
        [
            "2:10: receiver `r`: matrix needs `room_id` as `!id:server` (an alias such as `#home:example.org` is not an id: the room's settings show its internal id)",
            "3:1: receiver `r`: `access_token` would put a secret in the policy file; write it in a file named by `access_token_file` (or name an environment variable holding it with `access_token_env`)",
        ]
    );
    assert_eq!(
        mistakes(
            "discord",
            "webhook_url: https://discord.com/api/webhooks/1/x\nmessage: \"{{ .Alerts }}\"\n"
        ),
        [
            "1:1: receiver `r`: `webhook_url` would put a secret in the policy file; write it in a file named by `webhook_url_file` (or name an environment variable holding it with `webhook_url_env`)",
            "2:10: receiver `r`: `message` looks like an Alertmanager Go template; atalaya's templates are minijinja (Jinja2), e.g. `{{ title }}` — or leave `message` out for the built-in one",
        ]
    );
    assert_eq!(
        mistakes(
            "pushover",
            "user_key_file: u\ntoken_env: \"1bad\"\npriority: 3\nretry: 10s\nexpire: 4h\n"
        ),
        [
            "2:12: receiver `r`: `token_env` must name an environment variable (letters, digits and `_`), not hold the secret itself",
            "3:11: receiver `r`: pushover `priority` must be -2 to 2, not 3",
            "4:8: receiver `r`: pushover `retry` must be at least 30s (Pushover's minimum)",
            "5:9: receiver `r`: pushover `expire` must be at most 3h (Pushover's maximum)",
        ]
    );
}
