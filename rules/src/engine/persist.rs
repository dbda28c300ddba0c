//! Persistence: the series that changed, encoded for the store ([`Changes`]) — at once for a
//! change of phase, arm or latch, within [`SOFT_PERSIST_INTERVAL`] for any other — and
//! restored after a restart, their timers shifted by the downtime.

use std::collections::HashMap;

use atalaya_bus::Labels;
use atalaya_bus::labels::Annotations;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Engine, Series};
use crate::alert::{Alert, AlertState, Output, fingerprint_hash, fingerprint_text};

/// Longest a series' minor changes (last seen, value, window samples) wait to be persisted.
/// Phase changes are persisted at once; this bounds what a crash can lose, and spares an SD
/// card a write per event.
pub const SOFT_PERSIST_INTERVAL: SignedDuration = SignedDuration::from_secs(30);

/// Persisted form of one series:
/// `{"rule_hash":…,"series":{"labels":{…},"subject":"…","phase":{…},…}}`, written by
/// [`encode_record`].
#[derive(Deserialize)]
struct SeriesRecord {
    rule_hash: u64,
    series: Series,
}

/// The start of a record's series: its labels and subject.
#[derive(Serialize)]
struct RecordHead<'a> {
    labels: &'a Labels,
    subject: &'a str,
}

/// The head of the record of `series`, for `Series::record_head`: `{"labels":…,"subject":…`
/// without the closing brace, as the rest of the series follows.
pub(super) fn encode_head(series: &Series) -> serde_json::Result<Box<[u8]>> {
    let mut head = serde_json::to_vec(&RecordHead {
        labels: &series.labels,
        subject: &series.subject,
    })?;
    head.pop();
    Ok(head.into_boxed_slice())
}

/// Encodes the record of `series`. Its labels and subject come from the head cached in the
/// series (encoded now if it has none), the rest from `Series`' `Serialize`, which leaves
/// them out: `{"phase":…}` then continues the head's object.
fn encode_record(rule_hash: u64, series: &mut Series) -> serde_json::Result<Vec<u8>> {
    let head = match series.record_head.take() {
        Some(head) => head,
        None => encode_head(series)?,
    };
    // A record without window samples is 250 to 320 bytes: one allocation rather than a
    // series of regrowths.
    let mut bytes = Vec::with_capacity(head.len() + 256);
    bytes.extend_from_slice(b"{\"rule_hash\":");
    serde_json::to_writer(&mut bytes, &rule_hash)?;
    bytes.extend_from_slice(b",\"series\":");
    bytes.extend_from_slice(&head);
    series.record_head = Some(head);
    let rest = bytes.len();
    serde_json::to_writer(&mut bytes, &*series)?;
    // The rest's opening brace joins it to the head's fields.
    bytes[rest] = b',';
    bytes.push(b'}');
    Ok(bytes)
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

/// A stored series that could not be read back: for the caller to set aside.
#[derive(Debug)]
pub struct Unreadable {
    pub rule: String,
    pub fingerprint: String,
    pub record: Vec<u8>,
    pub reason: String,
}

impl Engine {
    /// The stored series the last [`Engine::restore`] could not read (dropped from the
    /// engine's state, and deleted from the store by the next changes).
    pub fn take_unreadable(&mut self) -> Vec<Unreadable> {
        std::mem::take(&mut self.unreadable)
    }

    /// Whether [`Engine::take_changes`] at `now` (`all`: [`Engine::take_all_changes`]) would
    /// return anything, without taking it.
    pub fn has_changes(&self, now: Timestamp, all: bool) -> bool {
        !self.queues.urgent.is_empty()
            || !self.carried.upserts.is_empty()
            || !self.carried.deletes.is_empty()
            || !self.removed.is_empty()
            || self
                .queues
                .soft
                .front()
                .is_some_and(|(due, _, _)| all || *due <= now)
    }

    /// What to persist as of `now`: series whose phase, arm or latch changed, series with
    /// other changes (all of them, once the oldest is [`SOFT_PERSIST_INTERVAL`] old), and
    /// removed series.
    pub fn take_changes(&mut self, now: Timestamp) -> Changes {
        let mut keys: Vec<(usize, u64, Queue)> = self
            .queues
            .urgent
            .drain()
            .map(|(id, key)| (id, key, Queue::Urgent))
            .collect();
        // When the oldest minor change is due, every minor change goes with it: one write
        // every `SOFT_PERSIST_INTERVAL` at most, rather than one per event as each series'
        // own interval runs out (a commit costs an SD card far more than a few records).
        if self
            .queues
            .soft
            .front()
            .is_some_and(|(due, _, _)| *due <= now)
        {
            keys.extend(
                self.queues
                    .soft
                    .drain(..)
                    .map(|(_, id, key)| (id, key, Queue::Soft)),
            );
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
            let Some(series) = self.states[id].series.get_mut(key) else {
                continue;
            };
            if queue == Queue::Soft {
                series.soft_queued = false;
            }
            if let Ok(bytes) = encode_record(rule.hash, series) {
                changes
                    .upserts
                    .push((rule.name.clone(), fingerprint_text(key), bytes));
                series.persisted = Some(series.essentials());
            }
        }
        changes
    }

    /// Restores persisted series. Timer anchors move by the downtime (`now - saved_at`), so
    /// timers pause while atalaya is down; the moved anchors are handed out by the next
    /// [`Engine::take_changes`], to be stored with the new `saved_at`. A timer already due
    /// is processed at the first tick. Series of rules that changed or are gone are
    /// dropped (their firing alerts resolved and returned) and queued for deletion.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = (String, String, Vec<u8>)>,
        saved_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Vec<Output> {
        let now = crate::alert::alert_time(now);
        let downtime = saved_at
            .map(|s| now.duration_since(crate::alert::alert_time(s)))
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
            let record = match serde_json::from_slice::<SeriesRecord>(&bytes) {
                Ok(record) => record,
                Err(e) => {
                    warn!(rule = %name, error = %e, "Unreadable stored series; set aside.");
                    self.removed.push((name.clone(), key.clone()));
                    self.unreadable.push(Unreadable {
                        rule: name,
                        fingerprint: key,
                        record: bytes,
                        reason: e.to_string(),
                    });
                    continue;
                }
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
            self.metrics.series(&rule.name).inc();
            // Shifted timers are written back (with the next `saved_at`, in the same
            // transaction): every later restart shifts from what is stored, by the downtime
            // since the last save, so the stored anchors must be this run's.
            series.persisted = downtime.is_zero().then(|| series.essentials());
            self.queues
                .settle(&self.metrics, (id, key), rule, &mut series, now, false);
            // A timer that fell due between the last tick and the last save is due now.
            series.deadline = series.resumed_deadline(rule, now);
            self.queues.schedule(id, key, &mut series);
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
        annotations: Annotations::new(),
        value: series.value,
        active_since: series.active_since.unwrap_or(now),
        fired_at: series.fired_at,
        resolved_at: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::engine::Phase;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn records_keep_their_format() {
        let mut series = Series::new(
            Labels::from([
                ("room".to_owned(), "kitchen".to_owned()),
                ("sensor".to_owned(), "s\"1".to_owned()),
            ]),
            t(1_767_614_790),
        );
        series.subject = "home/kitchen/s\"1/temperature".to_owned();
        series.deadline = Some(t(1_767_616_590));
        // As every earlier version wrote it: old records restore, new ones read alike.
        let expected = r#"{"rule_hash":15184801928733074163,"series":{"labels":{"room":"kitchen","sensor":"s\"1"},"subject":"home/kitchen/s\"1/temperature","phase":{"phase":"inactive"},"armed":false,"latched":false,"last_seen":1767614790000,"value":null,"deadline":1767616590000}}"#;
        for _ in 0..2 {
            let bytes = encode_record(15_184_801_928_733_074_163, &mut series).unwrap();
            assert_eq!(String::from_utf8(bytes).unwrap(), expected);
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let mut series = Series::new(
            Labels::from([("node".to_owned(), "pi1".to_owned())]),
            t(100),
        );
        series.subject = "k8s/node/pi1/ready".to_owned();
        series.phase = Phase::Firing {
            fired_at: t(90),
            clear_since: Some(t(95)),
        };
        series.value = json!({"ready": false});
        series.data = Some(json!([1, 2]));
        series.push_sample(t(99), 1.5, jiff::SignedDuration::from_secs(60));
        series.active_since = Some(t(80));
        series.fired_at = Some(t(90));
        // The head is cached on the first encoding; a changed subject needs a new one.
        encode_record(1, &mut series).unwrap();
        series.subject = "k8s/node/pi1/ready2".to_owned();
        series.record_head = None;
        let bytes = encode_record(1, &mut series).unwrap();
        let record: SeriesRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record.rule_hash, 1);
        let read = record.series;
        assert_eq!(read.labels, series.labels);
        assert_eq!(read.subject, "k8s/node/pi1/ready2");
        assert_eq!(read.phase, series.phase);
        assert_eq!(read.value, series.value);
        assert_eq!(read.data, series.data);
        assert_eq!(read.samples, series.samples);
        assert_eq!(
            (read.active_since, read.fired_at, read.last_seen),
            (series.active_since, series.fired_at, series.last_seen)
        );
    }
}
