//! Log lines, metrics and readiness of the Home Assistant source, written together so they
//! never disagree.
//!
//! Every failure is counted (`atalaya_connector_errors_total{connector="homeassistant",
//! stage}`); an outage is logged once, and again when its reason changes. What Home
//! Assistant (or whatever answers at its address) can send at will — garbage frames, entity
//! ids that are not subjects — is counted in full and logged at most once a minute. No line
//! ever holds the token.

use std::time::{Duration, Instant};

use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use tracing::{debug, error, info, warn};

use super::registry::RegistryKind;
use crate::log_throttle::LogThrottle;

/// At most one line per kind of repeated problem in this interval.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a connection attempt failed or a connection ended, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// TCP, TLS or the WebSocket upgrade failed.
    Connect(String),
    /// Home Assistant did not follow the API during login or set-up.
    Protocol(String),
    /// `auth_invalid`: the token is wrong, expired or revoked.
    AuthInvalid(String),
    /// The `state_changed` subscription was refused.
    Subscribe(String),
    /// An established connection broke or was closed.
    Lost(String),
    /// A ping went unanswered for a whole heartbeat interval.
    Heartbeat,
    /// A message over `max_frame_bytes`.
    TooLarge(String),
}

impl Failure {
    /// The `stage` label it is counted under.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::Connect(_) | Self::Protocol(_) | Self::Lost(_) => "connect",
            Self::AuthInvalid(_) => "auth",
            Self::Subscribe(_) => "subscribe",
            Self::Heartbeat => "heartbeat",
            Self::TooLarge(_) => "size",
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Connect(t) => format!("cannot connect: {t}"),
            Self::Protocol(t) => format!("Home Assistant did not follow its WebSocket API: {t}"),
            Self::AuthInvalid(t) => format!(
                "Home Assistant refused the access token ({t}); create a long-lived access token on your Home Assistant profile page and put it in homeassistant.token_file or ATALAYA__HOMEASSISTANT__TOKEN"
            ),
            Self::Subscribe(t) => {
                format!("Home Assistant refused the state_changed subscription: {t}")
            }
            Self::Lost(t) => format!("the connection was lost: {t}"),
            Self::Heartbeat => "Home Assistant stopped answering pings".to_owned(),
            Self::TooLarge(t) => format!(
                "{t}; raise homeassistant.max_frame_bytes if Home Assistant's registries are that large"
            ),
        }
    }

    /// Configuration problems (the token, sizes) are errors; the network coming and going
    /// is a warning.
    fn needs_attention(&self) -> bool {
        matches!(
            self,
            Self::AuthInvalid(_) | Self::Subscribe(_) | Self::TooLarge(_)
        )
    }
}

/// The connection's state, its metrics, readiness and log lines.
pub(crate) struct Telemetry {
    /// `ws://host:port/api/websocket`, for log lines.
    url: String,
    counters: ConnectorCounters,
    ready: Option<ReadyHandle>,
    /// Set while not connected: when the outage began and what was last logged about it.
    outage: Option<Outage>,
    frames: LogThrottle,
    entities: LogThrottle,
    /// The registries' refusal is logged once for the life of the process: it does not
    /// change until the token does.
    registry_logged: bool,
    token_file_logged: bool,
}

struct Outage {
    since: Instant,
    attempts: u64,
    /// The failure last written to the log in this outage.
    logged: Option<Failure>,
}

impl Telemetry {
    pub fn new(url: String, counters: ConnectorCounters, ready: Option<ReadyHandle>) -> Self {
        Self {
            url,
            counters,
            ready,
            outage: Some(Outage {
                since: Instant::now(),
                attempts: 0,
                logged: None,
            }),
            frames: LogThrottle::new(LOG_EVERY),
            entities: LogThrottle::new(LOG_EVERY),
            registry_logged: false,
            token_file_logged: false,
        }
    }

    pub fn starting(&self) {
        self.counters.set_connected(false);
        self.set_ready(false);
        info!(url = %self.url, "Home Assistant source starting.");
    }

    /// Logged in and subscribed.
    pub fn connected(&mut self, ha_version: Option<&str>) {
        self.counters.set_connected(true);
        self.set_ready(true);
        let version = ha_version.unwrap_or("unknown");
        match self.outage.take() {
            Some(outage) if outage.logged.is_some() => info!(
                url = %self.url,
                ha_version = version,
                attempts = outage.attempts + 1,
                down_for = ?outage.since.elapsed(),
                "Connected to Home Assistant again."
            ),
            _ => {
                info!(url = %self.url, ha_version = version, "Connected to Home Assistant; following state changes.")
            }
        }
    }

    /// An attempt failed, or a connection ended (`was_connected`); the next attempt is in
    /// `retry_in`.
    pub fn failed(&mut self, failure: &Failure, was_connected: bool, retry_in: Duration) {
        self.counters.error(failure.stage());
        if was_connected {
            self.counters.set_connected(false);
            self.counters.reconnects.inc();
            self.set_ready(false);
        }
        let outage = self.outage.get_or_insert_with(|| Outage {
            since: Instant::now(),
            attempts: 0,
            logged: None,
        });
        outage.attempts += 1;
        if outage.logged.as_ref() == Some(failure) {
            debug!(url = %self.url, stage = failure.stage(), reason = %failure.text(), retry_in = ?retry_in, "Home Assistant still unreachable.");
            return;
        }
        outage.logged = Some(failure.clone());
        let reason = failure.text();
        if failure.needs_attention() {
            error!(url = %self.url, stage = failure.stage(), reason = %reason, retry_in = ?retry_in, "Home Assistant source cannot follow state changes; retrying.");
        } else {
            warn!(url = %self.url, stage = failure.stage(), reason = %reason, retry_in = ?retry_in, "Home Assistant source cannot follow state changes; retrying.");
        }
    }

    /// A frame that is not a message of the API (`decode`), skipped.
    pub fn frame_skipped(&mut self, stage: &'static str, reason: &str) {
        self.counters.error(stage);
        if let Some(suppressed) = self.frames.check(Instant::now()) {
            warn!(url = %self.url, stage, reason, suppressed, "Home Assistant frame skipped.");
        }
    }

    /// A state change whose entity id cannot be a subject, skipped.
    pub fn entity_skipped(&mut self, entity_id: &str, reason: &str) {
        self.counters.error("subject");
        if let Some(suppressed) = self.entities.check(Instant::now()) {
            warn!(
                entity_id,
                reason,
                suppressed,
                "Home Assistant state change skipped: its entity id cannot be a subject."
            );
        }
    }

    /// A registry could not be listed: events go without its labels.
    pub fn registry_unavailable(&mut self, kind: RegistryKind, reason: &str) {
        self.counters.error("registry");
        if std::mem::replace(&mut self.registry_logged, true) {
            debug!(
                registry = kind.name(),
                reason, "Home Assistant registry unavailable."
            );
            return;
        }
        warn!(
            registry = kind.name(),
            reason,
            "Cannot read Home Assistant's {} registry (listing registries needs a token of an administrator); events go without the area, device and device_name labels.",
            kind.name()
        );
    }

    pub fn registry_loaded(&self, kind: RegistryKind, entries: usize) {
        debug!(
            registry = kind.name(),
            entries, "Home Assistant registry loaded."
        );
    }

    /// `token_file` could not be read again; the token read before is used.
    pub fn token_file_unreadable(&mut self, reason: &str) {
        if std::mem::replace(&mut self.token_file_logged, true) {
            return;
        }
        warn!(
            reason,
            "Cannot read homeassistant.token_file again; using the token read before."
        );
    }

    /// An event is on the bus.
    pub fn published(&self) {
        self.counters.received.inc();
    }

    /// The source stopped reading for `paused` while the bus was full.
    pub fn paused(&self, paused: Duration) {
        self.counters.paused.inc_by(paused.as_secs_f64());
    }

    /// The bus refused an event: it is closed, so the source stops.
    pub fn bus_closed(&self) {
        self.counters.error("publish");
        warn!(url = %self.url, "Bus closed under the Home Assistant source; it stops.");
    }

    pub fn stopped(&self) {
        self.counters.set_connected(false);
        info!(url = %self.url, "Home Assistant source stopped.");
    }

    fn set_ready(&self, ready: bool) {
        if let Some(handle) = &self.ready {
            handle.set(ready);
        }
    }
}
