//! [`ChatOps`]: what the bot asks of the service — alerts, silences, status — without
//! knowing the router. The service implements it over its router commands.

use atalaya_bus::Labels;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;

/// A future the service answers with.
pub type OpFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An alert the router holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAlert {
    pub fingerprint: String,
    pub labels: Labels,
    /// The `summary` annotation, else the alert name.
    pub summary: String,
    pub starts_at: Timestamp,
    /// Firing (whether or not silenced): false once resolved.
    pub firing: bool,
    /// Active silences that match it.
    pub silenced_by: Vec<String>,
    /// Whether a firing alert inhibits it.
    pub inhibited: bool,
}

/// A silence the router keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSilence {
    pub id: String,
    /// Its matchers, as Alertmanager writes them: `alertname="x", node=~"pi-.*"`.
    pub matchers: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

/// What a new silence matches.
#[derive(Debug, Clone, PartialEq)]
pub enum SilenceMatchers {
    /// Exactly these labels (an alert's).
    Exact(Labels),
    /// Matchers as a person writes them (`alertname=freezer_warm`, `node=~"pi-.*"`), one
    /// per item; the service parses them.
    Written(Vec<String>),
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRequest {
    pub matchers: SilenceMatchers,
    pub duration: Duration,
    pub created_by: String,
    pub comment: String,
}

/// How the service is doing, for `/status`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatStatus {
    pub version: String,
    pub uptime: Duration,
    /// Each connector with a connection, and whether it is connected.
    pub connectors: Vec<(String, bool)>,
    pub rules_loaded: u64,
    /// The last reload that was refused, when the one after it has not succeeded.
    pub reload_error: Option<String>,
    /// Notifications waiting to be delivered.
    pub outbox_depth: u64,
}

/// What the bot asks of the service. Errors are texts a person can read.
pub trait ChatOps: Send + Sync + 'static {
    /// Every alert the router holds that has not resolved.
    fn alerts(&self) -> OpFuture<'_, Result<Vec<ChatAlert>, String>>;
    /// Silences that are active or pending.
    fn silences(&self) -> OpFuture<'_, Result<Vec<ChatSilence>, String>>;
    /// Creates a silence from now for the request's duration; the silence as kept.
    fn silence(&self, request: SilenceRequest) -> OpFuture<'_, Result<ChatSilence, String>>;
    /// Makes an active silence end `duration` from now, nothing else changed.
    fn extend(&self, id: String, duration: Duration) -> OpFuture<'_, Result<ChatSilence, String>>;
    /// Ends a silence now.
    fn expire(&self, id: String) -> OpFuture<'_, Result<(), String>>;
    fn status(&self) -> OpFuture<'_, ChatStatus>;
}
