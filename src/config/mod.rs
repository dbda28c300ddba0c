//! Configuration: one YAML file, overridable from the environment.
//!
//! Every key has a default, so `atalaya run` works with no file at all. A file (`-c FILE`,
//! `$ATALAYA_CONFIG`, or `./atalaya.yaml` when present) overrides the defaults, and
//! `ATALAYA__SECTION__KEY` environment variables override the file. Unknown keys are errors.
//! All errors are collected and reported together, each with where it came from.
//!
//! # Layout
//! - `load`: reading the sources through the `config` crate and checking every key.
//! - `connectors`: the `mqtt:`, `nats:`, `kubernetes:` and `homeassistant:` sections.
//! - `ha`: the `ha:` section (high availability).
//! - `reader`: taking the merged tree apart key by key, collecting every mistake.
//! - `locate`: line and column of a key in the YAML text.
//! - `error`: `ConfigError`, a mistake and where it was made.

mod connectors;
mod error;
#[cfg(feature = "nats")]
mod ha;
mod load;
mod locate;
mod reader;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use atalaya_bus::secret::Secret;
pub use load::{ConfigSource, load};

/// Default HTTP listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9470";

/// The whole service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub bus: BusConfig,
    pub state: StateConfig,
    pub rules: RulesConfig,
    pub log: LogConfig,
    pub receivers: ReceiversConfig,
    pub shutdown: ShutdownConfig,
    pub routing: RoutingConfig,
    /// `outbox:` — delivery of notifications: retries and when to give up.
    pub outbox: crate::alerting::outbox::OutboxSettings,
    /// `history:` — how much alert history is kept.
    pub history: crate::alerting::history::HistorySettings,
    /// `mqtt:`, when configured.
    #[cfg(feature = "mqtt")]
    pub mqtt: Option<atalaya_connectors::mqtt::config::MqttConfig>,
    /// `nats:`, when configured.
    #[cfg(feature = "nats")]
    pub nats: Option<atalaya_connectors::nats::config::NatsConfig>,
    /// `kubernetes:`, when configured.
    #[cfg(feature = "kubernetes")]
    pub kubernetes: Option<atalaya_connectors::kubernetes::config::KubernetesConfig>,
    /// `homeassistant:`, when configured.
    #[cfg(feature = "homeassistant")]
    pub homeassistant: Option<atalaya_connectors::homeassistant::config::HomeAssistantConfig>,
    /// `ha:` — several replicas, one leader, on NATS JetStream. `None`: one replica.
    #[cfg(feature = "nats")]
    pub ha: Option<crate::ha::HaConfig>,
}

/// `http:` — the HTTP API (ingest, health, metrics).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the API listens. Loopback by default: exposing it is a deliberate choice.
    pub listen: SocketAddr,
    /// Bearer token required on `/api/…` when set (from `token_file` or
    /// `ATALAYA__HTTP__TOKEN`; never from the file itself, which lives in Git).
    pub token: Option<Secret>,
    /// A second bearer token that reads (`GET` on `/api/…`) but cannot change anything:
    /// for a dashboard (Grafana, Karma) on the LAN. From `read_token_file` or
    /// `ATALAYA__HTTP__READ_TOKEN`; needs `token`.
    pub read_token: Option<Secret>,
    /// Reads (`GET` on `/api/…`) need no token at all; writes still need `token`.
    pub anonymous_read: bool,
    /// The web page (`/`) shows read-only to visitors who have not logged in (a wall screen,
    /// the household on the LAN); changing anything still takes the token. Needs `token`.
    pub web_anonymous_read: bool,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long an ingest request may wait for room on a full bus before getting 503.
    pub publish_timeout: Duration,
    /// `/api` requests handled at once; with `max_body_bytes` it bounds request memory. One
    /// more is answered 503 at once, not queued.
    pub max_concurrent_requests: usize,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// The longest a request's headers may take to arrive, and a connection may sit idle.
    pub header_timeout: Duration,
    /// The longest an `/api` request may take, reading its body included (408 after).
    pub request_timeout: Duration,
    /// Serve a non-loopback address without a token. Refused otherwise: anyone who can
    /// reach the API could silence every alert, reload rules and post alerts.
    pub insecure: bool,
}

/// `bus:` — the in-process bus.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Events each consumer queue holds before publishers wait. Also the largest batch.
    pub capacity: usize,
}

/// `state:` — where durable state lives.
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub dir: PathBuf,
    /// The longest the store goes without a write while nothing changes. After a crash,
    /// timers pause for the time since the last write, so they may run this much late; each
    /// write costs an SD card about 30 KB.
    pub heartbeat: Duration,
    /// Group commit: the shortest time between two store transactions of the rules runner.
    /// Events that arrive meanwhile are evaluated and held (unacknowledged) until the next
    /// one, so a burst costs one transaction per interval, not one per batch.
    pub commit_interval: Duration,
}

/// `rules:` — where rule files are read from.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// `None`: `./rules` if it exists, else the bundled `examples/rules`, else no rules.
    pub dir: Option<PathBuf>,
    /// How long one step of the rules runner may take before `/readyz` reports it stalled.
    pub stall_timeout: Duration,
    /// Flap detection: a rule whose alerts change state more than this many times within
    /// `flap_window` is reported as flapping (0: never).
    pub flap_threshold: usize,
    pub flap_window: Duration,
}

/// `log:` — logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`info`) or directives (`info,atalaya=debug`).
    pub level: String,
    pub format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people at a terminal.
    Text,
    /// One JSON object per line, for the cluster's log collector.
    Json,
}

/// `receivers:` — where events and alerts go.
#[derive(Debug, Clone)]
pub struct ReceiversConfig {
    pub console: atalaya_connectors::console::ConsoleReceiverConfig,
}

/// `routing:` — how alerts become notifications.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// The routing policy (Alertmanager's `route`, `receivers`, `inhibit_rules`,
    /// `time_intervals`). `None`: every alert to the console, grouped by `alertname`.
    pub file: Option<PathBuf>,
    /// Where people reach this atalaya; the `externalURL` of webhook notifications.
    pub external_url: String,
    /// Most alerts one `POST /api/v2/alerts` may carry (more: 413).
    pub max_alerts_per_request: usize,
    /// Most alerts the router holds before a post adding new ones is refused (429): a
    /// flood of distinct alerts must not outgrow the pod's memory.
    pub max_alerts: usize,
}

/// `shutdown:` — graceful shutdown.
#[derive(Debug, Clone)]
pub struct ShutdownConfig {
    /// The longest a graceful shutdown (stop sources, drain the bus) may take.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig {
                listen: DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| unreachable!("the default address is valid")),
                token: None,
                read_token: None,
                anonymous_read: false,
                web_anonymous_read: false,
                max_body_bytes: 1024 * 1024,
                publish_timeout: Duration::from_secs(5),
                max_concurrent_requests: 64,
                max_connections: 256,
                header_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(30),
                insecure: false,
            },
            bus: BusConfig {
                capacity: atalaya_bus::bus::DEFAULT_CAPACITY,
            },
            state: StateConfig {
                dir: PathBuf::from("./data"),
                heartbeat: Duration::from_secs(300),
                commit_interval: Duration::from_millis(5),
            },
            rules: RulesConfig {
                dir: None,
                stall_timeout: Duration::from_secs(30),
                flap_threshold: 20,
                flap_window: Duration::from_secs(600),
            },
            log: LogConfig {
                level: "info".to_owned(),
                format: LogFormat::Text,
            },
            receivers: ReceiversConfig {
                console: Default::default(),
            },
            shutdown: ShutdownConfig {
                timeout: Duration::from_secs(10),
            },
            routing: RoutingConfig {
                file: None,
                external_url: format!("http://{DEFAULT_LISTEN}"),
                max_alerts_per_request: 1000,
                max_alerts: 5_000,
            },
            outbox: Default::default(),
            history: Default::default(),
            #[cfg(feature = "mqtt")]
            mqtt: None,
            #[cfg(feature = "nats")]
            nats: None,
            #[cfg(feature = "kubernetes")]
            kubernetes: None,
            #[cfg(feature = "homeassistant")]
            homeassistant: None,
            #[cfg(feature = "nats")]
            ha: None,
        }
    }
}
