//! Subscriptions as MQTT filters, and a received message into an event.

use atalaya_bus::event::Name;
use atalaya_bus::subject::SubjectError;
use atalaya_bus::{Event, Pattern, Subject};
use jiff::Timestamp;
use rumqttc::QoS;

use super::config::MqttSubscription;
use super::wire::{Filter, Received};
use crate::payload::{PayloadError, decode_payload, metadata_labels};

pub use atalaya_bus::event::{
    MQTT_EVENT_TYPE as EVENT_TYPE, MQTT_RETAINED_LABEL as RETAINED_LABEL,
};

/// Prefix of the labels made from MQTT 5 user properties: property `Room` becomes
/// `property_room`.
pub const PROPERTY_LABEL_PREFIX: &str = "property_";

/// Why a message is not an event.
#[derive(Debug)]
pub(crate) enum Skip {
    /// The topic is not a valid subject (an empty level, a leading `/`, …).
    Topic(SubjectError),
    Payload(PayloadError),
    /// No subscription pattern matches (`>` needs a token; or a subscription left in the
    /// persistent session by an earlier configuration).
    Unmatched,
    /// MQTT 5: its message expiry interval ran out while it waited inside atalaya.
    Expired,
}

impl Skip {
    /// The `stage` label it is counted under, if it is counted.
    pub(crate) fn stage(&self) -> Option<&'static str> {
        match self {
            Self::Topic(_) => Some("decode"),
            Self::Payload(e) => Some(e.stage()),
            Self::Unmatched => None,
            Self::Expired => Some("expired"),
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Topic(e) => write!(f, "the topic is not a valid subject: {e}"),
            Self::Payload(e) => e.fmt(f),
            Self::Unmatched => f.write_str("no subscription pattern matches the topic"),
            Self::Expired => {
                f.write_str("its message expiry interval ran out while it waited for the bus")
            }
        }
    }
}

/// The configured subscriptions, and how messages become events.
pub(crate) struct Subscriptions {
    patterns: Vec<Pattern>,
    filters: Vec<Filter>,
    /// `mqtt://host:port`, the source of every event.
    source: Name,
    max_payload_bytes: usize,
}

impl Subscriptions {
    pub(crate) fn new(
        subscriptions: &[MqttSubscription],
        source: String,
        max_payload_bytes: usize,
    ) -> Self {
        Self {
            patterns: subscriptions.iter().map(|s| s.pattern.clone()).collect(),
            filters: subscriptions
                .iter()
                .map(|s| Filter {
                    path: mqtt_filter(&s.pattern),
                    qos: subscription_qos(s.qos),
                })
                .collect(),
            source: source.into(),
            max_payload_bytes,
        }
    }

    /// The filters to subscribe, in config order.
    pub(crate) fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// The event of `publish`, received `now`.
    pub(crate) fn to_event(&self, publish: &Received, now: Timestamp) -> Result<Event, Skip> {
        let subject = Subject::parse(&publish.topic).map_err(Skip::Topic)?;
        let captures = self
            .patterns
            .iter()
            .find_map(|pattern| pattern.captures(&subject))
            .ok_or(Skip::Unmatched)?;
        let labels: Vec<(String, String)> = captures
            .into_iter()
            .map(|(name, token)| (name.to_owned(), token.to_owned()))
            .collect();
        let data =
            decode_payload(&publish.payload, self.max_payload_bytes).map_err(Skip::Payload)?;
        let mut event = Event::new(self.source.clone(), subject, data, now);
        event.event_type = Name::from_static(EVENT_TYPE);
        event.labels.extend(labels);
        if publish.retain {
            event
                .labels
                .insert(RETAINED_LABEL.to_owned(), "true".to_owned());
        }
        if !publish.user_properties.is_empty() {
            metadata_labels(
                PROPERTY_LABEL_PREFIX,
                publish
                    .user_properties
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
                &mut event.labels,
            );
        }
        Ok(event)
    }
}

/// The MQTT filter of a subject pattern: `+name` → `+`, `>` → `#` (the pattern is checked
/// again on receipt, since `#` also matches zero tokens).
pub(crate) fn mqtt_filter(pattern: &Pattern) -> String {
    pattern
        .as_str()
        .split('/')
        .map(|token| match token {
            ">" => "#",
            capture if capture.starts_with('+') => "+",
            literal => literal,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The QoS a subscription is made at: 0 stays 0, 1 and 2 are 1 (see the module docs).
pub(crate) fn subscription_qos(qos: u8) -> QoS {
    if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn subscriptions(patterns: &[&str]) -> Subscriptions {
        let subs: Vec<MqttSubscription> = patterns
            .iter()
            .map(|p| MqttSubscription {
                pattern: Pattern::parse(p).unwrap(),
                qos: 1,
            })
            .collect();
        Subscriptions::new(&subs, "mqtt://broker:1883".to_owned(), 64)
    }

    fn publish(topic: &str, payload: &[u8], retain: bool) -> Received {
        Received {
            topic: topic.to_owned(),
            payload: payload.to_vec().into(),
            at_most_once: false,
            retain,
            pkid: 1,
            user_properties: Vec::new(),
            expires_in: None,
        }
    }

    #[test]
    fn filters_follow_mqtt_syntax() {
        let subs = subscriptions(&["zigbee2mqtt/+device", "home/#", "tele/+/>", "a/b"]);
        let filters: Vec<&str> = subs.filters().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(filters, ["zigbee2mqtt/+", "home/#", "tele/+/#", "a/b"]);
        assert_eq!(subscription_qos(2), QoS::AtLeastOnce);
        assert_eq!(subscription_qos(0), QoS::AtMostOnce);
    }

    #[test]
    fn messages_become_events_with_labels() {
        let subs = subscriptions(&["zigbee2mqtt/+device", "tele/>"]);
        let now = Timestamp::UNIX_EPOCH;
        let event = subs
            .to_event(
                &publish("zigbee2mqtt/plug", br#"{"state":"ON"}"#, true),
                now,
            )
            .unwrap();
        assert_eq!(event.source, "mqtt://broker:1883");
        assert_eq!(event.event_type, EVENT_TYPE);
        assert_eq!(event.subject.as_str(), "zigbee2mqtt/plug");
        assert_eq!(event.data, json!({"state": "ON"}));
        assert_eq!(&event.labels["device"], "plug");
        assert_eq!(&event.labels[RETAINED_LABEL], "true");
        let plain = subs.to_event(&publish("tele/x/temp", b"21.5", false), now);
        assert_eq!(plain.unwrap().labels.len(), 0);
    }

    #[test]
    fn mqtt_5_user_properties_become_labels_after_captures() {
        let subs = subscriptions(&["zigbee2mqtt/+device"]);
        let mut message = publish("zigbee2mqtt/plug", b"1", false);
        message.user_properties = vec![
            ("Room".to_owned(), "kitchen".to_owned()),
            ("device".to_owned(), "not the capture".to_owned()),
            ("room".to_owned(), "second".to_owned()),
            ("x-Y z".to_owned(), "1".to_owned()),
        ];
        let event = subs.to_event(&message, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(&event.labels["device"], "plug");
        assert_eq!(&event.labels["property_room"], "kitchen", "the first wins");
        assert_eq!(&event.labels["property_device"], "not the capture");
        assert_eq!(&event.labels["property_x_y_z"], "1");
        assert_eq!(event.labels.len(), 4);
    }

    #[test]
    fn what_is_not_an_event_is_skipped_with_its_stage() {
        let subs = subscriptions(&["tele/>", "#"]);
        let now = Timestamp::UNIX_EPOCH;
        let stage = |topic: &str, payload: &[u8]| {
            subs.to_event(&publish(topic, payload, false), now)
                .unwrap_err()
                .stage()
        };
        assert_eq!(stage("a//b", b"1"), Some("decode"));
        assert_eq!(stage("/a", b"1"), Some("decode"));
        assert_eq!(stage("a", &[0xff]), Some("decode"));
        assert_eq!(stage("a", &[b'1'; 65]), Some("size"));
        let only_gt = subscriptions(&["tele/>"]);
        assert!(matches!(
            only_gt.to_event(&publish("tele", b"1", false), now),
            Err(Skip::Unmatched)
        ));
    }

    proptest::proptest! {
        /// Any topic and payload an MQTT peer can publish: never a panic; an event carries
        /// the topic as its subject, or the message is skipped with a stage.
        #[test]
        fn any_message_is_an_event_or_a_counted_skip(
            topic in "[a-z/+#$ \\PC]{0,40}",
            payload in crate::payload::tests::payloads(),
            retain in proptest::bool::ANY,
        ) {
            let subs = subscriptions(&["zigbee2mqtt/+device", "home/+room/#", "#"]);
            match subs.to_event(&publish(&topic, &payload, retain), Timestamp::UNIX_EPOCH) {
                Ok(event) => proptest::prop_assert_eq!(event.subject.as_str(), topic.as_str()),
                Err(skip) => proptest::prop_assert!(skip.stage().is_some() || matches!(skip, Skip::Unmatched)),
            }
        }
    }
}
