//! What the Telegram integration remembers in the state store (table `telegram_messages`):
//!
//! - **group heads**: per receiver, integration, chat and aggregation group, the message
//!   that last announced firing alerts, and which — the message a resolve edits or replies
//!   to. Forgotten when the group's alerts have all resolved.
//! - **progress**: per notification, chat and part, the message already sent, so a retry
//!   (after a failure half-way through the chats, or a restart) sends only what is missing,
//!   and a notification sent again after it was delivered (the outbox's at-least-once: a
//!   crash before it recorded the delivery) sends nothing. Kept two days, then pruned.
//! - **recent sends**: per chat, when the last twenty messages went out, to seed the rate
//!   limiter after a restart.
//!
//! Each is a JSON value under a key starting with its kind. Anything older than a month
//! (group heads) or two days (the rest) is pruned at start.

use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::store::{Store, StoreError, TableBatch};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::limiter::PER_GROUP_MESSAGES;

/// The store table.
pub const TELEGRAM_TABLE: &str = "telegram_messages";

const GROUP: &str = "group";
const SENT: &str = "sent";
const RECENT: &str = "recent";

const GROUP_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const SENT_RETENTION: Duration = Duration::from_secs(2 * 24 * 3600);

/// The state store failed, or its task did.
#[derive(Debug, thiserror::Error)]
pub enum MessageLogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store task failed: {0}")]
    Task(String),
}

/// The message that last announced a group's firing alerts in one chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupHead {
    pub message_id: i32,
    /// Fingerprints of the firing alerts it listed.
    pub firing: Vec<String>,
    /// When it was sent, in milliseconds since the epoch.
    pub at: i64,
    /// The messages of the parts after the first, when the text was too long for one:
    /// a resolve edits each of them too, rather than sending new ones that ring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<i32>,
}

/// A message sent for one part of one notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sent {
    message_id: i32,
    at: i64,
}

/// Where a group head is kept: the receiver, the integration, the chat and the group.
pub struct GroupRef<'a> {
    pub receiver: &'a str,
    pub integration: usize,
    pub chat: &'a str,
    pub group_key: &'a str,
}

fn group_key(group: &GroupRef<'_>) -> Vec<u8> {
    key(&[
        GROUP,
        group.receiver,
        &group.integration.to_string(),
        group.chat,
        group.group_key,
    ])
}

fn sent_key(notification: &str, chat: &str, part: usize) -> Vec<u8> {
    key(&[SENT, notification, chat, &part.to_string()])
}

fn recent_key(chat: &str) -> Vec<u8> {
    key(&[RECENT, chat])
}

/// The parts joined by NUL, which none of them holds.
fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

/// What one successful send changes in the store.
pub struct SendRecord<'a> {
    pub notification: &'a str,
    pub chat: &'a str,
    pub part: usize,
    pub message_id: i32,
    /// The group's new head, when this message announced firing alerts.
    pub head: Option<(GroupRef<'a>, GroupHead)>,
}

/// How many deliveries between two prunes of the table while running (it is pruned at
/// start too): a scan of a table this small every so often costs nothing.
const PRUNE_EVERY: u64 = 256;

/// The Telegram table of the state store. Cheap to clone.
#[derive(Clone)]
pub struct MessageLog {
    store: Arc<Store>,
    /// Deliveries since the start, to prune every [`PRUNE_EVERY`].
    deliveries: Arc<std::sync::atomic::AtomicU64>,
}

impl MessageLog {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            deliveries: Arc::default(),
        }
    }

    /// Prunes old entries, and returns the recent sends per chat with their ages, to seed
    /// the rate limiter.
    pub fn open(&self, now: Timestamp) -> Result<Vec<(String, Vec<Duration>)>, StoreError> {
        prune(&self.store, now)
    }
}

/// The messages sent for `notification`, as `(chat, part, message id)`, while they are kept
/// (two days): what `atalaya explain` shows beside a delivery.
pub fn messages_of(
    store: &Store,
    notification: &str,
) -> Result<Vec<(String, usize, i32)>, StoreError> {
    let mut prefix = key(&[SENT, notification]);
    prefix.push(0);
    Ok(store
        .range(TELEGRAM_TABLE, &prefix, 256)?
        .into_iter()
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, v)| {
            let rest = String::from_utf8(k[prefix.len()..].to_vec()).ok()?;
            let (chat, part) = rest.rsplit_once('\0')?;
            let sent: Sent = serde_json::from_slice(&v).ok()?;
            Some((chat.to_owned(), part.parse().ok()?, sent.message_id))
        })
        .collect())
}

/// Deletes what is past its retention; the recent sends per chat with their ages.
fn prune(store: &Store, now: Timestamp) -> Result<Vec<(String, Vec<Duration>)>, StoreError> {
    let now_ms = now.as_millisecond();
    let age = |at: i64| Duration::from_millis(u64::try_from(now_ms - at).unwrap_or(0));
    let mut stale = Vec::new();
    let mut recent = Vec::new();
    for (key, value) in store.scan(TELEGRAM_TABLE)? {
        let text = String::from_utf8_lossy(&key).into_owned();
        let mut parts = text.split('\0');
        let kind = parts.next().unwrap_or_default();
        let keep = match kind {
            GROUP => serde_json::from_slice::<GroupHead>(&value)
                .is_ok_and(|h| age(h.at) < GROUP_RETENTION),
            SENT => {
                serde_json::from_slice::<Sent>(&value).is_ok_and(|s| age(s.at) < SENT_RETENTION)
            }
            RECENT => match serde_json::from_slice::<Vec<i64>>(&value) {
                Ok(times) => {
                    let chat = parts.next().unwrap_or_default().to_owned();
                    recent.push((chat, times.into_iter().map(age).collect()));
                    true
                }
                Err(_) => false,
            },
            _ => false,
        };
        if !keep {
            stale.push(key);
        }
    }
    if !stale.is_empty() {
        store.write_tables(&[TableBatch {
            table: TELEGRAM_TABLE,
            puts: &[],
            deletes: &stale,
        }])?;
    }
    Ok(recent)
}

impl MessageLog {
    pub async fn head(&self, group: &GroupRef<'_>) -> Result<Option<GroupHead>, MessageLogError> {
        let key = group_key(group);
        let value = self
            .blocking(move |store| store.get(TELEGRAM_TABLE, &key))
            .await?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The message already sent for `part` of `notification` to `chat`, if any.
    pub async fn sent(
        &self,
        notification: &str,
        chat: &str,
        part: usize,
    ) -> Result<Option<i32>, MessageLogError> {
        let key = sent_key(notification, chat, part);
        let value = self
            .blocking(move |store| store.get(TELEGRAM_TABLE, &key))
            .await?;
        Ok(value
            .and_then(|v| serde_json::from_slice::<Sent>(&v).ok())
            .map(|s| s.message_id))
    }

    /// Records a message sent, in one transaction: the notification's progress, the chat's
    /// recent sends, and the group's head when it changed.
    pub async fn record(
        &self,
        record: SendRecord<'_>,
        now: Timestamp,
    ) -> Result<(), MessageLogError> {
        let at = now.as_millisecond();
        let recent_key = recent_key(record.chat);
        let mut puts = vec![(
            sent_key(record.notification, record.chat, record.part),
            json(&Sent {
                message_id: record.message_id,
                at,
            }),
        )];
        if let Some((group, head)) = &record.head {
            puts.push((group_key(group), json(head)));
        }
        self.blocking(move |store| {
            let mut times: Vec<i64> = store
                .get(TELEGRAM_TABLE, &recent_key)?
                .and_then(|v| serde_json::from_slice(&v).ok())
                .unwrap_or_default();
            times.push(at);
            let keep = times.len().saturating_sub(PER_GROUP_MESSAGES);
            times.drain(..keep);
            puts.push((recent_key, json(&times)));
            store.write_tables(&[TableBatch {
                table: TELEGRAM_TABLE,
                puts: &puts,
                deletes: &[],
            }])
        })
        .await
    }

    /// Replaces a group's head (a resolve update: the same message, fewer firing alerts),
    /// or forgets it (`None`: every alert resolved).
    pub async fn set_head(
        &self,
        group: &GroupRef<'_>,
        head: Option<GroupHead>,
    ) -> Result<(), MessageLogError> {
        let key = group_key(group);
        self.blocking(move |store| match head {
            Some(head) => store.put(TELEGRAM_TABLE, &key, &json(&head)),
            None => store.remove(TELEGRAM_TABLE, &key).map(drop),
        })
        .await
    }

    /// A notification was delivered: its progress stays (a resend sends nothing), and every
    /// [`PRUNE_EVERY`] deliveries what is past its retention is pruned.
    pub async fn delivered(&self, now: Timestamp) -> Result<(), MessageLogError> {
        let count = self
            .deliveries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if !count.is_multiple_of(PRUNE_EVERY) {
            return Ok(());
        }
        self.blocking(move |store| prune(store, now).map(drop))
            .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, MessageLogError> {
        blocking(&self.store, work).await
    }
}

/// Runs `work` on `store` off the async threads (a commit waits for the disk).
pub(super) async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, MessageLogError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || work(&store)).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(MessageLogError::Task(e.to_string())),
    }
}

/// A value's JSON (these types always serialize).
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group<'a>(chat: &'a str) -> GroupRef<'a> {
        GroupRef {
            receiver: "family",
            integration: 0,
            chat,
            group_key: "{}:{alertname=\"x\"}",
        }
    }

    #[tokio::test]
    async fn heads_progress_and_recent_sends_are_kept_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let log = MessageLog::new(Arc::clone(&store));
        let now: Timestamp = "2026-01-10T10:00:00Z".parse().unwrap();
        let head = GroupHead {
            message_id: 7,
            firing: vec!["a".into()],
            at: now.as_millisecond(),
            parts: Vec::new(),
        };
        log.record(
            SendRecord {
                notification: "n1",
                chat: "42",
                part: 0,
                message_id: 7,
                head: Some((group("42"), head.clone())),
            },
            now,
        )
        .await
        .unwrap();
        assert_eq!(log.sent("n1", "42", 0).await.unwrap(), Some(7));
        assert_eq!(log.sent("n1", "42", 1).await.unwrap(), None);
        assert_eq!(
            messages_of(&store, "n1").unwrap(),
            [("42".to_owned(), 0, 7)]
        );
        assert!(
            messages_of(&store, "n").unwrap().is_empty(),
            "not a prefix of n1"
        );
        assert_eq!(log.head(&group("42")).await.unwrap(), Some(head));
        assert_eq!(log.head(&group("43")).await.unwrap(), None);

        // Delivered: the progress stays, so sending it again sends nothing.
        log.delivered(now).await.unwrap();
        assert_eq!(log.sent("n1", "42", 0).await.unwrap(), Some(7));

        // Three days later: the head stays, the send is too old to count for the limits.
        let later = now + jiff::SignedDuration::from_hours(72);
        let recent = log.open(later).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].0, "42");
        assert_eq!(recent[0].1, [Duration::from_secs(72 * 3600)]);
        assert!(log.head(&group("42")).await.unwrap().is_some());
        // Two months later the head is gone too.
        log.open(now + jiff::SignedDuration::from_hours(60 * 24))
            .unwrap();
        assert_eq!(log.head(&group("42")).await.unwrap(), None);
        log.set_head(&group("42"), None).await.unwrap();
    }
}
