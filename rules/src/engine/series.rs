//! Per-series state: where one series of one rule is in its life, and the pure functions
//! that move it. Everything here is plain data, so it can be persisted and restored.

use std::collections::VecDeque;

use atalaya_bus::Labels;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::alert::AlertState;
use crate::compile::Rule;
use crate::model::Aggregate;

/// Where a series' alert is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub enum Phase {
    Inactive,
    /// The condition holds since `since` (a timer anchor: shifted over downtime).
    Pending {
        since: Timestamp,
    },
    /// Fired at `fired_at` (timer anchor for one-shot expiry); `clear_since` is when the
    /// condition stopped holding, for `keep_firing_for`.
    Firing {
        #[serde(with = "jiff::fmt::serde::timestamp::millisecond::required")]
        fired_at: Timestamp,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "jiff::fmt::serde::timestamp::millisecond::optional"
        )]
        clear_since: Option<Timestamp>,
    },
}

/// The state of one series of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The labels that identify the series. Stored, like `subject`, from `record_head`
    /// rather than by this type's `Serialize` (see `persist::encode_record`).
    #[serde(skip_serializing)]
    pub labels: Labels,
    /// The subject of its last event.
    #[serde(skip_serializing)]
    pub subject: String,
    pub phase: Phase,
    /// Transition rules: the `after` condition has held since the last alert.
    pub armed: bool,
    /// One-shot rules: fired, and the condition has not been false since.
    pub latched: bool,
    /// When the series last sent an event: the anchor of an absence timer, read by nothing
    /// else (so its change alone is persisted only for absence rules).
    #[serde(with = "jiff::fmt::serde::timestamp::millisecond::required")]
    pub last_seen: Timestamp,
    /// The rule's value at the last event (or the window aggregate).
    pub value: serde_json::Value,
    /// The last payload, kept only when the rule's templates read `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Window samples: (time, value), oldest first.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty", with = "samples")]
    pub samples: VecDeque<(Timestamp, f64)>,
    /// For display: when the alert became pending or firing, and when it fired. Not shifted
    /// on restore, unlike the timer anchors.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "jiff::fmt::serde::timestamp::millisecond::optional"
    )]
    pub active_since: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "jiff::fmt::serde::timestamp::millisecond::optional"
    )]
    pub fired_at: Option<Timestamp>,
    /// The condition held at the last event, but outside the rule's `active:` hours: with
    /// `evaluate_at_start`, the series becomes active when the hours begin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_out_of_hours: bool,
    /// A fingerprint of the last MQTT payload the series counted: a retained message
    /// repeating it (the broker's replay at a reconnect or restart) is not a new sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<u64>,
    /// The rule's value when the alert fired, for the texts rendered when it resolves
    /// (`firing_value`): by then `value` is the value that resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_value: Option<serde_json::Value>,
    /// The next time this series needs attention without an event.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "jiff::fmt::serde::timestamp::millisecond::optional"
    )]
    pub deadline: Option<Timestamp>,
    /// When this series' entry in the engine's deadline queue is due: at or before
    /// `deadline` (a deadline that moves later keeps its earlier entry, see
    /// `Queues::schedule`). Not persisted: the queue is rebuilt on restore and reload.
    #[serde(skip)]
    pub scheduled: Option<Timestamp>,
    /// Whether the series waits in the engine's queue of minor changes to persist (not
    /// persisted).
    #[serde(skip)]
    pub soft_queued: bool,
    /// How the engine's alert counts see this series: the phase kind it was last counted
    /// as (not persisted: a restored series is counted afresh).
    #[serde(skip)]
    pub counted: Option<AlertState>,
    /// The start of the stored record, `{"labels":{…},"subject":"…"`, encoded when the
    /// series is first persisted and kept: the labels never change and the subject seldom,
    /// and reading them again (several allocations elsewhere in memory) cost more than the
    /// rest of the record. `None` until then, and after the subject changes.
    #[serde(skip)]
    pub record_head: Option<Box<[u8]>>,
    /// The phase, arm and latch as last persisted: a change to these is written at once,
    /// other changes (last seen, value, window samples) at most every
    /// [`SOFT_PERSIST_INTERVAL`](super::SOFT_PERSIST_INTERVAL).
    #[serde(skip)]
    pub persisted: Option<(Phase, bool, bool)>,
}

/// A fingerprint of a payload, the same for the same JSON on every run and version (FNV-1a
/// over a walk of the value; object keys in the order they come, which is sorted).
pub fn payload_fingerprint(value: &serde_json::Value) -> u64 {
    use serde_json::Value;
    fn feed(hash: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *hash ^= u64::from(*b);
            *hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn walk(hash: &mut u64, value: &Value) {
        match value {
            Value::Null => feed(hash, b"n"),
            Value::Bool(b) => feed(hash, if *b { b"t" } else { b"f" }),
            // No text: a fingerprint per MQTT event must not allocate.
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => {
                    feed(hash, b"i");
                    feed(hash, &i.to_le_bytes());
                }
                (None, Some(u)) => {
                    feed(hash, b"u");
                    feed(hash, &u.to_le_bytes());
                }
                _ => {
                    feed(hash, b"f");
                    feed(
                        hash,
                        &n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes(),
                    );
                }
            },
            Value::String(s) => {
                feed(hash, b"\"");
                feed(hash, &(s.len() as u64).to_le_bytes());
                feed(hash, s.as_bytes());
            }
            Value::Array(items) => {
                feed(hash, b"[");
                feed(hash, &(items.len() as u64).to_le_bytes());
                for item in items {
                    walk(hash, item);
                }
            }
            Value::Object(map) => {
                feed(hash, b"{");
                feed(hash, &(map.len() as u64).to_le_bytes());
                for (key, item) in map {
                    feed(hash, &(key.len() as u64).to_le_bytes());
                    feed(hash, key.as_bytes());
                    walk(hash, item);
                }
            }
        }
    }
    let mut hash = 0xcbf2_9ce4_8422_2325;
    walk(&mut hash, value);
    hash
}

/// Window samples stored compactly: `[[unix milliseconds, value], …]` (timestamps as text
/// would cost more than the rest of a series to encode).
mod samples {
    use std::collections::VecDeque;

    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        samples: &VecDeque<(Timestamp, f64)>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(samples.iter().map(|(t, v)| (t.as_millisecond(), *v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecDeque<(Timestamp, f64)>, D::Error> {
        let raw = Vec::<(i64, f64)>::deserialize(deserializer)?;
        raw.into_iter()
            .map(|(ms, v)| {
                Timestamp::from_millisecond(ms)
                    .map(|t| (t, v))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// Most samples one series keeps in a window; older ones are dropped first.
pub const MAX_WINDOW_SAMPLES: usize = 10_000;

impl Series {
    pub fn new(labels: Labels, now: Timestamp) -> Self {
        Self {
            labels,
            subject: String::new(),
            phase: Phase::Inactive,
            armed: false,
            latched: false,
            last_seen: now,
            value: serde_json::Value::Null,
            data: None,
            samples: VecDeque::new(),
            active_since: None,
            fired_at: None,
            fired_value: None,
            payload: None,
            held_out_of_hours: false,
            deadline: None,
            scheduled: None,
            soft_queued: false,
            counted: None,
            record_head: None,
            persisted: None,
        }
    }

    /// What must reach the store at once when it changes.
    pub fn essentials(&self) -> (Phase, bool, bool) {
        (self.phase, self.armed, self.latched)
    }

    /// The alert state this series shows: `None` when inactive.
    pub fn alert_state(&self) -> Option<AlertState> {
        match self.phase {
            Phase::Inactive => None,
            Phase::Pending { .. } => Some(AlertState::Pending),
            Phase::Firing { .. } => Some(AlertState::Firing),
        }
    }

    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    /// Moves every timer anchor by `by` (restore after downtime: timers pause while atalaya
    /// is not running, so a restart neither fires overdue `for` timers nor reports every
    /// sensor as silent).
    pub fn shift(&mut self, by: SignedDuration) {
        let shift = |t: &mut Timestamp| *t = t.checked_add(by).unwrap_or(*t);
        match &mut self.phase {
            Phase::Inactive => {}
            Phase::Pending { since } => shift(since),
            Phase::Firing {
                fired_at,
                clear_since,
            } => {
                shift(fired_at);
                if let Some(c) = clear_since {
                    shift(c);
                }
            }
        }
        shift(&mut self.last_seen);
        for (t, _) in &mut self.samples {
            shift(t);
        }
        if let Some(d) = &mut self.deadline {
            shift(d);
        }
    }

    /// Adds a window sample and drops what fell out of the window ending at `now`.
    pub fn push_sample(&mut self, now: Timestamp, value: f64, window: SignedDuration) {
        self.samples.push_back((now, value));
        while self.samples.len() > MAX_WINDOW_SAMPLES {
            self.samples.pop_front();
        }
        self.prune(now, window);
    }

    /// Drops samples at or before `now - window`.
    pub fn prune(&mut self, now: Timestamp, window: SignedDuration) {
        let Some(start) = now.checked_sub(window).ok() else {
            return;
        };
        while self.samples.front().is_some_and(|(t, _)| *t <= start) {
            self.samples.pop_front();
        }
    }

    /// The next instant this series needs attention, as of `now`: the earliest timer after
    /// `now`. (A timer at or before `now` has just been processed, by the tick at `now`.)
    pub fn next_deadline(&self, rule: &Rule, now: Timestamp) -> Option<Timestamp> {
        self.earliest_timer(rule, now, false)
    }

    /// The next instant this series needs attention, counting a timer already overdue as
    /// due `now`: for a series that did not run up to `now` (restored after a restart, where
    /// a deadline may have fallen between the last tick and the last save), whose overdue
    /// timers must not be lost.
    pub fn resumed_deadline(&self, rule: &Rule, now: Timestamp) -> Option<Timestamp> {
        self.earliest_timer(rule, now, true)
    }

    fn earliest_timer(&self, rule: &Rule, now: Timestamp, overdue_now: bool) -> Option<Timestamp> {
        // No allocation: this runs on every event.
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            let t = match t {
                Some(t) if t > now => t,
                Some(_) if overdue_now => now,
                _ => return,
            };
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        let add = |t: Timestamp, d: SignedDuration| t.checked_add(d).ok();
        match &self.phase {
            Phase::Inactive => {}
            Phase::Pending { since } => consider(add(*since, rule.for_)),
            Phase::Firing {
                fired_at,
                clear_since,
            } => {
                if rule.one_shot {
                    consider(add(*fired_at, rule.keep_firing_for));
                } else if let Some(c) = clear_since {
                    consider(add(*c, rule.keep_firing_for));
                }
            }
        }
        if let Some(absent) = rule.absent_for
            && !self.is_firing()
        {
            consider(add(self.last_seen, absent));
        }
        if let (Some(window), Some((oldest, _))) = (&rule.window, self.samples.front()) {
            consider(add(*oldest, window.duration));
        }
        if let Some(active) = &rule.active
            && (self.phase != Phase::Inactive || self.held_out_of_hours)
        {
            consider(active.next_change(now));
        }
        next
    }
}

/// The aggregate of `samples` over a window of `duration`; `None` when there is nothing to
/// aggregate (no samples, or no numbers for avg/min/max/sum).
pub fn aggregate(aggregate: Aggregate, samples: &VecDeque<(Timestamp, f64)>) -> Option<f64> {
    let numbers = || samples.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    match aggregate {
        Aggregate::Count => Some(samples.len() as f64),
        Aggregate::Sum => numbers().reduce(|a, b| a + b),
        Aggregate::Min => numbers().reduce(f64::min),
        Aggregate::Max => numbers().reduce(f64::max),
        Aggregate::Avg => {
            let (n, sum) = numbers().fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
            (n > 0).then(|| sum / n as f64)
        }
        Aggregate::Rate => {
            let mut finite = samples.iter().filter(|(_, v)| v.is_finite());
            let (t0, v0) = finite.next()?;
            let (t1, v1) = finite.next_back()?;
            let seconds = t1.duration_since(*t0).as_secs_f64();
            (seconds > 0.0).then(|| (v1 - v0) / seconds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn aggregates() {
        let samples: VecDeque<(Timestamp, f64)> =
            [(t(0), 10.0), (t(30), 20.0), (t(60), 40.0)].into();
        assert_eq!(aggregate(Aggregate::Count, &samples), Some(3.0));
        assert_eq!(aggregate(Aggregate::Sum, &samples), Some(70.0));
        assert_eq!(aggregate(Aggregate::Min, &samples), Some(10.0));
        assert_eq!(aggregate(Aggregate::Max, &samples), Some(40.0));
        assert!((aggregate(Aggregate::Avg, &samples).unwrap() - 23.333).abs() < 0.01);
        assert_eq!(aggregate(Aggregate::Rate, &samples), Some(0.5));
        assert_eq!(aggregate(Aggregate::Avg, &VecDeque::new()), None);
        assert_eq!(aggregate(Aggregate::Count, &VecDeque::new()), Some(0.0));
    }

    #[test]
    fn prune_keeps_the_window() {
        let mut s = Series::new(Labels::new(), t(0));
        let w = SignedDuration::from_secs(60);
        s.push_sample(t(0), 1.0, w);
        s.push_sample(t(30), 1.0, w);
        s.push_sample(t(60), 1.0, w);
        assert_eq!(s.samples.len(), 2, "the sample at 0 is out of (0, 60]");
        s.prune(t(90), w);
        assert_eq!(s.samples.len(), 1);
    }
}

/// A hasher for keys that are already hashes (series fingerprints) or small integers: mixes
/// the written integers once instead of running SipHash over them on every event.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Build hasher for maps keyed by fingerprints.
pub type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;
