//! Log lines and metrics of the Kubernetes bridge, written together so they never disagree,
//! and the readiness of its watches.
//!
//! A failure is counted every time (`atalaya_connector_errors_total{connector="kubernetes",
//! stage}`) but logged once per outage of a watch, and again when its kind changes, so a
//! refused permission does not fill the log while the back-off retries.

use std::sync::{Arc, Mutex, PoisonError};

use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use tracing::{debug, error, info, warn};

/// Where to read how to grant the bridge its permissions.
pub const RBAC_MANIFEST: &str = "deploy/kustomize/base/rbac.yaml";

/// The readiness of the bridge: every watch has listed its objects and none is failing.
/// Drives the `kubernetes` readiness component and the `connected` gauge.
#[derive(Clone)]
pub(crate) struct Health {
    watches: Arc<Mutex<Vec<bool>>>,
    ready: Option<Arc<ReadyHandle>>,
    counters: ConnectorCounters,
}

impl Health {
    pub fn new(counters: ConnectorCounters, ready: Option<ReadyHandle>) -> Self {
        counters.set_connected(false);
        Self {
            watches: Arc::default(),
            ready: ready.map(Arc::new),
            counters,
        }
    }

    /// A new watch, not healthy until it has listed.
    fn slot(&self) -> usize {
        let mut watches = self.lock();
        watches.push(false);
        watches.len() - 1
    }

    fn set(&self, slot: usize, healthy: bool) {
        let all = {
            let mut watches = self.lock();
            watches[slot] = healthy;
            watches.iter().all(|h| *h)
        };
        if let Some(ready) = &self.ready {
            ready.set(all);
        }
        self.counters.set_connected(all);
    }

    /// Ready with no watch at all.
    pub fn all_healthy(&self) {
        if let Some(ready) = &self.ready {
            ready.set(true);
        }
        self.counters.set_connected(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<bool>> {
        // A list of flags: a panic elsewhere cannot leave it half-written.
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What went wrong with a request of a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The API server refused the service account (403).
    Forbidden,
    /// Listing failed (the server is down, or answered an error).
    List,
    /// Starting or following the watch failed.
    Watch,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::List => "list",
            Self::Watch => "watch",
        }
    }
}

/// The telemetry of one watch.
pub(crate) struct WatchTelemetry {
    resource: &'static str,
    group: &'static str,
    /// `at cluster scope`, `in namespace media`.
    scope: String,
    counters: ConnectorCounters,
    health: Health,
    slot: usize,
    /// What was logged of the current outage, so it is logged once.
    logged: Option<(Stage, &'static str)>,
    listed_once: bool,
}

impl WatchTelemetry {
    pub fn new(
        resource: &'static str,
        group: &'static str,
        namespace: Option<&str>,
        counters: ConnectorCounters,
        health: Health,
    ) -> Self {
        let scope = match namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "at cluster scope".to_owned(),
        };
        Self {
            resource,
            group,
            scope,
            counters,
            slot: health.slot(),
            health,
            logged: None,
            listed_once: false,
        }
    }

    /// A list completed: the watch is healthy.
    pub fn listed(&mut self, objects: usize, baseline: bool) {
        self.health.set(self.slot, true);
        if self.logged.take().is_some() {
            info!(resource = self.resource, scope = %self.scope, objects, "Kubernetes watch recovered.");
        } else if !self.listed_once {
            info!(resource = self.resource, scope = %self.scope, objects, baseline, "Kubernetes watch listed.");
        } else {
            debug!(resource = self.resource, scope = %self.scope, objects, "Kubernetes watch relisted.");
        }
        self.listed_once = true;
    }

    /// The API server answered 403 to `verb`.
    pub fn forbidden(&mut self, verb: &'static str, error: &str) {
        self.counters.error(Stage::Forbidden.as_str());
        self.health.set(self.slot, false);
        if self.logged == Some((Stage::Forbidden, verb)) {
            return;
        }
        self.logged = Some((Stage::Forbidden, verb));
        let group = if self.group.is_empty() {
            "the core API group".to_owned()
        } else {
            format!("API group {}", self.group)
        };
        error!(
            resource = self.resource,
            verb,
            scope = %self.scope,
            error,
            "Cannot {verb} {} {}: the service account needs get, list and watch on {} ({group}); see {RBAC_MANIFEST}. The other watches and connectors keep running; retrying with back-off.",
            self.resource,
            self.scope,
            self.resource,
        );
    }

    /// A request failed; `unhealthy` when the watch has stopped following changes.
    pub fn failed(&mut self, stage: Stage, what: &'static str, error: &str, unhealthy: bool) {
        self.counters.error(stage.as_str());
        if unhealthy {
            self.health.set(self.slot, false);
        }
        if self.logged == Some((stage, what)) {
            return;
        }
        self.logged = Some((stage, what));
        warn!(
            resource = self.resource,
            scope = %self.scope,
            stage = stage.as_str(),
            error,
            "Kubernetes watch failed to {what}; retrying with back-off."
        );
    }

    /// The watch's resource version expired (410 Gone): kube lists again. Protocol, not a
    /// failure.
    pub fn expired(&self) {
        debug!(resource = self.resource, scope = %self.scope, "Kubernetes watch expired; listing again.");
    }

    /// Events published on the bus.
    pub fn published(&self, events: usize) {
        self.counters.received.inc_by(events as u64);
    }
}
