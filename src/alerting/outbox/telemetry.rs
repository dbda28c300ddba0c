//! The outbox's metrics and log lines, written together by one struct per event so they
//! never disagree. Counters carry `receiver` and `integration` (the kind: `webhook`,
//! `console`, `mqtt`, `nats`); failed attempts also carry `reason`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};
use tracing::{debug, info, warn};

use atalaya_bus::delivery::Notifiers;

use super::queue::Queue;

/// The outbox's metric families.
#[derive(Clone)]
pub struct OutboxMetrics {
    sent: IntCounterVec,
    failed: IntCounterVec,
    retried: IntCounterVec,
    dead_lettered: IntCounterVec,
    /// Entries in the dead-letter table.
    dead_letters: IntGauge,
}

impl OutboxMetrics {
    /// Registers the families, and the depth and oldest-age gauges read from `queue` at each
    /// scrape (so they are current whenever looked at, without a refresh task).
    pub fn register(registry: &Registry, queue: Arc<Mutex<Queue>>) -> prometheus::Result<Self> {
        let labels = &["receiver", "integration"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let sent = counter(
            "atalaya_notifications_sent_total",
            "Notifications delivered, by receiver and integration kind.",
            labels,
        )?;
        let failed = counter(
            "atalaya_notifications_failed_total",
            "Delivery attempts that failed, by receiver, integration kind and reason.",
            &["receiver", "integration", "reason"],
        )?;
        let retried = counter(
            "atalaya_notifications_retried_total",
            "Failed delivery attempts that will be tried again.",
            labels,
        )?;
        let dead_lettered = counter(
            "atalaya_notifications_dead_lettered_total",
            "Notifications given up on (permanent failure, max_attempts, max_age, or their \
             receiver gone) and moved to the dead-letter table.",
            labels,
        )?;
        let dead_letters = IntGauge::new(
            "atalaya_notifications_dead_letters",
            "Notifications in the dead-letter table.",
        )?;
        let queue_gauges = QueueGauges {
            queue,
            depth: IntGauge::new(
                "atalaya_outbox_depth",
                "Notifications queued for delivery, all receivers.",
            )?,
            oldest_age: Gauge::new(
                "atalaya_outbox_oldest_age_seconds",
                "Age of the oldest queued notification (0 when none is queued).",
            )?,
        };
        registry.register(Box::new(sent.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(retried.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(queue_gauges))?;
        Ok(Self {
            sent,
            failed,
            retried,
            dead_lettered,
            dead_letters,
        })
    }

    /// Creates the counters of every receiver integration in `notifiers` at zero, so they
    /// show in `/metrics` before anything happened to them (an alert on `increase()` sees
    /// the first dead letter, which a counter born at 1 would hide).
    pub fn know(&self, notifiers: &Notifiers) {
        for (receiver, kind) in notifiers.kinds() {
            let labels = [receiver, kind];
            self.sent.with_label_values(&labels);
            self.retried.with_label_values(&labels);
            self.dead_lettered.with_label_values(&labels);
        }
    }

    pub fn set_dead_letters(&self, count: u64) {
        self.dead_letters
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A dead letter was retried or dropped.
    pub fn dead_letter_left(&self) {
        self.dead_letters.dec();
    }
}

/// `atalaya_outbox_depth` and `atalaya_outbox_oldest_age_seconds`, computed when scraped.
struct QueueGauges {
    queue: Arc<Mutex<Queue>>,
    depth: IntGauge,
    oldest_age: Gauge,
}

impl Collector for QueueGauges {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.depth.desc();
        descs.extend(self.oldest_age.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (depth, oldest) = {
            let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            (queue.depth(), queue.oldest())
        };
        self.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        let age = oldest.map_or(0.0, |created| {
            Timestamp::now()
                .duration_since(created)
                .as_secs_f64()
                .max(0.0)
        });
        self.oldest_age.set(age);
        let mut families = self.depth.collect();
        families.extend(self.oldest_age.collect());
        families
    }
}

/// The outbox was read from the store at start.
pub struct OutboxLoaded {
    pub queued: usize,
    pub dead_letters: u64,
    /// Entries that could not be decoded (left in the store).
    pub unreadable: usize,
}

impl OutboxLoaded {
    pub fn emit(&self, metrics: &OutboxMetrics) {
        metrics.set_dead_letters(self.dead_letters);
        if self.unreadable > 0 {
            warn!(
                unreadable = self.unreadable,
                "Outbox entries that cannot be read were skipped (left in the store)."
            );
        }
        if self.queued > 0 || self.dead_letters > 0 {
            info!(
                queued = self.queued,
                dead_letters = self.dead_letters,
                "Outbox loaded."
            );
        }
    }
}

/// A notification was delivered.
pub struct NotificationSent<'a> {
    pub receiver: &'a str,
    pub integration: &'static str,
    pub id: &'a str,
    /// Attempts it took, this one included.
    pub attempts: u32,
}

impl NotificationSent<'_> {
    pub fn emit(&self, metrics: &OutboxMetrics) {
        metrics
            .sent
            .with_label_values(&[self.receiver, self.integration])
            .inc();
        debug!(
            receiver = self.receiver,
            integration = self.integration,
            notification = self.id,
            attempts = self.attempts,
            "Notification delivered."
        );
    }
}

/// A delivery attempt failed. `retry_in` is `Some` when it will be tried again (otherwise a
/// [`NotificationDeadLettered`] follows).
pub struct NotificationFailed<'a> {
    pub receiver: &'a str,
    pub integration: &'static str,
    pub id: &'a str,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub reason: &'static str,
    pub error: &'a str,
    pub retry_in: Option<Duration>,
}

impl NotificationFailed<'_> {
    pub fn emit(&self, metrics: &OutboxMetrics) {
        metrics
            .failed
            .with_label_values(&[self.receiver, self.integration, self.reason])
            .inc();
        if let Some(retry_in) = self.retry_in {
            metrics
                .retried
                .with_label_values(&[self.receiver, self.integration])
                .inc();
            warn!(
                receiver = self.receiver,
                integration = self.integration,
                notification = self.id,
                attempts = self.attempts,
                reason = self.reason,
                error = self.error,
                retry_in = ?retry_in,
                "Notification not delivered; will retry."
            );
        }
    }
}

/// A notification was moved to the dead-letter table.
pub struct NotificationDeadLettered<'a> {
    pub receiver: &'a str,
    /// `unknown` when the receiver or integration is gone from the policy.
    pub integration: &'static str,
    pub id: &'a str,
    pub attempts: u32,
    /// Why it was given up on, with the last error.
    pub reason: &'a str,
}

impl NotificationDeadLettered<'_> {
    pub fn emit(&self, metrics: &OutboxMetrics) {
        metrics
            .dead_lettered
            .with_label_values(&[self.receiver, self.integration])
            .inc();
        metrics.dead_letters.inc();
        warn!(
            receiver = self.receiver,
            integration = self.integration,
            notification = self.id,
            attempts = self.attempts,
            reason = self.reason,
            "Notification dead-lettered: it will not be delivered."
        );
    }
}
