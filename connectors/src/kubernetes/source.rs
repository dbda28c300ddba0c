//! [`KubernetesConnector`]: connects a kube client, loads the known state, and runs the
//! configured watches and the commit stage until shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use atalaya_bus::store::Store;
use futures_util::future::try_join_all;
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::KubernetesError;
use super::client;
use super::config::EventsApi;
use super::config::KubernetesConfig;
use super::events::{Events, Told};
use super::known::{self, Commit, Kind, SYNC_TABLE};
use super::leases::{Leases, NODE_LEASE_NAMESPACE};
use super::nodes::Nodes;
use super::objects::{EventV1View, EventView};
use super::pods::Pods;
use super::telemetry::{Health, WatchTelemetry};
use super::watch::{Shared, Watch};

/// Commits waiting for their events: bounds memory when the bus is slow.
const COMMIT_QUEUE: usize = 256;

type Task = Pin<Box<dyn Future<Output = Result<(), KubernetesError>> + Send>>;

/// The Kubernetes source: node, lease, pod and Event watches whose changes become events.
pub struct KubernetesConnector {
    config: KubernetesConfig,
    client: Client,
    /// The API server's URL, the `source` of every event.
    cluster_url: String,
    bus: Publisher,
    store: Arc<Store>,
    counters: ConnectorCounters,
    ready: Option<ReadyHandle>,
}

impl KubernetesConnector {
    /// Loads the client configuration (kubeconfig or in-cluster) and builds the client.
    /// Nothing is requested from the API server yet. A kubeconfig that cannot be read or
    /// used is an error here.
    pub async fn connect(
        config: KubernetesConfig,
        bus: Publisher,
        store: Arc<Store>,
        counters: ConnectorCounters,
        ready: Option<ReadyHandle>,
    ) -> Result<Self, KubernetesError> {
        let kube_config = client::load(&config).await?;
        let cluster_url = kube_config.cluster_url.to_string();
        let client = Client::try_from(kube_config).map_err(|e| KubernetesError::Client {
            message: e.to_string(),
        })?;
        Ok(Self {
            config,
            client,
            cluster_url: cluster_url.trim_end_matches('/').to_owned(),
            bus,
            store,
            counters,
            ready,
        })
    }

    /// The API server this connector talks to.
    pub fn cluster_url(&self) -> &str {
        &self.cluster_url
    }

    /// Runs every configured watch until `shutdown`. A watch refused by the API server (403)
    /// or failing keeps retrying with back-off without disturbing the others. Returns an
    /// error only for what retrying cannot fix: the bus or the state store failing.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), KubernetesError> {
        let Self {
            config,
            client,
            cluster_url,
            bus,
            store,
            counters,
            ready,
        } = self;
        // Also cancelled when a part fails, so everything winds down.
        let stop = shutdown.child_token();
        let (commits_tx, commits_rx) = mpsc::channel::<Commit>(COMMIT_QUEUE);
        let shared = Arc::new(Shared {
            bus,
            commits: commits_tx,
            source: cluster_url.clone(),
            reconnect: config.reconnect,
        });
        let health = Health::new(counters.clone(), ready);
        let synced: HashMap<String, Vec<u8>> = store
            .scan(SYNC_TABLE)?
            .into_iter()
            .filter_map(|(k, v)| Some((String::from_utf8(k).ok()?, v)))
            .collect();
        let namespaces = |own: &[String]| -> Vec<Option<String>> {
            let chosen = if own.is_empty() {
                &config.namespaces
            } else {
                own
            };
            if chosen.is_empty() {
                vec![None]
            } else {
                chosen.iter().cloned().map(Some).collect()
            }
        };
        let mut tasks: Vec<Task> = Vec::new();
        {
            let builder = Builder {
                client,
                store: &store,
                synced: &synced,
                shared: &shared,
                health: &health,
                counters: &counters,
                stop: &stop,
            };
            if config.watches.nodes {
                tasks.push(builder.watch_with(Nodes, None, |client, _| Api::all(client))?);
            }
            if config.watches.leases {
                let leases = Leases {
                    stale_after: config.leases.stale_after,
                };
                tasks.push(builder.watch(leases, Some(NODE_LEASE_NAMESPACE.to_owned()))?);
            }
            if config.watches.pods {
                let scopes = namespaces(&[]);
                builder.prune_outside::<Pods>(&scopes)?;
                for namespace in scopes {
                    let pods = Pods {
                        pending_after: config.pods.pending_after,
                    };
                    tasks.push(builder.watch(pods, namespace)?);
                }
            }
            if config.watches.events {
                let scopes = namespaces(&config.events.namespaces);
                let told = Arc::new(Told::default());
                let apis = &config.events.apis;
                if apis.contains(&EventsApi::Core) {
                    builder.prune_outside::<Events<EventView>>(&scopes)?;
                }
                if apis.contains(&EventsApi::EventsV1) {
                    builder.prune_outside::<Events<EventV1View>>(&scopes)?;
                }
                for namespace in scopes {
                    let filter = &config.events;
                    if apis.contains(&EventsApi::Core) {
                        let events = Events::<EventView>::new(filter.clone(), Arc::clone(&told));
                        tasks.push(builder.watch(events, namespace.clone())?);
                    }
                    if apis.contains(&EventsApi::EventsV1) {
                        let events = Events::<EventV1View>::new(filter.clone(), Arc::clone(&told));
                        tasks.push(builder.watch(events, namespace)?);
                    }
                }
            }
        }
        info!(cluster = %cluster_url, watches = tasks.len(), "Kubernetes bridge starting.");
        drop(shared);
        if tasks.is_empty() {
            // Every watch off (the service's config refuses that): nothing to do but wait.
            health.all_healthy();
            stop.cancelled().await;
            return Ok(());
        }
        let commit_stage = known::commit_stage(commits_rx, Arc::clone(&store), stop.clone());
        let stop_on_failure = |result: Result<(), KubernetesError>| {
            if result.is_err() {
                stop.cancel();
            }
            result
        };
        let watches = async { stop_on_failure(try_join_all(tasks).await.map(|_| ())) };
        let commits = async { stop_on_failure(commit_stage.await) };
        let (watches, commits) = tokio::join!(watches, commits);
        info!(cluster = %cluster_url, "Kubernetes bridge stopped.");
        watches.and(commits)
    }
}

/// Builds watches over one client, store and bus.
struct Builder<'a> {
    client: Client,
    store: &'a Store,
    synced: &'a HashMap<String, Vec<u8>>,
    shared: &'a Arc<Shared>,
    health: &'a Health,
    counters: &'a ConnectorCounters,
    stop: &'a CancellationToken,
}

impl Builder<'_> {
    /// A watch of `kind` over the cluster (`None`) or one namespace, as a task.
    fn watch<K: Kind>(&self, kind: K, namespace: Option<String>) -> Result<Task, KubernetesError>
    where
        K::Object: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        self.watch_with(kind, namespace, |client, ns| match ns {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        })
    }

    fn watch_with<K: Kind>(
        &self,
        kind: K,
        namespace: Option<String>,
        api: impl FnOnce(Client, Option<&str>) -> Api<K::Object>,
    ) -> Result<Task, KubernetesError> {
        let prefix = match &namespace {
            // Leases are keyed by name (the node's) within their one namespace.
            Some(ns) if K::RESOURCE != "leases" => format!("{ns}/"),
            _ => String::new(),
        };
        let sync_key = format!("{}/{}", K::SYNC_NAME, namespace.as_deref().unwrap_or("*"));
        let known = known::load(self.store, K::TABLE, &prefix)?;
        let synced = self.synced.contains_key(&sync_key);
        let telemetry = WatchTelemetry::new(
            K::RESOURCE,
            K::GROUP,
            namespace.as_deref(),
            self.counters.clone(),
            self.health.clone(),
        );
        let api = api(self.client.clone(), namespace.as_deref());
        let watch = Watch::new(
            kind,
            api,
            sync_key,
            known,
            synced,
            Arc::clone(self.shared),
            telemetry,
        );
        Ok(Box::pin(watch.run(self.stop.clone())))
    }

    /// Deletes the entries of `K` outside the namespaces watched now (the configuration
    /// changed), so they are neither kept forever nor compared with.
    fn prune_outside<K: Kind>(&self, scopes: &[Option<String>]) -> Result<(), KubernetesError> {
        if scopes.iter().any(Option::is_none) {
            return Ok(());
        }
        let prefixes: Vec<String> = scopes.iter().flatten().map(|ns| format!("{ns}/")).collect();
        let outside: Vec<Vec<u8>> = self
            .store
            .scan(K::TABLE)?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| !prefixes.iter().any(|p| key.starts_with(p.as_bytes())))
            .collect();
        if !outside.is_empty() {
            self.store.write_batch(K::TABLE, &[], &outside)?;
        }
        Ok(())
    }
}
