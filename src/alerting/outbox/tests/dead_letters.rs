//! What is dead-lettered without a delivery attempt, or at the first.

use std::collections::HashMap;

use atalaya_connectors::mqtt::MqttPublishConfig;
use atalaya_connectors::nats::NatsPublishConfig;

use super::*;

#[tokio::test]
async fn gone_receivers_missing_brokers_and_old_news_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, registry, store) = open(dir.path(), fast());
    let policy = policy(vec![receiver(
        "home",
        vec![
            Integration::new("console", true, ()),
            Integration::new(
                "mqtt",
                true,
                MqttPublishConfig {
                    topic: "atalaya/notifications".into(),
                    state_topic_prefix: "atalaya/alerts".into(),
                    clear_resolved_after: std::time::Duration::from_secs(3600),
                },
            ),
            Integration::new(
                "nats",
                true,
                NatsPublishConfig {
                    subject: "atalaya.notifications".into(),
                },
            ),
        ],
    )]);
    let console = Captured::default();
    let mut old = notification("home", 0, "old");
    old.created_at = Timestamp::now() - SignedDuration::from_hours(2);
    outbox
        .enqueue(vec![
            old,
            notification("home", 0, "console-1"),
            notification("home", 1, "mqtt-1"),
            notification("home", 2, "nats-1"),
            notification("home", 7, "no-such-integration"),
            notification("gone", 0, "no-such-receiver"),
        ])
        .unwrap();
    let running = Running::start(&outbox, policy, integrations(&console, &store));
    eventually("all handled", || outbox.depth() == 0).await;
    running.stop().await;

    let reasons: HashMap<String, String> = outbox
        .dead_letters()
        .unwrap()
        .into_iter()
        .map(|l| (l.notification.id, l.reason))
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(reasons["old"].starts_with("past max_age"), "{reasons:?}");
    assert_eq!(
        reasons["no-such-receiver"],
        "receiver `gone` is not in the routing policy any more"
    );
    assert_eq!(
        reasons["no-such-integration"],
        "receiver `home` has no integration #7 any more (it has 3)"
    );
    let built = [cfg!(feature = "mqtt"), cfg!(feature = "nats")];
    for ((id, broker), built) in [("mqtt-1", "MQTT"), ("nats-1", "NATS")]
        .into_iter()
        .zip(built)
    {
        let expected = if built {
            format!("no {broker} broker is configured")
        } else {
            "this atalaya was built without".to_owned()
        };
        assert!(reasons[id].contains(&expected), "{reasons:?}");
    }

    let lines = console.text();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(
        lines.contains("[firing:1] home node_lost (node=pi1) — node_lost"),
        "{lines}"
    );
    assert_eq!(
        metric(
            &registry,
            "atalaya_notifications_sent_total",
            &[("integration", "console")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &registry,
            "atalaya_notifications_dead_lettered_total",
            &[("receiver", "gone"), ("integration", "unknown")]
        ),
        1.0
    );
}

#[test]
fn invalid_settings_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let settings = OutboxSettings {
        max_attempts: 0,
        ..OutboxSettings::default()
    };
    let error = Outbox::open(store, &Registry::new(), settings)
        .err()
        .expect("max_attempts 0 is refused");
    assert!(error.to_string().contains("max_attempts"), "{error}");
}
