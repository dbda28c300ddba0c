//! A checker of Home Assistant MQTT device-based discovery payloads, after Home Assistant's
//! documented schema (home-assistant.io, "MQTT — Discovery": device discovery payload; the
//! `binary_sensor`, `sensor` and `button` MQTT platforms): every key known, every required key present,
//! ids well formed. A payload it accepts is one Home Assistant would take; the abbreviations
//! Home Assistant also accepts are refused here, since atalaya writes full keys.

use std::collections::BTreeSet;

use serde_json::Value;

/// Keys of the device payload itself, beside `dev`, `o` and `cmps` (options shared by every
/// component).
const SHARED_KEYS: &[&str] = &[
    "dev",
    "o",
    "cmps",
    "qos",
    "state_topic",
    "command_topic",
    "availability_topic",
    "availability",
    "availability_mode",
    "payload_available",
    "payload_not_available",
    "encoding",
];
const DEVICE_KEYS: &[&str] = &[
    "ids",
    "name",
    "mf",
    "mdl",
    "mdl_id",
    "sw",
    "hw",
    "sn",
    "sa",
    "cu",
    "cns",
    "via_device",
];
const ORIGIN_KEYS: &[&str] = &["name", "sw", "url"];
/// Keys every entity may have.
const ENTITY_KEYS: &[&str] = &[
    "p",
    "name",
    "unique_id",
    "default_entity_id",
    "device_class",
    "icon",
    "state_topic",
    "json_attributes_topic",
    "json_attributes_template",
    "value_template",
    "availability_topic",
    "enabled_by_default",
    "entity_category",
    "entity_picture",
    "expire_after",
    "force_update",
    "qos",
];
const BINARY_SENSOR_KEYS: &[&str] = &["payload_on", "payload_off", "off_delay"];
const BUTTON_KEYS: &[&str] = &["command_topic", "payload_press", "retain"];
const SENSOR_KEYS: &[&str] = &[
    "state_class",
    "unit_of_measurement",
    "suggested_display_precision",
    "last_reset_value_template",
    "options",
];
/// Home Assistant's binary sensor device classes.
const BINARY_SENSOR_CLASSES: &[&str] = &[
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
];

/// Every problem of a device discovery `payload` published on `topic`; empty when valid.
/// A component reduced to `{"p": …}` is a removal, valid as such.
pub fn problems(topic: &str, payload: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);
    let levels: Vec<&str> = topic.split('/').collect();
    if levels.len() != 4
        || levels[1] != "device"
        || levels[3] != "config"
        || !is_id(levels[2], |c| c == '_' || c == '-')
    {
        problem(format!(
            "topic `{topic}` is not <prefix>/device/<id>/config"
        ));
    }
    let Some(object) = payload.as_object() else {
        return vec!["the payload is not a JSON object".to_owned()];
    };
    unknown(object, SHARED_KEYS, "the device payload", &mut problem);
    match payload.get("dev").and_then(Value::as_object) {
        Some(dev) => {
            unknown(dev, DEVICE_KEYS, "dev", &mut problem);
            let ids = match dev.get("ids") {
                Some(Value::String(id)) => vec![id.as_str()],
                Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if ids.is_empty() {
                problem("dev.ids is missing or empty".to_owned());
            }
        }
        None => problem("dev is missing: device discovery needs the device".to_owned()),
    }
    match payload.get("o").and_then(Value::as_object) {
        Some(o) => {
            unknown(o, ORIGIN_KEYS, "o", &mut problem);
            if !o.get("name").is_some_and(Value::is_string) {
                problem("o.name is required".to_owned());
            }
        }
        None => problem("o (origin) is required in device discovery".to_owned()),
    }
    for key in ["state_topic", "availability_topic"] {
        if let Some(t) = payload.get(key) {
            check_topic(key, t, &mut problem);
        }
    }
    if let Some(qos) = payload.get("qos")
        && qos.as_u64().is_none_or(|q| q > 2)
    {
        problem(format!("qos {qos} is not 0, 1 or 2"));
    }
    let Some(cmps) = payload.get("cmps").and_then(Value::as_object) else {
        problem("cmps is missing".to_owned());
        return problems;
    };
    let mut unique_ids = BTreeSet::new();
    for (id, component) in cmps {
        let at = format!("cmps.{id}");
        if !is_id(id, |c| c == '_' || c == '-') {
            problem(format!("{at}: the component id is not [a-zA-Z0-9_-]+"));
        }
        let Some(c) = component.as_object() else {
            problem(format!("{at} is not an object"));
            continue;
        };
        let Some(platform) = c.get("p").and_then(Value::as_str) else {
            problem(format!("{at}.p (the platform) is required"));
            continue;
        };
        if c.len() == 1 {
            continue; // A removal.
        }
        let extra: &[&str] = match platform {
            "binary_sensor" => BINARY_SENSOR_KEYS,
            "sensor" => SENSOR_KEYS,
            "button" => BUTTON_KEYS,
            other => {
                problem(format!("{at}: platform `{other}` is not checked here"));
                continue;
            }
        };
        let known: Vec<&str> = ENTITY_KEYS.iter().chain(extra).copied().collect();
        unknown(c, &known, &at, &mut problem);
        match c.get("unique_id").and_then(Value::as_str) {
            Some(unique) if !unique_ids.insert(unique.to_owned()) => {
                problem(format!("{at}.unique_id `{unique}` is not unique"));
            }
            Some(_) => {}
            None => problem(format!("{at}.unique_id is required in device discovery")),
        }
        if let Some(entity) = c.get("default_entity_id") {
            let ok =
                entity
                    .as_str()
                    .and_then(|e| e.split_once('.'))
                    .is_some_and(|(domain, object)| {
                        domain == platform
                            && is_id(object, |ch| ch == '_')
                            && object == object.to_lowercase()
                    });
            if !ok {
                problem(format!(
                    "{at}.default_entity_id {entity} is not `{platform}.<lowercase id>`"
                ));
            }
        }
        // A button is written to, every other platform here is read from.
        let required = if platform == "button" {
            "command_topic"
        } else {
            "state_topic"
        };
        match c.get(required).or_else(|| payload.get(required)) {
            Some(t) => check_topic(&format!("{at}.{required}"), t, &mut problem),
            None => problem(format!("{at}.{required} is required")),
        }
        if let Some(t) = c.get("json_attributes_topic") {
            check_topic(&format!("{at}.json_attributes_topic"), t, &mut problem);
        }
        if let Some(class) = c.get("device_class") {
            let ok = match platform {
                "binary_sensor" => class
                    .as_str()
                    .is_some_and(|c| BINARY_SENSOR_CLASSES.contains(&c)),
                _ => class.is_string(),
            };
            if !ok {
                problem(format!(
                    "{at}.device_class {class} is not one of {platform}'s"
                ));
            }
        }
        if let Some(class) = c.get("state_class")
            && !matches!(
                class.as_str(),
                Some("measurement" | "measurement_angle" | "total" | "total_increasing")
            )
        {
            problem(format!("{at}.state_class {class} is not a state class"));
        }
    }
    problems
}

fn unknown(
    object: &serde_json::Map<String, Value>,
    known: &[&str],
    at: &str,
    problem: &mut impl FnMut(String),
) {
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            problem(format!("{at}: unknown key `{key}`"));
        }
    }
}

fn check_topic(at: &str, topic: &Value, problem: &mut impl FnMut(String)) {
    match topic.as_str() {
        Some(t) if !t.is_empty() && !t.contains(['+', '#']) => {}
        _ => problem(format!("{at} {topic} is not a topic to publish to")),
    }
}

fn is_id(s: &str, also: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || also(c))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_documented_example_shape_passes_and_mistakes_are_found() {
        let good = json!({
            "dev": {"ids": "ea334450945afc", "name": "Kitchen", "mf": "Bla", "mdl": "xya"},
            "o": {"name": "bla2mqtt", "sw": "2.1"},
            "cmps": {
                "leak": {"p": "binary_sensor", "unique_id": "k_leak",
                         "default_entity_id": "binary_sensor.k_leak", "device_class": "moisture"},
                "old": {"p": "sensor"},
            },
            "state_topic": "kitchen/state",
            "qos": 1,
        });
        assert_eq!(
            problems("homeassistant/device/kitchen/config", &good),
            Vec::<String>::new()
        );
        let bad = json!({
            "dev": {"name": "Kitchen"},
            "cmps": {
                "a": {"p": "binary_sensor", "unique_id": "x", "object_id": "x",
                      "default_entity_id": "sensor.X", "device_class": "freezer"},
                "b": {"p": "sensor", "unique_id": "x", "state_topic": "a/#"},
            },
        });
        let found = problems("homeassistant/binary_sensor/kitchen/config", &bad);
        for expected in [
            "topic",
            "dev.ids",
            "o (origin)",
            "unknown key `object_id`",
            "default_entity_id",
            "device_class",
            "not unique",
            "cmps.a.state_topic is required",
            "cmps.b.state_topic",
        ] {
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{expected} not in {found:#?}"
            );
        }
    }
}
