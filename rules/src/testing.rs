//! Rule unit tests (`atalaya test`), like `promtool test rules`: a timeline of input events
//! and the alerts expected at given times, run on virtual time.
//!
//! ```yaml
//! rule_files: [nodes.yaml]          # relative to the test file
//! tests:
//!   - name: a silent node is lost after 40 seconds
//!     events:
//!       - subject: k8s/node/pi-1/heartbeat
//!         every: 10s
//!         values: "1x5"             # 1 1 1 1 1 1: six events, 10 s apart
//!     expect:
//!       - at: 1m30s
//!         alerts:
//!           - rule: node_lost
//!             state: firing
//!             labels: {node: pi-1}
//! ```
//!
//! `alerts` is the exact set of alerts pending or firing at `at` (labels and annotations
//! listed must match; others may exist). `fired` and `resolved` list the alerts that fired or
//! resolved since the previous expectation — for one-shot alerts, which resolve at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use atalaya_bus::{Event, Labels, Subject};
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::files::is_test_file;

use crate::alert::{Alert, AlertState, Output};
use crate::compile::{RuleError, compile_files};
use crate::engine::Engine;
use crate::files;
use crate::metrics::EngineMetrics;
use crate::notation::{Step, expand};
use crate::yaml::{from_node, parse_documents};

/// Where virtual time starts unless a test file says otherwise: a Monday.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";

/// A rule test file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFileSpec {
    /// Rule files (or directories) under test, relative to this file.
    pub rule_files: Vec<String>,
    /// The instant virtual time starts at (RFC 3339). Default: 2026-01-05T00:00:00Z, a Monday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    pub tests: Vec<TestCaseSpec>,
}

/// One test: input events and expectations.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCaseSpec {
    pub name: String,
    #[serde(default)]
    pub events: Vec<EventSeriesSpec>,
    pub expect: Vec<ExpectSpec>,
}

/// Input events: one (`data`), or a series (`values`, one event per step, `every` apart).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSeriesSpec {
    pub subject: String,
    /// Offset of the first event from the start (`0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Interval between the steps of `values` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Compact notation: `1 2 3`, `150x10` (11 × 150), `1+1x4` (1 2 3 4 5), `_` (no event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// The data of a single event (instead of `values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

/// What must be true at `at`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Offset from the start (`15m`).
    pub at: String,
    /// Exactly the alerts pending or firing at `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<ExpectedAlert>>,
    /// Exactly the alerts that fired since the previous expectation (up to and including `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<Vec<ExpectedAlert>>,
    /// Exactly the alerts that resolved since the previous expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Vec<ExpectedAlert>>,
}

/// An expected alert; labels and annotations listed must match, others may exist.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    pub rule: String,
    /// `pending` or `firing` (for `alerts`); ignored for `fired` and `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AlertState>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The JSON Schema of rule test files.
pub fn test_file_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TestFileSpec)).unwrap_or_default()
}

/// The outcome of one test case.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
}

/// Runs every test in the file at `path`. `Err` when the file or its rules cannot be
/// loaded (each message `file:line:col: …`).
pub fn run_test_file(path: &Path) -> Result<Vec<CaseResult>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let docs = parse_documents(&text).map_err(|e| vec![format!("{}:{e}", path.display())])?;
    let doc = docs
        .first()
        .ok_or_else(|| vec![format!("{}: empty test file", path.display())])?;
    let spec: TestFileSpec = from_node(doc).map_err(|e| vec![format!("{}:{e}", path.display())])?;
    let base = path.parent().unwrap_or(Path::new("."));
    let start: Timestamp = spec
        .start
        .as_deref()
        .unwrap_or(DEFAULT_START)
        .parse()
        .map_err(|e| vec![format!("{}: start: {e}", path.display())])?;

    let mut rule_files = Vec::new();
    let mut errors = Vec::new();
    for name in &spec.rule_files {
        let target = base.join(name);
        let loaded = if target.is_dir() {
            files::load_dir(&target).map(|set| set.files)
        } else {
            files::load(&target).map(|f| vec![f]).map_err(|e| vec![e])
        };
        match loaded {
            Ok(mut f) => rule_files.append(&mut f),
            Err(es) => errors.extend(es.into_iter().map(|e| e.to_string())),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let rules = compile_files(&rule_files)
        .map_err(|es| es.iter().map(RuleError::to_string).collect::<Vec<_>>())?;
    // Each case gets a fresh engine over the same compiled rules.
    let rules = std::sync::Arc::new(rules.rules);

    let mut results = Vec::new();
    for case in &spec.tests {
        let engine = Engine::new(
            crate::compile::RuleSet::new(rules.iter().cloned().collect()),
            EngineMetrics::unregistered().map_err(|e| vec![e.to_string()])?,
        );
        results.push(run_case(engine, case, start));
    }
    Ok(results)
}

fn offset(
    text: Option<&str>,
    default: SignedDuration,
    what: &str,
) -> Result<SignedDuration, String> {
    match text {
        None => Ok(default),
        Some(t) => crate::model::parse_duration(t).ok_or_else(|| {
            format!("{what}: `{t}` is not a duration such as `90s`, `5m` or `5d9h`")
        }),
    }
}

fn run_case(mut engine: Engine, case: &TestCaseSpec, start: Timestamp) -> CaseResult {
    let mut failures = Vec::new();
    let mut events: Vec<(Timestamp, usize, Event)> = Vec::new();
    for (n, series) in case.events.iter().enumerate() {
        if let Err(e) = expand_series(series, start, n, &mut events) {
            failures.push(format!("events[{n}]: {e}"));
        }
    }
    events.sort_by_key(|(time, n, _)| (*time, *n));
    let mut expectations = Vec::new();
    for (n, expect) in case.expect.iter().enumerate() {
        match offset(Some(&expect.at), SignedDuration::ZERO, "at") {
            Ok(at) => expectations.push((start + at, expect)),
            Err(e) => failures.push(format!("expect[{n}]: {e}")),
        }
    }
    expectations.sort_by_key(|(t, _)| *t);
    if !failures.is_empty() {
        return CaseResult {
            name: case.name.clone(),
            failures,
        };
    }

    let mut log: Vec<Alert> = Vec::new();
    let record = |outputs: Vec<Output>, log: &mut Vec<Alert>| {
        log.extend(outputs.into_iter().filter_map(|o| match o {
            Output::Alert(a) if a.state != AlertState::Pending => Some(a),
            _ => None,
        }));
    };
    let mut next_event = events.into_iter().peekable();
    for (at, expect) in expectations {
        while let Some((t, _, _)) = next_event.peek() {
            if *t > at {
                break;
            }
            let Some((t, _, event)) = next_event.next() else {
                break;
            };
            let out = engine.on_event(t, &event);
            record(out, &mut log);
        }
        let out = engine.on_tick(at);
        record(out, &mut log);
        let offset = at.duration_since(start);
        let when = format!("at {}", friendly(offset));
        if let Some(expected) = &expect.alerts {
            compare(
                &when,
                "alerts",
                expected,
                &engine.alerts(at),
                true,
                &mut failures,
            );
        }
        let (fired, resolved): (Vec<Alert>, Vec<Alert>) =
            log.drain(..).partition(|a| a.state == AlertState::Firing);
        if let Some(expected) = &expect.fired {
            compare(&when, "fired", expected, &fired, false, &mut failures);
        }
        if let Some(expected) = &expect.resolved {
            compare(&when, "resolved", expected, &resolved, false, &mut failures);
        }
    }
    CaseResult {
        name: case.name.clone(),
        failures,
    }
}

fn expand_series(
    spec: &EventSeriesSpec,
    start: Timestamp,
    n: usize,
    events: &mut Vec<(Timestamp, usize, Event)>,
) -> Result<(), String> {
    let subject = Subject::parse(&spec.subject).map_err(|e| format!("subject: {e}"))?;
    let first = start + offset(spec.at.as_deref(), SignedDuration::ZERO, "at")?;
    let every = offset(spec.every.as_deref(), SignedDuration::from_mins(1), "every")?;
    let data: Vec<Option<serde_json::Value>> = match (&spec.values, &spec.data) {
        (Some(_), Some(_)) => return Err("give `values` or `data`, not both".to_owned()),
        (Some(values), None) => expand(values)
            .map_err(|e| format!("values: {e}"))?
            .into_iter()
            .map(|step| match step {
                // Whole numbers as integers, as a sensor would send them.
                Step::Value(v) if v.fract() == 0.0 && v.abs() < 9e15 => {
                    Some(serde_json::json!(v as i64))
                }
                Step::Value(v) => Some(serde_json::json!(v)),
                Step::Skip => None,
            })
            .collect(),
        (None, Some(data)) => vec![Some(data.clone())],
        (None, None) => vec![Some(serde_json::Value::Null)],
    };
    let labels: Labels = spec.labels.clone().into_iter().collect();
    for (i, data) in data.into_iter().enumerate() {
        let Some(data) = data else { continue };
        let step = i32::try_from(i).map_err(|_| "too many steps".to_owned())?;
        let time = first + every * step;
        let mut event = Event::new(
            spec.source.as_deref().unwrap_or("/atalaya/test"),
            subject.clone(),
            data,
            time,
        );
        event.labels = labels.clone();
        if let Some(t) = &spec.event_type {
            event.event_type = t.clone();
        }
        events.push((time, n, event));
    }
    Ok(())
}

fn matches(expected: &ExpectedAlert, got: &Alert, check_state: bool) -> bool {
    expected.rule == got.rule
        && (!check_state || expected.state.is_none_or(|s| s == got.state))
        && expected
            .labels
            .iter()
            .all(|(k, v)| got.labels.get(k) == Some(v))
        && expected
            .annotations
            .iter()
            .all(|(k, v)| got.annotations.get(k) == Some(v))
}

fn compare(
    when: &str,
    what: &str,
    expected: &[ExpectedAlert],
    got: &[Alert],
    check_state: bool,
    failures: &mut Vec<String>,
) {
    let mut unmatched: Vec<&Alert> = got.iter().collect();
    let mut missing = Vec::new();
    for e in expected {
        match unmatched.iter().position(|g| matches(e, g, check_state)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(e),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return;
    }
    let mut message = format!("{when}, {what}:\n    expected:");
    if expected.is_empty() {
        message.push_str(" none");
    }
    for e in expected {
        let _ = write!(
            message,
            "\n      - rule={} state={} labels={:?} annotations={:?}",
            e.rule,
            e.state.map_or("any", AlertState::as_str),
            e.labels,
            e.annotations
        );
    }
    message.push_str("\n    got:");
    if got.is_empty() {
        message.push_str(" none");
    }
    for g in got {
        let _ = write!(
            message,
            "\n      - rule={} state={} labels={:?} annotations={:?}",
            g.rule,
            g.state.as_str(),
            g.labels,
            g.annotations
        );
    }
    failures.push(message);
}

fn friendly(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// Finds test files (`*.test.yaml` / `*_test.yaml`) under `dir`.
pub fn discover_tests(dir: &Path) -> Vec<PathBuf> {
    files::discover(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| is_test_file(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After changing the test file format:
    /// `cargo run -- schema tests > schema/rule-tests.schema.json`.
    #[test]
    fn the_committed_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schema/rule-tests.schema.json"
        );
        let committed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(
            committed == test_file_schema(),
            "schema/rule-tests.schema.json is stale: run `cargo run -- schema tests > schema/rule-tests.schema.json`"
        );
    }

    #[test]
    fn test_files_are_told_apart_from_rule_files() {
        assert!(is_test_file(Path::new("rules/nodes.test.yaml")));
        assert!(is_test_file(Path::new("nodes_test.yml")));
        assert!(!is_test_file(Path::new("nodes.yaml")));
        assert!(!is_test_file(Path::new("latest.yaml")));
    }
}
