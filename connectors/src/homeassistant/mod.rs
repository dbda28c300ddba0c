//! `homeassistant:` — Home Assistant as a source: every state change of its entities
//! becomes an event on the bus, over Home Assistant's WebSocket API.
//!
//! ```text
//! Home Assistant ─► WebSocket (auth, subscribe_events state_changed, ping/pong)
//!     ─► state_changed ─► Event ha/<domain>/<object_id> (+ area/device labels from the
//!        registries) ─► bus.publish (waits while the bus is full: reading stops)
//! ```
//!
//! # Events
//! `sensor.kitchen_temperature` changing becomes an event with subject
//! `ha/sensor/kitchen_temperature`, type [`EVENT_TYPE`], source `homeassistant://host:port`,
//! the state's `last_updated` as its time, data
//! `{"state", "attributes", "old_state", "last_changed", "last_updated"}` (states that are
//! numbers as numbers; a removed entity has state `null`), and labels `entity_id`, `domain`
//! and — when the token may read Home Assistant's registries (an administrator's) — `area`,
//! `device` and `device_name`. `state.rs` has the details; `docs/home-assistant.md` shows
//! them with a rule.
//!
//! # Failures
//! Each failed attempt is counted under its stage ([`ERROR_STAGES`]) and retried with
//! back-off; an outage is logged once, and again when its reason changes. A refused token
//! (`auth_invalid`, `stage="auth"`) is an error in the log (never the token itself) and is
//! retried after `reconnect_max`, reading `token_file` again. Frames that are not messages of
//! the API (`decode`) are counted and skipped, logged at most once a minute; a message over
//! `max_frame_bytes` (`size`) drops the connection, which is made again. Entity ids that
//! cannot be subjects are counted under `subject` and skipped. A ping unanswered for a whole
//! heartbeat interval (`heartbeat`) drops the connection. Nothing here panics on what the
//! server sends, and nothing stops the other sources.
//!
//! # Layout
//! - [`config`]: [`HomeAssistantConfig`] and [`Endpoint`](config::Endpoint), the reading of
//!   `url`.
//! - `protocol`: the messages of the WebSocket API, read and written.
//! - `registry`: the entity, device and area registries, and the labels they give.
//! - `state`: a state change becomes a bus event.
//! - `connection`: one connection, from login to its end.
//! - `source`: [`HomeAssistantConnector`], which connects again with back-off.
//! - `telemetry`: log lines, metrics and readiness, written together.

pub mod config;
mod connection;
mod protocol;
mod registry;
mod source;
mod state;
mod telemetry;

pub use config::HomeAssistantConfig;
pub use source::HomeAssistantConnector;
pub use state::{EVENT_TYPE, SUBJECT_PREFIX};

/// The `stage` labels of the connector's error counter, to create them at zero
/// (`ConnectorMetrics::connection("homeassistant", ERROR_STAGES)`).
pub const ERROR_STAGES: &[&str] = &[
    "connect",
    "auth",
    "subscribe",
    "heartbeat",
    "decode",
    "size",
    "subject",
    "registry",
    "publish",
];

/// What can stop the Home Assistant source.
#[derive(Debug, thiserror::Error)]
pub enum HomeAssistantError {
    #[error("homeassistant.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("the bus closed while the Home Assistant source was running")]
    BusClosed,
}
