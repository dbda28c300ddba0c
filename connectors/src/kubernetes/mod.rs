//! `kubernetes:` — the cluster as a source: node loss, node pressure, missing heartbeats, pod
//! failures and Warning Events become events on the bus, each change once.
//!
//! ```text
//! API server ─► kube watcher (list, watch, 410 → relist) ─► slim view ─► summary
//!     ─► compare with the known summary (memory, store) ─► events ─► bus.publish_tracked
//!     ─► every bus consumer done ─► new summary written to the store
//! ```
//!
//! # Watches
//! Four kinds, each switchable (`watches:`): nodes (`nodes.rs`), node leases in
//! `kube-node-lease` (`leases.rs`), pods (`pods.rs`) and core/v1 Events (`events.rs`);
//! pods and Events over the whole cluster or one watch per configured namespace. Each module
//! documents its subjects, labels and data; `docs/kubernetes.md` has them all. Every event
//! has the type [`EVENT_TYPE`] and the API server's URL as its source.
//!
//! # Only changes, across restarts
//! Each object is boiled down to a small summary and compared with the last known one
//! (`known.rs`): a relist (at start, after 410 Gone) tells nothing about objects that did not
//! change. The summaries are kept in the store (tables `k8s_nodes`, `k8s_leases`, `k8s_pods`,
//! `k8s_events`, and `k8s_sync` marking watches that have listed once), so after a restart
//! old Events are not told again and a change made while atalaya was down is told once. The
//! very first list of a watch is a baseline: nothing that exists is news, only problems
//! present now (a node not ready, a pressure, a stale heartbeat, a crash-looping container,
//! a pod Pending too long) are told.
//!
//! A summary is written after its events are done on the bus (at-least-once): a crash in
//! between tells the change again after the restart, never not at all.
//!
//! # Failures
//! A request refused with 403 is logged once per outage with the permission missing and a
//! pointer to the RBAC manifest, counted under `errors{stage="forbidden"}`, and retried with
//! back-off; the other watches and connectors go on. Other failures count under `list` or
//! `watch`. The `kubernetes` readiness component (and the `connected` gauge) is true while
//! every watch has listed and none is failing.
//!
//! # Layout
//! - [`config`]: the settings.
//! - `client`: the kube client configuration (kubeconfig or in-cluster).
//! - `objects`: slim views of Node, Lease, Pod and Event — only the fields read are parsed.
//! - `known`: the [`Kind`](known::Kind) of a watched object, known state, timers, and the
//!   commit stage that writes summaries after their events are done.
//! - `nodes`, `leases`, `pods`, `events`: one per kind — summary, comparison, subjects.
//! - `watch`: one watch's loop: kube's watcher, errors and back-off, lists, timers.
//! - `source`: [`KubernetesConnector`], which runs the watches.
//! - `report`: a change into bus events.
//! - `telemetry`: log lines, metrics and readiness, written together.

mod client;
pub mod config;
mod events;
mod known;
mod leases;
mod nodes;
mod objects;
mod pods;
mod report;
mod source;
mod telemetry;
mod watch;

use atalaya_bus::bus::PublishError;
use atalaya_bus::store::StoreError;

pub use config::KubernetesConfig;
pub use events::glob;
pub use leases::{Heartbeat, heartbeat};
pub use source::KubernetesConnector;
pub use telemetry::RBAC_MANIFEST;

/// The `type` of every event the bridge publishes.
pub const EVENT_TYPE: &str = "atalaya.kubernetes.change";

/// The error stages this connector counts under `atalaya_connector_errors_total{stage}`; pass
/// them to `ConnectorMetrics::connector` so they show at zero from the start.
pub const ERROR_STAGES: &[&str] = &["forbidden", "list", "watch"];

/// What can stop the Kubernetes connector.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error("cannot load the Kubernetes client configuration from {from}: {message}")]
    Kubeconfig { from: String, message: String },
    #[error("cannot build the Kubernetes client: {message}")]
    Client { message: String },
    #[error("kubernetes: {0}")]
    Store(#[from] StoreError),
    #[error("the bus closed while the Kubernetes source was running")]
    BusClosed,
    #[error("kubernetes: {0}")]
    Publish(PublishError),
    #[error("the Kubernetes connector stopped")]
    Stopped,
}
