//! Delivery to a real HTTP server on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;

use atalaya_test_kit::http::{Answer, Recorder};

use super::*;

/// A webhook receiver on loopback (the test kit's recorder): paths `/hook/<lane>/<token>`
/// accept, `/refuse/…` always answers 400; [`Hook::failing`] makes the first requests 503.
#[derive(Clone)]
struct Hook(Recorder);

impl Hook {
    async fn start() -> Self {
        Self::on(Recorder::start().await)
    }

    fn on(recorder: Recorder) -> Self {
        recorder.answer("/refuse", Answer::status(400));
        Self(recorder)
    }

    /// The first `failures` requests answer 503.
    async fn failing(failures: usize) -> Self {
        let hook = Self::start().await;
        hook.0.fail_next(failures, Answer::status(503));
        hook
    }

    fn address(&self) -> SocketAddr {
        self.0.addr
    }

    /// The ids accepted on `lane`, in arrival order.
    fn accepted_on(&self, lane: &str) -> Vec<String> {
        let prefix = format!("/hook/{lane}/");
        self.0
            .accepted()
            .iter()
            .filter(|r| r.path.starts_with(&prefix))
            .map(|r| r.header("idempotency-key").unwrap_or_default().to_owned())
            .collect()
    }

    /// How many times each id was accepted.
    fn acceptances(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for request in self.0.accepted() {
            let id = request.header("idempotency-key").unwrap_or_default();
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
        counts
    }
}

fn hook_url(address: SocketAddr, lane: &str) -> String {
    format!("http://{address}/hook/{lane}/{TOKEN}")
}

#[tokio::test]
async fn every_notification_arrives_once_in_order_per_lane_despite_failures() {
    let hook = Hook::failing(7).await;
    let address = hook.address();
    let dir = tempfile::tempdir().unwrap();
    let (outbox, registry, store) = open(dir.path(), fast());
    let policy = policy(vec![
        receiver(
            "home",
            vec![
                webhook(hook_url(address, "home0")),
                webhook(hook_url(address, "home1")),
            ],
        ),
        receiver("phone", vec![webhook(hook_url(address, "phone0"))]),
    ]);
    let console = Captured::default();
    let running = Running::start(&outbox, policy, integrations(&console, &store));

    // Two batches per lane, the second enqueued while the first is being delivered.
    let lanes = [("home", 0, "h0"), ("home", 1, "h1"), ("phone", 0, "p0")];
    let mut expected: HashMap<&str, Vec<String>> = HashMap::new();
    let mut batches = [Vec::new(), Vec::new()];
    for (receiver, integration, prefix) in lanes {
        let all = lane_batch(receiver, integration, prefix, 20);
        let path = format!("{receiver}{integration}");
        expected.insert(
            Box::leak(path.into_boxed_str()),
            all.iter().map(|n| n.id.clone()).collect(),
        );
        let (first, second) = all.split_at(10);
        batches[0].extend_from_slice(first);
        batches[1].extend_from_slice(second);
    }
    let [first, second] = batches;
    outbox.enqueue(first).unwrap();
    outbox.enqueue(second).unwrap();

    eventually("every notification delivered", || outbox.depth() == 0).await;
    for (lane, ids) in &expected {
        assert_eq!(
            &hook.accepted_on(lane),
            ids,
            "lane {lane} in creation order"
        );
    }
    let acceptances = hook.acceptances();
    assert_eq!(acceptances.len(), 60);
    assert!(acceptances.values().all(|n| *n == 1), "{acceptances:?}");
    assert!(
        store.scan(OUTBOX_TABLE).unwrap().is_empty(),
        "outbox table empty"
    );
    assert!(outbox.dead_letters().unwrap().is_empty());

    let m = |name: &str, labels: &[(&str, &str)]| metric(&registry, name, labels);
    assert_eq!(m("atalaya_notifications_sent_total", &[]), 60.0);
    assert_eq!(
        m(
            "atalaya_notifications_sent_total",
            &[("receiver", "phone"), ("integration", "webhook")]
        ),
        20.0
    );
    assert_eq!(
        m(
            "atalaya_notifications_failed_total",
            &[("reason", "http_5xx")]
        ),
        7.0
    );
    assert_eq!(m("atalaya_notifications_retried_total", &[]), 7.0);
    assert_eq!(m("atalaya_notifications_dead_lettered_total", &[]), 0.0);
    assert_eq!(m("atalaya_outbox_depth", &[]), 0.0);
    assert_eq!(m("atalaya_outbox_oldest_age_seconds", &[]), 0.0);
    running.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_queue_and_its_attempt_counts() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_port();
    let policy = policy(vec![receiver(
        "home",
        vec![webhook(hook_url(address, "home0"))],
    )]);
    let console = Captured::default();
    let notifications = lane_batch("home", 0, "n", 3);
    let ids: Vec<String> = notifications.iter().map(|n| n.id.clone()).collect();

    {
        let (outbox, registry, store) = open(dir.path(), fast());
        outbox.enqueue(notifications).unwrap();
        assert_eq!(metric(&registry, "atalaya_outbox_depth", &[]), 3.0);
        assert!(metric(&registry, "atalaya_outbox_oldest_age_seconds", &[]) >= 1.0);
        // Nobody listens: the head fails, again and again.
        let running = Running::start(&outbox, Arc::clone(&policy), integrations(&console, &store));
        eventually("a few failed attempts", || {
            metric(&registry, "atalaya_notifications_failed_total", &[]) >= 3.0
        })
        .await;
        // The kill: delivery stops; everything is dropped, the store closed.
        running.stop().await;
        drop((outbox, registry));
        assert_eq!(Arc::strong_count(&store), 1, "nothing else holds the store");
    }

    let (outbox, registry, store) = open(dir.path(), fast());
    assert_eq!(outbox.depth(), 3, "still queued after the restart");
    let head: QueuedEntry =
        serde_json::from_slice(&store.scan(OUTBOX_TABLE).unwrap()[0].1).unwrap();
    assert_eq!(head.notification.id, ids[0]);
    assert!(head.attempts >= 3, "attempts persisted: {}", head.attempts);
    let last_error = head.last_error.unwrap();
    assert!(last_error.contains("cannot connect"), "{last_error}");
    assert!(!last_error.contains(TOKEN), "{last_error}");

    // The receiver comes up where it was expected.
    let hook = Hook::on(Recorder::start_on(&address.to_string()).await);
    let running = Running::start(&outbox, policy, integrations(&console, &store));
    eventually("delivered after the restart", || outbox.depth() == 0).await;
    assert_eq!(hook.accepted_on("home0"), ids);
    assert_eq!(
        metric(&registry, "atalaya_notifications_sent_total", &[]),
        3.0
    );
    assert!(store.scan(OUTBOX_TABLE).unwrap().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn refusals_are_dead_lettered_at_once_and_urls_never_logged() {
    let logs = Captured::default();
    let _guard = logs.install();
    let hook = Hook::start().await;
    let address = hook.address();
    let unreachable = free_port();
    let dir = tempfile::tempdir().unwrap();
    let settings = OutboxSettings {
        max_attempts: 3,
        ..fast()
    };
    let (outbox, registry, store) = open(dir.path(), settings);
    let policy = policy(vec![
        receiver(
            "home",
            vec![webhook(format!("http://{address}/refuse/{TOKEN}"))],
        ),
        receiver(
            "away",
            vec![webhook(format!("http://{unreachable}/hook/x/{TOKEN}"))],
        ),
    ]);
    let console = Captured::default();
    let running = Running::start(&outbox, policy, integrations(&console, &store));
    outbox
        .enqueue(vec![
            notification("home", 0, "refused-1"),
            notification("away", 0, "unreachable-1"),
        ])
        .unwrap();
    eventually("both dead-lettered", || outbox.depth() == 0).await;
    running.stop().await;

    assert_eq!(hook.0.requests().len(), 1, "a 400 is not retried");
    let letters: HashMap<String, DeadLetter> = outbox
        .dead_letters()
        .unwrap()
        .into_iter()
        .map(|l| (l.notification.id.clone(), l))
        .collect();
    let refused = &letters["refused-1"];
    assert_eq!(refused.attempts, 1);
    assert_eq!(
        refused.reason,
        "permanent failure: the webhook answered HTTP 400 Bad Request"
    );
    let unreachable = &letters["unreachable-1"];
    assert_eq!(unreachable.attempts, 3);
    assert!(
        unreachable
            .reason
            .starts_with("gave up after 3 attempts; last error: cannot connect"),
        "{}",
        unreachable.reason
    );

    let m = |name: &str, labels: &[(&str, &str)]| metric(&registry, name, labels);
    assert_eq!(
        m(
            "atalaya_notifications_dead_lettered_total",
            &[("receiver", "home"), ("integration", "webhook")]
        ),
        1.0
    );
    assert_eq!(m("atalaya_notifications_dead_letters", &[]), 2.0);
    assert_eq!(
        m(
            "atalaya_notifications_failed_total",
            &[("reason", "http_4xx")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "atalaya_notifications_failed_total",
            &[("reason", "connect")]
        ),
        3.0
    );
    assert_eq!(m("atalaya_notifications_retried_total", &[]), 2.0);

    let text = logs.text();
    let dead = text
        .lines()
        .filter(|l| l.contains("Notification dead-lettered") && l.contains("refused-1"))
        .collect::<Vec<_>>();
    assert_eq!(dead.len(), 1, "{text}");
    assert!(
        dead[0].contains("WARN") && dead[0].contains("receiver=\"home\""),
        "{}",
        dead[0]
    );
    assert!(dead[0].contains("integration=\"webhook\""), "{}", dead[0]);
    assert!(dead[0].contains("attempts=1"), "{}", dead[0]);
    assert!(
        text.contains("Notification not delivered; will retry."),
        "retries are logged: {text}"
    );
    assert!(
        !text.contains(TOKEN),
        "a webhook URL leaked into the log:\n{text}"
    );
    let stored = format!("{:?}", outbox.dead_letters().unwrap());
    assert!(!stored.contains(TOKEN), "{stored}");
}

#[tokio::test]
async fn a_reload_ends_a_back_off_and_reaches_the_fixed_webhook() {
    let hook = Hook::start().await;
    let address = hook.address();
    let dir = tempfile::tempdir().unwrap();
    // A back-off far longer than the test may take.
    let settings = OutboxSettings {
        initial_backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
        ..fast()
    };
    let (outbox, registry, store) = open(dir.path(), settings);
    let broken = policy(vec![receiver(
        "home",
        vec![webhook(format!(
            "http://{}/hook/home0/{TOKEN}",
            free_port()
        ))],
    )]);
    let console = Captured::default();
    let running = Running::start(&outbox, broken, integrations(&console, &store));
    outbox.enqueue(vec![notification("home", 0, "n1")]).unwrap();
    eventually("the first attempt failed", || {
        metric(&registry, "atalaya_notifications_retried_total", &[]) == 1.0
    })
    .await;
    running.reload(policy(vec![receiver(
        "home",
        vec![webhook(hook_url(address, "home0"))],
    )]));
    eventually("delivered after the reload", || outbox.depth() == 0).await;
    assert_eq!(hook.accepted_on("home0"), ["n1"]);
    running.stop().await;
}

#[tokio::test]
async fn one_run_at_a_time_and_an_aborted_run_leaves_nothing_stuck() {
    let hook = Hook::start().await;
    let address = hook.address();
    let dir = tempfile::tempdir().unwrap();
    let (outbox, _registry, store) = open(dir.path(), fast());
    let policy = policy(vec![receiver(
        "home",
        vec![webhook(hook_url(address, "home0"))],
    )]);
    let console = Captured::default();
    let first = Running::start(&outbox, Arc::clone(&policy), integrations(&console, &store));
    // Let the first run start before the second tries.
    tokio::task::yield_now().await;
    let (_tx, rx) = watch::channel(notifiers(&policy, &integrations(&console, &store)));
    let second = outbox.clone().run(rx, CancellationToken::new()).await;
    assert!(
        second
            .unwrap_err()
            .to_string()
            .contains("already being delivered")
    );

    // A run that is dropped, not cancelled (its task aborted), frees the outbox.
    first.task.abort();
    assert!(first.task.await.unwrap_err().is_cancelled());
    let third = Running::start(&outbox, policy, integrations(&console, &store));
    outbox.enqueue(vec![notification("home", 0, "n1")]).unwrap();
    eventually("delivered by the new run", || outbox.depth() == 0).await;
    assert_eq!(hook.accepted_on("home0"), ["n1"]);
    third.stop().await;
}
