//! High availability (`ha:`): several replicas, one leader, on NATS JetStream.
//!
//! ```text
//! every replica: store ◄── apply ◄── journal stream (R3) ◄── append ◄── leader's store
//!                 ▲                                                        │ commit only
//! election: KV bucket, key `leader` (create to take, update(revision) to    ▼ after append
//!           renew, history 1, max_age = lease TTL, followers poll)       sources acked
//! ```
//!
//! A replica starts as a follower: it applies the leader's journal to its own store, serves
//! `/healthz`, `/readyz` (ready while a leader is known) and its own `/metrics` ([`HaMetrics`]:
//! each replica is scraped for itself), and forwards every other HTTP request to the leader (its address is in the lease record). Elected, it catches up, fences off the previous leader (an epoch
//! entry: the stream refuses any append that does not expect it), writes a snapshot, and then
//! starts the service from its store exactly as a single replica would — rules, router,
//! outbox, sources. From then on every store transaction is appended to the journal before it
//! commits, so before any source is acknowledged for it. When its lease lapses by its own
//! clock, or the journal refuses an append, the process exits at once.
//!
//! # Layout
//! - `config`: [`HaConfig`], the `ha:` settings.
//! - `election`: the election as a sans-IO state machine.
//! - `lease`: the lease as the process sees it; [`ensure_leading`] before anything is sent.
//! - `journal`: the journal's entries (encoding) and a follower's applying of them.
//! - `replication`: the leader's appends, fencing, snapshots; the store's [`Journal`].
//! - `setup`: the bucket, stream and clock checked at start.
//! - `node`: the NATS side of a replica on its own thread: follow, take over, lead.
//!
//! [`Journal`]: atalaya_bus::store::Journal

pub mod config;
pub mod election;
pub mod journal;
pub mod lease;
mod node;
pub mod replication;
pub mod setup;

use std::net::SocketAddr;
use std::sync::Arc;

use atalaya_bus::store::Store;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{IntGauge, Registry};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

pub use self::config::HaConfig;
pub use self::lease::ensure_leading;
use self::node::FollowerStatus;
use self::replication::NatsJournal;
use self::setup::HaSetupError;

/// Which replica leads, under which term, and how far its journal has gone: each replica's
/// own, on its `/metrics`, leading or following.
#[derive(Clone)]
pub struct HaMetrics {
    leader: IntGauge,
    term: IntGauge,
    position: IntGauge,
}

impl HaMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        Ok(Self {
            leader: gauge(
                "atalaya_ha_leader",
                "1 while this replica leads, 0 while it follows.",
            )?,
            term: gauge(
                "atalaya_ha_term",
                "The term this replica leads under (the lease's KV revision, its fencing token); 0 while it follows.",
            )?,
            position: gauge(
                "atalaya_ha_journal_position",
                "The journal's position (stream sequence) of the last transaction this replica appended (leading) or applied (following).",
            )?,
        })
    }
}

/// How following ended.
pub enum Following {
    /// This replica leads; the store's journal is installed.
    Leading,
    /// Asked to stop while following.
    Stopped,
}

/// Why high availability stopped the start.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error(transparent)]
    Setup(#[from] HaSetupError),
    #[error("ha: cannot serve /healthz while following on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("ha: the replication thread ended")]
    ThreadEnded,
    #[error("ha: metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Follows the leader until this replica is elected (or `stop` fires): checks the NATS side,
/// applies the journal to `store`, serves `/healthz` and `/readyz` on `listen` and forwards
/// the rest of the API to the leader.
/// Elected, it installs the journal into `store` and returns; the HTTP port is free again.
/// The replica's [`HaMetrics`] are registered in `registry`, which its `/metrics` serves while
/// following.
pub async fn follow_until_leader(
    config: &HaConfig,
    store: &Arc<Store>,
    listen: SocketAddr,
    registry: &Registry,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Following, HaError> {
    let metrics = HaMetrics::register(registry)?;
    let (status_tx, status_rx) = watch::channel(FollowerStatus {
        position: store.journal_position().unwrap_or(0),
        ..Default::default()
    });
    let (setup_tx, setup_rx) = oneshot::channel();
    let (promoted_tx, promoted_rx) = oneshot::channel();
    let (requests_tx, requests_rx) = mpsc::unbounded_channel();
    let thread_config = config.clone();
    let thread_store = Arc::clone(store);
    let url = config::advertised(config, listen);
    std::thread::Builder::new()
        .name("ha".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = setup_tx.send(Err(HaSetupError::Request(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                match node::connect(&thread_config, thread_store, status_tx, url).await {
                    Ok(node) => {
                        let _ = setup_tx.send(Ok(()));
                        node.run(promoted_tx, requests_rx).await;
                    }
                    Err(e) => {
                        let _ = setup_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|_| HaError::ThreadEnded)?;

    tokio::pin!(stop);
    let setup = tokio::select! {
        setup = setup_rx => setup.map_err(|_| HaError::ThreadEnded)?,
        () = &mut stop => return Ok(Following::Stopped),
    };
    setup?;
    info!(replica = %config.replica, cluster = %config.cluster, "ha: following; the API is forwarded to the leader until this replica leads.");

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| HaError::Bind {
            address: listen,
            source,
        })?;
    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let (served_registry, served_metrics) = (registry.clone(), metrics.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            follower_routes(status_rx, served_registry, served_metrics),
        )
        .with_graceful_shutdown(async {
            let _ = http_stop_rx.await;
        })
        .await;
    });
    let outcome = tokio::select! {
        term = promoted_rx => match term {
            Ok(term) => {
                metrics.leader.set(1);
                metrics.term.set(i64::try_from(term).unwrap_or(i64::MAX));
                store.set_journal(Arc::new(NatsJournal::new(
                    requests_tx,
                    term,
                    config.snapshot_every,
                    store.journal_position().unwrap_or(0),
                    metrics.position.clone(),
                )));
                info!(term, "ha: this replica leads; starting the service.");
                Ok(Following::Leading)
            }
            Err(_) => Err(HaError::ThreadEnded),
        },
        () = &mut stop => Ok(Following::Stopped),
    };
    let _ = http_stop_tx.send(());
    let _ = server.await;
    outcome
}

/// What a follower serves: `/healthz`; `/readyz`, ready while a leader is known (the
/// Service may route to every replica); its own `/metrics`; everything else is forwarded to
/// the leader.
fn follower_routes(
    status: watch::Receiver<FollowerStatus>,
    registry: Registry,
    metrics: HaMetrics,
) -> Router {
    let client = reqwest::Client::builder()
        .timeout(FORWARD_TIMEOUT)
        .build()
        .unwrap_or_default();
    let readyz = {
        let status = status.clone();
        move || {
            let status = status.borrow().clone();
            async move {
                let code = if status.leader_url.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (
                    code,
                    format!(
                        "ha follower of {} at journal position {}\n",
                        status.leader.as_deref().unwrap_or("(no leader yet)"),
                        status.position
                    ),
                )
            }
        }
    };
    let own_metrics = {
        let status = status.clone();
        move || {
            let position = status.borrow().position;
            metrics.leader.set(0);
            metrics
                .position
                .set(i64::try_from(position).unwrap_or(i64::MAX));
            let response = crate::telemetry::metrics_response(&registry);
            async move { response }
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(own_metrics))
        .fallback(move |request: axum::extract::Request| {
            let leader = status.borrow().leader_url.clone();
            let client = client.clone();
            async move { forward(&client, leader, request).await }
        })
}

/// How long a forwarded request may take.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The largest body forwarded.
const FORWARD_MAX_BODY: usize = 8 << 20;

/// Forwards `request` to the leader's HTTP API and hands back its answer; 503 while no leader
/// is known or it cannot be reached (the caller retries, as with any unready instance).
async fn forward(
    client: &reqwest::Client,
    leader: Option<String>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    let Some(leader) = leader else {
        return unavailable("no leader yet (high availability: a failover is under way)\n".into());
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, FORWARD_MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let mut outgoing = client.request(parts.method.clone(), format!("{leader}{path}"));
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONNECTION {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.body(body).send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = (status, body).into_response();
            for (name, value) in &headers {
                if name != axum::http::header::CONTENT_LENGTH
                    && name != axum::http::header::TRANSFER_ENCODING
                    && name != axum::http::header::CONNECTION
                {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        // Never the URL's user info or the request's token: only the error's kind.
        Err(e) => unavailable(format!(
            "the leader cannot be reached ({})\n",
            if e.is_timeout() {
                "timeout"
            } else {
                "connection"
            }
        )),
    }
}
