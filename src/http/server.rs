//! Serving the API's connections, with the bounds `axum::serve` lacks: a connection cap, and
//! a timeout on reading a request's headers that also closes idle keep-alive connections
//! (hyper starts it whenever the connection waits for the next request). The request
//! timeout and load-shedding are middleware (`super::limits`).
//!
//! Past the cap, a new connection is answered `503` with `Retry-After` and closed at once:
//! the process never runs out of file descriptors, and a flood is visible (counted in
//! `atalaya_connector_errors_total{connector="http",stage="connections"}`) instead of the
//! probes silently timing out.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::ApiState;
use crate::internal_events::{HttpRequestRejected, RejectStage};

/// What a connection over the cap is told before it is closed.
fn over_capacity() -> Vec<u8> {
    let body = r#"{"error":"too many connections; retry soon"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The connection bounds, from `http:`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The longest a request's headers may take to arrive, and a connection may sit idle.
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets the requests in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: Arc<ApiState>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine.
                Err(e) => {
                    debug!(error = %e, "Accepting a connection failed.");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            HttpRequestRejected {
                stage: RejectStage::Connections,
                status: 503,
                reason: "too many connections",
            }
            .emit(&state.counters, &state.reject_log);
            connections.spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(&over_capacity()),
                )
                .await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        debug!(error = %e, "HTTP connection ended with an error.");
                    }
                }
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}
