//! Telegram integrations through the outbox, against the Bot API stand-in: an outage
//! survived with every message delivered once and in order per chat; a burst of alerts from
//! the router grouped into a few messages within Telegram's limits; the bot token kept out
//! of logs, errors, dead letters and metrics.

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_connectors::telegram::{OnResolve, TelegramChat, TelegramConfig};
use atalaya_connectors::templates::Locale;
use atalaya_rules::routing::router::{RoutedAlert, Router};
use atalaya_test_kit::telegram::{BotApi, Recorded};

use super::*;

const BOT_TOKEN: &str = "123456:FAKE-token-outbox-tests-0123456789";

fn telegram(api: &BotApi, token_file: &std::path::Path, chats: &[i64]) -> Integration {
    Integration::new(
        "telegram",
        true,
        TelegramConfig {
            bot_token: SecretSource::File(token_file.to_owned()),
            chats: chats.iter().copied().map(TelegramChat::Id).collect(),
            message_thread_id: None,
            api_url: api.url(),
            on_resolve: OnResolve::Edit,
            message: None,
            locale: Locale::En,
            timeout: Duration::from_secs(5),
            allowed_users: Vec::new(),
            button_max_age: atalaya_connectors::telegram::DEFAULT_BUTTON_MAX_AGE,
        },
    )
}

fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bot-token");
    std::fs::write(&path, BOT_TOKEN).unwrap();
    path
}

/// `count` notifications for one lane, each with one alert whose summary is its id.
fn telegram_batch(receiver: &str, prefix: &str, count: usize) -> Vec<Notification> {
    let mut batch = lane_batch(receiver, 0, prefix, count);
    for (i, n) in batch.iter_mut().enumerate() {
        n.alerts[0].fingerprint = format!("{prefix}{i:02}");
        n.alerts[0]
            .annotations
            .insert("summary".into(), format!("alert {}", n.id));
        n.group_key = format!("{{}}:{{alertname=\"{prefix}{i:02}\"}}");
    }
    batch
}

/// The alert summaries of the messages, in arrival order.
fn summaries(messages: &[Recorded]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let start = m.text.find("<b>").map_or(0, |i| i + 3);
            let end = m.text.find("</b>").unwrap_or(m.text.len());
            m.text[start..end].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn after_an_outage_every_message_arrives_once_in_order_per_chat() {
    let api = BotApi::start(BOT_TOKEN).await;
    api.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (outbox, registry, store) = open(dir.path(), fast());
    let policy = policy(vec![
        receiver("family", vec![telegram(&api, &token, &[1, -100_200])]),
        receiver("phone", vec![telegram(&api, &token, &[7])]),
    ]);
    let running = Running::start(&outbox, policy, integrations(&Captured::default(), &store));
    let family = telegram_batch("family", "f", 4);
    let phone = telegram_batch("phone", "p", 4);
    outbox.enqueue(family.clone()).unwrap();
    outbox.enqueue(phone.clone()).unwrap();

    eventually("attempts fail while the Bot API is down", || {
        metric(
            &registry,
            "atalaya_notifications_failed_total",
            &[("integration", "telegram")],
        ) >= 4.0
    })
    .await;
    assert!(api.recorded().is_empty());
    api.restart().await;
    eventually("every notification delivered", || outbox.depth() == 0).await;
    running.stop().await;

    let expect = |batch: &[Notification]| -> Vec<String> {
        batch.iter().map(|n| format!("alert {}", n.id)).collect()
    };
    for (chat, batch) in [("1", &family), ("-100200", &family), ("7", &phone)] {
        let messages = api.to_chat(chat);
        assert_eq!(
            summaries(&messages),
            expect(batch),
            "chat {chat}: once each, in order"
        );
        for pair in messages.windows(2) {
            assert!(
                pair[1].at - pair[0].at >= Duration::from_millis(950),
                "chat {chat}"
            );
        }
    }
    assert_eq!(
        metric(
            &registry,
            "atalaya_notifications_sent_total",
            &[("receiver", "family"), ("integration", "telegram")]
        ),
        4.0
    );
}

#[tokio::test]
async fn a_burst_of_200_alerts_becomes_a_few_messages_within_the_limits() {
    let api = BotApi::start(BOT_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (outbox, _registry, store) = open(dir.path(), fast());
    let chat = -100_300;
    let policy = policy(vec![receiver(
        "family",
        vec![telegram(&api, &token, &[chat])],
    )]);
    let mut router = Router::new(Arc::clone(&policy));
    let now = Timestamp::now();
    for i in 0..200 {
        let name = format!("disk_filling_{}", i % 5);
        let labels = Labels::from([
            ("alertname".to_owned(), name),
            ("node".to_owned(), format!("pi{i:03}")),
            ("severity".to_owned(), "warning".to_owned()),
        ]);
        router.on_alert(
            now,
            RoutedAlert {
                fingerprint: format!("{i:016x}"),
                labels,
                annotations: Labels::from([(
                    "summary".to_owned(),
                    format!("Disk of pi{i:03} 90% full"),
                )]),
                starts_at: now,
                ends_at: None,
                value: serde_json::json!(90),
                generator_url: None,
                updated_at: None,
            },
        );
    }
    let notifications = router.on_tick(now + SignedDuration::from_secs(30));
    assert_eq!(notifications.len(), 5, "one notification per group");
    let running = Running::start(&outbox, policy, integrations(&Captured::default(), &store));
    outbox.enqueue(notifications).unwrap();
    eventually("the burst delivered", || outbox.depth() == 0).await;
    running.stop().await;

    let messages = api.to_chat(&chat.to_string());
    assert!(
        (5..=15).contains(&messages.len()),
        "{} messages for 200 alerts",
        messages.len()
    );
    let text: String = messages.iter().map(|m| m.text.as_str()).collect();
    for i in 0..200 {
        let summary = format!("Disk of pi{i:03} 90% full");
        assert_eq!(text.matches(&summary).count(), 1, "{summary}");
    }
    for pair in messages.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(950));
    }
    for window in messages.windows(21) {
        assert!(window[20].at - window[0].at >= Duration::from_secs(59));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_bot_token_never_reaches_logs_errors_dead_letters_or_metrics() {
    let logs = Captured::default();
    let _guard = logs.install();
    let api = BotApi::start(BOT_TOKEN).await;
    let wrong = BotApi::start("999:another-token").await;
    api.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (outbox, registry, store) = open(dir.path(), fast());
    let policy = policy(vec![
        receiver("down", vec![telegram(&api, &token, &[1])]),
        receiver("refused", vec![telegram(&wrong, &token, &[2])]),
    ]);
    let running = Running::start(&outbox, policy, integrations(&Captured::default(), &store));
    outbox.enqueue(telegram_batch("down", "d", 1)).unwrap();
    outbox.enqueue(telegram_batch("refused", "r", 1)).unwrap();
    eventually("failures retried and dead-lettered", || {
        metric(
            &registry,
            "atalaya_notifications_failed_total",
            &[("receiver", "down")],
        ) >= 3.0
            && metric(
                &registry,
                "atalaya_notifications_dead_lettered_total",
                &[("receiver", "refused")],
            ) >= 1.0
    })
    .await;
    running.stop().await;

    let metrics = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    let dead = outbox.dead_letters().unwrap();
    let queued: Vec<String> = store
        .scan(OUTBOX_TABLE)
        .unwrap()
        .into_iter()
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        .collect();
    let logs = logs.text();
    assert!(
        logs.contains("Notification not delivered; will retry."),
        "{logs}"
    );
    assert!(logs.contains("Notification dead-lettered"), "{logs}");
    assert!(metrics.contains("reason=\"connect\""), "{metrics}");
    for (what, text) in [
        ("logs", logs),
        ("metrics", metrics),
        ("dead letters", format!("{dead:?}")),
        ("queued entries", queued.join("\n")),
    ] {
        assert!(!text.contains(BOT_TOKEN), "the token in {what}: {text}");
        assert!(
            !text.contains("FAKE-token"),
            "part of the token in {what}: {text}"
        );
    }
}

/// Whether a message rings is the router's decision (`quiet`), carried on the notification:
/// delivery obeys it, also on a retry.
#[tokio::test]
async fn silent_notifications_go_out_without_a_sound() {
    let api = BotApi::start(BOT_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (outbox, _registry, store) = open(dir.path(), fast());
    let policy = policy(vec![receiver("family", vec![telegram(&api, &token, &[5])])]);
    let running = Running::start(&outbox, policy, integrations(&Captured::default(), &store));
    let mut batch = telegram_batch("family", "q", 2);
    batch[0].silent = true;
    outbox.enqueue(batch).unwrap();
    eventually("both delivered", || outbox.depth() == 0).await;
    running.stop().await;
    let silent: Vec<bool> = api
        .to_chat("5")
        .iter()
        .map(|m| m.disable_notification)
        .collect();
    assert_eq!(
        silent,
        [true, false],
        "the silent one is silent, the other rings"
    );
}
