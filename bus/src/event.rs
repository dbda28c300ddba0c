//! The one event model: CloudEvents attribute names plus flat string labels.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use jiff::Timestamp;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::subject::Subject;

pub use crate::labels::Labels;

/// Most labels one event may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label name, in bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 128;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// The `type` given to events whose producer did not name one.
pub const DEFAULT_EVENT_TYPE: &str = "atalaya.event";
/// The `type` of every event from MQTT.
pub const MQTT_EVENT_TYPE: &str = "atalaya.mqtt.message";
/// The label set to `"true"` on events of MQTT messages the broker flagged as retained (a
/// topic's last message, replayed at every subscription): the rule engine does not count one
/// that repeats what the series last saw.
pub const MQTT_RETAINED_LABEL: &str = "mqtt_retained";

/// One event on the bus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Unique per producer; generated (UUIDv7) when the producer gives none.
    pub id: EventId,
    /// Who produced it (a URI-reference, e.g. `/atalaya/http` or `mqtt://broker`).
    pub source: Name,
    /// What kind of occurrence this is (`atalaya.event` unless the producer says).
    #[serde(rename = "type")]
    pub event_type: Name,
    /// The token path rules match on.
    pub subject: Subject,
    /// When it happened, as the producer says, or when atalaya received it.
    pub time: Timestamp,
    /// The payload, any JSON value.
    pub data: Value,
    /// Flat string labels: from the producer and from pattern captures.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl Event {
    /// An event with a fresh id, received `now` from `source`.
    pub fn new(source: impl Into<Name>, subject: Subject, data: Value, now: Timestamp) -> Self {
        Self {
            id: EventId::at(now),
            source: source.into(),
            event_type: Name::from_static(DEFAULT_EVENT_TYPE),
            subject,
            time: now,
            data,
            labels: Labels::new(),
        }
    }
}

/// A string that many events carry (a source, a type): a constant, or one allocation every
/// event of a connector shares, so that making an event does not copy it.
#[derive(Clone)]
pub struct Name(NameRepr);

#[derive(Clone)]
enum NameRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    /// A constant name: nothing is allocated, ever.
    pub const fn from_static(name: &'static str) -> Self {
        Self(NameRepr::Static(name))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            NameRepr::Static(name) => name,
            NameRepr::Shared(name) => name,
        }
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(name: &str) -> Self {
        Self(NameRepr::Shared(Arc::from(name)))
    }
}

impl From<&String> for Name {
    fn from(name: &String) -> Self {
        Self::from(name.as_str())
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Self(NameRepr::Shared(Arc::from(name)))
    }
}

impl From<&Name> for Name {
    fn from(name: &Name) -> Self {
        name.clone()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An event's id: as its producer gave it, or a UUIDv7 atalaya generated, kept as its 16
/// bytes and written out only when something prints or forwards the event.
#[derive(Clone, PartialEq, Eq)]
pub enum EventId {
    Generated(uuid::Uuid),
    Given(String),
}

impl EventId {
    /// A fresh id for an event received `now`: the caller's reading of the clock, not
    /// another one, and ordered after every id made before in this process.
    ///
    /// A UUIDv7 (RFC 9562) laid out as its "fixed bit-length dedicated counter" method
    /// says: the 48-bit Unix time in milliseconds, a 16-bit counter that orders the ids of
    /// one millisecond (it carries into the time past 65 536 of them, as the clock would),
    /// then 58 bits that look random: the time and counter mixed (SplitMix64) with a key
    /// drawn once per process, so no two ids of a process share them by more than chance.
    /// One atomic update per id, where a locked generator drawing random bits for each
    /// cost a few percent of a busy NATS subscription.
    pub fn at(now: Timestamp) -> Self {
        /// The last id's time and counter, `millis << 16 | counter`.
        static LAST: AtomicU64 = AtomicU64::new(0);
        // The low 62 bits of a UUIDv7 are random.
        static KEY: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::now_v7().as_u64_pair().1);
        const MILLIS: u64 = (1 << 48) - 1;
        let wanted = (u64::try_from(now.as_millisecond()).unwrap_or(0) & MILLIS) << 16;
        let next = |last: u64| wanted.max(last.wrapping_add(1));
        let last = LAST
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(next(last))
            })
            .unwrap_or_else(|last| last);
        let stamp = next(last);
        let random = u128::from(split_mix(stamp ^ *KEY) >> 6);
        let stamp = u128::from(stamp);
        let (millis, counter) = (stamp >> 16, stamp & 0xffff);
        let bits = millis << 80
            | 0x7 << 76
            | (counter >> 4) << 64
            | 0b10 << 62
            | (counter & 0xf) << 58
            | random;
        Self::Generated(uuid::Uuid::from_u128(bits))
    }
}

/// SplitMix64's output function: a bijection on 64 bits whose outputs for consecutive
/// inputs look unrelated.
fn split_mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl From<String> for EventId {
    fn from(id: String) -> Self {
        Self::Given(id)
    }
}

impl PartialEq<str> for EventId {
    fn eq(&self, other: &str) -> bool {
        match self {
            Self::Given(id) => id == other,
            Self::Generated(uuid) => {
                let mut text = uuid::Uuid::encode_buffer();
                uuid.hyphenated().encode_lower(&mut text) == other
            }
        }
    }
}

impl PartialEq<&str> for EventId {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Given(id) => f.write_str(id),
            Self::Generated(uuid) => uuid.hyphenated().fmt(f),
        }
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Whether `name` is a valid label name: a letter or `_`, then letters, digits or `_`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_LABEL_NAME_BYTES
}

/// Why a label cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "label name `{0}` is invalid: use a letter or `_`, then letters, digits or `_` (at most {MAX_LABEL_NAME_BYTES} bytes)"
    )]
    InvalidName(String),
    #[error("label `{name}` is {len} bytes long; the limit is {MAX_LABEL_VALUE_BYTES}")]
    ValueTooLong { name: String, len: usize },
    #[error("too many labels ({count}); the limit is {MAX_LABELS}")]
    TooMany { count: usize },
}

/// Checks a whole label set against the label rules and limits.
pub fn validate_labels(labels: &Labels) -> Result<(), LabelError> {
    if labels.len() > MAX_LABELS {
        return Err(LabelError::TooMany {
            count: labels.len(),
        });
    }
    for (name, value) in labels {
        if !is_valid_label_name(name) {
            return Err(LabelError::InvalidName(name.to_owned()));
        }
        if value.len() > MAX_LABEL_VALUE_BYTES {
            return Err(LabelError::ValueTooLong {
                name: name.to_owned(),
                len: value.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_carry_the_reception_time_and_never_repeat() {
        let now: Timestamp = "2026-12-04T14:05:00.123456Z".parse().unwrap();
        let ids: Vec<String> = (0..1000).map(|_| EventId::at(now).to_string()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let id = uuid::Uuid::parse_str(&ids[0]).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let (seconds, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!((seconds, nanos / 1_000_000), (1_796_393_100, 123));
        assert_eq!(ids[0].len(), 36);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        // The random-looking tail differs from id to id, not only the counter.
        let tails: std::collections::HashSet<&str> = ids.iter().map(|id| &id[24..]).collect();
        assert_eq!(tails.len(), ids.len());
        // A clock reading from before (another thread's) still makes a later id.
        let earlier = EventId::at(now - jiff::SignedDuration::from_secs(1)).to_string();
        assert!(earlier > ids[999]);
    }

    #[test]
    fn ids_and_names_read_as_the_text_they_stand_for() {
        let generated = EventId::at(Timestamp::now());
        let text = generated.to_string();
        assert!(generated == text.as_str());
        assert_eq!(serde_json::to_value(&generated).unwrap(), text.as_str());
        assert_eq!(format!("{generated:?}"), format!("{text:?}"));
        let given = EventId::from("abc".to_owned());
        assert!(given == "abc");
        assert_eq!(given.to_string(), "abc");
        let shared = Name::from("mqtt://broker");
        assert_eq!(shared, Name::from_static("mqtt://broker"));
        assert!(shared == "mqtt://broker");
        assert_eq!(serde_json::to_value(&shared).unwrap(), "mqtt://broker");
    }

    #[test]
    fn label_names() {
        for ok in ["room", "_x", "node_1", "A"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "ñ"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_limits() {
        let too_many: Labels = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), String::new()))
            .collect();
        assert!(matches!(
            validate_labels(&too_many),
            Err(LabelError::TooMany { .. })
        ));
        let long = Labels::from([("a".to_owned(), "x".repeat(MAX_LABEL_VALUE_BYTES + 1))]);
        assert!(matches!(
            validate_labels(&long),
            Err(LabelError::ValueTooLong { .. })
        ));
    }

    #[test]
    fn serializes_with_cloudevents_names() {
        let event = Event::new(
            "/test",
            Subject::parse("a/b").unwrap(),
            Value::from(1),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], DEFAULT_EVENT_TYPE);
        assert_eq!(json["subject"], "a/b");
        assert_eq!(json["time"], "2026-01-01T00:00:00Z");
        assert!(json.get("labels").is_none());
    }
}
