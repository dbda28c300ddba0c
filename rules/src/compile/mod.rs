//! Compiling rule files: from YAML documents to checked [`Rule`]s, with every error found
//! reported as `file:line:col: message`.
//!
//! Besides the shape of each rule (unknown keys, types), compiling checks what an editor
//! cannot: subject patterns, durations, CEL expressions (parsed, then evaluated once against
//! sample values so type errors surface before deployment), templates (syntax, and labels the
//! pattern never captures), rule kinds that do not combine, and names used twice.
//!
//! # Layout
//! - this file: the compiled [`Rule`] and [`RuleSet`], [`RuleError`], and the walk over files
//!   and documents down to each rule.
//! - `check`: checking and compiling one rule, collecting every error in it.
//! - `position`: placing an error found inside a scalar (an expression, a template) at its
//!   line and column in the file.

mod check;
mod position;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atalaya_bus::Pattern;
use jiff::SignedDuration;

use self::check::Checker;
use crate::active::ActiveWindow;
use crate::expr::Expression;
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
    /// Whether a template reads `value`; an absence rule then keeps the last value.
    pub needs_value: bool,
    /// Whether any expression reads `labels`, so the engine hands them over.
    pub uses_labels: bool,
    /// Whether a series' events all have one subject: its labels are the pattern's
    /// captures (no `group_by`), and they identify the subject. The engine then stores the
    /// subject once instead of comparing it on every event.
    pub subject_per_series: bool,
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
    pub retain: bool,
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
            // Errors of loading a directory carry their own `path:line:col:`.
            None if self.path.as_os_str().is_empty() => f.write_str(&self.message),
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
        .filter(|f| !crate::files::is_test_file(&f.path))
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

/// Decodes one rule, reporting each mistake. An unknown key is reported and the rule
/// decoded again without it, so that the rule is still checked and a mistake in its
/// condition is not hidden behind the unknown key; any other mistake ends the decoding (a
/// key of the wrong kind, checked as missing, would be reported twice).
fn decode_rule(node: &Node, report: &mut dyn FnMut(Position, String)) -> Option<RuleSpec> {
    let NodeKind::Map(entries) = &node.kind else {
        return from_node::<RuleSpec>(node)
            .map_err(|e| report(e.position, e.message))
            .ok();
    };
    let mut entries = entries.clone();
    loop {
        let attempt = Node {
            position: node.position,
            kind: NodeKind::Map(entries.clone()),
        };
        let error = match from_node::<RuleSpec>(&attempt) {
            Ok(spec) => return Some(spec),
            Err(error) => error,
        };
        let unknown = error.message.starts_with("unknown key");
        let before = entries.len();
        if unknown {
            entries.retain(|(key, _)| key.position != error.position);
        }
        report(error.position, error.message);
        if !unknown || entries.len() == before {
            return None;
        }
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
            let Some(spec) = decode_rule(node, &mut |position, message| {
                errors.push(error(Some(position), message));
            }) else {
                continue;
            };
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
    }
    rules
}
