//! Conversion between JSON and CEL values: event payloads and labels into the interpreter's
//! values, and results back into JSON, every JSON number being a CEL `double` (see the
//! module docs of [`crate::expr`]).

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use cel::common::types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;

pub(super) fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_value).collect()))
        }
        serde_json::Value::Object(fields) => Value::Map(cel::objects::Map {
            map: Arc::new(
                fields
                    .iter()
                    .map(|(k, v)| (cel::objects::Key::from(k.as_str()), json_to_value(v)))
                    .collect(),
            ),
        }),
    }
}

/// JSON straight to the interpreter's values, skipping [`Value`]: the per-event hot path.
pub(super) fn json_to_val(v: &serde_json::Value) -> Box<dyn Val> {
    match v {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Box::new(CelString::from(s.clone())),
        serde_json::Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        serde_json::Value::Object(fields) => Box::new(CelMap::from(
            fields
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), json_to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

pub(super) fn labels_to_val(labels: &atalaya_bus::Labels) -> Box<dyn Val> {
    Box::new(CelMap::from(
        labels
            .iter()
            .map(|(k, v)| {
                let v: Box<dyn Val> = Box::new(CelString::from(v.to_owned()));
                (CelMapKey::from(k.to_owned()), v)
            })
            .collect::<HashMap<_, _>>(),
    ))
}

/// 2^53: every whole double up to it is an exact integer.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

pub(super) fn value_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        // Every JSON number became a double: give a whole one back as the integer it was.
        Value::Float(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT_INTEGER => (*f as i64).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => s.as_str().into(),
        Value::List(items) => items.iter().map(value_to_json).collect(),
        Value::Map(map) => serde_json::Value::Object(
            map.map
                .iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
        // Bytes become base64; what has no JSON form (a function, say) becomes null.
        other => other.json().unwrap_or(serde_json::Value::Null),
    }
}
