//! The routing policy file: Alertmanager's configuration keys (`route`, `receivers`,
//! `inhibit_rules`, `time_intervals`, the older `mute_time_intervals`, and `global` for the
//! defaults atalaya uses) as serde types, compiled into a [`RoutingPolicy`].
//!
//! An Alertmanager configuration loads as it is, as long as its receivers use the kinds
//! atalaya delivers (`webhook_configs`, `telegram_configs`, `email_configs`, plus atalaya's
//! own such as `console_configs`, `mqtt_configs` and `nats_configs`) and keeps its secrets
//! in files; everything else is refused with a message saying why, never ignored. Which
//! kinds exist, and how each entry compiles, is given by the caller
//! ([`IntegrationKind`]s, from the connectors that deliver them): this crate only walks
//! the receivers and hands each `<kind>_configs` entry to its kind.
//! Every error in the file is reported at once, each at the key or value at fault.
//!
//! # Layout
//! - this file: [`RoutingPolicy`], loading, the walk over the top-level keys, and the
//!   error collection every part shares.
//! - `spec`: the file as written (serde types).
//! - `routes`: the route tree (matchers, inheritance, Alertmanager's checks).
//! - `receivers`: receivers, each integration entry handed to its kind.
//! - `time_intervals`: named time intervals.
//! - `inhibit`: inhibition rules.

mod inhibit;
mod receivers;
mod routes;
mod schema;
pub use schema::routing_schema;
mod shown;
mod spec;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_notify;
mod time_intervals;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use atalaya_bus::delivery::{Integration, IntegrationKind, Receiver};
use atalaya_bus::yaml::{DecodeError, Decoder};

use self::spec::{GlobalSpec, PolicySpec};
use super::inhibit::InhibitRule;
use super::time_interval::NamedTimeInterval;
use super::tree::{GroupBy, Route, RouteTree};
use crate::compile::RuleError;
use crate::yaml::{Node, NodeKind, Position, did_you_mean, parse_documents};

/// A compiled, checked routing policy.
#[derive(Debug, Clone)]
pub struct RoutingPolicy {
    pub tree: RouteTree,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub time_intervals: HashMap<String, NamedTimeInterval>,
    /// `global.resolve_timeout`: how long an alert posted without `endsAt` stays firing
    /// unless posted again (Prometheus posts its firing alerts every evaluation).
    pub resolve_timeout: Duration,
    /// The policy as an Alertmanager configuration (YAML) that can be shown: what
    /// `GET /api/v2/status` answers as `config.original` (see `shown.rs` for what is left
    /// out).
    pub shown: String,
}

/// Alertmanager's default `resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(300);

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
                // The console integration has no settings of its own.
                integrations: vec![Integration::new("console", true, ())],
            }],
            inhibit_rules: Vec::new(),
            time_intervals: HashMap::new(),
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            shown: shown::console_default(),
        }
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// Reads and compiles a policy file, with the integration `kinds` this build delivers
/// (`atalaya_connectors::notifiers::integration_kinds()`); every error with its position.
///
/// A relative webhook `url_file`, `bot_token_file` or `auth_password_file` is read relative
/// to the policy file's directory, as Alertmanager does.
pub fn load_policy(
    path: &Path,
    kinds: &[IntegrationKind],
) -> Result<RoutingPolicy, Vec<RuleError>> {
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
    parse_policy(&text, path, kinds)
}

/// Compiles a policy from its text; `path` names it in error messages, and its directory is
/// where relative file paths in receivers' settings start.
pub fn parse_policy(
    text: &str,
    path: &Path,
    kinds: &[IntegrationKind],
) -> Result<RoutingPolicy, Vec<RuleError>> {
    let mut compiler = Compiler {
        path,
        text,
        kinds,
        decoder: Decoder::default(),
    };
    let policy = compiler.policy();
    let mut errors: Vec<RuleError> = compiler
        .decoder
        .errors
        .into_iter()
        .map(|e| RuleError {
            path: path.to_owned(),
            position: e.position,
            message: e.message,
        })
        .collect();
    match policy {
        Some(policy) if errors.is_empty() => Ok(policy),
        _ => {
            errors.sort_by_key(|e| e.position);
            errors.dedup();
            Err(errors)
        }
    }
}

/// Checks and compiles a policy, collecting every error (in its [`Decoder`], which it
/// dereferences to: `self.decode(..)`, `self.error(..)`, `self.items(..)`).
struct Compiler<'a> {
    path: &'a Path,
    /// The file's text, to place errors inside string values.
    text: &'a str,
    /// The integration kinds receivers may use.
    kinds: &'a [IntegrationKind],
    decoder: Decoder,
}

impl std::ops::Deref for Compiler<'_> {
    type Target = Decoder;
    fn deref(&self) -> &Decoder {
        &self.decoder
    }
}

impl std::ops::DerefMut for Compiler<'_> {
    fn deref_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }
}

/// The names routes may refer to.
struct Names {
    receivers: HashSet<String>,
    intervals: HashSet<String>,
}

impl Compiler<'_> {
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
                self.errors.push(DecodeError {
                    position: Some(Position { line: 1, column: 1 }),
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

        let global = root.get("global");
        let mut resolve_timeout = DEFAULT_RESOLVE_TIMEOUT;
        if let Some(global) = global
            && let Some(spec) = self.decode::<GlobalSpec>(global)
        {
            if let Some(timeout) = self.duration(
                global,
                "resolve_timeout",
                spec.resolve_timeout.as_ref(),
                true,
            ) {
                resolve_timeout = timeout;
            }
            if let Some(position) = global.key_position("smtp_auth_password") {
                self.error(
                    position,
                    "`smtp_auth_password` would put a secret in the policy file; write the \
                     password in a file named by `smtp_auth_password_file`",
                );
            }
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
            Some(node) => self.receivers(node, global, &interval_names),
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
            resolve_timeout,
            shown: shown::alertmanager_config(self.text),
        })
    }
}
