//! The sender against the Bot API stand-in, through teloxide: what the chat reads, edits on
//! resolve, a 429 waited out, a retry that sends only what is missing, long messages in
//! parts, and a token that never shows.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::Labels;
use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
use atalaya_bus::store::Store;
use jiff::Timestamp;

use super::*;
use crate::templates::Locale;
use atalaya_test_kit::telegram::BotApi;

const TOKEN: &str = "123456:FAKE-token-for-atalaya-tests";

struct Setup {
    api: BotApi,
    sender: TelegramSender,
    config: TelegramConfig,
    _dir: tempfile::TempDir,
}

async fn setup(chats: Vec<TelegramChat>) -> Setup {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    Setup {
        sender: TelegramSender::new(store).unwrap(),
        config: config(&api, &token_file, chats),
        api,
        _dir: dir,
    }
}

fn config(api: &BotApi, token_file: &Path, chats: Vec<TelegramChat>) -> TelegramConfig {
    TelegramConfig {
        bot_token: SecretSource::File(token_file.to_owned()),
        chats,
        message_thread_id: None,
        api_url: api.url(),
        on_resolve: OnResolve::Edit,
        message: None,
        locale: Locale::En,
        timeout: Duration::from_secs(5),
        allowed_users: Vec::new(),
        button_max_age: super::DEFAULT_BUTTON_MAX_AGE,
    }
}

fn alert(fingerprint: &str, summary: &str, status: Status) -> NotifiedAlert {
    let labels = Labels::from([
        ("alertname".to_owned(), "freezer_warm".to_owned()),
        ("severity".to_owned(), "critical".to_owned()),
        ("room".to_owned(), "kitchen".to_owned()),
    ]);
    NotifiedAlert {
        instant: false,
        status,
        fingerprint: fingerprint.to_owned(),
        labels,
        annotations: Labels::from([("summary".to_owned(), summary.to_owned())]),
        starts_at: "2026-01-10T10:00:00Z".parse().unwrap(),
        ends_at: (status == Status::Resolved).then(|| "2026-01-10T10:20:00Z".parse().unwrap()),
        value: serde_json::json!(-2),
        generator_url: None,
    }
}

fn notification(id: &str, alerts: Vec<NotifiedAlert>) -> Notification {
    let status = if alerts.iter().any(|a| a.status == Status::Firing) {
        Status::Firing
    } else {
        Status::Resolved
    };
    Notification {
        id: id.to_owned(),
        receiver: "family".to_owned(),
        integration: 0,
        group_key: "{}:{alertname=\"freezer_warm\"}".to_owned(),
        status,
        group_labels: Labels::new(),
        common_labels: alerts.first().map(|a| a.labels.clone()).unwrap_or_default(),
        common_annotations: Default::default(),
        alerts,
        created_at: "2026-01-10T10:05:00Z".parse::<Timestamp>().unwrap(),
        silent: false,
    }
}

#[tokio::test]
async fn the_chat_reads_escaped_html_without_link_previews() {
    let mut s = setup(vec![TelegramChat::Id(42)]).await;
    s.config.message_thread_id = Some(3);
    let mut n = notification(
        "n1",
        vec![alert("a", "Freezer <-2 °C> & \"rising\"", Status::Firing)],
    );
    n.silent = true;
    s.sender.send(&s.config, &n, "").await.unwrap();
    let [sent] = s.api.recorded().try_into().unwrap();
    assert_eq!(sent.method, "sendMessage");
    assert_eq!(sent.chat, "42");
    assert_eq!(sent.parse_mode.as_deref(), Some("HTML"));
    assert!(sent.disable_notification);
    assert!(sent.link_preview_disabled);
    assert_eq!(sent.thread_id, Some(3));
    assert_eq!(
        sent.text,
        "🔴 <b>Freezer &lt;-2 °C&gt; &amp; &quot;rising&quot;</b>\n📍 kitchen\n🕐 for 5m · value -2"
    );
}

#[tokio::test]
async fn a_resolve_edits_the_message_that_announced_the_alert() {
    let s = setup(vec![
        TelegramChat::Id(42),
        TelegramChat::Username("@casa".into()),
    ])
    .await;
    let both = vec![
        alert("a", "Freezer too warm", Status::Firing),
        alert("b", "Fridge too warm", Status::Firing),
    ];
    s.sender
        .send(&s.config, &notification("n1", both), "")
        .await
        .unwrap();
    let one = || {
        vec![
            alert("a", "Freezer too warm", Status::Resolved),
            alert("b", "Fridge too warm", Status::Firing),
        ]
    };
    s.sender
        .send(&s.config, &notification("n2", one()), "")
        .await
        .unwrap();
    // The same again (a repeat): Telegram answers "not modified", which is success, and no
    // message is added.
    s.sender
        .send(&s.config, &notification("n3", one()), "")
        .await
        .unwrap();
    let all = vec![
        alert("a", "Freezer too warm", Status::Resolved),
        alert("b", "Fridge too warm", Status::Resolved),
    ];
    s.sender
        .send(&s.config, &notification("n4", all), "")
        .await
        .unwrap();

    for chat in ["42", "@casa"] {
        let requests = s.api.to_chat(chat);
        let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            methods,
            ["sendMessage", "editMessageText", "editMessageText"],
            "{chat}"
        );
        let head = requests[0].message_id;
        assert!(requests.iter().all(|r| r.message_id == head));
        assert!(
            requests[1].text.contains("<s>Freezer too warm</s>"),
            "{}",
            requests[1].text
        );
        assert_eq!(
            s.api.text_of(chat, head).unwrap(),
            "✅ <b>freezer_warm</b> · 2 resolved\n\
             \n\
             ✅ <s>Freezer too warm</s>\n\
             📍 kitchen\n\
             ✅ resolved after 20m · value -2\n\
             \n\
             ✅ <s>Fridge too warm</s>\n\
             📍 kitchen\n\
             ✅ resolved after 20m · value -2"
        );
    }
}

#[tokio::test]
async fn a_resolve_can_reply_instead_and_a_lost_head_gets_a_new_message() {
    let mut s = setup(vec![TelegramChat::Id(42)]).await;
    s.config.on_resolve = OnResolve::Reply;
    let two = vec![
        alert("a", "Freezer too warm", Status::Firing),
        alert("b", "Fridge too warm", Status::Firing),
    ];
    s.sender
        .send(&s.config, &notification("n1", two), "")
        .await
        .unwrap();
    let one_resolved = vec![
        alert("a", "Freezer too warm", Status::Firing),
        alert("b", "Fridge too warm", Status::Resolved),
    ];
    s.sender
        .send(&s.config, &notification("n2", one_resolved), "")
        .await
        .unwrap();
    let sent = s.api.recorded();
    assert_eq!(sent[1].reply_to, Some(sent[0].message_id));
    assert!(
        sent[1].text.contains("<s>Fridge too warm</s>"),
        "{}",
        sent[1].text
    );

    // With `edit`, a head Telegram no longer has is replaced by a new message.
    s.config.on_resolve = OnResolve::Edit;
    let api = BotApi::start(TOKEN).await;
    s.config.api_url = api.url();
    let resolved = notification("n3", vec![alert("a", "Freezer too warm", Status::Resolved)]);
    s.sender.send(&s.config, &resolved, "").await.unwrap();
    let methods: Vec<String> = api.recorded().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["sendMessage"]);
}

#[tokio::test]
async fn a_429_is_waited_out_before_the_chat_gets_anything_else() {
    let s = setup(vec![TelegramChat::Id(42)]).await;
    s.api.flood(1, 2);
    let n = notification("n1", vec![alert("a", "Freezer too warm", Status::Firing)]);
    let error = s.sender.send(&s.config, &n, "").await.unwrap_err();
    assert!(error.retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(error.kind(), "http_429");
    // Tried again at once (the outbox would wait too): the sender itself holds the chat.
    s.sender.send(&s.config, &n, "").await.unwrap();
    let requests = s.api.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].1 - requests[0].1 >= Duration::from_secs(2),
        "{:?}",
        requests[1].1 - requests[0].1
    );
}

#[tokio::test]
async fn a_retry_sends_only_what_is_missing() {
    let s = setup(vec![
        TelegramChat::Id(1),
        TelegramChat::Id(2),
        TelegramChat::Id(3),
    ])
    .await;
    s.api.fail_chat("2", 1);
    let n = notification("n1", vec![alert("a", "Freezer too warm", Status::Firing)]);
    let error = s.sender.send(&s.config, &n, "").await.unwrap_err();
    assert!(error.retryable(), "{error}");
    s.sender.send(&s.config, &n, "").await.unwrap();
    for chat in ["1", "2", "3"] {
        assert_eq!(s.api.to_chat(chat).len(), 1, "chat {chat}");
    }
}

#[tokio::test]
async fn a_long_message_arrives_in_parts_in_order() {
    let s = setup(vec![TelegramChat::Id(-100_123)]).await;
    let alerts: Vec<NotifiedAlert> = (0..120)
        .map(|i| {
            alert(
                &format!("fp{i:03}"),
                &format!("Sensor {i:03} & friends"),
                Status::Firing,
            )
        })
        .collect();
    let n = notification("n1", alerts);
    s.sender.send(&s.config, &n, "").await.unwrap();
    let parts = s.api.to_chat("-100123");
    assert!(parts.len() > 1, "{} part(s)", parts.len());
    let text: String = parts.iter().map(|p| p.text.as_str()).collect();
    let mut last = 0;
    for i in 0..120 {
        let at = text
            .find(&format!("Sensor {i:03} &amp; friends"))
            .unwrap_or_else(|| panic!("sensor {i} missing"));
        assert!(at >= last, "sensor {i} out of order");
        last = at;
    }
    // Spaced by the per-chat limit (1/s, tested exactly on a paused clock in `limits`);
    // arrival times at the stand-in jitter on a loaded machine, so only the spacing's
    // presence is checked here.
    for pair in parts.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(500));
    }
}

/// A group long enough for several messages, then resolved: every part of it is edited
/// in place (none sent again to ring the phone, none left showing alerts as firing).
#[tokio::test]
async fn a_long_group_resolving_edits_every_part_and_rings_nothing() {
    let s = setup(vec![TelegramChat::Id(-100_123)]).await;
    let alerts = |status: Status| -> Vec<NotifiedAlert> {
        (0..120)
            .map(|i| {
                alert(
                    &format!("fp{i:03}"),
                    &format!("Sensor {i:03} & friends"),
                    status,
                )
            })
            .collect()
    };
    s.sender
        .send(&s.config, &notification("n1", alerts(Status::Firing)), "")
        .await
        .unwrap();
    let firing = s.api.to_chat("-100123");
    assert!(firing.len() > 1, "{} part(s)", firing.len());
    let ids: Vec<i64> = firing.iter().map(|m| m.message_id).collect();

    s.sender
        .send(&s.config, &notification("n2", alerts(Status::Resolved)), "")
        .await
        .unwrap();
    let after = &s.api.to_chat("-100123")[firing.len()..];
    for message in after {
        match message.method.as_str() {
            "editMessageText" => assert!(ids.contains(&message.message_id), "{message:?}"),
            _ => assert!(message.disable_notification, "a resolve rang: {message:?}"),
        }
    }
    for id in &ids {
        assert!(
            after
                .iter()
                .any(|m| m.method == "editMessageText" && m.message_id == *id),
            "part {id} still shows the alerts firing"
        );
    }
    let text: String = after.iter().map(|m| m.text.as_str()).collect();
    assert!(!text.contains("🔴"), "{text}");
}

#[tokio::test]
async fn the_token_never_shows_in_errors() {
    let s = setup(vec![TelegramChat::Id(42)]).await;
    s.api.stop().await;
    let n = notification("n1", vec![alert("a", "Freezer too warm", Status::Firing)]);
    let down = s.sender.send(&s.config, &n, "").await.unwrap_err();
    assert!(down.retryable());
    assert_eq!(down.kind(), "connect");
    for text in [down.to_string(), format!("{down:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("FAKE-token"), "{text}");
    }
    // A wrong token: refused, for good, without showing either token.
    let api = BotApi::start("999:OTHER-token").await;
    let mut config = s.config.clone();
    config.api_url = api.url();
    let refused = s.sender.send(&config, &n, "").await.unwrap_err();
    assert!(!refused.retryable());
    assert!(!refused.to_string().contains("FAKE-token"), "{refused}");
    // A token that cannot be one is refused before any request.
    config.bot_token = SecretSource::Env("ATALAYA_TEST_NOT_A_TOKEN".into());
    let missing = s.sender.send(&config, &n, "").await.unwrap_err();
    assert_eq!(missing.kind(), "token");
    assert!(missing.retryable(), "a secret may be mounted later");
}

/// The service, as the bot sees it: alerts and silences in memory, every call recorded.
#[derive(Default)]
struct FakeOps {
    alerts: std::sync::Mutex<Vec<bot::ChatAlert>>,
    silences: std::sync::Mutex<Vec<bot::ChatSilence>>,
    extended: std::sync::Mutex<Vec<String>>,
    expired: std::sync::Mutex<Vec<String>>,
}

impl bot::ChatOps for FakeOps {
    fn alerts(&self) -> bot::OpFuture<'_, Result<Vec<bot::ChatAlert>, String>> {
        Box::pin(async move { Ok(self.alerts.lock().unwrap().clone()) })
    }

    fn silences(&self) -> bot::OpFuture<'_, Result<Vec<bot::ChatSilence>, String>> {
        Box::pin(async move { Ok(self.silences.lock().unwrap().clone()) })
    }

    fn silence(
        &self,
        request: bot::SilenceRequest,
    ) -> bot::OpFuture<'_, Result<bot::ChatSilence, String>> {
        Box::pin(async move {
            let mut silences = self.silences.lock().unwrap();
            let now = Timestamp::now();
            let silence = bot::ChatSilence {
                id: format!("s{}", silences.len() + 1),
                matchers: format!("{:?}", request.matchers),
                starts_at: now,
                ends_at: now + jiff::SignedDuration::try_from(request.duration).unwrap(),
                created_by: request.created_by,
                comment: request.comment,
            };
            silences.push(silence.clone());
            Ok(silence)
        })
    }

    fn extend(
        &self,
        id: String,
        duration: Duration,
    ) -> bot::OpFuture<'_, Result<bot::ChatSilence, String>> {
        Box::pin(async move {
            self.extended.lock().unwrap().push(id.clone());
            let mut silences = self.silences.lock().unwrap();
            let silence = silences.iter_mut().find(|s| s.id == id).ok_or("no such")?;
            silence.ends_at = Timestamp::now() + jiff::SignedDuration::try_from(duration).unwrap();
            Ok(silence.clone())
        })
    }

    fn expire(&self, id: String) -> bot::OpFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.expired.lock().unwrap().push(id.clone());
            self.silences.lock().unwrap().retain(|s| s.id != id);
            Ok(())
        })
    }

    fn status(&self) -> bot::OpFuture<'_, bot::ChatStatus> {
        Box::pin(async { bot::ChatStatus::default() })
    }
}

/// Polls `check` every 10 ms until it holds, within 10 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `🔕 until resolved`: a silence held an hour at a time, extended while the alert fires
/// and ended once it has resolved.
#[tokio::test]
async fn an_acknowledgement_is_extended_while_firing_and_ends_on_resolve() {
    let mut s = setup(vec![TelegramChat::Id(-100)]).await;
    s.config.allowed_users = vec![AllowedUser {
        id: 111,
        role: Role::Silence,
    }];
    let firing = alert("f1", "Freezer too warm", Status::Firing);
    s.sender
        .send(&s.config, &notification("n1", vec![firing.clone()]), "")
        .await
        .unwrap();
    let message = s.api.recorded()[0].message_id;
    let acknowledge = s
        .api
        .buttons_of("-100", message)
        .into_iter()
        .find(|(text, _)| text == "🔕 until resolved")
        .unwrap()
        .1;

    let ops = Arc::new(FakeOps::default());
    ops.alerts.lock().unwrap().push(bot::ChatAlert {
        fingerprint: "f1".into(),
        labels: firing
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        summary: "Freezer too warm".into(),
        starts_at: firing.starts_at,
        firing: true,
        silenced_by: Vec::new(),
        inhibited: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let registry = prometheus::Registry::new();
    let telegram_bot = bot::TelegramBot::new(&s.sender, store, ops.clone(), &registry)
        .unwrap()
        .checking_acknowledgements_every(Duration::from_millis(20));
    let (_receivers_tx, receivers) = tokio::sync::watch::channel(vec![bot::BotReceiver {
        receiver: "family".into(),
        integration: 0,
        config: s.config.clone(),
    }]);
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(telegram_bot.run(receivers, stop.clone()));

    let press = s.api.press(-100, message, (111, "Ana"), &acknowledge);
    eventually("the press answered", || {
        s.api.answers().iter().any(|a| a.callback_query_id == press)
    })
    .await;
    let answer = s.api.answers().pop().unwrap();
    assert_eq!(answer.text.as_deref(), Some("Silenced until it resolves"));
    let silence = ops.silences.lock().unwrap()[0].clone();
    assert_eq!(silence.created_by, "Ana (Telegram 111)");
    assert_eq!(
        silence.comment,
        "from Telegram: acknowledged until it resolves"
    );
    let held = silence.ends_at.duration_since(Timestamp::now());
    assert!(held > jiff::SignedDuration::from_mins(59), "{held:?}");
    let text = s.api.text_of("-100", message).unwrap();
    assert!(
        text.ends_with("🔕 Acknowledged by Ana: silenced until it resolves"),
        "{text}"
    );
    // With most of the hour left, nothing to do.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ops.extended.lock().unwrap().is_empty());

    // Ten minutes left and still firing: extended by an hour.
    ops.silences.lock().unwrap()[0].ends_at =
        Timestamp::now() + jiff::SignedDuration::from_mins(10);
    eventually("the acknowledgement extended", || {
        ops.extended.lock().unwrap().as_slice() == ["s1"]
    })
    .await;
    let ends = ops.silences.lock().unwrap()[0].ends_at;
    assert!(ends.duration_since(Timestamp::now()) > jiff::SignedDuration::from_mins(59));

    // Resolved: the silence ends, and the acknowledgement is no longer held.
    ops.alerts.lock().unwrap().clear();
    eventually("the acknowledgement ended", || {
        ops.expired.lock().unwrap().as_slice() == ["s1"]
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !s.sender.buttons().acknowledged().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    running.await.unwrap();
}
