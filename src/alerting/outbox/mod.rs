//! The durable outbox: notifications from the router, written to the state store before
//! they are attempted, delivered to their receiver's integration in order, retried with
//! back-off, and dead-lettered when there is no point in trying any more.
//!
//! # The contract
//! The outbox knows notifications and the [`Notifier`](atalaya_bus::delivery::Notifier)
//! trait only: which system a receiver talks to, and how, is the connectors' business.
//!
//! - **Durable first.** [`Outbox::enqueue`] writes a batch of notifications in one store
//!   transaction and returns once it is committed; only then are they attempted. A
//!   notification leaves the store when it was delivered, or when it is moved (in one
//!   transaction) to the dead-letter table.
//! - **At least once.** A crash or shutdown mid-delivery leaves the notification in the
//!   store, so it is sent again after the restart. Receivers recognise the repeat by the
//!   notification id (webhooks: `Idempotency-Key` / `X-Atalaya-Notification-Id`).
//! - **In order per lane.** A lane is one integration of one receiver: (receiver name,
//!   integration index). Its notifications go out strictly in (created_at, id) order — a
//!   failing head blocks its lane, and only its lane; lanes run independently.
//! - **Retries.** Connection errors, timeouts, HTTP 429 (Telegram's `retry_after`), 5xx and
//!   SMTP 4xx are retried after a back-off doubling from `initial_backoff` to `max_backoff`
//!   (±20 % jitter; a `Retry-After` is honoured up to `max_backoff`; Telegram's sender holds
//!   the chat for all of it); a policy reload cuts a back-off short (it may have fixed
//!   the integration). The attempt count is persisted with the entry, so a restart does not
//!   reset it; after a restart each lane's head is attempted at once.
//! - **Dead letters.** A permanent failure (any other 4xx; Telegram refusing the message, a
//!   bot blocked; SMTP 5xx; no URL; an MQTT or NATS integration with no broker configured),
//!   `max_attempts` failures, an age past `max_age`, or a receiver or integration gone from
//!   the current policy moves the notification to the dead-letter table, with a warning
//!   (receiver, integration kind, notification id, attempts, the reason with the last error —
//!   never a webhook URL, bot token or password) and
//!   `atalaya_notifications_dead_lettered_total`.
//!
//! # How the service uses it
//! ```text
//! let outbox = Outbox::open(Arc::clone(&store), &registry, config.outbox.clone())?;
//! // Wherever the router hands out notifications (durable when this returns):
//! outbox.enqueue_with(notifications, &[router_state_batch])?;
//! // Delivery, as a supervised task, through the policy's receivers opened as notifiers
//! // (`atalaya_connectors::notifiers`); the channel is updated on every reload:
//! let (notifiers_tx, notifiers_rx) = watch::channel(Arc::new(context.open_all(&policy.receivers)));
//! supervisor.spawn(Stage::Sink, "outbox", outbox.clone().run(notifiers_rx, token));
//! ```
//! `run` returns when `token` is cancelled, promptly: an HTTP request in flight is
//! abandoned (and sent again after the restart). Cancel it after the rules runner has
//! drained if notifications raised during the drain should get their first attempt before
//! exit. `run` returns an error only when the store cannot be written — the outbox can then
//! no longer keep its promise, and the service should stop. Only one `run` at a time.
//!
//! # Layout
//! - `settings`: [`OutboxSettings`], the `outbox:` section.
//! - `entry`: the store tables, keys and stored forms ([`QueuedEntry`], [`DeadLetter`]).
//! - `queue`: the queued notifications in memory, by lane.
//! - `retry`: back-off and the give-up decision (pure functions).
//! - `delivery`: [`Outbox::run`] and the lane tasks.
//! - `telemetry`: metrics and log lines, written together.
//! - `tests`: delivery against a real HTTP server on loopback, restarts, dead letters.

mod delivery;
mod entry;
mod queue;
mod retry;
mod settings;
mod telemetry;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::Context;
use atalaya_bus::delivery::notification::Notification;
use atalaya_bus::store::{Store, StoreError, TableBatch};
use prometheus::Registry;

use super::history::History;
use tokio::sync::Notify;

pub use entry::DeadLetter;
pub use entry::{DEAD_LETTER_TABLE, OUTBOX_TABLE, QueuedEntry};
pub use settings::OutboxSettings;

use self::queue::Queue;
use self::telemetry::{OutboxLoaded, OutboxMetrics};

/// The outbox. Cheap to clone: clones share the queue and the store.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<Store>,
    settings: OutboxSettings,
    /// What the outbox table holds, by lane; shared with the depth and age gauges.
    queue: Arc<Mutex<Queue>>,
    /// Tells [`Outbox::run`] that lanes may need a task (something was enqueued).
    wake: Notify,
    /// Whether a [`Outbox::run`] is delivering: two at once would deliver twice.
    running: AtomicBool,
    metrics: OutboxMetrics,
    /// Where each attempt is told, in the transaction that records it.
    history: OnceLock<History>,
}

impl Outbox {
    /// Opens the outbox in `store`, loading what is queued, and registers its metrics.
    pub fn open(
        store: Arc<Store>,
        registry: &Registry,
        settings: OutboxSettings,
    ) -> anyhow::Result<Self> {
        let errors = settings.validate();
        if !errors.is_empty() {
            anyhow::bail!("{}", errors.join("; "));
        }
        let mut queue = Queue::default();
        let mut queued = 0;
        let mut unreadable = 0;
        for (key, value) in store.scan(OUTBOX_TABLE).context("reading the outbox")? {
            match serde_json::from_slice::<QueuedEntry>(&value) {
                Ok(entry) => {
                    queue.insert(key, entry);
                    queued += 1;
                }
                Err(_) => unreadable += 1,
            }
        }
        let dead_letters = store
            .count(DEAD_LETTER_TABLE)
            .context("reading the dead letters")?;
        let queue = Arc::new(Mutex::new(queue));
        let metrics = OutboxMetrics::register(registry, Arc::clone(&queue))
            .context("registering the outbox metrics")?;
        OutboxLoaded {
            queued,
            dead_letters,
            unreadable,
        }
        .emit(&metrics);
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                settings,
                queue,
                wake: Notify::new(),
                running: AtomicBool::new(false),
                metrics,
                history: OnceLock::new(),
            }),
        })
    }

    /// Tells every delivery attempt in `history` from now on.
    pub fn with_history(self, history: History) -> Self {
        let _ = self.shared.history.set(history);
        self
    }

    /// Queues `notifications` for delivery: written in one store transaction — durable when
    /// this returns — then handed to their lanes. An error means none was queued.
    #[cfg(test)]
    pub fn enqueue(&self, notifications: Vec<Notification>) -> anyhow::Result<()> {
        self.enqueue_with(notifications, &[])
    }

    /// [`Outbox::enqueue`], writing `also` in the same transaction: the engine's series and
    /// the router's state that say these notifications were made, so a crash leaves all or
    /// nothing.
    pub fn enqueue_with(
        &self,
        notifications: Vec<Notification>,
        also: &[TableBatch<'_>],
    ) -> anyhow::Result<()> {
        let mut entries = Vec::with_capacity(notifications.len());
        let mut puts = Vec::with_capacity(notifications.len());
        for notification in notifications {
            let entry = QueuedEntry {
                notification,
                attempts: 0,
                last_error: None,
            };
            let key = entry::key(&entry.notification);
            puts.push((key.clone(), serde_json::to_vec(&entry)?));
            entries.push((key, entry));
        }
        let mut batches = vec![TableBatch {
            table: OUTBOX_TABLE,
            puts: &puts,
            deletes: &[],
        }];
        batches.extend_from_slice(also);
        self.shared
            .store
            .write_tables(&batches)
            .context("writing notifications to the outbox")?;
        if entries.is_empty() {
            return Ok(());
        }
        let mut queue = self.queue();
        for (key, entry) in entries {
            queue.insert(key, entry);
        }
        drop(queue);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Notifications queued, all lanes.
    #[cfg(test)]
    pub fn depth(&self) -> usize {
        self.queue().depth()
    }

    /// Notifications queued in each lane (a receiver's integration), lanes with none left out.
    pub fn lanes(&self) -> Vec<((String, usize), usize)> {
        self.queue().lanes()
    }

    /// Everything in the dead-letter table, oldest notification first.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(self
            .dead_letter_entries()?
            .into_iter()
            .map(|(_, letter)| letter)
            .collect())
    }

    fn dead_letter_entries(&self) -> anyhow::Result<Vec<(Vec<u8>, DeadLetter)>> {
        Ok(self
            .shared
            .store
            .scan(DEAD_LETTER_TABLE)
            .context("reading the dead letters")?
            .into_iter()
            .filter_map(|(key, value)| Some((key, serde_json::from_slice(&value).ok()?)))
            .collect())
    }

    /// Queues the dead letter of notification `id` again, its attempts counted from zero, in
    /// one transaction (`atalaya dead-letters retry`); whether there was one.
    pub fn retry_dead_letter(&self, id: &str) -> anyhow::Result<bool> {
        let Some((key, letter)) = self
            .dead_letter_entries()?
            .into_iter()
            .find(|(_, l)| l.notification.id == id)
        else {
            return Ok(false);
        };
        let entry = QueuedEntry {
            notification: letter.notification,
            attempts: 0,
            last_error: None,
        };
        let puts = [(key.clone(), serde_json::to_vec(&entry)?)];
        let deletes = [key.clone()];
        self.shared
            .store
            .write_tables(&[
                TableBatch {
                    table: DEAD_LETTER_TABLE,
                    puts: &[],
                    deletes: &deletes,
                },
                TableBatch {
                    table: OUTBOX_TABLE,
                    puts: &puts,
                    deletes: &[],
                },
            ])
            .context("moving a dead letter back to the outbox")?;
        self.queue().insert(key, entry);
        self.shared.metrics.dead_letter_left();
        self.shared.wake.notify_one();
        Ok(true)
    }

    /// Removes the dead letter of notification `id` (`atalaya dead-letters drop`); whether
    /// there was one.
    pub fn drop_dead_letter(&self, id: &str) -> anyhow::Result<bool> {
        let Some((key, _)) = self
            .dead_letter_entries()?
            .into_iter()
            .find(|(_, l)| l.notification.id == id)
        else {
            return Ok(false);
        };
        self.shared
            .store
            .remove(DEAD_LETTER_TABLE, &key)
            .context("removing a dead letter")?;
        self.shared.metrics.dead_letter_left();
        Ok(true)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic elsewhere while holding the lock leaves the queue consistent (every
        // change is a single map operation), so a poisoned lock is still usable.
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `write` on the store off the async threads (a commit waits for the disk).
    async fn store_write(
        &self,
        write: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = Arc::clone(&self.shared.store);
        tokio::task::spawn_blocking(move || write(&store))
            .await
            .context("the outbox store task failed")?
            .context("writing the outbox")
    }
}
