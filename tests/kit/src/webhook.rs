//! A webhook receiver for tests: a [`Recorder`] on loopback that accepts Alertmanager's
//! webhook JSON at `/hook`, records every notification it accepts, and can be told to fail.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;

use crate::http::{Answer, Recorder};

/// A webhook receiver. Cheap to clone.
#[derive(Clone)]
pub struct Webhook {
    pub addr: SocketAddr,
    recorder: Recorder,
}

impl Webhook {
    /// Starts on a free loopback port (or `addr`, to come back where a previous one was).
    pub async fn start_on(addr: &str) -> Self {
        let recorder = Recorder::start_on(addr).await;
        Self {
            addr: recorder.addr,
            recorder,
        }
    }

    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub fn url(&self) -> String {
        format!("{}/hook", self.recorder.url())
    }

    /// Answers 503 to everything while set.
    pub fn set_failing(&self, failing: bool) {
        let status = if failing { 503 } else { 200 };
        self.recorder.answer("/", Answer::status(status));
    }

    /// The accepted notifications' payloads, in arrival order.
    pub fn accepted(&self) -> Vec<Value> {
        self.recorder.accepted().iter().map(|r| r.json()).collect()
    }

    /// How many requests were refused (answered 503).
    pub fn refused(&self) -> usize {
        self.recorder
            .requests()
            .iter()
            .filter(|r| r.status == 503)
            .count()
    }

    /// Idempotency keys accepted more than once.
    pub fn duplicates(&self) -> Vec<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for request in self.recorder.accepted() {
            let key = request.header("idempotency-key").unwrap_or_default();
            *seen.entry(key.to_owned()).or_default() += 1;
        }
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect()
    }

    /// Waits until `test` holds for the accepted payloads.
    pub async fn wait_until(&self, what: &str, test: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let accepted = |requests: &[crate::http::Request]| -> Vec<Value> {
            requests
                .iter()
                .filter(|r| (200..300).contains(&r.status))
                .map(crate::http::Request::json)
                .collect()
        };
        let requests = self
            .recorder
            .wait_until(what, |requests| test(&accepted(requests)))
            .await;
        accepted(&requests)
    }

    /// Waits until `count` requests were refused.
    pub async fn wait_refused(&self, count: usize) {
        self.recorder
            .wait_until(&format!("{count} refused requests"), |requests| {
                requests.iter().filter(|r| r.status == 503).count() >= count
            })
            .await;
    }
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
