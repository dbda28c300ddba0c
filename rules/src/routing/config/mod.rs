//! The routing policy file: Alertmanager's configuration keys (`route`, `receivers`,
//! `inhibit_rules`, `time_intervals`, the older `mute_time_intervals`, and `global` for the
//! defaults atalaya uses) as serde types, compiled into a [`RoutingPolicy`].
//!
//! An Alertmanager configuration loads as it is, as long as its receivers use the kinds
//! atalaya delivers (`webhook_configs`, `telegram_configs`, `email_configs`, plus atalaya's
//! `console_configs`, `mqtt_configs` and `nats_configs`) and keeps its secrets in files;
//! everything else is refused with a message saying why, never ignored.
//! Every error in the file is reported at once, each at the key or value at fault.
//!
//! # Layout
//! - this file: [`RoutingPolicy`], loading, the walk over the top-level keys, and the
//!   error collection every part shares.
//! - `spec`: the file as written (serde types).
//! - `routes`: the route tree (matchers, inheritance, Alertmanager's checks).
//! - `receivers`: receivers and their integrations, and what Telegram and mail share
//!   (secrets, message templates, locale).
//! - `telegram`, `email`: those two integrations.
//! - `time_intervals`: named time intervals.
//! - `inhibit`: inhibition rules.

mod email;
mod inhibit;
mod receivers;
mod routes;
mod spec;
mod telegram;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_notify;
mod time_intervals;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::de::DeserializeOwned;

use self::email::SmtpDefaults;
use self::receivers::ReceiverDefaults;
use self::spec::{GlobalSpec, PolicySpec};
pub use self::telegram::DEFAULT_TELEGRAM_API_URL;
use super::duration::parse_duration;
use super::inhibit::InhibitRule;
use super::time_interval::NamedTimeInterval;
use super::tree::{GroupBy, Route, RouteTree};
use crate::compile::RuleError;
use crate::yaml::{Node, NodeKind, Position, from_node, parse_documents};
use atalaya_bus::delivery::integration::{ConsoleConfig, Integration, Receiver, SecretSource};

/// A compiled, checked routing policy.
#[derive(Debug, Clone)]
pub struct RoutingPolicy {
    pub tree: RouteTree,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub time_intervals: HashMap<String, NamedTimeInterval>,
}

impl RoutingPolicy {
    /// The policy when none is configured: every alert to a `console` receiver, grouped by
    /// `alertname`, with Alertmanager's default timings (30s wait, 5m interval, 4h repeat).
    pub fn console_default() -> Self {
        let mut root = Route::root("console");
        root.group_by = GroupBy::Labels(vec!["alertname".to_owned()]);
        Self {
            tree: RouteTree::new(root),
            receivers: vec![Receiver {
                name: "console".to_owned(),
                integrations: vec![Integration::Console(ConsoleConfig {
                    send_resolved: true,
                })],
            }],
            inhibit_rules: Vec::new(),
            time_intervals: HashMap::new(),
        }
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// Reads and compiles a policy file; every error with its position.
///
/// A relative webhook `url_file`, `bot_token_file` or `auth_password_file` is read relative
/// to the policy file's directory, as Alertmanager does.
pub fn load_policy(path: &Path) -> Result<RoutingPolicy, Vec<RuleError>> {
    let unreadable = |message: String| {
        vec![RuleError {
            path: path.to_owned(),
            position: None,
            message: format!("cannot read the routing policy: {message}"),
        }]
    };
    let bytes = crate::files::read_regular_file(path, crate::files::MAX_FILE_BYTES)
        .map_err(|e| unreadable(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".to_owned()))?;
    let mut policy = parse_policy(&text, path)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    for receiver in &mut policy.receivers {
        for integration in &mut receiver.integrations {
            let file = match integration {
                Integration::Webhook(webhook) => webhook.url_file.as_mut(),
                Integration::Telegram(telegram) => match &mut telegram.bot_token {
                    SecretSource::File(file) => Some(file),
                    SecretSource::Env(_) => None,
                },
                Integration::Email(email) => match &mut email.auth_password {
                    Some(SecretSource::File(file)) => Some(file),
                    _ => None,
                },
                _ => None,
            };
            if let Some(file) = file
                && file.is_relative()
            {
                *file = dir.join(&*file);
            }
            if let Integration::Email(email) = integration
                && let Some(file) = &mut email.ca_file
                && file.is_relative()
            {
                *file = dir.join(&*file);
            }
        }
    }
    Ok(policy)
}

/// Compiles a policy from its text; `path` is only used in error messages.
pub fn parse_policy(text: &str, path: &Path) -> Result<RoutingPolicy, Vec<RuleError>> {
    let mut compiler = Compiler {
        path,
        text,
        errors: Vec::new(),
    };
    let policy = compiler.policy();
    let mut errors = compiler.errors;
    match policy {
        Some(policy) if errors.is_empty() => Ok(policy),
        _ => {
            errors.sort_by_key(|e| e.position);
            errors.dedup();
            Err(errors)
        }
    }
}

/// Checks and compiles a policy, collecting every error.
struct Compiler<'a> {
    path: &'a Path,
    /// The file's text, to place errors inside string values.
    text: &'a str,
    errors: Vec<RuleError>,
}

/// The names routes may refer to.
struct Names {
    receivers: HashSet<String>,
    intervals: HashSet<String>,
}

impl Compiler<'_> {
    fn error(&mut self, position: Position, message: impl Into<String>) {
        self.errors.push(RuleError {
            path: self.path.to_owned(),
            position: Some(position),
            message: message.into(),
        });
    }

    /// Decodes `node`. On failure, each key of a mapping is decoded again on its own, so
    /// every key's error is reported, not only the first; what the keys without errors say
    /// is then returned, so the checks after decoding still run on them.
    fn decode<T: DeserializeOwned>(&mut self, node: &Node) -> Option<T> {
        let first = match from_node::<T>(node) {
            Ok(value) => return Some(value),
            Err(error) => error,
        };
        let NodeKind::Map(entries) = &node.kind else {
            self.error(first.position, first.message);
            return None;
        };
        let mut good = Vec::new();
        for entry in entries {
            let alone = Node {
                position: node.position,
                kind: NodeKind::Map(vec![entry.clone()]),
            };
            match from_node::<T>(&alone) {
                Ok(_) => good.push(entry.clone()),
                Err(error) => self.error(error.position, error.message),
            }
        }
        if good.len() == entries.len() {
            // No key fails alone: the mistake is in how they combine.
            self.error(first.position, first.message);
            return None;
        }
        from_node::<T>(&Node {
            position: node.position,
            kind: NodeKind::Map(good),
        })
        .ok()
    }

    /// Whether `key` of `node` is absent, null or an empty string: a missing name, not one
    /// already reported as of the wrong type.
    fn missing(node: &Node, key: &str) -> bool {
        match node.get(key).map(|n| &n.kind) {
            None | Some(NodeKind::Null) => true,
            Some(NodeKind::String(s)) => s.is_empty(),
            Some(_) => false,
        }
    }

    /// The items of a list; null is no items; anything else is an error.
    fn items<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            NodeKind::Null => &[],
            _ => {
                self.error(
                    node.position,
                    format!("`{what}` must be a list, found {}", node.describe()),
                );
                &[]
            }
        }
    }

    /// Where char `offset` of the string value `node` is in the file: exact for plain and
    /// quoted one-line scalars without escapes, the value's start for block scalars.
    fn inside(&self, node: &Node, offset: usize) -> Position {
        let start = node.position;
        let first = self
            .text
            .lines()
            .nth(start.line.saturating_sub(1))
            .and_then(|line| line.chars().nth(start.column.saturating_sub(1)));
        match first {
            Some('"' | '\'') => Position {
                line: start.line,
                column: start.column + 1 + offset,
            },
            Some('|' | '>') => start,
            _ => Position {
                line: start.line,
                column: start.column + offset,
            },
        }
    }

    /// A duration value under `key` of `node`; `positive` refuses zero.
    fn duration(
        &mut self,
        node: &Node,
        key: &str,
        text: Option<&spec::Text>,
        positive: bool,
    ) -> Option<std::time::Duration> {
        let text = text?;
        let position = node.get(key).map_or(node.position, |v| v.position);
        match parse_duration(text.as_str()) {
            Ok(d) if positive && d.is_zero() => {
                self.error(position, format!("{key} cannot be zero"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(position, format!("{key}: {e}"));
                None
            }
        }
    }

    fn policy(&mut self) -> Option<RoutingPolicy> {
        let documents = match parse_documents(self.text) {
            Ok(documents) => documents,
            Err(e) => {
                self.error(e.position, e.message);
                return None;
            }
        };
        let root = match documents.as_slice() {
            [root] if !matches!(root.kind, NodeKind::Null) => root,
            [] | [_] => {
                self.errors.push(RuleError {
                    path: self.path.to_owned(),
                    position: None,
                    message: "the routing policy is empty; it needs `route:` and `receivers:`"
                        .to_owned(),
                });
                return None;
            }
            [_, second, ..] => {
                self.error(
                    second.position,
                    "a routing policy is one YAML document; remove the `---` and what follows",
                );
                return None;
            }
        };
        if !matches!(root.kind, NodeKind::Map(_)) {
            self.error(
                root.position,
                format!(
                    "expected a mapping with `route:` and `receivers:`, found {}",
                    root.describe()
                ),
            );
            return None;
        }
        self.decode::<PolicySpec>(root);

        let mut defaults = ReceiverDefaults::default();
        if let Some(global) = root.get("global")
            && let Some(spec) = self.decode::<GlobalSpec>(global)
        {
            self.duration(
                global,
                "resolve_timeout",
                spec.resolve_timeout.as_ref(),
                true,
            );
            if let Some(position) = global.key_position("smtp_auth_password") {
                self.error(
                    position,
                    "`smtp_auth_password` would put a secret in the policy file; write the \
                     password in a file named by `smtp_auth_password_file`",
                );
            }
            defaults = ReceiverDefaults {
                smtp: SmtpDefaults {
                    from: spec.smtp_from,
                    smarthost: spec.smtp_smarthost,
                    hello: spec.smtp_hello,
                    auth_username: spec.smtp_auth_username,
                    auth_password_file: spec.smtp_auth_password_file,
                    require_tls: spec.smtp_require_tls,
                },
                telegram_api_url: spec.telegram_api_url,
            };
        }
        if let Some(position) = root.key_position("templates") {
            self.error(
                position,
                "templates: Go templates are not used by atalaya; remove this key",
            );
        }

        let mut time_intervals = HashMap::new();
        let mut interval_positions = HashMap::new();
        for key in ["mute_time_intervals", "time_intervals"] {
            if let Some(node) = root.get(key) {
                self.named_time_intervals(key, node, &mut time_intervals, &mut interval_positions);
            }
        }
        let interval_names: HashSet<String> = time_intervals.keys().cloned().collect();
        let receivers = match root.get("receivers") {
            Some(node) => self.receivers(node, &defaults, &interval_names),
            None => Vec::new(),
        };
        let names = Names {
            receivers: receivers.iter().map(|r| r.name.clone()).collect(),
            intervals: interval_names,
        };
        let tree = match root.get("route") {
            Some(node) => self.route_tree(node, &names),
            None => {
                self.error(
                    root.position,
                    "missing `route:`, the root of the route tree (at least `receiver:`)",
                );
                None
            }
        };
        let inhibit_rules = match root.get("inhibit_rules") {
            Some(node) => self.inhibit_rules(node),
            None => Vec::new(),
        };
        Some(RoutingPolicy {
            tree: tree?,
            receivers,
            inhibit_rules,
            time_intervals,
        })
    }
}

/// "; did you mean `x`?" when a known name is a likely typo of `name`, else "".
fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> String {
    known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.chars().count())
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance, in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            current[j + 1] = (previous[j] + usize::from(ca != *cb))
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
