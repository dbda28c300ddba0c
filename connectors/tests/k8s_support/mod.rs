//! Test support for the Kubernetes bridge, shared by the tests in `kubernetes.rs`.
//!
//! # Layout
//! - from the test kit: [`FakeApi`] (`api`), a Kubernetes API server on loopback speaking
//!   list-and-watch, and [`CapturedLogs`].
//! - this file: [`Bridge`], the connector running against the fake server on a bus with one
//!   consumer, with its metrics and readiness; [`config`], a kubeconfig pointing at the
//!   fake server.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support"
)]

pub use atalaya_test_kit::kubernetes as api;
pub use atalaya_test_kit::kubernetes::objects;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::bus::{BusBuilder, Consumer, Received};
use atalaya_bus::connector_metrics::ConnectorMetrics;
use atalaya_bus::readiness::Readiness;
use atalaya_bus::store::Store;
use atalaya_connectors::kubernetes::{
    ERROR_STAGES, KubernetesConfig, KubernetesConnector, KubernetesError,
};
use jiff::{SignedDuration, Timestamp};
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::{FakeApi, Resource};
#[allow(unused_imports, reason = "only the protocol tests read the logs")]
pub use atalaya_test_kit::CapturedLogs;
use objects::node;

/// How long a test waits for anything before it fails; generous for a loaded machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// Installs the process's rustls crypto provider, as the binary does at start.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A config whose kubeconfig (written into `dir`) points at `api`, with a short back-off.
pub fn config(api: &FakeApi, dir: &Path) -> KubernetesConfig {
    let path = dir.join("kubeconfig");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
         clusters:\n- name: fake\n  cluster:\n    server: {}\n\
         users:\n- name: fake\n  user:\n    token: not-a-secret\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n",
        api.url
    );
    std::fs::write(&path, kubeconfig).expect("write the kubeconfig");
    KubernetesConfig {
        kubeconfig: Some(path),
        reconnect: (Duration::from_millis(50), Duration::from_millis(200)),
        ..KubernetesConfig::default()
    }
}

/// The store in `dir`.
pub fn store(dir: &Path) -> Arc<Store> {
    Arc::new(Store::open(&dir.join("state")).expect("the store opens"))
}

/// The connector running on a bus with one consumer.
pub struct Bridge {
    pub registry: Registry,
    pub consumer: Consumer,
    pub readiness: Readiness,
    stop: CancellationToken,
    task: JoinHandle<Result<(), KubernetesError>>,
}

impl Bridge {
    pub async fn start(config: KubernetesConfig, store: Arc<Store>) -> Self {
        install_crypto_provider();
        let registry = Registry::new();
        let mut bus = BusBuilder::new(64, &registry).expect("bus metrics");
        let consumer = bus.consumer("test");
        let metrics = ConnectorMetrics::register(&registry).expect("connector metrics");
        let readiness = Readiness::new(&registry).expect("readiness metrics");
        let connector = KubernetesConnector::connect(
            config,
            bus.build(),
            store,
            metrics.connection("kubernetes", ERROR_STAGES),
            Some(readiness.register("kubernetes")),
        )
        .await
        .expect("the connector starts");
        let stop = CancellationToken::new();
        let task = tokio::spawn(connector.run(stop.clone()));
        Self {
            registry,
            consumer,
            readiness,
            stop,
            task,
        }
    }

    /// The next event, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.consumer.recv())
            .await
            .expect("an event within the wait")
            .expect("the bus is open")
    }

    /// The next event's subject (the event is done with at once).
    pub async fn next_subject(&mut self) -> String {
        self.next().await.subject.as_str().to_owned()
    }

    /// Whether the `kubernetes` readiness component is ready.
    pub fn ready(&self) -> bool {
        self.readiness
            .report()
            .components
            .iter()
            .any(|(name, ready)| name == "kubernetes" && *ready)
    }

    /// Polls `condition` every 20 ms until it holds, failing the test after [`WAIT`].
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let waited = async {
            while !condition(self) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(WAIT, waited).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }

    /// Waits until every watch has listed.
    pub async fn until_ready(&self) {
        self.wait_for("the bridge to be ready", Self::ready).await;
    }

    /// The value of metric `family` whose labels include every one of `labels` (0 if none).
    pub fn metric(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        atalaya_test_kit::metrics::sample(&self.registry, family, labels)
    }

    pub fn errors(&self, stage: &str) -> f64 {
        self.metric(
            "atalaya_connector_errors_total",
            &[("connector", "kubernetes"), ("stage", stage)],
        )
    }

    /// Stops the connector and checks it ended cleanly (its writes done).
    pub async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the connector stops within the wait")
            .expect("the connector task does not panic");
        result.expect("the connector ends without error");
    }
}

/// `seconds` ago.
pub fn ago(seconds: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_secs(seconds)
}

/// Only the watches named (`nodes` always, for the marker).
pub fn watching(
    mut config: KubernetesConfig,
    leases: bool,
    pods: bool,
    events: bool,
) -> KubernetesConfig {
    config.watches.nodes = true;
    config.watches.leases = leases;
    config.watches.pods = pods;
    config.watches.events = events;
    config
}

/// Adds a new healthy node and checks its `added` is the next event: nothing was told
/// between what the test already took and now.
pub async fn nothing_else_told(api: &FakeApi, bridge: &mut Bridge, marker: &str) {
    api.apply(Resource::Nodes, node(marker, "True", &[], Timestamp::now()));
    assert_eq!(
        bridge.next_subject().await,
        format!("k8s/node/{marker}/added"),
        "nothing but the marker was told"
    );
}
