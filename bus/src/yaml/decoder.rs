//! [`Decoder`]: decoding a configuration's nodes while collecting every error, so a file's
//! mistakes are all reported at once, each at its position.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Node, NodeKind, Position, Text, from_node};
use crate::delivery::integration::SecretSource;
use crate::duration::parse_any_duration;

/// One mistake in a configuration file; `position` is `None` for the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub position: Option<Position>,
    pub message: String,
}

/// Decodes nodes into serde types, collecting every error instead of stopping at the first.
#[derive(Debug, Default)]
pub struct Decoder {
    pub errors: Vec<DecodeError>,
}

impl Decoder {
    /// Records a mistake at `position`.
    pub fn error(&mut self, position: Position, message: impl Into<String>) {
        self.errors.push(DecodeError {
            position: Some(position),
            message: message.into(),
        });
    }

    /// Decodes `node`. On failure, each key of a mapping is decoded again on its own, so
    /// every key's error is reported, not only the first; what the keys without errors say
    /// is then returned, so the checks after decoding still run on them.
    pub fn decode<T: DeserializeOwned>(&mut self, node: &Node) -> Option<T> {
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
    pub fn missing(node: &Node, key: &str) -> bool {
        match node.get(key).map(|n| &n.kind) {
            None | Some(NodeKind::Null) => true,
            Some(NodeKind::String(s)) => s.is_empty(),
            Some(_) => false,
        }
    }

    /// The items of a list; null is no items; anything else is an error.
    pub fn items<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
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

    /// A duration value under `key` of `node`; `positive` refuses zero.
    pub fn duration(
        &mut self,
        node: &Node,
        key: &str,
        text: Option<&Text>,
        positive: bool,
    ) -> Option<Duration> {
        let text = text?;
        let position = node.get(key).map_or(node.position, |v| v.position);
        match parse_any_duration(text.as_str()) {
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

    /// Refuses a secret written in the policy under `key` (when present), pointing at the
    /// keys that name a file (`file_key`) or an environment variable (`env_key`) instead.
    /// True when it was there.
    pub fn refuse_inline_secret(
        &mut self,
        label: &str,
        node: &Node,
        key: &str,
        file_key: &str,
        env_key: &str,
    ) -> bool {
        let Some(position) = node.key_position(key) else {
            return false;
        };
        self.error(
            position,
            format!(
                "{label}: `{key}` would put a secret in the policy file; write it in a file named \
                 by `{file_key}` (or name an environment variable holding it with `{env_key}`)"
            ),
        );
        true
    }

    /// A secret's source: exactly one of a file (`file.0`, named by `file.1`) or an
    /// environment variable. `required`: complain when neither is given. `label` starts
    /// each message (`receiver `home``).
    pub fn secret(
        &mut self,
        label: &str,
        node: &Node,
        file: (&str, Option<&str>),
        env: (&str, Option<&str>),
        required: bool,
    ) -> Option<SecretSource> {
        let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
        match (file.1, env.1) {
            (Some(_), Some(_)) => {
                self.error(
                    node.key_position(env.0).unwrap_or(node.position),
                    format!("{label}: give `{}` or `{}`, not both", file.0, env.0),
                );
                None
            }
            (None, None) => {
                if required {
                    self.error(
                        node.position,
                        format!(
                            "{label}: a secret is needed: `{}` (a file holding it) or `{}` (an \
                             environment variable holding it)",
                            file.0, env.0
                        ),
                    );
                }
                None
            }
            (Some(path), None) if path.trim().is_empty() => {
                self.error(at(file.0), format!("{label}: `{}` is empty", file.0));
                None
            }
            (Some(path), None) => Some(SecretSource::File(PathBuf::from(path.trim()))),
            (None, Some(name)) => {
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if valid {
                    Some(SecretSource::Env(name.to_owned()))
                } else {
                    self.error(
                        at(env.0),
                        format!(
                            "{label}: `{}` must name an environment variable (letters, digits \
                             and `_`), not hold the secret itself",
                            env.0
                        ),
                    );
                    None
                }
            }
        }
    }
}
