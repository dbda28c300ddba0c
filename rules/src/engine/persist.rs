//! Persistence: the series that changed, encoded for the store ([`Changes`]) — at once for a
//! change of phase, arm or latch, within [`SOFT_PERSIST_INTERVAL`] for any other — and
//! restored after a restart, their timers shifted by the downtime.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Engine, Series};
use crate::alert::{Alert, AlertState, Output, fingerprint_hash, fingerprint_text};

/// Longest a series' minor changes (last seen, value, window samples) wait to be persisted.
/// Phase changes are persisted at once; this bounds what a crash can lose, and spares an SD
/// card a write per event.
pub const SOFT_PERSIST_INTERVAL: SignedDuration = SignedDuration::from_secs(30);

/// Persisted form of one series.
#[derive(Deserialize)]
struct SeriesRecord {
    rule_hash: u64,
    series: Series,
}

/// [`SeriesRecord`] for writing, without copying the series.
#[derive(Serialize)]
struct SeriesRecordRef<'a> {
    rule_hash: u64,
    series: &'a Series,
}

/// Which queue a series to encode came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    Urgent,
    Soft,
}

/// Series to write to and delete from the store.
#[derive(Debug, Default)]
pub struct Changes {
    /// (rule name, fingerprint, record).
    pub upserts: Vec<(String, String, Vec<u8>)>,
    /// (rule name, fingerprint).
    pub deletes: Vec<(String, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

impl Engine {
    /// What to persist as of `now`: series whose phase, arm or latch changed, series with
    /// other changes older than [`SOFT_PERSIST_INTERVAL`], and removed series.
    pub fn take_changes(&mut self, now: Timestamp) -> Changes {
        let mut keys: Vec<(usize, u64, Queue)> = self
            .queues
            .urgent
            .drain()
            .map(|(id, key)| (id, key, Queue::Urgent))
            .collect();
        while let Some(&(due, id, key)) = self.queues.soft.front() {
            if due > now {
                break;
            }
            self.queues.soft.pop_front();
            keys.push((id, key, Queue::Soft));
        }
        self.encode(keys)
    }

    /// Every pending change, whatever its age (at shutdown).
    pub fn take_all_changes(&mut self) -> Changes {
        let mut keys: Vec<(usize, u64, Queue)> = self
            .queues
            .urgent
            .drain()
            .map(|(id, key)| (id, key, Queue::Urgent))
            .collect();
        keys.extend(
            self.queues
                .soft
                .drain(..)
                .map(|(_, id, key)| (id, key, Queue::Soft)),
        );
        self.encode(keys)
    }

    fn encode(&mut self, keys: Vec<(usize, u64, Queue)>) -> Changes {
        let mut changes = std::mem::take(&mut self.carried);
        changes.deletes.append(&mut self.removed);
        for (id, key, queue) in keys {
            let rule = &self.rules.rules[id];
            let Some(series) = self.states[id].series.get_mut(&key) else {
                continue;
            };
            if queue == Queue::Soft {
                series.soft_queued = false;
            }
            let record = SeriesRecordRef {
                rule_hash: rule.hash,
                series,
            };
            // A record without window samples is 250 to 320 bytes: one allocation rather
            // than a series of regrowths.
            let mut bytes = Vec::with_capacity(320);
            if serde_json::to_writer(&mut bytes, &record).is_ok() {
                changes
                    .upserts
                    .push((rule.name.clone(), fingerprint_text(key), bytes));
                series.persisted = Some(series.essentials());
            }
        }
        changes
    }

    /// Restores persisted series. Timer anchors move by the downtime (`now - saved_at`), so
    /// timers pause while atalaya is down. Series of rules that changed or are gone are
    /// dropped (their firing alerts resolved and returned) and queued for deletion.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = (String, String, Vec<u8>)>,
        saved_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Vec<Output> {
        let downtime = saved_at
            .map(|s| now.duration_since(s))
            .filter(|d| d.is_positive())
            .unwrap_or(SignedDuration::ZERO);
        let by_name: HashMap<&str, usize> = self
            .rules
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let mut out = Vec::new();
        let mut restored = Vec::new();
        for (name, key, bytes) in records {
            let Ok(record) = serde_json::from_slice::<SeriesRecord>(&bytes) else {
                warn!(rule = %name, "Unreadable stored series; dropped.");
                self.removed.push((name, key));
                continue;
            };
            match by_name.get(name.as_str()) {
                Some(&id) if self.rules.rules[id].hash == record.rule_hash => {
                    let mut series = record.series;
                    series.shift(downtime);
                    let hash = fingerprint_hash(&name, &series.labels);
                    if fingerprint_text(hash) != key {
                        self.removed.push((name, key));
                    }
                    restored.push((id, hash, series));
                }
                _ => {
                    if record.series.is_firing() {
                        out.push(Output::Alert(gone_alert(&name, &key, record.series, now)));
                    }
                    self.removed.push((name, key));
                }
            }
        }
        for (id, key, mut series) in restored {
            let rule = &self.rules.rules[id];
            series.deadline = None;
            self.metrics.series(&rule.name).inc();
            series.persisted = Some(series.essentials());
            // As stored: nothing to write back.
            let changed = false;
            self.queues
                .settle(&self.metrics, (id, key), rule, &mut series, now, changed);
            self.states[id].series.insert(key, series);
        }
        self.update_alert_gauges();
        out
    }
}

/// The resolution of a stored alert whose rule no longer exists as it was.
fn gone_alert(rule: &str, key: &str, series: Series, now: Timestamp) -> Alert {
    let mut labels = series.labels;
    labels.insert("alertname".to_owned(), rule.to_owned());
    Alert {
        rule: rule.to_owned(),
        fingerprint: key.to_owned(),
        state: AlertState::Resolved,
        labels,
        annotations: BTreeMap::new(),
        value: series.value,
        active_since: series.active_since.unwrap_or(now),
        fired_at: series.fired_at,
        resolved_at: Some(now),
    }
}
