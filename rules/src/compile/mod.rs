//! Compiling rule files: from YAML documents to checked [`Rule`]s, with every error found
//! reported as `file:line:col: message`.
//!
//! Besides the shape of each rule (unknown keys, types), compiling checks what an editor
//! cannot: subject patterns, durations, CEL expressions (parsed, then evaluated once against
//! sample values so type errors surface before deployment), templates (syntax, and labels the
//! pattern never captures), rule kinds that do not combine, and names used twice.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atalaya_bus::event::is_valid_label_name;
use atalaya_bus::{Labels, Pattern, Subject};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::active::ActiveWindow;
use crate::expr::{Expression, RuleValue, Vars};
use crate::files::{self, RuleFile};
use crate::index::SubjectIndex;
use crate::model::{ActionTrigger, Aggregate, RuleSpec};
use crate::template::Template;
use crate::yaml::{Node, NodeKind, Position, from_node};

/// Series a rule tracks at most, unless it says otherwise.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// A checked, compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// Identity of the definition: equal hashes mean the same rule, so a reload or restart
    /// keeps its state.
    pub hash: u64,
    /// Where it is defined (`file:line:col`), for messages.
    pub origin: String,
    pub pattern: Pattern,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub value: Option<Expression>,
    pub condition: Option<Expression>,
    pub clear_condition: Option<Expression>,
    pub after: Option<Expression>,
    pub for_: SignedDuration,
    pub keep_firing_for: SignedDuration,
    pub absent_for: Option<SignedDuration>,
    pub window: Option<Window>,
    pub one_shot: bool,
    pub active: Option<ActiveWindow>,
    pub group_by: Option<Vec<String>>,
    pub severity: Template,
    pub labels: Vec<(String, Template)>,
    pub annotations: Vec<(String, Template)>,
    pub actions: Vec<Action>,
    pub max_series: usize,
    /// Whether any template reads `data`, so the engine keeps the last payload per series.
    pub needs_data: bool,
    /// Whether any expression reads `labels`, so the engine hands them over.
    pub uses_labels: bool,
}

/// A compiled sliding window.
#[derive(Debug)]
pub struct Window {
    pub duration: SignedDuration,
    pub aggregate: Aggregate,
    pub filter: Option<Expression>,
}

/// A compiled action.
#[derive(Debug)]
pub struct Action {
    pub on: ActionTrigger,
    pub subject: Template,
    pub payload: Option<Template>,
}

/// All rules of a directory, indexed by subject.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Arc<Rule>>,
    pub index: SubjectIndex,
}

impl RuleSet {
    pub fn new(rules: Vec<Arc<Rule>>) -> Self {
        let index = SubjectIndex::new(rules.iter().map(|r| &r.pattern));
        Self { rules, index }
    }
}

/// One mistake in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub path: PathBuf,
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                p.line,
                p.column,
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Loads and compiles every rule file under `dir`.
pub fn load_rules(dir: &Path) -> Result<RuleSet, Vec<RuleError>> {
    let set = files::load_dir(dir).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| RuleError {
                path: dir.to_owned(),
                position: None,
                message: e.to_string(),
            })
            .map(strip_path_prefix)
            .collect::<Vec<_>>()
    })?;
    compile_files(&set.files)
}

/// File errors already carry `path:line:col:`; keep them whole as the message.
fn strip_path_prefix(mut e: RuleError) -> RuleError {
    e.path = PathBuf::new();
    e
}

/// Compiles already loaded files; names must be unique across all of them.
pub fn compile_files(files: &[RuleFile]) -> Result<RuleSet, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for file in files
        .iter()
        .filter(|f| !crate::testing::is_test_file(&f.path))
    {
        for (name, position, rule) in compile_file(file, &mut errors) {
            let origin = format!(
                "{}:{}:{}",
                file.path.display(),
                position.line,
                position.column
            );
            match names.get(&name) {
                Some(first) => errors.push(RuleError {
                    path: file.path.clone(),
                    position: Some(position),
                    message: format!("duplicate rule name `{name}`; first defined at {first}"),
                }),
                None => {
                    names.insert(name, origin);
                    rules.extend(rule.map(Arc::new));
                }
            }
        }
    }
    errors.sort_by(|a, b| (&a.path, a.position).cmp(&(&b.path, b.position)));
    if errors.is_empty() {
        Ok(RuleSet::new(rules))
    } else {
        Err(errors)
    }
}

/// The rules of one file: (name, where the name is, the rule if it compiled).
fn compile_file(
    file: &RuleFile,
    errors: &mut Vec<RuleError>,
) -> Vec<(String, Position, Option<Rule>)> {
    let mut rules = Vec::new();
    let error = |position: Option<Position>, message: String| RuleError {
        path: file.path.clone(),
        position,
        message,
    };
    for doc in &file.documents {
        let entries = match &doc.kind {
            NodeKind::Null => continue,
            NodeKind::Map(entries) => entries,
            _ => {
                errors.push(error(
                    Some(doc.position),
                    format!("expected a mapping with `rules:`, found {}", doc.describe()),
                ));
                continue;
            }
        };
        for (key, _) in entries {
            if !matches!(&key.kind, NodeKind::String(k) if k == "rules") {
                errors.push(error(
                    Some(key.position),
                    "unknown key; a rule file holds `rules:`, a list of rules".to_owned(),
                ));
            }
        }
        let Some(list) = doc.get("rules") else {
            errors.push(error(
                Some(doc.position),
                "missing `rules:`, the list of rules".to_owned(),
            ));
            continue;
        };
        let items = match &list.kind {
            NodeKind::Seq(items) => items,
            NodeKind::Null => continue,
            _ => {
                errors.push(error(
                    Some(list.position),
                    format!("`rules` must be a list of rules, found {}", list.describe()),
                ));
                continue;
            }
        };
        for node in items {
            match from_node::<RuleSpec>(node) {
                Ok(spec) => {
                    let name = spec.name.clone();
                    let position = node.get("name").map_or(node.position, |n| n.position);
                    let mut checker = Checker {
                        file,
                        node,
                        errors: Vec::new(),
                    };
                    let rule = checker.rule(spec);
                    errors.extend(checker.errors);
                    rules.push((name, position, rule));
                }
                Err(e) => errors.push(error(Some(e.position), e.message)),
            }
        }
    }
    rules
}

/// Checks and compiles one rule, collecting every error.
struct Checker<'a> {
    file: &'a RuleFile,
    node: &'a Node,
    errors: Vec<RuleError>,
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
        match text.parse::<SignedDuration>() {
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
                self.err(
                    self.value_pos(&[key]),
                    format!(
                        "{key}: `{text}` is not a duration; write it like `30s`, `5m` or `1h30m`"
                    ),
                );
                None
            }
        }
    }

    fn rule(&mut self, spec: RuleSpec) -> Option<Rule> {
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
            let duration = match w.duration.parse::<SignedDuration>() {
                Ok(d) if d.is_positive() => Some(d),
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
            let subject = self.template(&["actions"], &action.publish);
            let payload = action
                .payload
                .as_ref()
                .and_then(|p| self.template(&["actions"], p));
            if let Some(subject) = subject {
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
                    on: action.on,
                    subject,
                    payload,
                });
            }
        }
        if let Some(s) = &severity {
            templates.push((vec!["severity".into()], s.clone()));
        }
        let mut needs_data = false;
        for (path, template) in &templates {
            needs_data |= template.referenced_variables().contains("data");
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
        Some(Rule {
            hash: crate::alert::fnv1a(&[&serde_json::to_string(&spec).unwrap_or_default()]),
            origin: format!(
                "{}:{}:{}",
                self.file.path.display(),
                position.line,
                position.column
            ),
            name: spec.name,
            pattern: pattern?,
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
    m.contains("no such key") || m.contains("undeclared reference") || m.contains("missing")
}

/// Char offset of (1-based) `line` and `column` in `source`.
fn line_offset(source: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in source.split('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.chars().count());
        }
        offset += l.chars().count() + 1;
    }
    offset
}

/// The file position of char `offset` inside a scalar whose node starts at `start`: plain
/// and quoted scalars start at their node (after the quote); block scalars (`|`, `>`) on the
/// next line, at its indentation.
fn scalar_offset(text: &str, start: Position, source: &str, offset: usize) -> Position {
    let line_text = text.lines().nth(start.line.saturating_sub(1)).unwrap_or("");
    let first = line_text.chars().nth(start.column.saturating_sub(1));
    let (mut line, mut column) = match first {
        Some('"' | '\'') => (start.line, start.column + 1),
        Some('|' | '>') => {
            let next = text.lines().nth(start.line).unwrap_or("");
            let indent = next.chars().take_while(|c| *c == ' ').count();
            (start.line + 1, indent + 1)
        }
        _ => (start.line, start.column),
    };
    let block_indent = if matches!(first, Some('|' | '>')) {
        column
    } else {
        1
    };
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = block_indent;
        } else {
            column += 1;
        }
    }
    Position { line, column }
}
