//! Loading: defaults, then the YAML file, then `ATALAYA__…` environment variables, merged by
//! the `config` crate; then every key is checked here so that all mistakes are reported at
//! once, each with its file position or environment variable.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use atalaya_rules::files::{MAX_FILE_BYTES, read_regular_file};
use config::{Environment, File, FileFormat, Value};

use super::Config;
use super::error::{ConfigError, ENV_PREFIX, Place};
use super::locate::Locator;
use super::reader::{
    Anchor, Ctx, Table, boolean, duration, integer, log_filter, log_format, path, secret,
    socket_addr, string,
};

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
        let bytes = read_regular_file(path, MAX_FILE_BYTES)
            .map_err(|e| file_error(format!("cannot read config file: {e}")))?;
        text = String::from_utf8(bytes)
            .map_err(|_| file_error("cannot read config file: not UTF-8 text".to_owned()))?;
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
        // In the order a person reads the file, not the order the keys were checked.
        ctx.errors.sort_by(|a, b| a.order().cmp(&b.order()));
        Err(ctx.errors)
    }
}

fn read_config(root: Value, ctx: &mut Ctx) -> Config {
    let mut config = Config::default();
    let mut root = Table::new(String::new(), Some(root), ctx);

    let mut http = root.section(ctx, "http");
    let h = &mut config.http;
    let mut listen_value = None;
    if let Some(v) = http.get(ctx, "listen", socket_addr) {
        h.listen = v;
        listen_value = http.last.clone();
    }
    h.token = secret(&mut http, ctx, "token", "token_file");
    h.read_token = secret(&mut http, ctx, "read_token", "read_token_file");
    let read_token_value = http.last.clone();
    if let Some(v) = http.get(ctx, "anonymous_read", boolean) {
        h.anonymous_read = v;
    }
    if let Some(v) = http.get(ctx, "web_anonymous_read", boolean) {
        h.web_anonymous_read = v;
    }
    if h.token.is_none() && (h.read_token.is_some() || h.anonymous_read || h.web_anonymous_read) {
        let key = if h.read_token.is_some() {
            "http.read_token_file"
        } else if h.anonymous_read {
            "http.anonymous_read"
        } else {
            "http.web_anonymous_read"
        };
        ctx.error(
            key,
            read_token_value.as_ref().or(http.last.as_ref()),
            Anchor::Value,
            "opens reads beside http.token, but no token is set: every request is open \
             already; set http.token_file (or ATALAYA__HTTP__TOKEN) too"
                .to_owned(),
        );
    }
    if let Some(v) = http.get(ctx, "insecure", boolean) {
        h.insecure = v;
    }
    if !h.listen.ip().is_loopback() && h.token.is_none() && !h.insecure {
        ctx.error(
            "http.listen",
            listen_value.as_ref(),
            Anchor::Value,
            format!(
                "{} is reachable from other machines and no token guards the API: anyone who \
                 can reach it could silence every alert, reload the rules and post alerts; set \
                 http.token_file (or ATALAYA__HTTP__TOKEN), or `http.insecure: true` to serve \
                 it open anyway",
                h.listen
            ),
        );
    }
    if let Some(v) = http.get(ctx, "max_body_bytes", |v| integer(v, 1, 1 << 30)) {
        h.max_body_bytes = v;
    }
    if let Some(v) = http.get(ctx, "publish_timeout", duration) {
        h.publish_timeout = v;
    }
    if let Some(v) = http.get(ctx, "max_concurrent_requests", |v| integer(v, 1, 65_536)) {
        h.max_concurrent_requests = v;
    }
    if let Some(v) = http.get(ctx, "max_connections", |v| integer(v, 1, 65_536)) {
        h.max_connections = v;
    }
    if let Some(v) = http.get(ctx, "header_timeout", duration) {
        h.header_timeout = v;
    }
    if let Some(v) = http.get(ctx, "request_timeout", duration) {
        h.request_timeout = v;
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
    if let Some(v) = state.get(ctx, "heartbeat", duration) {
        config.state.heartbeat = v;
    }
    if let Some(v) = state.get(ctx, "commit_interval", duration) {
        config.state.commit_interval = v;
    }
    state.finish(ctx);

    let mut rules = root.section(ctx, "rules");
    config.rules.dir = rules.get(ctx, "dir", path);
    if let Some(v) = rules.get(ctx, "stall_timeout", duration) {
        config.rules.stall_timeout = v;
    }
    if let Some(v) = rules.get(ctx, "flap_threshold", |v| integer(v, 0, 1_000_000)) {
        config.rules.flap_threshold = v;
    }
    if let Some(v) = rules.get(ctx, "flap_window", duration) {
        config.rules.flap_window = v;
    }
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

    let mut routing = root.section(ctx, "routing");
    config.routing.file = routing.get(ctx, "file", path);
    // Told here, at the key, rather than later without a place to point at.
    if let Some(file) = &config.routing.file
        && let Err(e) = std::fs::metadata(file)
    {
        let value = routing.last.clone();
        ctx.error(
            "routing.file",
            value.as_ref(),
            Anchor::Value,
            format!("cannot read {}: {e}", file.display()),
        );
    }
    if let Some(v) = routing.get(ctx, "external_url", string) {
        config.routing.external_url = v;
    }
    if let Some(v) = routing.get(ctx, "max_alerts_per_request", |v| integer(v, 1, 1 << 20)) {
        config.routing.max_alerts_per_request = v;
    }
    if let Some(v) = routing.get(ctx, "max_alerts", |v| integer(v, 1, 1 << 24)) {
        config.routing.max_alerts = v;
    }
    routing.finish(ctx);

    let mut history = root.section(ctx, "history");
    if let Some(v) = history.get(ctx, "max_age", duration) {
        config.history.max_age = v;
    }
    if let Some(v) = history.get(ctx, "max_entries", |v| integer(v, 100, 100_000_000)) {
        config.history.max_entries = v as u64;
    }
    history.finish(ctx);
    let mut outbox = root.section(ctx, "outbox");
    let o = &mut config.outbox;
    if let Some(v) = outbox.get(ctx, "initial_backoff", duration) {
        o.initial_backoff = v;
    }
    if let Some(v) = outbox.get(ctx, "max_backoff", duration) {
        o.max_backoff = v;
    }
    if let Some(v) = outbox.get(ctx, "max_attempts", |v| integer(v, 1, 1000)) {
        o.max_attempts = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = outbox.get(ctx, "max_age", duration) {
        o.max_age = v;
    }
    outbox.finish(ctx);
    // Checks across keys ("outbox.max_backoff: shorter than initial_backoff").
    for problem in config.outbox.validate() {
        let (key, message) = problem.split_once(": ").unwrap_or(("outbox", &problem));
        ctx.error(key, None, Anchor::Key, message);
    }

    #[cfg(feature = "mqtt")]
    {
        config.mqtt = super::connectors::read_mqtt(&mut root, ctx);
    }
    #[cfg(feature = "nats")]
    {
        config.nats = super::connectors::read_nats(&mut root, ctx);
    }
    #[cfg(feature = "kubernetes")]
    {
        config.kubernetes = super::connectors::read_kubernetes(&mut root, ctx);
    }
    #[cfg(feature = "nats")]
    {
        config.ha = super::ha::read_ha(&mut root, ctx);
    }
    #[cfg(feature = "homeassistant")]
    {
        config.homeassistant = super::connectors::read_homeassistant(&mut root, ctx);
    }
    root.finish(ctx);
    config
}
