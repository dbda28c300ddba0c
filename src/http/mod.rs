//! The HTTP API: health, readiness, metrics, and event ingest.
//!
//! # Layout
//! - `ingest`: `POST /api/v1/events` (CloudEvents, one or a batch) and
//!   `POST /api/v1/events/{subject path}` (plain JSON).
//! - `alerts`: `GET /api/v1/alerts`, `POST /api/v2/alerts` (from Prometheus), and silences
//!   under `/api/v1/silences`.
//! - `auth`: the optional bearer token on `/api/…`.
//! - `history`: alert history, explain, notifications, dead letters, tail.
//! - `ui`: the web page (`/`, `/silences`, `/rules`, …): server-rendered HTML with its own
//!   login (a signed session cookie) and CSRF tokens.
//! - this module: the router, the probes, `/metrics`, and error responses.

mod alertmanager;
mod alerts;
mod auth;
mod history;
mod ingest;
mod server;
mod ui;

pub use self::server::{ConnectionLimits, serve};
pub use self::ui::WebAccess;

use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::{ConnectorCounters, ConnectorMetrics};
use atalaya_bus::readiness::Readiness;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use prometheus::Registry;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::alerting::routing::RouterCommand;
use crate::alerting::runner::ReloadRequest;
use crate::config::{HttpConfig, Secret};
use crate::internal_events::{HttpRequestRejected, LogThrottle, RejectStage};

/// The longest `POST /-/reload` waits for the outcome.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
pub struct ApiState {
    /// Where ingested events go.
    pub publisher: Publisher,
    /// The bearer token `/api/…` requires, if any.
    pub token: Option<Secret>,
    /// A token that only reads (`http.read_token`).
    pub read_token: Option<Secret>,
    /// Reads need no token (`http.anonymous_read`).
    pub anonymous_read: bool,
    pub readiness: Readiness,
    /// Every connector's metrics: `/readyz` reports the connections' state from them.
    pub connectors: ConnectorMetrics,
    pub registry: Registry,
    /// `connector="http"` counters: accepted events and rejections by stage.
    pub counters: ConnectorCounters,
    /// Keeps a flood of bad requests from flooding the log.
    pub reject_log: LogThrottle,
    /// How long an ingest request may wait for room on the bus.
    pub publish_timeout: Duration,
    /// Where `POST /-/reload` asks for a rule reload.
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Where alert and silence requests go: the router, in the rules task.
    pub router: mpsc::Sender<RouterCommand>,
    /// `/api` requests handled at once (`http.max_concurrent_requests`).
    pub requests: tokio::sync::Semaphore,
    /// The longest an `/api` request may take (`http.request_timeout`).
    pub request_timeout: Duration,
    /// The address the API listens on (the one peer of `GET /api/v2/status`).
    pub listen: std::net::SocketAddr,
    /// When the service started (`uptime` of `GET /api/v2/status`).
    pub started_at: jiff::Timestamp,
    /// What happened to alerts (`GET /api/v1/alerts/{fingerprint}/history`).
    pub history: crate::alerting::history::History,
    /// The dead letters (`/api/v1/dead-letters`).
    pub outbox: crate::alerting::outbox::Outbox,
    /// Live events (`GET /api/v1/tail`).
    pub tail: crate::alerting::tail::Tail,
    /// The web page's sessions and who may do what there.
    pub web: WebAccess,
}

impl ApiState {
    /// Counts and logs a rejection and builds its JSON error response.
    fn reject(
        &self,
        stage: RejectStage,
        status: StatusCode,
        message: String,
        position: Option<(usize, usize)>,
    ) -> Response {
        HttpRequestRejected {
            stage,
            status: status.as_u16(),
            reason: &message,
        }
        .emit(&self.counters, &self.reject_log);
        let mut body = json!({ "error": message });
        if let Some((line, column)) = position {
            body["line"] = line.into();
            body["column"] = column.into();
        }
        let mut response = (status, Json(body)).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// The whole API.
pub fn router(state: Arc<ApiState>, config: &HttpConfig) -> Router {
    let api = Router::new()
        .route("/api/v1/events", post(ingest::structured))
        .route("/api/v1/events/{*subject}", post(ingest::plain))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route(
            "/api/v1/alerts/{fingerprint}/history",
            get(history::alert_history),
        )
        .route("/api/v1/history", get(history::rule_history))
        .route("/api/v1/rules/{name}/explain", get(history::explain_rule))
        .route("/api/v1/notifications", get(history::notifications))
        .route("/api/v1/tail", get(history::tail))
        .route("/api/v1/dead-letters", get(history::dead_letters))
        .route(
            "/api/v1/dead-letters/{id}",
            delete(history::drop_dead_letter),
        )
        .route(
            "/api/v1/dead-letters/{id}/retry",
            post(history::retry_dead_letter),
        )
        .merge(alertmanager::routes())
        .route(
            "/api/v1/silences",
            get(alerts::list_silences).post(alerts::post_silence),
        )
        .route("/api/v1/silences/{id}", delete(alerts::expire_silence))
        .route("/-/reload", post(reload))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), bounded))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ));
    let web = ui::routes()
        .layer(DefaultBodyLimit::max(config.max_body_bytes.min(64 * 1024)))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), bounded));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/-/healthy",
            get(alertmanager_healthy).head(alertmanager_healthy),
        )
        .route("/-/ready", get(alertmanager_ready).head(alertmanager_ready))
        .merge(api)
        .merge(web)
        .fallback(not_found)
        .with_state(state)
}

/// Handles an `/api` request within the bounds: at most `http.max_concurrent_requests` at
/// once (one more is answered 503 at once, not queued behind a slow body), each within
/// `http.request_timeout`, reading its body included (408 after).
async fn bounded(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let Ok(_slot) = state.requests.try_acquire() else {
        return state.reject(
            RejectStage::Busy,
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests at once; retry soon".to_owned(),
            None,
        );
    };
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => state.reject(
            RejectStage::Timeout,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {}s (http.request_timeout)",
                state.request_timeout.as_secs()
            ),
            None,
        ),
    }
}

/// `POST /-/reload`: reload the rules now; answers once the reload is done or refused.
async fn reload(State(state): State<Arc<ApiState>>) -> Response {
    let (reply, outcome) = oneshot::channel();
    let request = ReloadRequest {
        cause: "HTTP",
        reply: Some(reply),
    };
    if state.reload.send(request).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "shutting down" })),
        )
            .into_response();
    }
    match tokio::time::timeout(RELOAD_TIMEOUT, outcome).await {
        Ok(Ok(Ok(rules))) => (StatusCode::OK, Json(json!({ "rules": rules }))).into_response(),
        Ok(Ok(Err(errors))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the rule files have errors; the running rules were kept",
                "errors": errors,
            })),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the reload did not finish in time" })),
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 while every component the Service needs is ready (the API, the rules runner, the
/// bus, and a broker only with its `required_for_ready`); the brokers' connections are
/// reported beside them, so an MQTT outage does not take the Prometheus pushes and HTTP
/// ingest out of the Service with it.
async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let report = state.readiness.report();
    let components: serde_json::Map<String, serde_json::Value> = report
        .components
        .iter()
        .map(|(name, ready)| (name.clone(), (*ready).into()))
        .collect();
    let connections: serde_json::Map<String, serde_json::Value> = state
        .connectors
        .connections()
        .into_iter()
        .map(|(name, connected)| (name, connected.into()))
        .collect();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": report.ready,
        "shutting_down": report.shutting_down,
        "components": components,
        "connections": connections,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    crate::telemetry::metrics_response(&state.registry)
}

/// Alertmanager's liveness endpoint, for tools that probe it.
async fn alertmanager_healthy() -> &'static str {
    "OK"
}

/// Alertmanager's readiness endpoint: ready as `/readyz` is.
async fn alertmanager_ready(State(state): State<Arc<ApiState>>) -> Response {
    if state.readiness.report().ready {
        "OK".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({ "error": "no such endpoint; see /api/v1/events, /api/v1/alerts, /api/v1/silences, /api/v2/ (Alertmanager's API v2), /healthz, /readyz, /metrics, and the web page at /" }),
        ),
    )
        .into_response()
}
