//! A webhook receiver for end-to-end tests: a real HTTP server on loopback that records
//! every notification it accepts, and can be told to fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;

use super::PATIENCE;

#[derive(Default)]
struct Inner {
    /// Answer 503 to everything while set.
    failing: bool,
    /// Accepted notifications, in arrival order: (idempotency key, payload).
    accepted: Vec<(String, Value)>,
    /// Requests refused while failing.
    refused: usize,
    /// Accepted requests per idempotency key (more than 1: a duplicate).
    seen: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Webhook {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Webhook {
    /// Starts on a free loopback port (or `addr`, to come back where a previous one was).
    pub async fn start_on(addr: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind webhook");
        let addr = listener.local_addr().expect("webhook address");
        let hook = Self {
            addr,
            inner: Arc::default(),
            changed: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        hook
    }

    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap().failing = failing;
    }

    pub fn accepted(&self) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner.accepted.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn refused(&self) -> usize {
        self.inner.lock().unwrap().refused
    }

    /// Idempotency keys accepted more than once.
    pub fn duplicates(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Waits until `test` holds for the accepted payloads.
    pub async fn wait_until(&self, what: &str, test: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let changed = self.changed.notified();
            let accepted = self.accepted();
            if test(&accepted) {
                return accepted;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("webhook never got {what}; accepted: {accepted:#?}");
            }
        }
    }

    /// Waits until `count` requests were refused.
    pub async fn wait_refused(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let changed = self.changed.notified();
            if self.refused() >= count {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("webhook was not tried {count} times");
            }
        }
    }
}

async fn receive(State(hook): State<Webhook>, headers: HeaderMap, body: String) -> StatusCode {
    let status = {
        let mut inner = hook.inner.lock().unwrap();
        if inner.failing {
            inner.refused += 1;
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            *inner.seen.entry(key.clone()).or_default() += 1;
            inner.accepted.push((key, payload));
            StatusCode::OK
        }
    };
    hook.changed.notify_waiters();
    status
}

/// `alertname` of every alert in a payload, with `(resolved)` after resolved ones.
pub fn alert_names(payload: &Value) -> Vec<String> {
    payload["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let name = a["labels"]["alertname"].as_str().unwrap_or("?");
            let room = a["labels"]["room"]
                .as_str()
                .map(|r| format!("/{r}"))
                .unwrap_or_default();
            if a["status"] == "resolved" {
                format!("{name}{room}(resolved)")
            } else {
                format!("{name}{room}")
            }
        })
        .collect()
}
