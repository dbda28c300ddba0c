//! Rule files as written: the serde shape of the YAML, from which the JSON Schema for editors
//! is generated. [`crate::compile`] turns these into checked, compiled rules.
//!
//! A rule file holds `rules:`, a list of rules:
//!
//! ```yaml
//! rules:
//!   - name: pi_cpu_hot
//!     subject: k8s/node/+node/cpu_temperature
//!     condition: value > 80
//!     for: 2m
//!     severity: warning
//!     annotations:
//!       summary: "{{ labels.node }} is at {{ value }} °C"
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::active::ActiveSpec;

/// One rule file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFileSpec {
    /// The rules of this file. Names are unique across all files.
    pub rules: Vec<RuleSpec>,
}

/// One rule: which events it looks at, when it alerts, and what the alert says.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name; becomes the `alertname` label. Letters, digits, `_` and `-`.
    pub name: String,
    /// What the rule is for, for people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Subject pattern: `/`-separated tokens; `+` one token, `+name` one token captured into
    /// label `name`, `#` (last) the rest, `>` (last) one or more tokens.
    pub subject: String,
    /// Only events with exactly this `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Only events with exactly this `type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// CEL expression computing the rule's `value` from the event (`data.celsius`).
    /// Default: the event's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// CEL condition over `value`, `data`, `labels`, `subject`, `time`: the alert is active
    /// while it is true. With `window:`, `value` is the window's aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Hysteresis: once active, the alert stays active until this CEL condition is true
    /// (fire above 90, clear below 85).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_condition: Option<String>,
    /// Transition: `condition` only counts after this CEL condition has been true for the
    /// series (power above 100 W, then below 5 W: the washing machine is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// How long the condition must hold before the alert fires (`2m`); pending until then.
    #[serde(
        default,
        rename = "for",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text::optional"
    )]
    pub for_: Option<String>,
    /// How long the alert keeps firing after the condition stops holding.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text::optional"
    )]
    pub keep_firing_for: Option<String>,
    /// Absence: fire when a series has sent nothing for this long; resolve when it speaks.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text::optional"
    )]
    pub absent_for: Option<String>,
    /// Aggregate the series over a sliding window; `condition` then tests the aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// One-shot: each time the condition becomes true, fire once; the alert resolves by
    /// itself after `keep_firing_for` (default: at once). A water leak, a door at night.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_shot: bool,
    /// Only evaluate during these days and hours; outside them the condition counts as false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveSpec>,
    /// The labels that identify a series (one alert per series). Default: the labels the
    /// subject pattern captures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// `critical`, `warning` (default) or `info`; a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Extra alert labels; values are templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Alert annotations (`summary`, `description`, `runbook_url`, …); values are templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Messages to publish when the alert fires or resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionSpec>,
    /// Most series this rule tracks at once (default 10000); further series are ignored,
    /// counted and logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_series: Option<usize>,
}

/// A sliding window over a series' values.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Window length (`10m`).
    #[serde(deserialize_with = "duration_text::required")]
    pub duration: String,
    /// What to compute over the events in the window.
    pub aggregate: Aggregate,
    /// CEL condition choosing which events enter the window. Default: all.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A window aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Number of events in the window.
    Count,
    /// Per-second increase of a counter value over the window (last − first) / seconds.
    Rate,
    /// Mean of the values.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum of the values.
    Sum,
}

/// When an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionTrigger {
    Firing,
    Resolved,
}

/// Publish a message when the alert fires or resolves.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// `firing` or `resolved`: when to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ActionTrigger>,
    /// The older name of `when`, still read. YAML 1.1 tools (yamllint, PyYAML, many editor
    /// plugins) read the key `on` as the boolean `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<ActionTrigger>,
    /// Subject to publish to (MQTT topic / NATS subject, `/`-separated); a template.
    pub publish: String,
    /// The payload; a template. Default: the alert as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// MQTT: publish retained, so the topic holds the alert's latest state (Home Assistant
    /// shows it). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
}

/// The JSON Schema of rule files, for editors (`# yaml-language-server: $schema=…`).
pub fn rule_file_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RuleFileSpec)).unwrap_or_default()
}

/// A rule file's duration, in the grammar of every file atalaya reads
/// ([`atalaya_bus::duration::parse_any_duration`]): Prometheus's with days and weeks (`5d9h`,
/// `1w`; a day is 24 hours) or jiff's friendly form (`90s`, `1h30m`, `2 hours`). `None` when
/// it is neither. A negative one (`-5m`) is returned, for the checker to say it must not be.
pub fn parse_duration(text: &str) -> Option<jiff::SignedDuration> {
    match atalaya_bus::duration::parse_any_duration(text) {
        Ok(d) => jiff::SignedDuration::try_from(d).ok(),
        Err(_) => text
            .parse::<jiff::SignedDuration>()
            .ok()
            .filter(|d| d.is_negative()),
    }
}

/// Durations as written: text, or a bare number kept as its text, so that the checker can
/// say at the key what is wrong with `for: 10` (no unit) instead of "expected a string".
/// Rule tests read `values: 5` (one event) the same way.
pub(crate) mod duration_text {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, Visitor};

    struct Text;

    impl Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as `10s`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(Text)
    }

    pub fn optional<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        deserializer.deserialize_any(Text).map(Some)
    }
}

#[cfg(test)]
mod tests {
    /// The committed schema is what the types generate. After changing a rule field:
    /// `cargo run -- schema rules > schema/rules.schema.json`.
    #[test]
    fn the_committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/rules.schema.json");
        let committed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(
            committed == super::rule_file_schema(),
            "schema/rules.schema.json is stale: run `cargo run -- schema rules > schema/rules.schema.json`"
        );
    }
}
