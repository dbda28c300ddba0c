//! Compiling `receivers:`: names, and each `<kind>_configs` entry handed to its integration
//! kind. Alertmanager's kinds atalaya does not deliver are refused at their key, so a
//! migrated configuration never silently loses a notification channel.

use std::collections::{HashMap, HashSet};

use atalaya_bus::delivery::{IntegrationContext, Receiver};

use super::Compiler;
use super::spec::UNSUPPORTED_KINDS;
use crate::yaml::{Node, NodeKind, Position, did_you_mean};

impl Compiler<'_> {
    /// Every receiver under `receivers:`; names must be unique. `global` is the policy's
    /// `global:` section, which integrations read their defaults from.
    pub(super) fn receivers(
        &mut self,
        node: &Node,
        global: Option<&Node>,
        intervals: &HashSet<String>,
    ) -> Vec<Receiver> {
        let mut receivers = Vec::new();
        let mut first_seen: HashMap<String, Position> = HashMap::new();
        for item in self.items(node, "receivers") {
            let Some(receiver) = self.receiver(item, global, intervals) else {
                continue;
            };
            let position = item.get("name").map_or(item.position, |n| n.position);
            match first_seen.get(&receiver.name) {
                Some(first) => self.error(
                    position,
                    format!(
                        "duplicate receiver name `{}`; first defined at {first}",
                        receiver.name
                    ),
                ),
                None => {
                    first_seen.insert(receiver.name.clone(), position);
                    receivers.push(receiver);
                }
            }
        }
        receivers
    }

    fn receiver(
        &mut self,
        node: &Node,
        global: Option<&Node>,
        intervals: &HashSet<String>,
    ) -> Option<Receiver> {
        let NodeKind::Map(entries) = &node.kind else {
            self.error(
                node.position,
                format!("a receiver must be a mapping, found {}", node.describe()),
            );
            return None;
        };
        let name = match node.get("name").map(|n| &n.kind) {
            Some(NodeKind::String(name)) if !name.is_empty() => Some(name.clone()),
            Some(NodeKind::String(_) | NodeKind::Null) | None => {
                let position = node.get("name").map_or(node.position, |n| n.position);
                self.error(position, "a receiver needs a `name`");
                None
            }
            Some(other) => {
                let position = node.get("name").map_or(node.position, |n| n.position);
                self.error(
                    position,
                    format!(
                        "a receiver's `name` must be a string, found {}",
                        Node {
                            position,
                            kind: other.clone()
                        }
                        .describe()
                    ),
                );
                None
            }
        };
        let label = match &name {
            Some(name) => format!("receiver `{name}`"),
            None => "receiver".to_owned(),
        };
        let base_dir = self.path.parent().unwrap_or(std::path::Path::new(""));
        let mut integrations = Vec::new();
        for (key, value) in entries {
            let NodeKind::String(key_text) = &key.kind else {
                self.error(key.position, "a receiver's keys are names");
                continue;
            };
            if key_text == "name" {
                continue;
            }
            let kind = key_text
                .strip_suffix("_configs")
                .and_then(|name| self.kinds.iter().find(|k| k.name == name))
                .copied();
            let Some(kind) = kind else {
                self.unknown_receiver_key(&label, key.position, key_text);
                continue;
            };
            let items = self.items(value, key_text);
            for item in items {
                let mut context = IntegrationContext {
                    decoder: &mut self.decoder,
                    label: &label,
                    global,
                    time_intervals: intervals,
                    base_dir,
                };
                integrations.extend((kind.compile)(&mut context, item));
            }
        }
        Some(Receiver {
            name: name?,
            integrations,
        })
    }

    /// A receiver key that is no integration kind of this build: one of Alertmanager's
    /// atalaya does not deliver, or a typo.
    fn unknown_receiver_key(&mut self, label: &str, position: Position, key: &str) {
        let supported: Vec<String> = self
            .kinds
            .iter()
            .map(|k| format!("{}_configs", k.name))
            .collect();
        let list = supported.join(", ");
        let message = if UNSUPPORTED_KINDS.contains(&key) {
            format!("{label}: `{key}` is not supported by atalaya; supported: {list}")
        } else if key.ends_with("_configs") {
            format!(
                "{label}: unknown key `{key}`{}; this atalaya delivers {list}",
                did_you_mean(key, &supported)
            )
        } else {
            let mut known = supported.clone();
            known.push("name".to_owned());
            format!(
                "{label}: unknown key `{key}`{}; a receiver has `name` and integrations: {list}",
                did_you_mean(key, &known)
            )
        };
        self.error(position, message);
    }
}
