//! The buttons of firing messages, as the state store keeps them (table
//! `telegram_buttons`).
//!
//! A message with buttons has a **button set**: which receiver and chat it went to, its text
//! (so the bot can add who did what under it), the alerts it announced (fingerprint and
//! labels: what a silence matches), when it was sent, and the silences made from it. Each
//! button carries only a **token** in its `callback_data`: 122 random bits that the bot
//! looks up (`tok/<token>` → set and action). Nothing a user sends is trusted: a token that
//! is unknown, forged or replayed after its set was pruned answers "expired".
//!
//! Bounded: at most [`MAX_SETS`] sets (the oldest go first) and none older than
//! [`MAX_AGE`]; acknowledgements being held are listed apart (`telegram_acks`), so the bot
//! finds them without reading every set.

use std::collections::VecDeque;

use atalaya_bus::Labels;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atalaya_bus::store::{Entry, Store, StoreError, TableBatch};

use teloxide_core::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::bot::texts;
use super::messages::{MessageLogError, blocking};
use crate::templates::Locale;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The store table of button sets and tokens.
pub const BUTTONS_TABLE: &str = "telegram_buttons";
/// Button sets whose silences are an acknowledgement, held while the alerts fire.
pub const ACKS_TABLE: &str = "telegram_acks";
/// The most button sets kept.
pub const MAX_SETS: usize = 5_000;
/// No set is kept longer, whatever `button_max_age` says.
pub const MAX_AGE: Duration = Duration::from_secs(31 * 24 * 3600);

const SET: &str = "set/";
const TOKEN: &str = "tok/";

/// What a button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Silence the alerts for an hour.
    Silence1h,
    /// For eight hours.
    Silence8h,
    /// Until they resolve: an acknowledgement, extended while they fire.
    Acknowledge,
    /// Expire the silences made from this message.
    Unsilence,
}

impl Action {
    pub const ALL: [Self; 4] = [
        Self::Silence1h,
        Self::Silence8h,
        Self::Acknowledge,
        Self::Unsilence,
    ];

    /// How long the silence lasts (an acknowledgement is held, then extended).
    pub fn duration(self) -> Option<Duration> {
        match self {
            Self::Silence1h => Some(Duration::from_secs(3600)),
            Self::Silence8h => Some(Duration::from_secs(8 * 3600)),
            Self::Acknowledge | Self::Unsilence => None,
        }
    }
}

/// An alert a message announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ButtonAlert {
    pub fingerprint: String,
    pub labels: Labels,
}

/// A message's buttons and what was done with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ButtonSet {
    pub id: String,
    pub receiver: String,
    pub integration: usize,
    pub chat: String,
    pub message_id: i32,
    /// The message's text (Telegram HTML), without any note.
    pub text: String,
    pub alerts: Vec<ButtonAlert>,
    /// When it was sent, in milliseconds since the epoch.
    pub created: i64,
    /// The token of each action.
    pub tokens: Vec<(Action, String)>,
    /// Silences made from it and not yet expired through it.
    #[serde(default)]
    pub silences: Vec<String>,
    /// Whether those silences are an acknowledgement (held until the alerts resolve).
    #[serde(default)]
    pub acknowledged: bool,
    /// The last line added under the text: who did what.
    #[serde(default)]
    pub note: Option<String>,
}

impl ButtonSet {
    /// A new set with a fresh token per action.
    pub fn new(
        receiver: &str,
        integration: usize,
        chat: &str,
        text: &str,
        alerts: Vec<ButtonAlert>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: random_token(),
            receiver: receiver.to_owned(),
            integration,
            chat: chat.to_owned(),
            message_id: 0,
            text: text.to_owned(),
            alerts,
            created: now.as_millisecond(),
            tokens: Action::ALL.iter().map(|a| (*a, random_token())).collect(),
            silences: Vec::new(),
            acknowledged: false,
            note: None,
        }
    }

    pub fn token(&self, action: Action) -> &str {
        self.tokens
            .iter()
            .find(|(a, _)| *a == action)
            .map_or("", |(_, t)| t.as_str())
    }

    /// How long ago it was sent.
    pub fn age(&self, now: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(now.as_millisecond() - self.created).unwrap_or(0))
    }

    /// The text with its note, as the message shows it.
    pub fn shown_text(&self) -> String {
        match &self.note {
            Some(note) => format!("{}\n\n{note}", self.text),
            None => self.text.clone(),
        }
    }
}

/// The buttons a message shows: the silence buttons, or `🔔 Unsilence` once silenced from
/// it.
pub fn keyboard(set: &ButtonSet, locale: Locale) -> InlineKeyboardMarkup {
    let button =
        |action| InlineKeyboardButton::callback(texts::button(action, locale), set.token(action));
    let rows = if set.silences.is_empty() {
        vec![
            vec![button(Action::Silence1h), button(Action::Silence8h)],
            vec![button(Action::Acknowledge)],
        ]
    } else {
        vec![vec![button(Action::Unsilence)]]
    };
    InlineKeyboardMarkup::new(rows)
}

/// A random UUID's 32 hex digits: within the 64 bytes of a `callback_data`.
fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A token's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    set: String,
    action: Action,
}

/// The button sets in the store. Cheap to clone.
#[derive(Clone)]
pub struct Buttons {
    store: Arc<Store>,
    /// Sets by age (created, id), oldest first: what to prune.
    index: Arc<Mutex<VecDeque<(i64, String)>>>,
    /// Tokens of messages being sent, not yet in the store: a press on one waits for it.
    pending: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Woken when a pending token is settled (stored, or its message not sent).
    settled: Arc<tokio::sync::Notify>,
}

/// Tokens announced before their message is sent, until they are stored (or the send
/// failed): see [`Buttons::reserve`].
pub struct Reservation {
    buttons: Buttons,
    tokens: Vec<String>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pending = self
            .buttons
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for token in &self.tokens {
            pending.remove(token);
        }
        drop(pending);
        self.buttons.settled.notify_waiters();
    }
}

/// The longest a press waits for its message's buttons to be stored.
const PENDING_WAIT: Duration = Duration::from_secs(10);

impl Buttons {
    /// Opens the table, deleting sets older than [`MAX_AGE`] and tokens without a set.
    pub fn open(store: Arc<Store>, now: Timestamp) -> Result<Self, StoreError> {
        let mut sets: Vec<(i64, String)> = Vec::new();
        let mut tokens: Vec<(Vec<u8>, String)> = Vec::new();
        let mut stale: Vec<Vec<u8>> = Vec::new();
        for (key, value) in store.scan(BUTTONS_TABLE)? {
            let text = String::from_utf8_lossy(&key).into_owned();
            if let Some(id) = text.strip_prefix(SET) {
                match serde_json::from_slice::<ButtonSet>(&value) {
                    Ok(set) if set.age(now) < MAX_AGE => sets.push((set.created, id.to_owned())),
                    _ => stale.push(key),
                }
            } else if text.starts_with(TOKEN) {
                match serde_json::from_slice::<TokenRecord>(&value) {
                    Ok(record) => tokens.push((key, record.set)),
                    Err(_) => stale.push(key),
                }
            } else {
                stale.push(key);
            }
        }
        sets.sort();
        let live: std::collections::HashSet<&str> =
            sets.iter().map(|(_, id)| id.as_str()).collect();
        stale.extend(
            tokens
                .into_iter()
                .filter(|(_, set)| !live.contains(set.as_str()))
                .map(|(key, _)| key),
        );
        if !stale.is_empty() {
            store.write_batch(BUTTONS_TABLE, &[], &stale)?;
        }
        Ok(Self {
            store,
            index: Arc::new(Mutex::new(sets.into_iter().collect())),
            pending: Arc::default(),
            settled: Arc::default(),
        })
    }

    /// Announces `set`'s tokens before its message is sent: Telegram shows the buttons as
    /// soon as it has the message, and a press then waits until the set is stored (or the
    /// reservation dropped) instead of finding nothing.
    pub fn reserve(&self, set: &ButtonSet) -> Reservation {
        let tokens: Vec<String> = set.tokens.iter().map(|(_, t)| t.clone()).collect();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend(tokens.iter().cloned());
        Reservation {
            buttons: self.clone(),
            tokens,
        }
    }

    /// Waits (at most [`PENDING_WAIT`]) while `token` is reserved and not yet stored.
    async fn settle(&self, token: &str) {
        let wait = async {
            loop {
                let settled = self.settled.notified();
                if !self
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(token)
                {
                    return;
                }
                settled.await;
            }
        };
        let _ = tokio::time::timeout(PENDING_WAIT, wait).await;
    }

    /// Keeps a new set and its tokens; past [`MAX_SETS`], the oldest set goes.
    pub async fn insert(&self, set: ButtonSet) -> Result<(), MessageLogError> {
        let evicted: Vec<String> = {
            let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            index.push_back((set.created, set.id.clone()));
            let mut evicted = Vec::new();
            while index.len() > MAX_SETS {
                if let Some((_, id)) = index.pop_front() {
                    evicted.push(id);
                }
            }
            evicted
        };
        self.blocking(move |store| {
            let mut deletes: Vec<Vec<u8>> = Vec::new();
            let mut ack_deletes: Vec<Vec<u8>> = Vec::new();
            for id in &evicted {
                if let Some(old) = get_set(store, id)? {
                    deletes.extend(old.tokens.iter().map(|(_, t)| token_key(t)));
                }
                deletes.push(set_key(id));
                ack_deletes.push(id.as_bytes().to_vec());
            }
            let mut puts: Vec<Entry> = set
                .tokens
                .iter()
                .map(|(action, token)| {
                    let record = TokenRecord {
                        set: set.id.clone(),
                        action: *action,
                    };
                    (token_key(token), encode(&record))
                })
                .collect();
            puts.push((set_key(&set.id), encode(&set)));
            store.write_tables(&[
                TableBatch {
                    table: BUTTONS_TABLE,
                    puts: &puts,
                    deletes: &deletes,
                },
                TableBatch {
                    table: ACKS_TABLE,
                    puts: &[],
                    deletes: &ack_deletes,
                },
            ])
        })
        .await
    }

    /// The set and action a token stands for.
    pub async fn resolve(
        &self,
        token: &str,
    ) -> Result<Option<(ButtonSet, Action)>, MessageLogError> {
        // Only what a token can be: anything else is not looked up.
        if token.len() != 32 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        self.settle(token).await;
        let key = token_key(token);
        self.blocking(move |store| {
            let Some(value) = store.get(BUTTONS_TABLE, &key)? else {
                return Ok(None);
            };
            let Ok(record) = serde_json::from_slice::<TokenRecord>(&value) else {
                return Ok(None);
            };
            Ok(get_set(store, &record.set)?.map(|set| (set, record.action)))
        })
        .await
    }

    /// Writes a set back after it changed, listing it among the acknowledgements held when
    /// it is one.
    pub async fn update(&self, set: ButtonSet) -> Result<(), MessageLogError> {
        self.blocking(move |store| {
            let held = set.acknowledged && !set.silences.is_empty();
            let ack_key = set.id.as_bytes().to_vec();
            let ack_puts: Vec<Entry> = if held {
                vec![(ack_key.clone(), Vec::new())]
            } else {
                Vec::new()
            };
            let ack_deletes: Vec<Vec<u8>> = if held { Vec::new() } else { vec![ack_key] };
            store.write_tables(&[
                TableBatch {
                    table: BUTTONS_TABLE,
                    puts: &[(set_key(&set.id), encode(&set))],
                    deletes: &[],
                },
                TableBatch {
                    table: ACKS_TABLE,
                    puts: &ack_puts,
                    deletes: &ack_deletes,
                },
            ])
        })
        .await
    }

    /// The sets whose acknowledgement is being held.
    pub async fn acknowledged(&self) -> Result<Vec<ButtonSet>, MessageLogError> {
        self.blocking(|store| {
            let mut sets = Vec::new();
            for (key, _) in store.scan(ACKS_TABLE)? {
                let id = String::from_utf8_lossy(&key).into_owned();
                if let Some(set) = get_set(store, &id)? {
                    sets.push(set);
                }
            }
            Ok(sets)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, MessageLogError> {
        blocking(&self.store, work).await
    }
}

fn get_set(store: &Store, id: &str) -> Result<Option<ButtonSet>, StoreError> {
    Ok(store
        .get(BUTTONS_TABLE, &set_key(id))?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

fn set_key(id: &str) -> Vec<u8> {
    format!("{SET}{id}").into_bytes()
}

fn token_key(token: &str) -> Vec<u8> {
    format!("{TOKEN}{token}").into_bytes()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(now: Timestamp) -> ButtonSet {
        ButtonSet::new(
            "family",
            0,
            "-100",
            "🔴 <b>Freezer</b>",
            vec![ButtonAlert {
                fingerprint: "f1".into(),
                labels: Labels::from([("alertname", "freezer")]),
            }],
            now,
        )
    }

    #[tokio::test]
    async fn tokens_find_their_set_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let now = Timestamp::now();
        let buttons = Buttons::open(Arc::clone(&store), now).unwrap();
        let first = set(now);
        buttons.insert(first.clone()).await.unwrap();
        let token = first.token(Action::Silence8h).to_owned();
        assert_eq!(token.len(), 32);
        let (found, action) = buttons.resolve(&token).await.unwrap().unwrap();
        assert_eq!(found.id, first.id);
        assert_eq!(action, Action::Silence8h);
        // Forged: wrong length, wrong characters, or simply unknown.
        for forged in [
            "x",
            "alertname=\"freezer\"",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert!(buttons.resolve(forged).await.unwrap().is_none(), "{forged}");
        }
        // Every action has its own token.
        let mut tokens: Vec<&str> = first.tokens.iter().map(|(_, t)| t.as_str()).collect();
        tokens.dedup();
        assert_eq!(tokens.len(), 4);
    }

    #[tokio::test]
    async fn the_oldest_sets_go_past_the_bound_and_old_ones_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let now = Timestamp::now();
        let buttons = Buttons::open(Arc::clone(&store), now).unwrap();
        let old = set(now - jiff::SignedDuration::from_hours(32 * 24));
        buttons.insert(old.clone()).await.unwrap();
        let mut held = set(now);
        held.silences = vec!["s1".into()];
        held.acknowledged = true;
        buttons.insert(held.clone()).await.unwrap();
        buttons.update(held.clone()).await.unwrap();
        assert_eq!(buttons.acknowledged().await.unwrap().len(), 1);
        drop(buttons);
        // Reopened: the set older than a month is gone, with its tokens.
        let buttons = Buttons::open(Arc::clone(&store), now).unwrap();
        assert!(
            buttons
                .resolve(old.token(Action::Silence1h))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            buttons
                .resolve(held.token(Action::Unsilence))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.count(BUTTONS_TABLE).unwrap(), 5);
        // Past the bound, the oldest set goes, with its acknowledgement.
        {
            let mut index = buttons.index.lock().unwrap();
            for i in 0..MAX_SETS - 1 {
                index.push_back((now.as_millisecond(), format!("filler-{i}")));
            }
        }
        buttons.insert(set(now)).await.unwrap();
        assert!(
            buttons
                .resolve(held.token(Action::Unsilence))
                .await
                .unwrap()
                .is_none()
        );
        assert!(buttons.acknowledged().await.unwrap().is_empty());
    }

    /// Telegram shows the buttons as soon as it has the message, before the sender has
    /// stored them: a press then waits for them rather than answer "expired".
    #[tokio::test]
    async fn a_press_before_the_set_is_stored_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let now = Timestamp::now();
        let buttons = Buttons::open(store, now).unwrap();
        let set = set(now);
        let reservation = buttons.reserve(&set);
        let token = set.token(Action::Silence1h).to_owned();
        let press = tokio::spawn({
            let buttons = buttons.clone();
            async move { buttons.resolve(&token).await.unwrap() }
        });
        tokio::task::yield_now().await;
        assert!(!press.is_finished());
        buttons.insert(set.clone()).await.unwrap();
        drop(reservation);
        let (found, action) = press.await.unwrap().unwrap();
        assert_eq!((found.id, action), (set.id, Action::Silence1h));
    }
}
