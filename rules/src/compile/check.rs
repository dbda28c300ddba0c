//! Checking and compiling one rule: everything an editor cannot see (patterns, durations,
//! expressions evaluated against samples, templates and the labels they use, rule kinds that
//! do not combine), every error collected with its position.

use std::collections::BTreeSet;

use atalaya_bus::event::is_valid_label_name;
use atalaya_bus::{Labels, Pattern, Subject};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::position::{line_offset, scalar_offset};
use super::{Action, DEFAULT_MAX_SERIES, Rule, RuleError, Window};
use crate::active::ActiveWindow;
use crate::expr::{Expression, RuleValue, Vars};
use crate::files::RuleFile;
use crate::model::RuleSpec;
use crate::template::Template;
use crate::yaml::{Node, Position};

/// Checks and compiles one rule, collecting every error.
pub(super) struct Checker<'a> {
    pub(super) file: &'a RuleFile,
    pub(super) node: &'a Node,
    pub(super) errors: Vec<RuleError>,
}

impl Checker<'_> {
    fn err(&mut self, position: Option<Position>, message: impl Into<String>) {
        self.errors.push(RuleError {
            path: self.file.path.clone(),
            position,
            message: message.into(),
        });
    }

    /// The node of `path` (keys, `[i]` not needed) inside the rule.
    fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self.node, |node, key| node.get(key))
    }

    fn value_pos(&self, path: &[&str]) -> Option<Position> {
        self.at(path)
            .map(|n| n.position)
            .or(Some(self.node.position))
    }

    fn key_pos(&self, path: &[&str]) -> Option<Position> {
        let (last, parent) = path.split_last()?;
        self.at(parent)
            .and_then(|n| n.key_position(last))
            .or(Some(self.node.position))
    }

    fn expression(&mut self, path: &[&str], source: Option<&str>) -> Option<Expression> {
        let source = source?;
        match Expression::compile(source) {
            Ok(e) => Some(e),
            Err(e) => {
                let position = self
                    .value_pos(path)
                    .map(|p| scalar_offset(&self.file.text, p, source, e.offset));
                self.err(position, format!("{}: {}", path.join("."), e.message));
                None
            }
        }
    }

    fn template(&mut self, path: &[&str], source: &str) -> Option<Template> {
        match Template::compile(source) {
            Ok(t) => Some(t),
            Err(e) => {
                let position = self.value_pos(path).map(|p| {
                    let offset = line_offset(source, e.line, e.column.unwrap_or(1));
                    scalar_offset(&self.file.text, p, source, offset)
                });
                self.err(
                    position,
                    format!("{}: template: {}", path.join("."), e.message),
                );
                None
            }
        }
    }

    fn duration(
        &mut self,
        key: &str,
        text: Option<&str>,
        positive: bool,
    ) -> Option<SignedDuration> {
        let text = text?;
        match crate::model::parse_duration(text).ok_or(()) {
            Ok(d) if d.is_negative() || (positive && d.is_zero()) => {
                self.err(
                    self.value_pos(&[key]),
                    format!(
                        "{key}: `{text}` must be {}",
                        if positive { "positive" } else { "zero or more" }
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                self.err(self.value_pos(&[key]), not_a_duration(key, text));
                None
            }
        }
    }

    pub(super) fn rule(&mut self, spec: RuleSpec) -> Option<Rule> {
        let before = self.errors.len();
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.err(
                self.value_pos(&["name"]),
                format!("name `{}` must be letters, digits, `_` or `-`", spec.name),
            );
        }
        let pattern = match Pattern::parse(&spec.subject) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(self.value_pos(&["subject"]), format!("subject: {e}"));
                None
            }
        };
        let value = self.expression(&["value"], spec.value.as_deref());
        let condition = self.expression(&["condition"], spec.condition.as_deref());
        let clear_condition =
            self.expression(&["clear_condition"], spec.clear_condition.as_deref());
        let after = self.expression(&["after"], spec.after.as_deref());
        let for_ = self
            .duration("for", spec.for_.as_deref(), false)
            .unwrap_or(SignedDuration::ZERO);
        let keep_firing_for = self
            .duration("keep_firing_for", spec.keep_firing_for.as_deref(), false)
            .unwrap_or(SignedDuration::ZERO);
        let absent_for = self.duration("absent_for", spec.absent_for.as_deref(), true);
        let window = spec.window.as_ref().and_then(|w| {
            let duration = match crate::model::parse_duration(&w.duration) {
                Some(d) if d.is_positive() => Some(d),
                _ => {
                    self.err(
                        self.value_pos(&["window", "duration"]),
                        format!(
                            "window.duration: `{}` is not a positive duration such as `10m`",
                            w.duration
                        ),
                    );
                    None
                }
            };
            let filter = self.expression(&["window", "where"], w.filter.as_deref());
            Some(Window {
                duration: duration?,
                aggregate: w.aggregate,
                filter,
            })
        });
        let active = spec
            .active
            .as_ref()
            .and_then(|a| match ActiveWindow::compile(a) {
                Ok(w) => Some(w),
                Err(errors) => {
                    for e in errors {
                        self.err(self.value_pos(&["active", e.field]), format!("active.{e}"));
                    }
                    None
                }
            });

        self.check_kind(&spec);

        // The labels that identify a series, and what templates may use.
        let captured: BTreeSet<String> = pattern
            .iter()
            .flat_map(|p| p.capture_names())
            .map(str::to_owned)
            .collect();
        let series_labels: BTreeSet<String> = match &spec.group_by {
            Some(names) => {
                for name in names {
                    if !is_valid_label_name(name) {
                        self.err(
                            self.value_pos(&["group_by"]),
                            format!("group_by: `{name}` is not a valid label name"),
                        );
                    }
                }
                names.iter().cloned().collect()
            }
            None => captured.clone(),
        };

        let severity_source = spec
            .severity
            .clone()
            .unwrap_or_else(|| "warning".to_owned());
        let severity = self.template(&["severity"], &severity_source);
        let mut templates: Vec<(Vec<String>, Template)> = Vec::new();
        let mut labels = Vec::new();
        for (name, source) in &spec.labels {
            if !is_valid_label_name(name) || matches!(name.as_str(), "alertname" | "severity") {
                self.err(
                    self.key_pos(&["labels", name]),
                    format!("labels: `{name}` is not a label name a rule can set"),
                );
            }
            if let Some(t) = self.template(&["labels", name], source) {
                templates.push((vec!["labels".into(), name.clone()], t.clone()));
                labels.push((name.clone(), t));
            }
        }
        let mut annotations = Vec::new();
        for (name, source) in &spec.annotations {
            if let Some(t) = self.template(&["annotations", name], source) {
                templates.push((vec!["annotations".into(), name.clone()], t.clone()));
                annotations.push((name.clone(), t));
            }
        }
        let mut actions = Vec::new();
        for (i, action) in spec.actions.iter().enumerate() {
            let when = match (action.when, action.on) {
                (Some(when), None) | (None, Some(when)) => Some(when),
                (Some(_), Some(_)) => {
                    self.err(
                        self.value_pos(&["actions"]),
                        format!("actions[{i}]: `when` and `on` are one setting; keep `when`"),
                    );
                    None
                }
                (None, None) => {
                    self.err(
                        self.value_pos(&["actions"]),
                        format!("actions[{i}]: `when` is required: `firing` or `resolved`"),
                    );
                    None
                }
            };
            let subject = self.template(&["actions"], &action.publish);
            let payload = action
                .payload
                .as_ref()
                .and_then(|p| self.template(&["actions"], p));
            if let (Some(subject), Some(when)) = (subject, when) {
                if subject.is_static() && Subject::parse(subject.source()).is_err() {
                    self.err(
                        self.value_pos(&["actions"]),
                        format!(
                            "actions[{i}].publish: `{}` is not a valid subject",
                            action.publish
                        ),
                    );
                }
                templates.push((vec![format!("actions[{i}].publish")], subject.clone()));
                if let Some(p) = &payload {
                    templates.push((vec![format!("actions[{i}].payload")], p.clone()));
                }
                actions.push(Action {
                    on: when,
                    subject,
                    payload,
                    retain: action.retain,
                });
            }
        }
        if let Some(s) = &severity {
            templates.push((vec!["severity".into()], s.clone()));
        }
        let mut needs_data = false;
        let mut needs_value = false;
        for (path, template) in &templates {
            needs_data |= template.referenced_variables().contains("data");
            needs_value |= template.referenced_variables().contains("value");
            for label in template.referenced_labels() {
                if !series_labels.contains(&label) {
                    let known = if series_labels.is_empty() {
                        "it has none".to_owned()
                    } else {
                        format!(
                            "it has {}",
                            series_labels
                                .iter()
                                .map(|l| format!("`{l}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    let pos = if path[0].starts_with("actions") {
                        self.value_pos(&["actions"])
                    } else {
                        self.value_pos(&path)
                    };
                    self.err(pos, format!("{}: the template uses label `{label}`, which the series never has ({known}; series labels come from `+name` captures in `subject`, or `group_by`)", path.join(".")));
                }
            }
            // A variable no state gives is reported now, not when the alert first fires or
            // resolves (an undefined variable fails the render: the text becomes an error).
            let action = path[0].starts_with("actions");
            let known = if action {
                ACTION_VARIABLES
            } else {
                ALERT_VARIABLES
            };
            for variable in template.referenced_variables() {
                if known.contains(&variable.as_str()) {
                    continue;
                }
                let closest = known
                    .iter()
                    .map(|k| (strsim::damerau_levenshtein(k, &variable), *k))
                    .filter(|(d, k)| *d <= 2.max(k.len() / 3))
                    .min();
                let hint = match closest {
                    Some((_, k)) => format!("did you mean `{k}`?"),
                    None => format!("a template sees {}", known.join(", ")),
                };
                let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                let pos = if action {
                    self.value_pos(&["actions"])
                } else {
                    self.value_pos(&segments)
                };
                self.err(
                    pos,
                    format!("{}: unknown variable `{variable}`; {hint}", path.join(".")),
                );
            }
        }

        for (path, expression) in [
            ("value", &value),
            ("condition", &condition),
            ("clear_condition", &clear_condition),
            ("after", &after),
        ] {
            if let Some(e) = expression
                && let Err(message) = sample_check(e, path != "value")
            {
                self.err(self.value_pos(&[path]), format!("{path}: {message}"));
            }
        }

        let uses_labels = [&value, &condition, &clear_condition, &after]
            .into_iter()
            .flatten()
            .chain(window.iter().flat_map(|w| &w.filter))
            .any(|e| e.referenced_variables().contains("labels"));

        if self.errors.len() > before {
            return None;
        }
        let position = self.node.position;
        let pattern = pattern?;
        Some(Rule {
            hash: crate::alert::fnv1a(&[&serde_json::to_string(&spec).unwrap_or_default()]),
            origin: format!(
                "{}:{}:{}",
                self.file.path.display(),
                position.line,
                position.column
            ),
            name: spec.name,
            subject_per_series: spec.group_by.is_none() && pattern.captures_identify_subject(),
            pattern,
            source: spec.source,
            event_type: spec.event_type,
            value,
            condition,
            clear_condition,
            after,
            for_,
            keep_firing_for,
            absent_for,
            window,
            one_shot: spec.one_shot,
            active,
            group_by: spec.group_by,
            severity: severity?,
            labels,
            annotations,
            actions,
            max_series: spec.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            needs_data,
            needs_value,
            uses_labels,
        })
    }

    /// Rule kinds that do not combine.
    fn check_kind(&mut self, spec: &RuleSpec) {
        let has = |o: &Option<String>| o.is_some();
        if spec.absent_for.is_some() {
            for (key, present) in [
                ("condition", has(&spec.condition)),
                ("clear_condition", has(&spec.clear_condition)),
                ("after", has(&spec.after)),
                ("for", has(&spec.for_)),
                ("window", spec.window.is_some()),
                ("one_shot", spec.one_shot),
            ] {
                if present {
                    self.err(
                        self.key_pos(&[key]),
                        format!(
                            "{key}: an `absent_for` rule fires on silence alone; remove `{key}`"
                        ),
                    );
                }
            }
        } else if spec.condition.is_none() {
            self.err(
                Some(self.node.position),
                "the rule needs a `condition` (or `absent_for` for silence)",
            );
        }
        if spec.clear_condition.is_some() && spec.one_shot {
            self.err(
                self.key_pos(&["clear_condition"]),
                "clear_condition: a one-shot alert resolves by itself; remove `clear_condition`",
            );
        }
        if let Some(max) = spec.max_series
            && max == 0
        {
            self.err(
                self.value_pos(&["max_series"]),
                "max_series must be at least 1",
            );
        }
    }
}

/// Evaluates `expression` against sample values of every JSON kind. Missing fields are
/// expected (the sample has none); an error with every sample is a real mistake.
fn sample_check(expression: &Expression, must_be_bool: bool) -> Result<(), String> {
    let subject =
        Subject::parse("sample/subject").unwrap_or_else(|_| unreachable!("a valid subject"));
    let samples = [json!(0.0), json!(""), json!(true), json!({}), json!([])];
    let mut first_error = None;
    for sample in samples {
        let mut vars = Vars::new(&json!({}), &Labels::new(), &subject, Timestamp::UNIX_EPOCH);
        vars.set_value(RuleValue::from_json(&sample));
        let outcome = if must_be_bool {
            expression.eval_bool(&vars).map(|_| ())
        } else {
            expression.eval(&vars).map(|_| ())
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if is_missing_data(&e.to_string()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

/// Whether an evaluation error only says the sample lacked a field.
fn is_missing_data(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // A missing field reads "`data` has no field `x` (it has …)" (see `expr::diagnose`).
    m.contains("no such key")
        || (m.contains(" has no field ") && m.contains("(it has"))
        || m.contains("undeclared reference")
        || m.contains("missing")
}
/// What the templates of an alert's labels, annotations and severity see: the same in every
/// state (pending, firing, resolved), so a template that renders for one renders for all.
const ALERT_VARIABLES: &[&str] = &[
    "labels",
    "value",
    "firing_value",
    "data",
    "subject",
    "rule",
    "state",
    "resolved",
    "duration",
    "duration_seconds",
    "time",
    "severity",
];

/// What the templates of a rule action see.
const ACTION_VARIABLES: &[&str] = &["labels", "annotations", "value", "rule", "state"];

/// What is wrong with a duration that does not parse: a bare number (`for: 10`) is told
/// what it lacks.
fn not_a_duration(key: &str, text: &str) -> String {
    if text.parse::<f64>().is_ok() {
        format!("{key}: `{text}` is a number without a unit; write a duration such as `{text}s`")
    } else {
        format!("{key}: `{text}` is not a duration; write it like `30s`, `5m`, `1h30m` or `5d9h`")
    }
}
