//! `kubernetes:` — which cluster, which watches, and what counts as news. Parsed from the
//! service config by the binary.

use std::path::PathBuf;
use std::time::Duration;

/// The Kubernetes bridge.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// A kubeconfig file. `None`: in-cluster (the pod's service account) when
    /// `KUBERNETES_SERVICE_HOST` is set, else `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its current context.
    pub context: Option<String>,
    /// Namespaces whose pods and Events are watched. Empty: all of them.
    pub namespaces: Vec<String>,
    pub watches: Watches,
    pub events: EventsConfig,
    pub pods: PodsConfig,
    pub leases: LeasesConfig,
    /// Back-off between attempts after the API server failed or refused a request: doubling
    /// from the first to the second, with jitter. Default 1 s to 60 s.
    pub reconnect: (Duration, Duration),
    /// Whether `/readyz` waits for every watch to have listed its objects (and turns false
    /// while one is refused). Default false (see `MqttConfig::required_for_ready`).
    pub required_for_ready: bool,
}

/// Which watches run. All default to true.
#[derive(Debug, Clone, Copy)]
pub struct Watches {
    /// Node Ready and pressure conditions, nodes added and removed.
    pub nodes: bool,
    /// Node heartbeats (leases in `kube-node-lease`).
    pub leases: bool,
    /// Pod and container failures.
    pub pods: bool,
    /// Events (core/v1 and events.k8s.io/v1, `events.apis`).
    pub events: bool,
}

/// An API serving Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsApi {
    /// `v1`: core/v1 Events (`kubectl get events`).
    Core,
    /// `events.k8s.io/v1` (`kubectl events`, and what newer components write).
    EventsV1,
}

impl EventsApi {
    /// Every API, as `events.apis` names them.
    pub const ALL: [(&'static str, Self); 2] =
        [("v1", Self::Core), ("events.k8s.io/v1", Self::EventsV1)];
}

/// `events:` — which Events become events on the bus.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// The APIs watched. Both by default: the API server serves every Event under both, and
    /// what both show is told once; one is enough where RBAC grants only one.
    pub apis: Vec<EventsApi>,
    /// Event types (`Warning`, `Normal`). Default `[Warning]`.
    pub types: Vec<String>,
    /// Only Events whose reason matches one of these (`*` matches any run of characters:
    /// `Failed*`). Empty: every reason.
    pub include_reasons: Vec<String>,
    /// Never Events whose reason matches one of these.
    pub exclude_reasons: Vec<String>,
    /// Only Events about these kinds of object (`Pod`, `Node`). Empty: every kind.
    pub involved_kinds: Vec<String>,
    /// Watch Events in these namespaces instead of `namespaces`. Empty: as `namespaces`.
    pub namespaces: Vec<String>,
}

/// `pods:` — pod watch settings.
#[derive(Debug, Clone, Copy)]
pub struct PodsConfig {
    /// A pod Pending longer than this is reported. Default 5 minutes.
    pub pending_after: Duration,
}

/// `leases:` — node heartbeat settings.
#[derive(Debug, Clone, Copy)]
pub struct LeasesConfig {
    /// A node lease not renewed for this long is a missing heartbeat. `None`: the lease's
    /// own `leaseDurationSeconds` (40 s for kubelets).
    pub stale_after: Option<Duration>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            watches: Watches {
                nodes: true,
                leases: true,
                pods: true,
                events: true,
            },
            events: EventsConfig::default(),
            pods: PodsConfig {
                pending_after: Duration::from_secs(300),
            },
            leases: LeasesConfig { stale_after: None },
            reconnect: (Duration::from_secs(1), Duration::from_secs(60)),
            required_for_ready: false,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            apis: vec![EventsApi::Core, EventsApi::EventsV1],
            types: vec!["Warning".to_owned()],
            include_reasons: Vec::new(),
            exclude_reasons: Vec::new(),
            involved_kinds: Vec::new(),
            namespaces: Vec::new(),
        }
    }
}
