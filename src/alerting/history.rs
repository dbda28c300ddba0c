//! Alert history: what happened to each alert, kept in the state store so `atalaya explain`
//! and `GET /api/v1/alerts/{fingerprint}/history` can tell it — each state change with the
//! value and labels that caused it and the rule's definition hash, every notification the
//! router made of it (receiver, integration, group), every attempt to deliver one and its
//! result, and every silence made for it from Telegram, Home Assistant or the API.
//!
//! # Store
//! - [`HISTORY_TABLE`]: `<at, ms, big-endian u64><sequence, u64>` → one [`HistoryEntry`] as
//!   JSON: the whole history in time order, so the oldest is pruned without reading the rest.
//! - [`BY_ALERT_TABLE`]: `<fingerprint> 0 <the same key>` → empty: one alert's entries.
//! - [`NAMES_TABLE`]: `<alertname> 0 <fingerprint>` → empty: the alerts of a rule.
//!
//! Writes go into the transaction of what caused them (the rules runner's commit, the
//! outbox's record of an attempt), so history never tells of something that did not happen,
//! and each costs only its own keys. Bounded by age (`history.max_age`, 30 days) and size
//! (`history.max_entries`): [`History::prune`] drops the oldest, counted in
//! `atalaya_history_pruned_total{reason}`; evaluation never waits for it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use atalaya_bus::Labels;
use atalaya_bus::fingerprint::labels_fingerprint;
use atalaya_bus::store::{Entry, Store, TableBatch};
use jiff::Timestamp;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};

pub const HISTORY_TABLE: &str = "alert_history";
pub const BY_ALERT_TABLE: &str = "alert_history_by_alert";
pub const NAMES_TABLE: &str = "alert_history_names";

/// The most entries one prune removes at a time (it runs again soon after).
const PRUNE_BATCH: usize = 2000;
/// The most entries read for one alert.
const MAX_READ: usize = 10_000;

/// One thing that happened to an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    /// Alertmanager's fingerprint of the alert's labels (what the API shows).
    pub fingerprint: String,
    pub alertname: String,
    #[serde(flatten)]
    pub what: What,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// The rule engine moved it to `state` (pending, firing, resolved).
    State {
        state: String,
        value: serde_json::Value,
        labels: Labels,
        /// The rule definition's hash: the same hash, the same rule.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule_hash: Option<String>,
        /// The rules' revision: the directory's Git commit when it is a checkout (git-sync, a
        /// clone), else its `.revision` file (a ConfigMap key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules_commit: Option<String>,
    },
    /// It changed state more often than the history keeps: `changes` were not recorded
    /// since `since` (at most [`MAX_CHANGES`] a [`FLAP_WINDOW`] are).
    Flapping { changes: u32, since: Timestamp },
    /// The router took it firing: the routes it matched (their ids: the path through the
    /// tree), the receivers they reach, and what keeps it from being told.
    Routed {
        routes: Vec<String>,
        receivers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        silenced_by: Vec<SilencedBy>,
        /// Fingerprints of the firing alerts that inhibit it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inhibited_by: Vec<String>,
    },
    /// The router put it in a notification for a receiver's integration.
    Notified {
        notification: String,
        receiver: String,
        integration: usize,
        group_key: String,
        /// What the notification shows it as: firing or resolved.
        status: String,
    },
    /// An attempt to deliver a notification holding it.
    Attempt {
        notification: String,
        receiver: String,
        integration: String,
        attempt: u32,
        /// `sent`, `retry` or `dead_letter`.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A silence matching it was made.
    Silenced {
        silence: String,
        created_by: String,
        comment: String,
        ends_at: Timestamp,
    },
}

/// A silence muting an alert, and who made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilencedBy {
    pub silence: String,
    pub created_by: String,
}

impl HistoryEntry {
    /// A state change of an alert with `labels`.
    pub fn state(
        at: Timestamp,
        labels: &Labels,
        state: &str,
        value: serde_json::Value,
        rule: (Option<u64>, Option<&str>),
    ) -> Self {
        let (rule_hash, rules_commit) = rule;
        Self {
            at,
            fingerprint: labels_fingerprint(labels),
            alertname: labels
                .get("alertname")
                .map(str::to_owned)
                .unwrap_or_default(),
            what: What::State {
                state: state.to_owned(),
                value,
                labels: labels.clone(),
                rule_hash: rule_hash.map(|h| format!("{h:016x}")),
                rules_commit: rules_commit.map(str::to_owned),
            },
        }
    }
}

/// The most state changes of one alert recorded per [`FLAP_WINDOW`]; more are counted and
/// told as one [`What::Flapping`] entry, so a flapping rule neither fills the history nor
/// writes a row per change.
pub const MAX_CHANGES: u32 = 10;
pub const FLAP_WINDOW: Duration = Duration::from_secs(60);

/// Which state changes to record: each alert's first [`MAX_CHANGES`] in a [`FLAP_WINDOW`].
#[derive(Default)]
pub struct ChangeBudget {
    /// By the engine's fingerprint of the alert.
    windows: std::collections::HashMap<String, FlapWindow>,
}

struct FlapWindow {
    started: Timestamp,
    recorded: u32,
    skipped: u32,
    /// What the entry telling the skipped changes needs.
    fingerprint: String,
    alertname: String,
}

impl ChangeBudget {
    /// Whether a state change of the alert (`key`: the engine's fingerprint) is recorded.
    pub fn admit(&mut self, key: &str, labels: &Labels, now: Timestamp) -> bool {
        let window = self
            .windows
            .entry(key.to_owned())
            .or_insert_with(|| FlapWindow {
                started: now,
                recorded: 0,
                skipped: 0,
                fingerprint: labels_fingerprint(labels),
                alertname: labels
                    .get("alertname")
                    .map(str::to_owned)
                    .unwrap_or_default(),
            });
        if window.recorded < MAX_CHANGES {
            window.recorded += 1;
            true
        } else {
            window.skipped += 1;
            false
        }
    }

    /// Ends the windows past [`FLAP_WINDOW`] at `now`: an entry for each that skipped changes.
    pub fn take_ended(&mut self, now: Timestamp) -> Vec<HistoryEntry> {
        let mut told = Vec::new();
        self.windows.retain(|_, w| {
            let ended = now.duration_since(w.started)
                >= jiff::SignedDuration::try_from(FLAP_WINDOW).unwrap_or_default();
            if ended && w.skipped > 0 {
                told.push(HistoryEntry {
                    at: now,
                    fingerprint: std::mem::take(&mut w.fingerprint),
                    alertname: std::mem::take(&mut w.alertname),
                    what: What::Flapping {
                        changes: w.skipped,
                        since: w.started,
                    },
                });
            }
            !ended
        });
        told
    }
}

/// `history:` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySettings {
    /// Entries older than this are dropped. Default 30 days.
    pub max_age: Duration,
    /// At most this many entries; the oldest go first. Default 200 000.
    pub max_entries: u64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_entries: 200_000,
        }
    }
}

/// The store rows of some entries, ready to join a transaction.
#[derive(Debug, Default)]
pub struct HistoryRows {
    entries: Vec<Entry>,
    by_alert: Vec<Entry>,
    names: Vec<Entry>,
}

impl HistoryRows {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The writes, one batch per table, for [`Store::write_tables`].
    pub fn batches(&self) -> [TableBatch<'_>; 3] {
        [
            TableBatch {
                table: HISTORY_TABLE,
                puts: &self.entries,
                deletes: &[],
            },
            TableBatch {
                table: BY_ALERT_TABLE,
                puts: &self.by_alert,
                deletes: &[],
            },
            TableBatch {
                table: NAMES_TABLE,
                puts: &self.names,
                deletes: &[],
            },
        ]
    }
}

/// The alert history. Cheap to clone.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    settings: HistorySettings,
    /// The next sequence number: keys stay unique within a millisecond and across restarts.
    sequence: AtomicU64,
    pruned: IntCounterVec,
}

impl History {
    pub fn open(
        store: Arc<Store>,
        registry: &Registry,
        settings: HistorySettings,
    ) -> anyhow::Result<Self> {
        let last = store
            .last_n(HISTORY_TABLE, 1)
            .context("reading the alert history")?
            .pop()
            .and_then(|(key, _)| {
                key.get(8..16)
                    .map(|s| u64::from_be_bytes(s.try_into().unwrap_or_default()))
            })
            .map_or(0, |seq| seq + 1);
        let pruned = IntCounterVec::new(
            Opts::new(
                "atalaya_history_pruned_total",
                "Alert history entries dropped, by reason (age: older than history.max_age; size: past history.max_entries).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(pruned.clone()))?;
        for reason in ["age", "size"] {
            pruned.with_label_values(&[reason]).inc_by(0);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                settings,
                sequence: AtomicU64::new(last),
                pruned,
            }),
        })
    }

    /// The rows of `entries`, to write with what caused them.
    pub fn rows(&self, entries: &[HistoryEntry]) -> HistoryRows {
        let mut rows = HistoryRows::default();
        let mut names = BTreeSet::new();
        for entry in entries {
            let Ok(value) = serde_json::to_vec(entry) else {
                continue;
            };
            let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
            let at = u64::try_from(entry.at.as_millisecond()).unwrap_or(0);
            let mut key = Vec::with_capacity(16);
            key.extend_from_slice(&at.to_be_bytes());
            key.extend_from_slice(&sequence.to_be_bytes());
            let mut by_alert = Vec::with_capacity(entry.fingerprint.len() + 17);
            by_alert.extend_from_slice(entry.fingerprint.as_bytes());
            by_alert.push(0);
            by_alert.extend_from_slice(&key);
            rows.by_alert.push((by_alert, Vec::new()));
            rows.entries.push((key, value));
            if names.insert((&entry.alertname, &entry.fingerprint)) {
                rows.names
                    .push((name_key(&entry.alertname, &entry.fingerprint), Vec::new()));
            }
        }
        rows
    }

    /// Writes `entries` in a transaction of their own.
    #[cfg(test)]
    pub fn record(&self, entries: &[HistoryEntry]) -> anyhow::Result<()> {
        let rows = self.rows(entries);
        if rows.is_empty() {
            return Ok(());
        }
        self.inner
            .store
            .write_tables(&rows.batches())
            .context("writing the alert history")
    }

    /// One alert's entries, oldest first.
    pub fn of(&self, fingerprint: &str) -> anyhow::Result<Vec<HistoryEntry>> {
        let mut prefix = fingerprint.as_bytes().to_vec();
        prefix.push(0);
        let keys = self
            .inner
            .store
            .range(BY_ALERT_TABLE, &prefix, MAX_READ)
            .context("reading the alert history")?;
        let mut entries = Vec::new();
        for (key, _) in keys.iter().take_while(|(k, _)| k.starts_with(&prefix)) {
            let Some(value) = self
                .inner
                .store
                .get(HISTORY_TABLE, &key[prefix.len()..])
                .context("reading the alert history")?
            else {
                continue;
            };
            if let Ok(entry) = serde_json::from_slice(&value) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// The store the history is kept in (for what other parts kept beside it).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The fingerprints of the alerts of rule `alertname` with a history.
    pub fn alerts_of(&self, alertname: &str) -> anyhow::Result<Vec<String>> {
        let prefix = name_key(alertname, "");
        Ok(self
            .inner
            .store
            .range(NAMES_TABLE, &prefix, MAX_READ)
            .context("reading the alert history")?
            .into_iter()
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| String::from_utf8(k[prefix.len()..].to_vec()).ok())
            .collect())
    }

    /// The most recent entries that `keep` keeps, newest first: at most `limit`, looking at
    /// no more than [`MAX_READ`] entries back.
    pub fn recent(
        &self,
        limit: usize,
        keep: impl Fn(&HistoryEntry) -> bool,
    ) -> anyhow::Result<Vec<HistoryEntry>> {
        Ok(self
            .inner
            .store
            .last_n(HISTORY_TABLE, MAX_READ)
            .context("reading the alert history")?
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<HistoryEntry>(v).ok())
            .filter(|e| keep(e))
            .take(limit)
            .collect())
    }

    /// Drops entries past `max_age` at `now`, then the oldest past `max_entries`, a batch at
    /// a time; how many. Never called on the rules runner's path.
    pub fn prune(&self, now: Timestamp) -> anyhow::Result<usize> {
        let store = &self.inner.store;
        let cutoff = now
            .checked_sub(jiff::SignedDuration::try_from(self.inner.settings.max_age)?)
            .unwrap_or(Timestamp::MIN);
        let count = store.count(HISTORY_TABLE)?;
        let over = count.saturating_sub(self.inner.settings.max_entries);
        let oldest = store.range(HISTORY_TABLE, &[], PRUNE_BATCH)?;
        let mut deletes = Vec::new();
        let mut by_alert = Vec::new();
        let (mut aged, mut sized) = (0, 0);
        for (key, value) in oldest {
            let Ok(entry) = serde_json::from_slice::<HistoryEntry>(&value) else {
                deletes.push(key);
                aged += 1;
                continue;
            };
            if entry.at < cutoff {
                aged += 1;
            } else if (sized as u64) < over.saturating_sub(aged as u64) {
                sized += 1;
            } else {
                break;
            }
            let mut index = entry.fingerprint.into_bytes();
            index.push(0);
            index.extend_from_slice(&key);
            by_alert.push(index);
            deletes.push(key);
        }
        if deletes.is_empty() {
            return Ok(0);
        }
        store.write_tables(&[
            TableBatch {
                table: HISTORY_TABLE,
                puts: &[],
                deletes: &deletes,
            },
            TableBatch {
                table: BY_ALERT_TABLE,
                puts: &[],
                deletes: &by_alert,
            },
        ])?;
        self.inner
            .pruned
            .with_label_values(&["age"])
            .inc_by(aged as u64);
        self.inner
            .pruned
            .with_label_values(&["size"])
            .inc_by(sized as u64);
        Ok(deletes.len())
    }
}

/// How often [`prune_every`] prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Prunes `history` every few minutes (as long as each batch is full), until `stop`.
pub async fn prune_every(history: History, stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        loop {
            let h = history.clone();
            match tokio::task::spawn_blocking(move || h.prune(Timestamp::now())).await {
                Ok(Ok(n)) if n >= PRUNE_BATCH => continue,
                Ok(Ok(_)) => break,
                Ok(Err(error)) => {
                    tracing::warn!(error = %format!("{error:#}"), "Cannot prune the alert history; trying again later.");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// The name of the file in a rules directory that names its revision when the directory is
/// not a checkout: a ConfigMap key set by CI or kustomize (`configMapGenerator` literal
/// `.revision=<commit>`), as Argo CD or Flux sync it.
pub const REVISION_FILE: &str = ".revision";

/// The revision of the rules in `dir`: the Git commit checked out there ([`git_commit`]),
/// else the first line of its [`REVISION_FILE`] (up to 64 letters, digits, `.`, `_`, `-`).
pub fn rules_revision(dir: &std::path::Path) -> Option<String> {
    git_commit(dir).or_else(|| {
        let text = std::fs::read_to_string(dir.join(REVISION_FILE)).ok()?;
        let revision = text.lines().next()?.trim();
        let fine = !revision.is_empty()
            && revision.len() <= 64
            && revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        fine.then(|| revision.to_owned())
    })
}

/// The Git commit checked out in `dir` or a directory above it (a clone, git-sync's
/// checkout), read from `.git` without running git: `HEAD`, the ref it names (loose, or in
/// `packed-refs`), or a detached commit. `None` when there is none.
pub fn git_commit(dir: &std::path::Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let git = dir
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| g.exists())?;
    // A worktree or submodule: `.git` is a file naming the real directory.
    let git = match std::fs::read_to_string(&git) {
        Ok(text) => {
            let target = text.strip_prefix("gitdir:")?.trim();
            git.parent()?.join(target)
        }
        Err(_) => git,
    };
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let commit = match head.strip_prefix("ref:") {
        None => head.to_owned(),
        Some(reference) => {
            let reference = reference.trim();
            match std::fs::read_to_string(git.join(reference)) {
                Ok(commit) => commit.trim().to_owned(),
                Err(_) => std::fs::read_to_string(git.join("packed-refs"))
                    .ok()?
                    .lines()
                    .find_map(|line| {
                        let (commit, name) = line.split_once(' ')?;
                        (name == reference).then(|| commit.to_owned())
                    })?,
            }
        }
    };
    (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())).then_some(commit)
}

fn name_key(alertname: &str, fingerprint: &str) -> Vec<u8> {
    let mut key = alertname.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(fingerprint.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        [("alertname".to_owned(), name.to_owned())].into()
    }

    fn history(dir: &tempfile::TempDir, settings: HistorySettings) -> History {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        History::open(store, &Registry::new(), settings).unwrap()
    }

    #[test]
    fn entries_are_read_back_per_alert_in_order_and_keys_stay_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let at: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let freezer = labels("freezer_warm");
        {
            let h = history(&dir, HistorySettings::default());
            h.record(&[
                HistoryEntry::state(at, &freezer, "pending", (-9.6).into(), (Some(7), None)),
                HistoryEntry::state(at, &labels("other"), "firing", 1.into(), (None, None)),
            ])
            .unwrap();
        }
        let h = history(&dir, HistorySettings::default());
        h.record(&[HistoryEntry::state(
            at,
            &freezer,
            "firing",
            (-9.0).into(),
            (Some(7), None),
        )])
        .unwrap();
        let fp = labels_fingerprint(&freezer);
        let states: Vec<String> = h
            .of(&fp)
            .unwrap()
            .into_iter()
            .map(|e| match e.what {
                What::State { state, .. } => state,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(states, ["pending", "firing"]);
        assert_eq!(h.alerts_of("freezer_warm").unwrap(), [fp]);
        assert!(h.of("nope").unwrap().is_empty());
    }

    #[test]
    fn the_rules_commit_is_read_from_a_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(rules.join("sub")).unwrap();
        assert_eq!(git_commit(&rules), None, "not a checkout");
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{commit} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(git_commit(&rules.join("sub")).as_deref(), Some(commit));
        std::fs::write(git.join("refs/heads/main"), "fedcba9876543210\n").unwrap();
        assert_eq!(git_commit(&rules).as_deref(), Some("fedcba9876543210"));
        std::fs::write(git.join("HEAD"), format!("{commit}\n")).unwrap();
        assert_eq!(git_commit(&rules).as_deref(), Some(commit), "detached");
        // A ConfigMap's revision key, where there is no checkout.
        let synced = tempfile::tempdir().unwrap();
        assert_eq!(rules_revision(synced.path()), None);
        std::fs::write(synced.path().join(REVISION_FILE), "v1.4.2-3-gabc123\n").unwrap();
        assert_eq!(
            rules_revision(synced.path()).as_deref(),
            Some("v1.4.2-3-gabc123")
        );
        std::fs::write(synced.path().join(REVISION_FILE), "not a revision!\n").unwrap();
        assert_eq!(rules_revision(synced.path()), None);
        assert_eq!(
            rules_revision(&rules).as_deref(),
            Some(commit),
            "a checkout first"
        );
    }

    #[test]
    fn a_flapping_alert_records_its_first_changes_and_counts_the_rest() {
        let mut budget = ChangeBudget::default();
        let l = labels("flappy");
        let t0: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let admitted = (0..25).filter(|_| budget.admit("e1", &l, t0)).count();
        assert_eq!(admitted, MAX_CHANGES as usize);
        assert!(
            budget
                .take_ended(t0 + jiff::SignedDuration::from_secs(59))
                .is_empty()
        );
        let told = budget.take_ended(t0 + jiff::SignedDuration::from_secs(60));
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].fingerprint, labels_fingerprint(&l));
        assert_eq!(
            told[0].what,
            What::Flapping {
                changes: 15,
                since: t0
            }
        );
        assert!(
            budget.admit("e1", &l, t0 + jiff::SignedDuration::from_secs(61)),
            "a new window"
        );
    }

    #[test]
    fn pruning_drops_the_oldest_by_age_then_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(
            &dir,
            HistorySettings {
                max_age: Duration::from_secs(3600),
                max_entries: 3,
            },
        );
        let now: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let old = now - jiff::SignedDuration::from_hours(2);
        let l = labels("r");
        h.record(&[HistoryEntry::state(
            old,
            &l,
            "firing",
            1.into(),
            (None, None),
        )])
        .unwrap();
        for minutes in 1..=4 {
            let at = now - jiff::SignedDuration::from_mins(10 - minutes);
            h.record(&[HistoryEntry::state(
                at,
                &l,
                "firing",
                minutes.into(),
                (None, None),
            )])
            .unwrap();
        }
        assert_eq!(h.prune(now).unwrap(), 2, "one too old, one too many");
        let values: Vec<serde_json::Value> = h
            .of(&labels_fingerprint(&l))
            .unwrap()
            .into_iter()
            .map(|e| match e.what {
                What::State { value, .. } => value,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, [2, 3, 4].map(serde_json::Value::from));
        assert_eq!(h.prune(now).unwrap(), 0);
    }
}
