//! Delivery: [`Outbox::run`] starts a task per lane with work; each lane task delivers its
//! head, retries it, or dead-letters it, then moves on, until the lane is empty.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use atalaya_bus::delivery::Notifiers;
use atalaya_bus::store::TableBatch;
use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Outbox;
use super::entry::{DEAD_LETTER_TABLE, DeadLetter, OUTBOX_TABLE, QueuedEntry};
use super::queue::LaneId;
use super::retry::{AfterFailure, after_failure, expired};
use super::telemetry::{NotificationDeadLettered, NotificationFailed, NotificationSent};
use crate::alerting::history::{HistoryEntry, HistoryRows, What};

impl Outbox {
    /// Delivers queued notifications until `cancel`, through the current policy's
    /// `notifiers` (each attempt looks its integration up afresh; the channel is updated on
    /// every policy reload). Returns an error when the store cannot
    /// be written (or a lane task panicked), and at once when another `run` of this outbox
    /// is delivering.
    pub async fn run(
        self,
        notifiers: watch::Receiver<Arc<Notifiers>>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        if self.shared.running.swap(true, Ordering::SeqCst) {
            anyhow::bail!("the outbox is already being delivered by another task");
        }
        let _running = RunGuard(&self);
        // Lanes stop with the service, or when one of them fails.
        let lanes_cancel = cancel.child_token();
        let mut lanes = JoinSet::new();
        let mut policy = notifiers.clone();
        self.shared.metrics.know(&policy.borrow_and_update());
        let result = loop {
            let idle = self.queue().claim_idle();
            for lane in idle {
                let task = LaneTask {
                    outbox: self.clone(),
                    lane,
                    notifiers: notifiers.clone(),
                    cancel: lanes_cancel.clone(),
                };
                lanes.spawn(task.run());
            }
            tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                () = self.shared.wake.notified() => {}
                Ok(()) = policy.changed() => self.shared.metrics.know(&policy.borrow_and_update()),
                Some(done) = lanes.join_next() => match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Err(e),
                    Err(e) => break Err(anyhow::Error::from(e).context("an outbox lane task failed")),
                },
            }
        };
        lanes_cancel.cancel();
        while lanes.join_next().await.is_some() {}
        result
    }
}

/// Ends a run, also one whose future was dropped (its lane tasks are aborted with the
/// `JoinSet`): no lane counts as running any more, and another run may start.
struct RunGuard<'a>(&'a Outbox);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.queue().stop_all();
        self.0.shared.running.store(false, Ordering::SeqCst);
    }
}

/// The task delivering one lane.
struct LaneTask {
    outbox: Outbox,
    lane: LaneId,
    notifiers: watch::Receiver<Arc<Notifiers>>,
    cancel: CancellationToken,
}

impl LaneTask {
    async fn run(mut self) -> anyhow::Result<()> {
        let settings = self.outbox.shared.settings.clone();
        loop {
            let Some((key, entry)) = self.outbox.queue().head_or_release(&self.lane) else {
                return Ok(());
            };
            let notifiers = Arc::clone(&self.notifiers.borrow_and_update());
            let (receiver, index) = (&self.lane.0, self.lane.1);
            let target = notifiers.receiver(receiver).and_then(|r| r.get(index));
            let kind = target.map_or("unknown", |notifier| notifier.kind());

            if let Some(reason) =
                expired(&settings, entry.notification.created_at, Timestamp::now())
            {
                let reason = match &entry.last_error {
                    Some(error) => format!("{reason}; last error: {error}"),
                    None => reason,
                };
                self.dead_letter(key, entry, kind, reason).await?;
                continue;
            }
            let Some(notifier) = target else {
                let reason = match notifiers.receiver(receiver) {
                    None => format!("receiver `{receiver}` is not in the routing policy any more"),
                    Some(r) => format!(
                        "receiver `{receiver}` has no integration #{index} any more (it has {})",
                        r.len()
                    ),
                };
                self.dead_letter(key, entry, kind, reason).await?;
                continue;
            };

            // A deposed leader (high availability) ends here rather than send.
            #[cfg(feature = "nats")]
            crate::ha::ensure_leading("deliver a notification");
            let result = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Ok(()),
                result = notifier.notify(&entry.notification) => result,
            };
            let attempts = entry.attempts.saturating_add(1);
            let failure = match result {
                Ok(()) => {
                    let removed = key.clone();
                    let told = self.attempt(&entry, kind, attempts, "sent", None);
                    self.outbox
                        .store_write(move |store| {
                            let deletes = [removed];
                            let mut batches = vec![TableBatch {
                                table: OUTBOX_TABLE,
                                puts: &[],
                                deletes: &deletes,
                            }];
                            batches.extend(told.batches());
                            store.write_tables(&batches)
                        })
                        .await?;
                    self.outbox.queue().remove(&self.lane, &key);
                    NotificationSent {
                        receiver,
                        integration: kind,
                        id: &entry.notification.id,
                        attempts,
                    }
                    .emit(&self.outbox.shared.metrics);
                    continue;
                }
                Err(failure) => failure,
            };
            let decision = after_failure(&settings, attempts, &failure, fastrand::f64());
            NotificationFailed {
                receiver,
                integration: kind,
                id: &entry.notification.id,
                attempts,
                reason: failure.reason,
                error: &failure.message,
                retry_in: match &decision {
                    AfterFailure::Retry(delay) => Some(*delay),
                    AfterFailure::GiveUp(_) => None,
                },
            }
            .emit(&self.outbox.shared.metrics);
            let entry = QueuedEntry {
                attempts,
                last_error: Some(failure.message),
                ..entry
            };
            match decision {
                AfterFailure::GiveUp(reason) => self.dead_letter(key, entry, kind, reason).await?,
                AfterFailure::Retry(delay) => {
                    let value = serde_json::to_vec(&entry)?;
                    let stored = key.clone();
                    let told =
                        self.attempt(&entry, kind, attempts, "retry", entry.last_error.clone());
                    self.outbox
                        .store_write(move |store| {
                            let puts = [(stored, value)];
                            let mut batches = vec![TableBatch {
                                table: OUTBOX_TABLE,
                                puts: &puts,
                                deletes: &[],
                            }];
                            batches.extend(told.batches());
                            store.write_tables(&batches)
                        })
                        .await?;
                    self.outbox.queue().update(&self.lane, &key, entry);
                    if !self.wait(delay).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Waits `delay` before the next attempt, or less if the policy is reloaded (which may
    /// have fixed the integration); false when cancelled.
    async fn wait(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
            Ok(()) = self.notifiers.changed() => true,
        }
    }

    /// The history rows of an attempt at `entry`'s notification: one per alert in it.
    fn attempt(
        &self,
        entry: &QueuedEntry,
        kind: &str,
        attempt: u32,
        outcome: &str,
        error: Option<String>,
    ) -> HistoryRows {
        let Some(history) = self.outbox.shared.history.get() else {
            return HistoryRows::default();
        };
        let now = Timestamp::now();
        let n = &entry.notification;
        let entries: Vec<HistoryEntry> = n
            .alerts
            .iter()
            .map(|alert| HistoryEntry {
                at: now,
                fingerprint: alert.fingerprint.clone(),
                alertname: alert
                    .labels
                    .get("alertname")
                    .map(str::to_owned)
                    .unwrap_or_default(),
                what: What::Attempt {
                    notification: n.id.clone(),
                    receiver: n.receiver.clone(),
                    integration: kind.to_owned(),
                    attempt,
                    outcome: outcome.to_owned(),
                    error: error.clone(),
                },
            })
            .collect();
        history.rows(&entries)
    }

    /// Moves the entry under `key` to the dead-letter table, in one transaction.
    async fn dead_letter(
        &self,
        key: Vec<u8>,
        entry: QueuedEntry,
        kind: &'static str,
        reason: String,
    ) -> anyhow::Result<()> {
        let told = self.attempt(
            &entry,
            kind,
            entry.attempts,
            "dead_letter",
            Some(reason.clone()),
        );
        let letter = DeadLetter {
            notification: entry.notification,
            attempts: entry.attempts,
            reason,
            dead_lettered_at: Timestamp::now(),
        };
        let value = serde_json::to_vec(&letter)?;
        let moved = key.clone();
        self.outbox
            .store_write(move |store| {
                let letters = [(moved.clone(), value)];
                let mut batches = vec![
                    TableBatch {
                        table: OUTBOX_TABLE,
                        puts: &[],
                        deletes: std::slice::from_ref(&moved),
                    },
                    TableBatch {
                        table: DEAD_LETTER_TABLE,
                        puts: &letters,
                        deletes: &[],
                    },
                ];
                batches.extend(told.batches());
                store.write_tables(&batches)
            })
            .await?;
        self.outbox.queue().remove(&self.lane, &key);
        NotificationDeadLettered {
            receiver: &self.lane.0,
            integration: kind,
            id: &letter.notification.id,
            attempts: letter.attempts,
            reason: &letter.reason,
        }
        .emit(&self.outbox.shared.metrics);
        Ok(())
    }
}
