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
//! `events_file:` feeds a recording (JSON lines, as `atalaya replay` reads them) to a case,
//! merged by time with its `events:`.
//!
//! # Layout
//! - this file: the test file's shape, loading it, and running a case.
//! - `inputs`: a case's events — written series (with payloads shaped by `values_field` or
//!   `data_template`) and the `events_file` stream, merged by time.
//! - `compare`: expected against got, and the failure messages.

mod compare;
mod inputs;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::inputs::VALUE_PLACEHOLDER;
pub use crate::files::is_test_file;

use self::compare::{compare, friendly};
use self::inputs::CaseInputs;
use crate::alert::{Alert, AlertState, Output};
use crate::compile::{Rule, RuleError, RuleSet, compile_files};
use crate::engine::Engine;
use crate::files;
use crate::metrics::EngineMetrics;
use crate::model::duration_text;
use crate::yaml::{MAX_NODES, from_node, parse_documents};

/// Where virtual time starts unless a test file says otherwise: a Monday.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";

/// How many of the latest transitions a failure shows.
const TRANSITIONS_SHOWN: usize = 12;

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
    /// Recorded events, one JSON event a line (gzipped or not), relative to this file: read
    /// as a stream and merged by time with `events`. Times are absolute, so set `start` to
    /// the recording's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_file: Option<String>,
    pub expect: Vec<ExpectSpec>,
}

/// Input events: one (`data`), or a series (`values`, one event per step, `every` apart).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSeriesSpec {
    pub subject: String,
    /// Offset of the first event from the start (`0s`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text::optional"
    )]
    pub at: Option<String>,
    /// Interval between the steps of `values` (default `1m`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text::optional"
    )]
    pub every: Option<String>,
    /// Compact notation: `1 2 3`, `150x10` (11 × 150), `1+1x4` (1 2 3 4 5), `_` (no event);
    /// a single number may be written bare (`values: 5`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text::optional"
    )]
    #[schemars(with = "Option<TextOrNumber>")]
    pub values: Option<String>,
    /// Each value of `values` as this field of an object (`temperature` gives
    /// `{"temperature": v}`; a dotted path nests), instead of a bare number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_field: Option<String>,
    /// The data of each event of `values`: this value with every `$value` string replaced
    /// by the step's value (and, with `values_field`, that field set to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_template: Option<serde_json::Value>,
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
    #[serde(deserialize_with = "duration_text::required")]
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

/// `values:` as the schema shows it: the notation, or one number.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only its schema is used")]
enum TextOrNumber {
    Text(String),
    Number(f64),
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

/// A test file read and checked: its rules compiled, every case's inputs and expectations
/// valid. Running it is [`TestFile::run`].
pub struct TestFile {
    rules: Vec<std::sync::Arc<Rule>>,
    cases: Vec<PreparedCase>,
}

struct PreparedCase {
    name: String,
    /// Where virtual time starts: what offsets count from.
    start: Timestamp,
    inputs: CaseInputs,
    /// (instant, expectation), in time order.
    expectations: Vec<(Timestamp, ExpectSpec)>,
}

/// Reads and checks the test file at `path`: `Err` with every problem — the file's, its
/// rules' (`file:line:col: …`) and each case's (`test `name`: events[0]: …`) — when it
/// cannot run as written.
pub fn load_test_file(path: &Path) -> Result<TestFile, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let docs = parse_documents(&text).map_err(|e| {
        let hint = if e
            .message
            .starts_with(&format!("more than {MAX_NODES} values"))
        {
            " (a bound on every YAML file, against alias bombs; events written out one by one \
             reach it at about 10 000: put long recordings in an `events_file:`, read as a \
             stream)"
        } else {
            ""
        };
        vec![format!("{}:{e}{hint}", path.display())]
    })?;
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
        let target = tidy(&base.join(name));
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
    let rules = if errors.is_empty() {
        match compile_files(&rule_files) {
            Ok(set) => set.rules,
            Err(es) => {
                errors.extend(es.iter().map(RuleError::to_string));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let mut cases = Vec::new();
    for case in spec.tests {
        match prepare_case(case, start, base) {
            Ok(prepared) => cases.push(prepared),
            Err((name, es)) => errors.extend(
                es.into_iter()
                    .map(|e| format!("{}: test `{name}`: {e}", path.display())),
            ),
        }
    }
    if errors.is_empty() {
        Ok(TestFile { rules, cases })
    } else {
        Err(errors)
    }
}

impl TestFile {
    /// How many cases it has.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Runs every case, each on a fresh engine over the same compiled rules.
    pub fn run(self) -> Result<Vec<CaseResult>, Vec<String>> {
        let mut results = Vec::new();
        for case in self.cases {
            let engine = Engine::new(
                RuleSet::new(self.rules.clone()),
                EngineMetrics::unregistered().map_err(|e| vec![e.to_string()])?,
            );
            results.push(run_case(engine, case));
        }
        Ok(results)
    }
}

/// Runs every test in the file at `path`. `Err` when the file, its rules or its cases
/// cannot be loaded (see [`load_test_file`]).
pub fn run_test_file(path: &Path) -> Result<Vec<CaseResult>, Vec<String>> {
    load_test_file(path)?.run()
}

fn prepare_case(
    case: TestCaseSpec,
    start: Timestamp,
    base: &Path,
) -> Result<PreparedCase, (String, Vec<String>)> {
    let mut errors = Vec::new();
    let inputs = CaseInputs::prepare(&case, start, base).map_err(|es| errors.extend(es));
    let mut expectations = Vec::new();
    for (n, expect) in case.expect.into_iter().enumerate() {
        match offset(Some(&expect.at), SignedDuration::ZERO, "at") {
            Ok(at) => expectations.push((start + at, expect)),
            Err(e) => errors.push(format!("expect[{n}]: {e}")),
        }
    }
    expectations.sort_by_key(|(t, _)| *t);
    match inputs {
        Ok(inputs) if errors.is_empty() => Ok(PreparedCase {
            name: case.name,
            start,
            inputs,
            expectations,
        }),
        _ => Err((case.name, errors)),
    }
}

/// `path` without its `.` components (`./rules/./home.yaml` is `rules/home.yaml`).
fn tidy(path: &Path) -> PathBuf {
    let tidy: PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if tidy.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        tidy
    }
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

fn run_case(mut engine: Engine, case: PreparedCase) -> CaseResult {
    let PreparedCase {
        name,
        start,
        inputs,
        expectations,
    } = case;
    let mut events = match inputs.into_stream() {
        Ok(events) => events,
        Err(e) => {
            return CaseResult {
                name,
                failures: vec![e],
            };
        }
    };
    let mut failures = Vec::new();
    let mut log = TransitionLog::default();
    for (at, expect) in expectations {
        while let Some((t, event)) = events.next_until(at) {
            log.record(t, engine.on_event(t, &event));
        }
        log.record(at, engine.on_tick(at));
        let before = failures.len();
        let when = format!("at {}", expect.at);
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
        let (fired, resolved): (Vec<Alert>, Vec<Alert>) = log
            .since_last
            .drain(..)
            .partition(|a| a.state == AlertState::Firing);
        if let Some(expected) = &expect.fired {
            compare(&when, "fired", expected, &fired, false, &mut failures);
        }
        if let Some(expected) = &expect.resolved {
            compare(&when, "resolved", expected, &resolved, false, &mut failures);
        }
        if failures.len() > before
            && let Some(last) = failures.last_mut()
        {
            last.push_str(&log.describe(start));
        }
    }
    failures.extend(events.bad_lines());
    CaseResult { name, failures }
}

/// The transitions of a running case.
#[derive(Default)]
struct TransitionLog {
    /// Fired and resolved since the last expectation.
    since_last: Vec<Alert>,
    /// The latest transitions (pending too), for a failure to show when things happened.
    recent: VecDeque<(Timestamp, Alert)>,
}

impl TransitionLog {
    fn record(&mut self, at: Timestamp, outputs: Vec<Output>) {
        for output in outputs {
            let Output::Alert(alert) = output else {
                continue;
            };
            if self.recent.len() == TRANSITIONS_SHOWN {
                self.recent.pop_front();
            }
            // A deadline passed before `at` was processed at its own instant: the alert's.
            let when = match alert.state {
                AlertState::Pending => Some(alert.active_since),
                AlertState::Firing => alert.fired_at,
                AlertState::Resolved => alert.resolved_at,
            };
            self.recent.push_back((when.unwrap_or(at), alert.clone()));
            if alert.state != AlertState::Pending {
                self.since_last.push(alert);
            }
        }
    }

    /// `\n    transitions so far: …`, one line each, at their offset from `start`.
    fn describe(&self, start: Timestamp) -> String {
        if self.recent.is_empty() {
            return "\n    transitions so far: none".to_owned();
        }
        let mut text = format!(
            "\n    transitions so far{}:",
            if self.recent.len() == TRANSITIONS_SHOWN {
                format!(" (the latest {TRANSITIONS_SHOWN})")
            } else {
                String::new()
            }
        );
        for (at, alert) in &self.recent {
            let labels: Vec<String> = alert
                .labels
                .iter()
                .filter(|(k, _)| !matches!(*k, "alertname" | "severity"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            text.push_str(&format!(
                "\n      - at {} {} {} {{{}}} value={}",
                friendly(at.duration_since(start)),
                alert.state.as_str(),
                alert.rule,
                labels.join(", "),
                alert.value
            ));
        }
        text
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
mod tests;
