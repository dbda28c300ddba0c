//! Decoding message payloads (MQTT, NATS) into event data, one policy for every broker:
//!
//! - JSON (objects, arrays, numbers, strings, `true`/`false`/`null`) is taken as it is;
//! - `ON`/`OFF` (any case, as Tasmota and Shelly send them) become `true`/`false`;
//! - an empty payload is `null`;
//! - other UTF-8 text becomes a JSON string (`online`, `idle`);
//! - anything else — larger than the limit, not UTF-8, or holding control characters — is
//!   refused with a [`PayloadError`], which the source counts, logs without flooding, and
//!   skips.

#[cfg(any(feature = "mqtt", feature = "nats"))]
use atalaya_bus::Labels;
#[cfg(any(feature = "mqtt", feature = "nats"))]
use atalaya_bus::event::{MAX_LABEL_VALUE_BYTES, MAX_LABELS, is_valid_label_name};
use serde_json::Value;

/// Why a payload is not event data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload of {len} bytes is larger than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("payload is not UTF-8 text (binary payloads are not supported)")]
    NotText,
    #[error("payload text holds control characters")]
    ControlCharacters,
}

impl PayloadError {
    /// The `stage` label for connector error metrics.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "size",
            Self::NotText | Self::ControlCharacters => "decode",
        }
    }
}

/// Decodes `payload` by the policy above.
pub fn decode_payload(payload: &[u8], max_bytes: usize) -> Result<Value, PayloadError> {
    if payload.len() > max_bytes {
        return Err(PayloadError::TooLarge {
            len: payload.len(),
            max: max_bytes,
        });
    }
    let text = std::str::from_utf8(payload).map_err(|_| PayloadError::NotText)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Value::Null);
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return Ok(value);
    }
    if trimmed.eq_ignore_ascii_case("on") {
        return Ok(Value::Bool(true));
    }
    if trimmed.eq_ignore_ascii_case("off") {
        return Ok(Value::Bool(false));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !c.is_whitespace())
    {
        return Err(PayloadError::ControlCharacters);
    }
    Ok(Value::String(trimmed.to_owned()))
}

/// Labels from a message's metadata (NATS headers, MQTT 5 user properties): each name
/// becomes `<prefix>` then the name in lower case, every character other than an ASCII letter
/// or digit written as `_` (header `X-Device` → `header_x_device`). Added in name order while
/// the label rules allow: an entry whose label would be invalid, whose value is too long, or
/// beyond [`MAX_LABELS`] is left out; a label already there (a capture) wins, and so does
/// the first of two entries of the same name.
#[cfg(any(feature = "mqtt", feature = "nats"))]
pub(crate) fn metadata_labels<'a>(
    prefix: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    labels: &mut Labels,
) {
    let mut entries: Vec<(String, usize, &str)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (name, value))| (metadata_label_name(prefix, name), i, value))
        .collect();
    entries.sort_unstable();
    for (name, _, value) in entries {
        if labels.len() >= MAX_LABELS {
            break;
        }
        if !is_valid_label_name(&name)
            || value.len() > MAX_LABEL_VALUE_BYTES
            || labels.contains_key(&name)
        {
            continue;
        }
        labels.insert(name, value.to_owned());
    }
}

/// `<prefix>` then `name` in lower case, every character other than an ASCII letter or digit
/// written as `_`.
#[cfg(any(feature = "mqtt", feature = "nats"))]
pub(crate) fn metadata_label_name(prefix: &str, name: &str) -> String {
    let mut label = String::with_capacity(prefix.len() + name.len());
    label.push_str(prefix);
    label.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    label
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_policy() {
        let d = |p: &[u8]| decode_payload(p, 1024);
        assert_eq!(
            d(br#"{"temperature": 21.5}"#),
            Ok(json!({"temperature": 21.5}))
        );
        assert_eq!(d(b"[1, 2]"), Ok(json!([1, 2])));
        assert_eq!(d(b" 21.5\n"), Ok(json!(21.5)));
        assert_eq!(d(b"-3"), Ok(json!(-3)));
        assert_eq!(d(b"true"), Ok(json!(true)));
        assert_eq!(d(b"ON"), Ok(json!(true)));
        assert_eq!(d(b"off"), Ok(json!(false)));
        assert_eq!(d(b""), Ok(Value::Null));
        assert_eq!(d(b"online"), Ok(json!("online")));
        assert_eq!(d(b"\"quoted\""), Ok(json!("quoted")));
        assert_eq!(d(&[0xff, 0xfe]), Err(PayloadError::NotText));
        assert_eq!(d(b"a\x00b"), Err(PayloadError::ControlCharacters));
        assert_eq!(
            decode_payload(&[b'1'; 2000], 1024),
            Err(PayloadError::TooLarge {
                len: 2000,
                max: 1024
            })
        );
    }

    /// Payloads as devices and attackers send them: random bytes, JSON-shaped text, deep
    /// nesting far past serde_json's recursion limit, huge numbers, switch words, controls.
    /// Shared by the MQTT and NATS message targets.
    pub(crate) fn payloads() -> impl Strategy<Value = Vec<u8>> {
        let json_leaf = prop_oneof![
            Just("null".to_owned()),
            Just("1e999".to_owned()),
            Just("-0".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            any::<f64>().prop_map(|f| f.to_string()),
            "\\PC{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        let json = json_leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z_]{1,8}", inner), 0..8).prop_map(|v| {
                    let fields: Vec<String> =
                        v.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        });
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            json.prop_map(String::into_bytes),
            (1usize..5000)
                .prop_map(|depth| ["[".repeat(depth), "]".repeat(depth)].concat().into_bytes()),
            (1usize..5000).prop_map(|depth| "{\"a\":".repeat(depth).into_bytes()),
            prop_oneof![
                Just("ON"),
                Just("oFf"),
                Just(" online \n"),
                Just("a\u{7}b"),
                Just("\u{feff}1")
            ]
            .prop_map(|s| s.as_bytes().to_vec()),
            "\\PC{0,200}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_the_limit(payload in payloads()) {
            match decode_payload(&payload, 4096) {
                Err(PayloadError::TooLarge { .. }) => prop_assert!(payload.len() > 4096),
                Err(_) => prop_assert!(std::str::from_utf8(&payload).map_or(true, |t| t.chars().any(char::is_control))),
                Ok(_) => prop_assert!(payload.len() <= 4096),
            }
        }
    }
}
