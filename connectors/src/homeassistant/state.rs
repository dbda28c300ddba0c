//! A `state_changed` event of Home Assistant becomes an event on the bus.
//!
//! - subject `ha/<domain>/<object_id>`: `sensor.kitchen_temperature` →
//!   `ha/sensor/kitchen_temperature`;
//! - type [`EVENT_TYPE`], source `homeassistant://host:port`;
//! - time: the new state's `last_updated`, else the event's `time_fired`, else now;
//! - data:
//!   ```json
//!   {"state": 21.5, "attributes": {"unit_of_measurement": "°C", "friendly_name": "…"},
//!    "old_state": 21.0, "last_changed": "2025-01-31T10:00:00+00:00",
//!    "last_updated": "2025-01-31T10:00:00+00:00"}
//!   ```
//!   `state` and `old_state` are numbers when the text is one (finite), else the text as
//!   Home Assistant has it (`on`, `off`, `unavailable`, `unknown`); `old_state` is `null`
//!   for a new entity, `state` is `null` (and `attributes` `{}`) for one removed;
//! - labels `entity_id`, `domain`, and `area`, `device`, `device_name` where the registries
//!   know them, plus the captures of the `entities` pattern it matched.

use atalaya_bus::event::{Event, Labels, Name};
use atalaya_bus::{Pattern, Subject};
use jiff::Timestamp;
use serde_json::{Map, Number, Value, json};

use super::protocol::{HaState, StateChanged};
use super::registry::Registries;

/// The `type` of every event of this source.
pub const EVENT_TYPE: &str = "io.homeassistant.state_changed";

/// The first token of every subject of this source.
pub const SUBJECT_PREFIX: &str = "ha";

/// Why a state change is not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The entity id cannot be a subject (counted: `stage="subject"`).
    BadEntityId(String),
    /// No `entities` pattern matches (not counted: chosen by the config).
    Filtered,
}

/// `ha/<domain>/<object_id>` of an entity id, and its domain. Home Assistant's entity ids
/// are `domain.object_id` in lowercase letters, digits and `_`; anything that would not be
/// exactly three subject tokens is refused.
pub(crate) fn entity_subject(entity_id: &str) -> Result<(Subject, &str), String> {
    let Some((domain, object_id)) = entity_id.split_once('.') else {
        return Err("it has no `.` between domain and object id".to_owned());
    };
    if domain.is_empty() || object_id.is_empty() {
        return Err("its domain or object id is empty".to_owned());
    }
    if entity_id.contains('/') || object_id.contains('.') {
        return Err("it holds `/` or a second `.`".to_owned());
    }
    let subject = Subject::parse(&format!("{SUBJECT_PREFIX}/{domain}/{object_id}"))
        .map_err(|e| e.to_string())?;
    Ok((subject, domain))
}

/// A state's text as event data: a number when it is one (and finite), else the text.
pub(crate) fn state_value(state: &str) -> Value {
    if let Ok(n) = state.parse::<i64>() {
        return Value::Number(n.into());
    }
    // `inf`, `NaN` and `1e999` stay text: `from_f64` refuses what is not finite.
    match state.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) => Value::Number(n),
        None => Value::String(state.to_owned()),
    }
}

/// The bus event of one state change, or why it is skipped.
pub(crate) fn to_event(
    change: StateChanged,
    time_fired: Option<&str>,
    source: &str,
    entities: &[Pattern],
    registries: &Registries,
    now: Timestamp,
) -> Result<Event, Skip> {
    let (subject, domain) = entity_subject(&change.entity_id).map_err(Skip::BadEntityId)?;
    let mut labels = Labels::new();
    if !entities.is_empty()
        && !entities
            .iter()
            .any(|pattern| pattern.capture_into(&subject, &mut labels))
    {
        return Err(Skip::Filtered);
    }
    labels.insert("entity_id".to_owned(), change.entity_id.clone());
    labels.insert("domain".to_owned(), domain.to_owned());
    registries.label(&change.entity_id, &mut labels);
    let time = change
        .new_state
        .as_ref()
        .and_then(|s| s.last_updated.as_deref())
        .or(time_fired)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .unwrap_or(now);
    let old_state = change
        .old_state
        .as_ref()
        .map_or(Value::Null, |s| state_value(&s.state));
    let data = match change.new_state {
        Some(HaState {
            state,
            attributes,
            last_changed,
            last_updated,
        }) => json!({
            "state": state_value(&state),
            "attributes": attributes,
            "old_state": old_state,
            "last_changed": last_changed,
            "last_updated": last_updated,
        }),
        None => json!({
            "state": Value::Null,
            "attributes": Map::new(),
            "old_state": old_state,
            "last_changed": Value::Null,
            "last_updated": Value::Null,
        }),
    };
    let mut event = Event::new(source, subject, data, now);
    event.event_type = Name::from_static(EVENT_TYPE);
    event.time = time;
    event.labels = labels;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::protocol::{Incoming, decode};
    use super::super::registry::RegistryKind;
    use super::*;

    fn change(text: &str) -> (StateChanged, Option<String>) {
        let messages = decode(text).unwrap();
        let [Incoming::Event { event, .. }] = &messages[..] else {
            panic!("{messages:?}");
        };
        (
            serde_json::from_value(event.data.clone()).unwrap(),
            event.time_fired.clone(),
        )
    }

    const FREEZER: &str = r#"{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"sensor.freezer_temperature","old_state":{"entity_id":"sensor.freezer_temperature","state":"-18.5","attributes":{},"last_changed":"2025-01-31T09:00:00+00:00","last_updated":"2025-01-31T09:00:00+00:00"},"new_state":{"entity_id":"sensor.freezer_temperature","state":"-12","attributes":{"unit_of_measurement":"°C","friendly_name":"Freezer"},"last_changed":"2025-01-31T10:00:00.123+00:00","last_updated":"2025-01-31T10:00:00.123+00:00","context":{"id":"x"}}},"origin":"LOCAL","time_fired":"2025-01-31T10:00:01+00:00"}}"#;

    #[test]
    fn a_state_change_becomes_an_event() {
        let (data, fired) = change(FREEZER);
        let mut registries = Registries::default();
        registries
            .replace(
                RegistryKind::Entity,
                json!([{"entity_id": "sensor.freezer_temperature", "area_id": "kitchen"}]),
            )
            .unwrap();
        let now = Timestamp::now();
        let event = to_event(
            data,
            fired.as_deref(),
            "homeassistant://ha:8123",
            &[],
            &registries,
            now,
        )
        .unwrap();
        assert_eq!(event.subject.as_str(), "ha/sensor/freezer_temperature");
        assert_eq!(event.event_type, EVENT_TYPE);
        assert_eq!(event.source, "homeassistant://ha:8123");
        assert_eq!(
            event.time,
            "2025-01-31T10:00:00.123Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            event.data,
            json!({
                "state": -12,
                "attributes": {"unit_of_measurement": "°C", "friendly_name": "Freezer"},
                "old_state": -18.5,
                "last_changed": "2025-01-31T10:00:00.123+00:00",
                "last_updated": "2025-01-31T10:00:00.123+00:00",
            })
        );
        let labels: Vec<_> = event.labels.into_iter().collect();
        assert_eq!(
            labels,
            [
                ("area".to_owned(), "kitchen".to_owned()),
                ("domain".to_owned(), "sensor".to_owned()),
                (
                    "entity_id".to_owned(),
                    "sensor.freezer_temperature".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_removed_entity_has_a_null_state_and_bad_times_fall_back() {
        let text = r#"{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"light.hall","old_state":{"state":"on","last_updated":"yesterday"},"new_state":null},"time_fired":"not a time"}}"#;
        let (data, fired) = change(text);
        let now = Timestamp::now();
        let event = to_event(
            data,
            fired.as_deref(),
            "s",
            &[],
            &Registries::default(),
            now,
        )
        .unwrap();
        assert_eq!(event.time, now);
        assert_eq!(
            event.data,
            json!({"state": null, "attributes": {}, "old_state": "on", "last_changed": null, "last_updated": null})
        );
    }

    #[test]
    fn numbers_are_numbers_and_the_rest_stays_text() {
        for (text, value) in [
            ("21.5", json!(21.5)),
            ("-3", json!(-3)),
            ("1e3", json!(1000.0)),
            ("0", json!(0)),
            ("on", json!("on")),
            ("unavailable", json!("unavailable")),
            ("inf", json!("inf")),
            ("NaN", json!("NaN")),
            ("infinity", json!("infinity")),
            ("1e999", json!("1e999")),
            (" 21", json!(" 21")),
            ("", json!("")),
            ("2025-01-31", json!("2025-01-31")),
        ] {
            assert_eq!(state_value(text), value, "{text:?}");
        }
    }

    #[test]
    fn entity_ids_that_cannot_be_subjects_are_refused() {
        assert_eq!(
            entity_subject("binary_sensor.front_door")
                .unwrap()
                .0
                .as_str(),
            "ha/binary_sensor/front_door"
        );
        for bad in [
            "nodot", ".x", "x.", "a.b.c", "a/b.c", "a.#", "a.+x", "a.b\u{7}", "+.x",
        ] {
            assert!(entity_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_entities_filter_keeps_matches_and_adds_captures() {
        let patterns = [Pattern::parse("ha/sensor/+name").unwrap()];
        let (data, _) = change(FREEZER);
        let event = to_event(
            data,
            None,
            "s",
            &patterns,
            &Registries::default(),
            Timestamp::now(),
        )
        .unwrap();
        assert_eq!(&event.labels["name"], "freezer_temperature");
        let text = r#"{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"light.hall","new_state":{"state":"on"}}}}"#;
        let (data, _) = change(text);
        assert_eq!(
            to_event(
                data,
                None,
                "s",
                &patterns,
                &Registries::default(),
                Timestamp::now()
            ),
            Err(Skip::Filtered)
        );
    }

    proptest! {
        /// Whatever a text frame holds, decoding it and turning what it holds into events
        /// never panics.
        #[test]
        fn any_text_frame_is_handled_without_panic(text in ".{0,400}") {
            if let Ok(messages) = decode(&text) {
                for message in messages {
                    if let Incoming::Event { event, .. } = message
                        && let Ok(change) = serde_json::from_value::<StateChanged>(event.data)
                    {
                        let _ = to_event(change, event.time_fired.as_deref(), "s", &[], &Registries::default(), Timestamp::now());
                    }
                }
            }
        }

        /// Frames shaped like state changes, with any entity id and state.
        #[test]
        fn any_state_change_is_handled_without_panic(entity in ".{0,40}", state in ".{0,40}", time in ".{0,30}") {
            let frame = json!({"id": 1, "type": "event", "event": {"event_type": "state_changed", "time_fired": time,
                "data": {"entity_id": entity, "new_state": {"state": state, "last_updated": time}}}}).to_string();
            let (data, fired) = change(&frame);
            match to_event(data, fired.as_deref(), "s", &[], &Registries::default(), Timestamp::now()) {
                Ok(event) => prop_assert!(event.subject.as_str().starts_with("ha/")),
                Err(skip) => prop_assert!(matches!(skip, Skip::BadEntityId(_))),
            }
        }
    }
}
