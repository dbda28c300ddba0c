//! A received NATS message (core or JetStream) becomes an [`Event`]: its subject the token
//! path, its payload decoded by the shared [`crate::payload`] policy, and labels from the
//! pattern's captures and from the message's headers.

use async_nats::HeaderMap;
use atalaya_bus::event::Name;
use atalaya_bus::{Event, Labels, Pattern, Subject};

use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::ConnectorCounters;

use super::internal_events::{LogThrottle, MessageNotMatching, MessageSkipped};
use crate::payload::{decode_payload, metadata_labels};

/// The `type` of every event from NATS.
pub const EVENT_TYPE: &str = "atalaya.nats.message";

/// Prefix of the labels made from headers: header `X-Device` becomes `header_x_device`.
pub const HEADER_LABEL_PREFIX: &str = "header_";

/// How a message is turned into an event: fixed per subscription or consumer.
#[derive(Debug, Clone)]
pub(crate) struct EventRecipe {
    /// `nats://host:port` of the first configured server, without user info.
    pub source: Name,
    /// The pattern subscribed to; `None` matches everything (a consumer without a filter).
    pub pattern: Option<Pattern>,
    pub max_payload_bytes: usize,
}

/// Why a message was skipped; `stage` is the metric label.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub stage: &'static str,
    pub reason: String,
}

impl EventRecipe {
    /// The event for a message received `now`, `Ok(None)` when its subject does not match the
    /// pattern (NATS delivered more than the pattern means), or why the message cannot be an
    /// event.
    pub fn event(
        &self,
        nats_subject: &str,
        payload: &[u8],
        headers: Option<&HeaderMap>,
        now: jiff::Timestamp,
    ) -> Result<Option<Event>, Rejected> {
        let subject = Subject::from_nats(nats_subject).map_err(|e| Rejected {
            stage: "decode",
            reason: e.to_string(),
        })?;
        let mut labels = Labels::new();
        if let Some(pattern) = &self.pattern
            && !pattern.capture_into(&subject, &mut labels)
        {
            return Ok(None);
        }
        let data = decode_payload(payload, self.max_payload_bytes).map_err(|e| Rejected {
            stage: e.stage(),
            reason: e.to_string(),
        })?;
        if let Some(headers) = headers {
            add_header_labels(headers, &mut labels);
        }
        let mut event = Event::new(self.source.clone(), subject, data, now);
        event.event_type = Name::from_static(EVENT_TYPE);
        event.labels = labels;
        Ok(Some(event))
    }
}

/// One label per header (its first value), as [`metadata_labels`] makes them.
fn add_header_labels(headers: &HeaderMap, labels: &mut Labels) {
    metadata_labels(
        HEADER_LABEL_PREFIX,
        headers
            .iter()
            .filter_map(|(name, values)| Some((name.as_ref(), values.first()?.as_str()))),
        labels,
    );
}

/// What every task of one connector shares.
pub(crate) struct Shared {
    pub bus: Publisher,
    pub counters: ConnectorCounters,
    /// One throttle for the connector's warnings about skipped messages and failed acks.
    pub throttle: LogThrottle,
}

impl Shared {
    /// Adds the event of a core `message` received `now` to `events`, or reports why there
    /// is none (see [`Shared::event_or_report`]).
    pub(crate) fn push_event(
        &self,
        recipe: &EventRecipe,
        message: &async_nats::Message,
        now: jiff::Timestamp,
        events: &mut Vec<Event>,
    ) {
        if let Some(event) = self.event_or_report(
            recipe,
            &message.subject,
            &message.payload,
            message.headers.as_ref(),
            now,
        ) {
            events.push(event);
        }
    }

    /// The event of a message received `now`, or `None` after reporting why there is none: a
    /// subject the pattern does not match is logged; an unusable message is counted and logged
    /// without flooding. Either way the caller skips (and, for JetStream, acks) the message.
    pub(crate) fn event_or_report(
        &self,
        recipe: &EventRecipe,
        subject: &str,
        payload: &[u8],
        headers: Option<&async_nats::HeaderMap>,
        now: jiff::Timestamp,
    ) -> Option<atalaya_bus::Event> {
        match recipe.event(subject, payload, headers, now) {
            Ok(Some(event)) => Some(event),
            Ok(None) => {
                MessageNotMatching {
                    subject,
                    pattern: recipe.pattern.as_ref().map_or("", |p| p.as_str()),
                }
                .emit();
                None
            }
            Err(rejected) => {
                MessageSkipped {
                    subject,
                    stage: rejected.stage,
                    reason: &rejected.reason,
                }
                .emit(&self.counters, &self.throttle);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use atalaya_bus::event::{MAX_LABEL_VALUE_BYTES, MAX_LABELS};
    use serde_json::json;

    use super::*;

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    fn recipe(pattern: Option<&str>) -> EventRecipe {
        EventRecipe {
            source: "nats://127.0.0.1:4222".into(),
            pattern: pattern.map(|p| Pattern::parse(p).unwrap()),
            max_payload_bytes: 64,
        }
    }

    #[test]
    fn a_message_becomes_an_event() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Device", "esp-1");
        headers.append("X-Device", "ignored");
        headers.insert("header_room", "from-header");
        let event = recipe(Some("sensors/+room/temp"))
            .event("sensors.kitchen.temp", b"21.5", Some(&headers), now())
            .unwrap()
            .unwrap();
        assert_eq!(event.subject.as_str(), "sensors/kitchen/temp");
        assert_eq!(event.data, json!(21.5));
        assert_eq!(event.event_type, EVENT_TYPE);
        assert_eq!(event.source, "nats://127.0.0.1:4222");
        assert_eq!(&event.labels["room"], "kitchen");
        assert_eq!(&event.labels["header_x_device"], "esp-1");
        assert_eq!(&event.labels["header_header_room"], "from-header");
    }

    #[test]
    fn rejects_and_skips() {
        let r = recipe(Some("home/#"));
        assert!(r.event("garden.x", b"1", None, now()).unwrap().is_none());
        let bad = r.event("home.a/b", b"1", None, now()).unwrap_err();
        assert_eq!(bad.stage, "decode");
        assert_eq!(
            r.event("home.x", &[0xff], None, now()).unwrap_err().stage,
            "decode"
        );
        assert_eq!(
            r.event("home.x", &[b'1'; 65], None, now())
                .unwrap_err()
                .stage,
            "size"
        );
    }

    #[test]
    fn header_labels_stay_within_the_limits() {
        let mut headers = HeaderMap::new();
        for i in 0..(MAX_LABELS + 10) {
            headers.insert(format!("h{i:03}").as_str(), "v");
        }
        headers.insert("a-long", "x".repeat(MAX_LABEL_VALUE_BYTES + 1).as_str());
        let mut labels = Labels::new();
        add_header_labels(&headers, &mut labels);
        assert_eq!(labels.len(), MAX_LABELS);
        assert!(!labels.contains_key("header_a_long"));
        assert!(labels.contains_key("header_h000"));
        assert_eq!(
            crate::payload::metadata_label_name(HEADER_LABEL_PREFIX, "Nats-Msg-Id"),
            "header_nats_msg_id"
        );
    }

    proptest::proptest! {
        /// Any subject, payload and headers a NATS peer can send: never a panic, and an
        /// event only with a valid subject and labels within the limits.
        #[test]
        fn any_message_is_an_event_or_a_counted_rejection(
            subject in "[a-z.*>/ \\PC]{0,40}",
            payload in crate::payload::tests::payloads(),
            headers in proptest::collection::vec(("[A-Za-z0-9-]{1,20}", "[ -~]{0,300}"), 0..40),
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in &headers {
                map.insert(name.as_str(), value.as_str());
            }
            for pattern in [None, Some("home/+room/#"), Some(">")] {
                match recipe(pattern).event(&subject, &payload, Some(&map), now()) {
                    Ok(Some(event)) => {
                        proptest::prop_assert!(event.labels.len() <= MAX_LABELS);
                        proptest::prop_assert!(Subject::parse(event.subject.as_str()).is_ok());
                    }
                    Ok(None) => {}
                    Err(rejected) => proptest::prop_assert!(["decode", "size"].contains(&rejected.stage)),
                }
            }
        }
    }
}
