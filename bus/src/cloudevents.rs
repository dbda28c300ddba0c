//! Decoding CloudEvents structured JSON: one event (an object) or a batch (an array).
//!
//! Required: `subject`. Defaulted when absent: `id` (a fresh UUIDv7), `source`, `type`,
//! `time` (when received), `data` (`null`). `specversion`, when given, must be `1.0`.
//! Labels come from a `labels` object and from CloudEvents extension attributes (lowercase
//! letters and digits, scalar values). Errors name what is wrong and where: a JSON error
//! gives line and column, an attribute error gives its JSON pointer (`/2/subject`).

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::event::{Event, EventId, Labels, Name, validate_labels};
use crate::subject::Subject;

/// What the receiving connector fills in when the producer leaves an attribute out.
#[derive(Debug, Clone, Copy)]
pub struct EventDefaults<'a> {
    pub source: &'a str,
    pub event_type: &'a str,
    pub now: Timestamp,
}

/// Why a body is not one event or a batch of events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {message}")]
    Json {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("expected a JSON object (one event) or an array (a batch), found {found}")]
    NotAnEvent { found: &'static str },
    #[error("{pointer}: {problem}")]
    Attribute { pointer: String, problem: String },
}

impl DecodeError {
    /// Line and column of a JSON syntax error, when that is what this is.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Json { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// Parses `body` as JSON, keeping line and column of any syntax error.
pub fn parse_json(body: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(body).map_err(|e| DecodeError::Json {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

/// Decodes one structured event or a batch. A batch is all or nothing: one bad event
/// rejects the whole body.
pub fn decode_structured(
    body: &[u8],
    defaults: EventDefaults<'_>,
) -> Result<Vec<Event>, DecodeError> {
    match parse_json(body)? {
        Value::Object(map) => Ok(vec![decode_object(map, "", defaults)?]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(map) => decode_object(map, &format!("/{index}"), defaults),
                other => Err(attribute(
                    format!("/{index}"),
                    format!("expected an event object, found {}", kind(&other)),
                )),
            })
            .collect(),
        other => Err(DecodeError::NotAnEvent {
            found: kind(&other),
        }),
    }
}

/// Decodes one structured event object; `pointer` prefixes attribute names in errors.
pub fn decode_object(
    mut map: Map<String, Value>,
    pointer: &str,
    defaults: EventDefaults<'_>,
) -> Result<Event, DecodeError> {
    let at = |name: &str| format!("{pointer}/{name}");
    if let Some(version) = map.remove("specversion")
        && version.as_str() != Some("1.0")
    {
        return Err(attribute(
            at("specversion"),
            format!("unsupported version {version}; atalaya reads CloudEvents 1.0"),
        ));
    }
    if map.contains_key("data_base64") {
        return Err(attribute(
            at("data_base64"),
            "binary data is not supported; send JSON in `data`".to_owned(),
        ));
    }
    let subject = match map.remove("subject") {
        Some(Value::String(s)) => {
            Subject::parse(&s).map_err(|e| attribute(at("subject"), e.to_string()))?
        }
        Some(other) => {
            return Err(attribute(
                at("subject"),
                format!("expected a string, found {}", kind(&other)),
            ));
        }
        None => {
            return Err(attribute(
                at("subject"),
                "missing; every event needs a subject such as `home/kitchen/temperature`"
                    .to_owned(),
            ));
        }
    };
    let id =
        take_string(&mut map, "id", &at)?.map_or_else(|| EventId::at(defaults.now), EventId::from);
    let source =
        take_string(&mut map, "source", &at)?.map_or_else(|| defaults.source.into(), Name::from);
    let event_type =
        take_string(&mut map, "type", &at)?.map_or_else(|| defaults.event_type.into(), Name::from);
    let time = match take_string(&mut map, "time", &at)? {
        Some(t) => t
            .parse::<Timestamp>()
            .map_err(|e| attribute(at("time"), format!("`{t}` is not an RFC 3339 time ({e})")))?,
        None => defaults.now,
    };
    // Accepted and not needed: the payload is JSON either way.
    take_string(&mut map, "datacontenttype", &at)?;
    take_string(&mut map, "dataschema", &at)?;
    let data = map.remove("data").unwrap_or(Value::Null);

    let mut labels = Labels::new();
    let explicit = map.remove("labels");
    for (name, value) in map {
        if !is_extension_name(&name) {
            return Err(attribute(at(&name), "unknown attribute; extension attributes are 1 to 20 lowercase letters or digits, and labels go under `labels`".to_owned()));
        }
        labels.insert(
            name.clone(),
            scalar_label(value).ok_or_else(|| {
                attribute(
                    at(&name),
                    "an extension attribute must be a string, number or boolean".to_owned(),
                )
            })?,
        );
    }
    match explicit {
        None | Some(Value::Null) => {}
        Some(Value::Object(explicit)) => {
            for (name, value) in explicit {
                let text = scalar_label(value).ok_or_else(|| {
                    attribute(
                        format!("{pointer}/labels/{name}"),
                        "a label value must be a string, number or boolean".to_owned(),
                    )
                })?;
                labels.insert(name, text);
            }
        }
        Some(other) => {
            return Err(attribute(
                at("labels"),
                format!(
                    "expected an object of string values, found {}",
                    kind(&other)
                ),
            ));
        }
    }
    validate_labels(&labels).map_err(|e| attribute(at("labels"), e.to_string()))?;

    Ok(Event {
        id,
        source,
        event_type,
        subject,
        time,
        data,
        labels,
    })
}

fn take_string(
    map: &mut Map<String, Value>,
    name: &str,
    at: &impl Fn(&str) -> String,
) -> Result<Option<String>, DecodeError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => {
            Err(attribute(at(name), "must not be empty".to_owned()))
        }
        Some(Value::String(s)) if s.len() > 1024 => {
            Err(attribute(at(name), "longer than 1024 bytes".to_owned()))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(attribute(
            at(name),
            format!("expected a string, found {}", kind(&other)),
        )),
    }
}

fn scalar_label(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn attribute(pointer: String, problem: String) -> DecodeError {
    DecodeError::Attribute { pointer, problem }
}

/// The JSON kind of `value`, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> EventDefaults<'static> {
        EventDefaults {
            source: "/test",
            event_type: "test.event",
            now: "2026-11-22T10:00:00Z".parse().unwrap(),
        }
    }

    fn decode(body: &str) -> Result<Vec<Event>, DecodeError> {
        decode_structured(body.as_bytes(), defaults())
    }

    #[test]
    fn full_cloudevent() {
        let events = decode(
            r#"{"specversion":"1.0","id":"e1","source":"/esp32","type":"sensor.reading",
            "subject":"home/kitchen/temp","time":"2026-11-22T09:00:00+01:00","data":{"t":21.5},
            "room":"kitchen","labels":{"floor":1}}"#,
        )
        .unwrap();
        let e = &events[0];
        assert_eq!(
            (
                e.id.to_string().as_str(),
                e.source.as_str(),
                e.event_type.as_str()
            ),
            ("e1", "/esp32", "sensor.reading")
        );
        assert_eq!(e.subject.as_str(), "home/kitchen/temp");
        assert_eq!(e.time, "2026-11-22T08:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(e.data["t"], 21.5);
        assert_eq!(&e.labels["room"], "kitchen");
        assert_eq!(&e.labels["floor"], "1");
    }

    #[test]
    fn minimal_event_gets_defaults() {
        let e = &decode(r#"{"subject":"a/b"}"#).unwrap()[0];
        assert_eq!(e.source, "/test");
        assert_eq!(e.event_type, "test.event");
        assert_eq!(e.time, defaults().now);
        assert_eq!(e.data, Value::Null);
        assert!(matches!(e.id, crate::event::EventId::Generated(_)));
        assert_eq!(e.id.to_string().len(), 36);
    }

    #[test]
    fn batch_is_all_or_nothing() {
        assert_eq!(
            decode(r#"[{"subject":"a"},{"subject":"b"}]"#)
                .unwrap()
                .len(),
            2
        );
        let err = decode(r#"[{"subject":"a"},{"data":1}]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/1/subject: missing; every event needs a subject such as `home/kitchen/temperature`"
        );
        assert_eq!(decode("[]").unwrap().len(), 0);
    }

    #[test]
    fn json_errors_name_line_and_column() {
        let err = decode("{\n  \"subject\": \"a\",\n  oops\n}").unwrap_err();
        assert_eq!(err.position(), Some((3, 3)));
        assert!(
            err.to_string()
                .starts_with("invalid JSON: key must be a string"),
            "{err}"
        );
    }

    #[test]
    fn attribute_errors_name_the_attribute() {
        let cases = [
            (
                r#"{"subject":5}"#,
                "/subject: expected a string, found a number",
            ),
            (
                r#"{"subject":"a/+/b"}"#,
                "/subject: subject token `+` is a wildcard",
            ),
            (
                r#"{"subject":"a","specversion":"0.3"}"#,
                "/specversion: unsupported version",
            ),
            (
                r#"{"subject":"a","time":"yesterday"}"#,
                "/time: `yesterday` is not an RFC 3339 time",
            ),
            (
                r#"{"subject":"a","Bad_Name":"x"}"#,
                "/Bad_Name: unknown attribute",
            ),
            (
                r#"{"subject":"a","labels":{"x":[1]}}"#,
                "/labels/x: a label value must be",
            ),
            (
                r#"{"subject":"a","labels":{"a-b":"1"}}"#,
                "/labels: label name `a-b` is invalid",
            ),
            (
                r#"{"subject":"a","data_base64":"AA=="}"#,
                "/data_base64: binary data is not supported",
            ),
            (
                r#""hello""#,
                "expected a JSON object (one event) or an array (a batch), found a string",
            ),
            (r#"[1]"#, "/0: expected an event object, found a number"),
        ];
        for (body, expected) in cases {
            let err = decode(body).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{body}: got `{err}`, expected `{expected}`"
            );
        }
    }

    proptest::proptest! {
        /// Any body, CloudEvents-shaped or not, decodes or is refused with an error whose
        /// position lies inside the body: never a panic. Run longer with `PROPTEST_CASES`.
        #[test]
        fn any_body_decodes_or_is_refused_in_place(body in body()) {
            match decode_structured(body.as_bytes(), defaults()) {
                Ok(_) => {}
                Err(e) => {
                    if let Some((line, _)) = e.position() {
                        proptest::prop_assert!(line >= 1 && line <= body.matches('\n').count() + 1);
                    }
                }
            }
            let _ = parse_json(body.as_bytes());
        }
    }

    /// Event-shaped JSON with hostile values, and arbitrary text.
    fn body() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            Just(json!(null)),
            Just(json!("")),
            Just(json!("a//b")),
            Just(json!("/x")),
            Just(json!("9999-12-31T23:59:59Z")),
            Just(json!("0001-01-01T00:00:00Z")),
            Just(json!(1e308)),
            Just(json!([[[[]]]])),
            ".{0,40}".prop_map(|s| json!(s)),
            any::<i64>().prop_map(|n| json!(n)),
        ];
        let key = prop_oneof![
            Just("specversion"),
            Just("id"),
            Just("source"),
            Just("type"),
            Just("subject"),
            Just("time"),
            Just("data"),
            Just("labels"),
            Just("data_base64"),
            Just("Bad-Key"),
            Just("ext1"),
        ];
        let event = proptest::collection::btree_map(key, value, 0..8).prop_map(|m| {
            serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        });
        prop_oneof![
            event.clone().prop_map(|e| e.to_string()),
            proptest::collection::vec(event, 0..5).prop_map(|v| json!(v).to_string()),
            "(?s).{0,200}",
        ]
    }
}
