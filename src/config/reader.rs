//! Reading the merged configuration tree key by key, so every mistake is collected with its
//! place instead of stopping at the first: [`Table`] hands out keys and reports the ones
//! nobody asked for; the value parsers say what they expected.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use config::{Map, Value, ValueKind};

use super::LogFormat;
use super::Secret;
use super::error::{ConfigError, ENV_ORIGIN, ENV_PREFIX, Place};
use super::locate::Locator;

/// A secret under `key` (environment only: the file lives in Git) or read from the file
/// named by `file_key` (`token` / `token_file`).
pub(super) fn secret(
    table: &mut Table,
    ctx: &mut Ctx,
    key: &'static str,
    file_key: &'static str,
) -> Option<Secret> {
    secret_and_file(table, ctx, key, file_key).map(|(secret, _)| secret)
}

/// [`secret`], and the file it was read from (for a connector that reads it again).
pub(super) fn secret_and_file(
    table: &mut Table,
    ctx: &mut Ctx,
    key: &'static str,
    file_key: &'static str,
) -> Option<(Secret, Option<PathBuf>)> {
    let inline = table.take(key);
    let file = table.get(ctx, file_key, path);
    let full = table.full(key);
    let full_file = table.full(file_key);
    let env_var = format!("{ENV_PREFIX}__{}", full.replace('.', "__").to_uppercase());
    let key = full.as_str();
    let from_file = file.clone();
    let token = match (inline, file) {
        (Some(_), Some(_)) => {
            ctx.error(
                key,
                None,
                Anchor::Key,
                format!("set either {full} (environment) or {full_file}, not both"),
            );
            return None;
        }
        (Some(value), None) if value.origin() != Some(ENV_ORIGIN) => {
            ctx.error(
                key,
                Some(&value),
                Anchor::Key,
                format!("secrets are not read from the config file (it lives in Git): use {full_file} or the {env_var} environment variable"),
            );
            return None;
        }
        (Some(value), None) => match string(&value) {
            Ok(token) => token,
            Err(message) => {
                ctx.error(key, Some(&value), Anchor::Value, message);
                return None;
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(contents) => contents.trim_end_matches(['\r', '\n']).to_owned(),
            Err(e) => {
                ctx.error(
                    &full_file,
                    table.last.as_ref(),
                    Anchor::Value,
                    format!("cannot read {}: {e}", path.display()),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    if token.trim().is_empty() {
        ctx.error(key, None, Anchor::Key, "the secret is empty");
        return None;
    }
    Some((Secret::new(token), from_file))
}

pub(super) struct Ctx {
    pub(super) file: Option<PathBuf>,
    pub(super) locator: Option<Locator>,
    pub(super) errors: Vec<ConfigError>,
}

/// Whether an error points at the key or at its value.
#[derive(Clone, Copy)]
pub(super) enum Anchor {
    Key,
    Value,
}

impl Ctx {
    pub(super) fn error(
        &mut self,
        key: &str,
        value: Option<&Value>,
        anchor: Anchor,
        message: impl Into<String>,
    ) {
        let place = match (value.and_then(Value::origin), &self.file) {
            (Some(ENV_ORIGIN), _) => Place::Env {
                var: format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase()),
            },
            (_, Some(path)) => Place::File {
                path: path.clone(),
                position: self.locator.as_ref().and_then(|l| match anchor {
                    Anchor::Key => l.key(key),
                    Anchor::Value => l.value(key),
                }),
            },
            (_, None) => Place::Unknown,
        };
        self.errors.push(ConfigError {
            place,
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }
}

/// One mapping of the config, consumed key by key; what is left at the end is unknown.
pub(super) struct Table {
    path: String,
    entries: Map<String, Value>,
    known: Vec<&'static str>,
    /// The value last taken by `get`, for errors found after parsing (an unreadable file).
    pub(super) last: Option<Value>,
    /// Keys asked for and absent, so a required one is reported once, and not when it is
    /// present but wrong (that has its own error).
    absent: Vec<&'static str>,
}

impl Table {
    pub(super) fn new(path: String, value: Option<Value>, ctx: &mut Ctx) -> Self {
        let entries = match value {
            None => Map::new(),
            Some(Value {
                kind: ValueKind::Table(map),
                ..
            }) => map,
            Some(
                v @ Value {
                    kind: ValueKind::Nil,
                    ..
                },
            ) if v.origin().is_none() || path.is_empty() => Map::new(),
            Some(other) => {
                ctx.error(
                    &path,
                    Some(&other),
                    Anchor::Value,
                    format!("expected a mapping of keys, found {}", describe(&other)),
                );
                Map::new()
            }
        };
        Self {
            path,
            entries,
            known: Vec::new(),
            last: None,
            absent: Vec::new(),
        }
    }

    pub(super) fn full(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn take(&mut self, key: &'static str) -> Option<Value> {
        self.known.push(key);
        let value = self.entries.remove(key);
        if value.is_none() {
            self.absent.push(key);
        }
        value
    }

    pub(super) fn section(&mut self, ctx: &mut Ctx, key: &'static str) -> Table {
        let value = self.take(key);
        Table::new(self.full(key), value, ctx)
    }

    pub(super) fn get<T>(
        &mut self,
        ctx: &mut Ctx,
        key: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.take(key)?;
        if matches!(value.kind, ValueKind::Nil) {
            return None;
        }
        let parsed = parse(&value);
        if let Err(message) = &parsed {
            ctx.error(
                &self.full(key),
                Some(&value),
                Anchor::Value,
                message.clone(),
            );
        }
        self.last = Some(value);
        parsed.ok()
    }

    /// Each mapping of the list under `key` (an absent key is an empty list).
    pub(super) fn list(&mut self, ctx: &mut Ctx, key: &'static str) -> Vec<Table> {
        let Some(value) = self.take(key) else {
            return Vec::new();
        };
        let path = self.full(key);
        match value.kind {
            ValueKind::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| Table::new(format!("{path}[{i}]"), Some(item), ctx))
                .collect(),
            ValueKind::Nil => Vec::new(),
            _ => {
                ctx.error(
                    &path,
                    Some(&value),
                    Anchor::Value,
                    format!("expected a list, found {}", describe(&value)),
                );
                Vec::new()
            }
        }
    }

    /// Whether the key is present (without taking it).
    pub(super) fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Reports a required key that is missing.
    pub(super) fn require<T>(&self, ctx: &mut Ctx, key: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && self.absent.contains(&key) {
            ctx.error(
                &self.path,
                None,
                Anchor::Key,
                format!("`{key}` is required"),
            );
        }
        value
    }

    /// Reports every key nobody asked for, suggesting the closest known one.
    pub(super) fn finish(self, ctx: &mut Ctx) {
        let mut unknown: Vec<(String, Value)> = self.entries.into_iter().collect();
        unknown.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in unknown {
            let full = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let mut message = format!("unknown key `{key}`");
            let closest = self
                .known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(k, &key), k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 3))
                .min();
            match closest {
                Some((_, suggestion)) => {
                    message.push_str(&format!("; did you mean `{suggestion}`?"))
                }
                None if !self.known.is_empty() => {
                    message.push_str(&format!("; known keys: {}", self.known.join(", ")))
                }
                None => {}
            }
            ctx.error(&full, Some(&value), Anchor::Key, message);
        }
    }
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value.kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a number",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a mapping",
        ValueKind::Array(_) => "a list",
    }
}

pub(super) fn string(value: &Value) -> Result<String, String> {
    match &value.kind {
        ValueKind::String(s) => Ok(s.clone()),
        ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => {
            Err(format!("expected a string, found {}", describe(value)))
        }
        other => Ok(other.to_string()),
    }
}

pub(super) fn path(value: &Value) -> Result<PathBuf, String> {
    let s = string(value)?;
    if s.is_empty() {
        return Err("the path is empty".to_owned());
    }
    Ok(PathBuf::from(s))
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match &value.kind {
        ValueKind::Boolean(b) => Ok(*b),
        ValueKind::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("expected true or false, found `{s}`")),
        },
        _ => Err(format!("expected true or false, found {}", describe(value))),
    }
}

pub(super) fn integer(value: &Value, min: usize, max: usize) -> Result<usize, String> {
    let n: Option<i128> = match &value.kind {
        ValueKind::I64(n) => Some(i128::from(*n)),
        ValueKind::U64(n) => Some(i128::from(*n)),
        ValueKind::I128(n) => Some(*n),
        ValueKind::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min as i128..=max as i128).contains(&n) => Ok(n as usize),
        Some(n) => Err(format!("{n} is out of range ({min} to {max})")),
        None => Err(format!(
            "expected a whole number, found {}",
            describe(value)
        )),
    }
}

pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    let text = match &value.kind {
        ValueKind::String(s) => s.clone(),
        _ => {
            return Err(format!(
                "expected a duration with a unit such as `5s` or `2m`, found {}",
                describe(value)
            ));
        }
    };
    // One grammar with the rule files: jiff's (`90s`, `1h30m`) or Prometheus's (`1d`, `1w`).
    let parsed = atalaya_rules::model::parse_duration(&text).ok_or_else(|| {
        format!("`{text}` is not a duration; write it like `500ms`, `5s`, `2m`, `1h30m` or `7d`")
    })?;
    Duration::try_from(parsed)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}`: the duration must be positive"))
}

pub(super) fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
    let s = string(value)?;
    s.parse().map_err(|_| {
        format!("`{s}` is not an address; write IP:PORT such as `127.0.0.1:9470` or `[::]:9470`")
    })
}

pub(super) fn log_format(value: &Value) -> Result<LogFormat, String> {
    match string(value)?.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "`{other}` is not a log format; use `text` or `json`"
        )),
    }
}

pub(super) fn log_filter(value: &Value) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let s = string(value)?;
    // A bare word is a level — or, to `tracing`, a target to log at every level and nothing
    // else: `verbose` or `warnings` would silence everything, errors included.
    for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[', '{', ':']);
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            let known: Vec<String> = LEVELS.iter().map(|l| (*l).to_owned()).collect();
            let lower = directive.to_ascii_lowercase();
            let hint = match atalaya_bus::yaml::did_you_mean(&lower, &known) {
                hint if !hint.is_empty() => hint,
                // `warnings`, `information`, `errors`: a level with more after it.
                _ => LEVELS
                    .iter()
                    .find(|level| lower.starts_with(*level))
                    .map(|level| format!("; did you mean `{level}`?"))
                    .unwrap_or_default(),
            };
            return Err(format!(
                "`{directive}` is not a log level{hint}; a level is one of {} (or a filter such \
                 as `info,atalaya=debug`)",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(&s)
        .map_err(|e| {
            format!(
                "`{s}` is not a log level or filter ({e}); use e.g. `info` or `info,atalaya=debug`"
            )
        })?;
    Ok(s)
}

/// A subject pattern (`zigbee2mqtt/+device`, `jobs/>`).
pub(super) fn pattern(value: &Value) -> Result<atalaya_bus::Pattern, String> {
    let s = string(value)?;
    atalaya_bus::Pattern::parse(&s).map_err(|e| format!("`{s}`: {e}"))
}
