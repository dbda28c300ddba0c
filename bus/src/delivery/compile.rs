//! Compiling an integration from its policy entry: what the routing policy's compiler hands
//! to each integration kind, and what a kind gives back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::Integration;
use super::integration::SecretSource;
use crate::yaml::{Decoder, Node};

/// An integration kind the routing policy can use: its name (the policy key is
/// `<name>_configs`) and how one entry compiles.
#[derive(Clone, Copy)]
pub struct IntegrationKind {
    pub name: &'static str,
    /// Compiles one entry of `<name>_configs`: `None` when it has errors (reported to the
    /// context's decoder, each at its position).
    pub compile: fn(&mut IntegrationContext<'_>, &Node) -> Option<Integration>,
}

impl std::fmt::Debug for IntegrationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// What compiling an integration entry may use.
pub struct IntegrationContext<'a> {
    /// Where errors go; decoding with it reports every mistake at its position.
    pub decoder: &'a mut Decoder,
    /// How messages start: "receiver `home`".
    pub label: &'a str,
    /// The policy's `global:` section, for the defaults Alertmanager keeps there
    /// (`smtp_from`, `telegram_api_url`, …).
    pub global: Option<&'a Node>,
    /// The names of the policy's time intervals (a `quiet` rule refers to them).
    pub time_intervals: &'a HashSet<String>,
    /// The policy file's directory: a relative file path in a setting is relative to it, as
    /// in Alertmanager.
    pub base_dir: &'a Path,
}

impl IntegrationContext<'_> {
    /// `path` as written, relative to the policy file's directory when relative.
    pub fn path(&self, path: &str) -> PathBuf {
        self.base_dir.join(path.trim())
    }

    /// `source`, a file relative to the policy file's directory when relative.
    pub fn secret_path(&self, source: SecretSource) -> SecretSource {
        match source {
            SecretSource::File(file) => SecretSource::File(self.base_dir.join(file)),
            env => env,
        }
    }

    /// `value` is one of `http://host…` or `https://host…`, as Alertmanager requires of a
    /// URL.
    pub fn is_http_url(value: &str) -> bool {
        let rest = value
            .strip_prefix("http://")
            .or_else(|| value.strip_prefix("https://"));
        rest.is_some_and(|rest| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            !host.is_empty() && !host.starts_with(':') && !value.contains(char::is_whitespace)
        })
    }
}
