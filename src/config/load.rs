//! Loading: defaults, then the YAML file, then `ATALAYA__…` environment variables, merged by
//! the `config` crate; then every key is checked here so that all mistakes are reported at
//! once, each with its file position or environment variable.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat, Map, Value, ValueKind};

use super::locate::{Locator, Position};
use super::{Config, LogFormat, Secret};

/// The `origin` the `config` crate gives values from the environment.
const ENV_ORIGIN: &str = "the environment";
/// Prefix of environment overrides: `ATALAYA__HTTP__LISTEN` sets `http.listen`.
pub const ENV_PREFIX: &str = "ATALAYA";
/// The config file used when none is named and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "atalaya.yaml";

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: embedded defaults (and environment overrides).
    Defaults,
    File(PathBuf),
}

impl ConfigSource {
    /// The file to read: the one named, else `./atalaya.yaml` when it exists.
    pub fn resolve(named: Option<&Path>) -> Self {
        match named {
            Some(path) => Self::File(path.to_owned()),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::File(PathBuf::from(DEFAULT_CONFIG_FILE))
            }
            None => Self::Defaults,
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Defaults => f.write_str("embedded defaults"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One configuration mistake, with where it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    place: Place,
    /// The dotted key (`http.listen`), when the mistake is about one key.
    key: Option<String>,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    File {
        path: PathBuf,
        position: Option<Position>,
    },
    Env {
        var: String,
    },
    Unknown,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::File {
                path,
                position: Some(p),
            } => write!(f, "{}:{}:{}: ", path.display(), p.line, p.column)?,
            Place::File {
                path,
                position: None,
            } => write!(f, "{}: ", path.display())?,
            Place::Env { var } => write!(f, "environment variable {var}: ")?,
            Place::Unknown => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Loads the configuration from `source` and the environment (`env`: `None` reads the
/// process environment; tests pass their own).
pub fn load(
    source: &ConfigSource,
    env: Option<HashMap<String, String>>,
) -> Result<Config, Vec<ConfigError>> {
    let mut builder = config::Config::builder();
    let mut ctx = Ctx {
        file: None,
        locator: None,
        errors: Vec::new(),
    };
    let text;
    if let ConfigSource::File(path) = source {
        let file_error = |message: String| {
            vec![ConfigError {
                place: Place::File {
                    path: path.clone(),
                    position: None,
                },
                key: None,
                message,
            }]
        };
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            return Err(file_error(
                "not a YAML file: config files end in .yaml or .yml".to_owned(),
            ));
        }
        text = std::fs::read_to_string(path)
            .map_err(|e| file_error(format!("cannot read config file: {e}")))?;
        let locator = Locator::parse(&text).map_err(|e| {
            vec![ConfigError {
                place: Place::File {
                    path: path.clone(),
                    position: Some(e.position),
                },
                key: None,
                message: format!("invalid YAML: {}", e.message),
            }]
        })?;
        ctx.file = Some(path.clone());
        ctx.locator = Some(locator);
        builder = builder.add_source(File::from_str(&text, FileFormat::Yaml));
    }
    let env_source = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .source(env.map(|vars| vars.into_iter().collect()));
    let merged = builder.add_source(env_source).build().map_err(|e| {
        vec![ConfigError {
            place: match source {
                ConfigSource::File(path) => Place::File {
                    path: path.clone(),
                    position: None,
                },
                ConfigSource::Defaults => Place::Unknown,
            },
            key: None,
            message: e.to_string(),
        }]
    })?;

    let config = read_config(merged.cache, &mut ctx);
    if ctx.errors.is_empty() {
        Ok(config)
    } else {
        Err(ctx.errors)
    }
}

fn read_config(root: Value, ctx: &mut Ctx) -> Config {
    let mut config = Config::default();
    let mut root = Table::new(String::new(), Some(root), ctx);

    let mut http = root.section(ctx, "http");
    let h = &mut config.http;
    if let Some(v) = http.get(ctx, "listen", socket_addr) {
        h.listen = v;
    }
    h.token = read_token(&mut http, ctx);
    if let Some(v) = http.get(ctx, "max_body_bytes", |v| integer(v, 1, 1 << 30)) {
        h.max_body_bytes = v;
    }
    if let Some(v) = http.get(ctx, "publish_timeout", duration) {
        h.publish_timeout = v;
    }
    if let Some(v) = http.get(ctx, "max_concurrent_requests", |v| integer(v, 1, 65_536)) {
        h.max_concurrent_requests = v;
    }
    http.finish(ctx);

    let mut bus = root.section(ctx, "bus");
    if let Some(v) = bus.get(ctx, "capacity", |v| integer(v, 1, 1 << 20)) {
        config.bus.capacity = v;
    }
    bus.finish(ctx);

    let mut state = root.section(ctx, "state");
    if let Some(v) = state.get(ctx, "dir", path) {
        config.state.dir = v;
    }
    state.finish(ctx);

    let mut rules = root.section(ctx, "rules");
    config.rules.dir = rules.get(ctx, "dir", path);
    rules.finish(ctx);

    let mut log = root.section(ctx, "log");
    if let Some(v) = log.get(ctx, "level", log_filter) {
        config.log.level = v;
    }
    if let Some(v) = log.get(ctx, "format", log_format) {
        config.log.format = v;
    }
    log.finish(ctx);

    let mut receivers = root.section(ctx, "receivers");
    let mut console = receivers.section(ctx, "console");
    let c = &mut config.receivers.console;
    if let Some(v) = console.get(ctx, "enabled", boolean) {
        c.enabled = v;
    }
    if let Some(v) = console.get(ctx, "events", boolean) {
        c.events = v;
    }
    console.finish(ctx);
    receivers.finish(ctx);

    let mut shutdown = root.section(ctx, "shutdown");
    if let Some(v) = shutdown.get(ctx, "timeout", duration) {
        config.shutdown.timeout = v;
    }
    shutdown.finish(ctx);

    root.finish(ctx);
    config
}

/// `http.token` (environment only) or `http.token_file`.
fn read_token(http: &mut Table, ctx: &mut Ctx) -> Option<Secret> {
    let inline = http.take("token");
    let file = http.get(ctx, "token_file", path);
    let key = "http.token";
    let token = match (inline, file) {
        (Some(_), Some(_)) => {
            ctx.error(
                key,
                None,
                Anchor::Key,
                "set either http.token (environment) or http.token_file, not both",
            );
            return None;
        }
        (Some(value), None) if value.origin() != Some(ENV_ORIGIN) => {
            ctx.error(
                key,
                Some(&value),
                Anchor::Key,
                "secrets are not read from the config file (it lives in Git): use http.token_file or the ATALAYA__HTTP__TOKEN environment variable",
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
                    "http.token_file",
                    http.last.as_ref(),
                    Anchor::Value,
                    format!("cannot read {}: {e}", path.display()),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    if token.trim().is_empty() {
        ctx.error(key, None, Anchor::Key, "the token is empty");
        return None;
    }
    Some(Secret::new(token))
}

struct Ctx {
    file: Option<PathBuf>,
    locator: Option<Locator>,
    errors: Vec<ConfigError>,
}

/// Whether an error points at the key or at its value.
#[derive(Clone, Copy)]
enum Anchor {
    Key,
    Value,
}

impl Ctx {
    fn error(
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
struct Table {
    path: String,
    entries: Map<String, Value>,
    known: Vec<&'static str>,
    /// The value last taken by `get`, for errors found after parsing (an unreadable file).
    last: Option<Value>,
}

impl Table {
    fn new(path: String, value: Option<Value>, ctx: &mut Ctx) -> Self {
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
        }
    }

    fn full(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&mut self, key: &'static str) -> Option<Value> {
        self.known.push(key);
        self.entries.remove(key)
    }

    fn section(&mut self, ctx: &mut Ctx, key: &'static str) -> Table {
        let value = self.take(key);
        Table::new(self.full(key), value, ctx)
    }

    fn get<T>(
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

    /// Reports every key nobody asked for, suggesting the closest known one.
    fn finish(self, ctx: &mut Ctx) {
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

fn describe(value: &Value) -> &'static str {
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

fn string(value: &Value) -> Result<String, String> {
    match &value.kind {
        ValueKind::String(s) => Ok(s.clone()),
        ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => {
            Err(format!("expected a string, found {}", describe(value)))
        }
        other => Ok(other.to_string()),
    }
}

fn path(value: &Value) -> Result<PathBuf, String> {
    let s = string(value)?;
    if s.is_empty() {
        return Err("the path is empty".to_owned());
    }
    Ok(PathBuf::from(s))
}

fn boolean(value: &Value) -> Result<bool, String> {
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

fn integer(value: &Value, min: usize, max: usize) -> Result<usize, String> {
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

fn duration(value: &Value) -> Result<Duration, String> {
    let text = match &value.kind {
        ValueKind::String(s) => s.clone(),
        _ => {
            return Err(format!(
                "expected a duration with a unit such as `5s` or `2m`, found {}",
                describe(value)
            ));
        }
    };
    let parsed: jiff::SignedDuration = text.parse().map_err(|_| {
        format!("`{text}` is not a duration; write it like `500ms`, `5s`, `2m` or `1h30m`")
    })?;
    Duration::try_from(parsed)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}`: the duration must be positive"))
}

fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
    let s = string(value)?;
    s.parse().map_err(|_| {
        format!("`{s}` is not an address; write IP:PORT such as `127.0.0.1:9470` or `[::]:9470`")
    })
}

fn log_format(value: &Value) -> Result<LogFormat, String> {
    match string(value)?.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "`{other}` is not a log format; use `text` or `json`"
        )),
    }
}

fn log_filter(value: &Value) -> Result<String, String> {
    let s = string(value)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(&s)
        .map_err(|e| {
            format!(
                "`{s}` is not a log level or filter ({e}); use e.g. `info` or `info,atalaya=debug`"
            )
        })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, ConfigSource) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atalaya.yaml");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        (dir, ConfigSource::File(path))
    }

    fn env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn errors(source: &ConfigSource, vars: &[(&str, &str)]) -> Vec<String> {
        let dir = match source {
            ConfigSource::File(p) => format!("{}/", p.parent().unwrap().display()),
            ConfigSource::Defaults => String::new(),
        };
        load(source, env(vars))
            .unwrap_err()
            .iter()
            .map(|e| e.to_string().replace(&dir, ""))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = load(&ConfigSource::Defaults, env(&[])).unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:9470");
        assert_eq!(config.state.dir, PathBuf::from("./data"));
        assert!(config.http.token.is_none());
        assert!(config.receivers.console.enabled);
    }

    #[test]
    fn file_values_and_environment_overrides() {
        let (_dir, source) = file(
            "http:\n  listen: 0.0.0.0:9000\n  publish_timeout: 2s\nbus:\n  capacity: 16\nlog:\n  format: json\n",
        );
        let config = load(
            &source,
            env(&[
                ("ATALAYA__HTTP__LISTEN", "127.0.0.1:9100"),
                ("ATALAYA__HTTP__TOKEN", "00123"),
                ("ATALAYA__RECEIVERS__CONSOLE__EVENTS", "false"),
                ("ATALAYA_TOKEN", "not ours: single underscore"),
            ]),
        )
        .unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(config.http.publish_timeout, Duration::from_secs(2));
        assert_eq!(config.bus.capacity, 16);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.http.token.unwrap().expose(), "00123");
        assert!(!config.receivers.console.events);
    }

    #[test]
    fn every_mistake_is_reported_at_once_with_its_place() {
        let (_dir, source) = file(
            "http:\n  listen: 9470\n  max_body_byte: 10\nbus:\n  capacity: -1\nshutdown:\n  timeout: 10\nlogs: {}\n",
        );
        assert_eq!(
            errors(&source, &[("ATALAYA__LOG__FORMAT", "xml")]),
            [
                "atalaya.yaml:2:11: http.listen: `9470` is not an address; write IP:PORT such as `127.0.0.1:9470` or `[::]:9470`",
                "atalaya.yaml:3:3: http.max_body_byte: unknown key `max_body_byte`; did you mean `max_body_bytes`?",
                "atalaya.yaml:5:13: bus.capacity: -1 is out of range (1 to 1048576)",
                "environment variable ATALAYA__LOG__FORMAT: log.format: `xml` is not a log format; use `text` or `json`",
                "atalaya.yaml:7:12: shutdown.timeout: expected a duration with a unit such as `5s` or `2m`, found an integer",
                "atalaya.yaml:8:1: logs: unknown key `logs`; did you mean `log`?",
            ]
        );
    }

    #[test]
    fn secrets_come_from_files_or_environment_only() {
        let (_dir, source) = file("http:\n  token: hunter2\n");
        let errs = errors(&source, &[]);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with(
            "atalaya.yaml:2:3: http.token: secrets are not read from the config file"
        ));
        assert!(!errs[0].contains("hunter2"));

        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, "s3cret\n").unwrap();
        let (_d, source) = file(&format!("http:\n  token_file: {}\n", token_path.display()));
        let config = load(&source, env(&[])).unwrap();
        assert_eq!(config.http.token.unwrap().expose(), "s3cret");

        let (_d, source) = file("http:\n  token_file: /nonexistent/token\n");
        let errs = errors(&source, &[]);
        assert!(
            errs[0]
                .starts_with("atalaya.yaml:2:15: http.token_file: cannot read /nonexistent/token"),
            "{errs:?}"
        );
    }

    #[test]
    fn syntax_errors_and_wrong_shapes() {
        let (_dir, source) = file("http:\n  listen: [1,\n");
        let errs = errors(&source, &[]);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("atalaya.yaml:3:1: invalid YAML"),
            "{errs:?}"
        );

        let (_dir, source) = file("http: 5\n");
        assert_eq!(
            errors(&source, &[]),
            ["atalaya.yaml:1:7: http: expected a mapping of keys, found an integer"]
        );

        let (_dir, source) = file("");
        assert!(
            load(&source, env(&[])).is_ok(),
            "an empty file means defaults"
        );
    }

    #[test]
    fn only_yaml_files() {
        let err = load(&ConfigSource::File("atalaya.toml".into()), env(&[])).unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "atalaya.toml: not a YAML file: config files end in .yaml or .yml"
        );
    }
}
