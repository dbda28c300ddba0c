//! The outbox against a real HTTP server on loopback: every notification arrives, in order
//! per lane, once; failures are retried; restarts keep what is queued and its attempt counts;
//! refusals and vanished receivers are dead-lettered; webhook URLs never reach a log line.
//!
//! # Layout
//! - this file: the helpers (notifications, policies, a running outbox, captured output,
//!   metrics) every test uses;
//! - `webhook`: delivery to a real HTTP server on loopback — order, retries, restarts,
//!   refusals, reloads;
//! - `dead_letters`: what is given up on without being attempted;
//! - `brokers`: MQTT and NATS integrations against real mosquitto and nats-server;
//! - `telegram`: Telegram integrations against the Bot API stand-in — an outage, a burst
//!   from the router, the token kept out of logs and metrics.

#[cfg(any(feature = "mqtt", feature = "nats"))]
mod brokers;
mod dead_letters;
#[cfg(feature = "telegram")]
mod telegram;
mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atalaya_bus::Labels;
use atalaya_bus::delivery::Notifiers;
use atalaya_bus::delivery::integration::{Integration, Receiver};
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
use atalaya_bus::store::Store;
use atalaya_connectors::console::ConsoleWriter;
use atalaya_connectors::notifiers::NotifierContext;
use atalaya_connectors::webhook::WebhookConfig;
use atalaya_rules::routing::config::RoutingPolicy;
use atalaya_rules::routing::matcher::Matchers;
use atalaya_rules::routing::tree::{GroupBy, Route, RouteTree};
use jiff::{SignedDuration, Timestamp};
use prometheus::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

/// In webhook URLs; must never show in logs, errors or dead letters.
const TOKEN: &str = "s3cr3t-T0KEN";
/// The longest any test waits for delivery.
const PATIENCE: Duration = Duration::from_secs(20);

/// A notification for `receiver`'s integration `integration`, created now.
pub(crate) fn notification(receiver: &str, integration: usize, id: &str) -> Notification {
    let labels = Labels::from([
        ("alertname".to_owned(), "node_lost".to_owned()),
        ("node".to_owned(), "pi1".to_owned()),
    ]);
    Notification {
        id: id.to_owned(),
        receiver: receiver.to_owned(),
        integration,
        group_key: "{}:{alertname=\"node_lost\"}".to_owned(),
        status: Status::Firing,
        group_labels: labels.clone(),
        common_labels: labels.clone(),
        common_annotations: Default::default(),
        alerts: vec![NotifiedAlert {
            instant: false,
            status: Status::Firing,
            fingerprint: "00000000000000aa".to_owned(),
            labels,
            annotations: Default::default(),
            starts_at: Timestamp::now(),
            ends_at: None,
            value: serde_json::json!(1),
            generator_url: None,
        }],
        created_at: Timestamp::now(),
        silent: false,
    }
}

/// `count` notifications for one lane, created one millisecond apart (creation order is
/// delivery order), ids `<prefix>-00`, `<prefix>-01`, ….
fn lane_batch(receiver: &str, integration: usize, prefix: &str, count: usize) -> Vec<Notification> {
    let start = Timestamp::now() - SignedDuration::from_secs(1);
    (0..count)
        .map(|i| {
            let mut n = notification(receiver, integration, &format!("{prefix}-{i:02}"));
            n.created_at = start + SignedDuration::from_millis(i as i64);
            n
        })
        .collect()
}

/// A policy with these receivers (the route tree is not used by the outbox).
fn policy(receivers: Vec<Receiver>) -> Arc<RoutingPolicy> {
    let root = Route {
        id: "{}".to_owned(),
        matchers: Matchers::default(),
        receiver: receivers
            .first()
            .map_or_else(String::new, |r| r.name.clone()),
        group_by: GroupBy::Labels(vec!["alertname".to_owned()]),
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(4 * 3600),
        continue_matching: false,
        mute_time_intervals: Vec::new(),
        active_time_intervals: Vec::new(),
        routes: Vec::new(),
    };
    Arc::new(RoutingPolicy {
        tree: RouteTree { root },
        receivers,
        inhibit_rules: Vec::new(),
        time_intervals: HashMap::new(),
        resolve_timeout: atalaya_rules::routing::config::DEFAULT_RESOLVE_TIMEOUT,
        shown: String::new(),
    })
}

fn receiver(name: &str, integrations: Vec<Integration>) -> Receiver {
    Receiver {
        name: name.to_owned(),
        integrations,
    }
}

fn webhook(url: String) -> Integration {
    Integration::new(
        "webhook",
        true,
        WebhookConfig {
            url: Some(url),
            url_file: None,
            max_alerts: 0,
            timeout: Duration::from_secs(5),
        },
    )
}

/// Back-offs of a few milliseconds, so retries take no time.
fn fast() -> OutboxSettings {
    OutboxSettings {
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
        max_attempts: 50,
        max_age: Duration::from_secs(3600),
    }
}

/// A loopback port nobody listens on (bound, then freed).
fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], atalaya_test_kit::free_port()))
}

/// Console output and log lines, captured.
type Captured = atalaya_test_kit::CapturedLogs;

/// What notifiers share, with the console captured in `console`.
fn integrations(console: &Captured, store: &Arc<Store>) -> NotifierContext {
    let mut context = NotifierContext::new("http://atalaya.test", Arc::clone(store)).unwrap();
    let writer: ConsoleWriter = Arc::new(Mutex::new(console.clone()));
    context.console = writer;
    context
}

/// The receivers of `policy`, opened for delivery.
fn notifiers(policy: &RoutingPolicy, context: &NotifierContext) -> Arc<Notifiers> {
    Arc::new(context.open_all(&policy.receivers))
}

/// A running outbox: its delivery task, how to stop it, and the policy channel.
struct Running {
    task: JoinHandle<anyhow::Result<()>>,
    cancel: CancellationToken,
    notifiers: watch::Sender<Arc<Notifiers>>,
    context: NotifierContext,
}

impl Running {
    fn start(outbox: &Outbox, policy: Arc<RoutingPolicy>, context: NotifierContext) -> Self {
        let cancel = CancellationToken::new();
        let (tx, rx) = watch::channel(notifiers(&policy, &context));
        let task = tokio::spawn(outbox.clone().run(rx, cancel.clone()));
        Self {
            task,
            cancel,
            notifiers: tx,
            context,
        }
    }

    /// Delivers by `policy` from now on, as a reload does.
    fn reload(&self, policy: Arc<RoutingPolicy>) {
        self.notifiers
            .send_replace(notifiers(&policy, &self.context));
    }

    async fn stop(self) {
        self.cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the outbox stops promptly when cancelled")
            .expect("the outbox task does not panic");
        result.expect("the outbox ends without error");
    }
}

/// Waits until `done` holds, failing the test after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The sum of the samples of metric `name` whose labels include `labels`.
fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        let counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if matches {
                total += if counter {
                    m.get_counter().get_value()
                } else {
                    m.get_gauge().get_value()
                };
            }
        }
    }
    total
}

fn open(dir: &std::path::Path, settings: OutboxSettings) -> (Outbox, Registry, Arc<Store>) {
    let store = Arc::new(Store::open(dir).unwrap());
    let registry = Registry::new();
    let outbox = Outbox::open(Arc::clone(&store), &registry, settings).unwrap();
    (outbox, registry, store)
}
