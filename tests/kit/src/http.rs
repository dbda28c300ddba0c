//! [`Recorder`]: an HTTP server on loopback that records every request and answers as it is
//! told — the base of the stand-ins for HTTP services (webhooks, ntfy, Gotify, Matrix,
//! Discord, Pushover).
//!
//! By default every request gets `200` with an empty JSON object. [`Recorder::answer`] sets
//! the answer for paths starting with a prefix (the longest prefix wins);
//! [`Recorder::fail_next`] makes the next requests fail (a status, and headers such as
//! `Retry-After`) before the usual answer resumes; [`Recorder::stop`] makes connections
//! refused until [`Recorder::resume`] listens again on the same port.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::PATIENCE;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
    /// What this request was answered.
    pub status: u16,
}

impl Request {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A form-encoded body's field (`application/x-www-form-urlencoded`), decoded.
    pub fn form(&self, field: &str) -> Option<String> {
        self.body.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == field).then(|| decode_form(value))
        })
    }
}

/// An answer: status, extra headers, body, and how long to take.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Waits this long before answering (a slow server, for timeouts).
    pub delay: Option<std::time::Duration>,
}

impl Answer {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    /// This answer, after `delay`.
    pub fn after(mut self, delay: std::time::Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// `status` with an empty JSON object.
    pub fn status(status: u16) -> Self {
        Self::json(status, &serde_json::json!({}))
    }

    /// This answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    /// Answers by path prefix.
    answers: Vec<(String, Answer)>,
    /// Answers for the next requests, whatever their path, before the usual ones.
    next: VecDeque<Answer>,
}

/// An HTTP server on loopback recording every request. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    server: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Recorder {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts on `addr` (to come back where a previous one was).
    pub async fn start_on(addr: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the HTTP stand-in");
        let recorder = Self {
            addr: listener.local_addr().expect("its address"),
            inner: Arc::default(),
            changed: Arc::default(),
            server: Arc::default(),
        };
        recorder.serve(listener);
        recorder
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new().fallback(record).with_state(self.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers requests whose path starts with `prefix` with `answer` from now on.
    pub fn answer(&self, prefix: &str, answer: Answer) {
        let mut inner = self.inner.lock().unwrap();
        inner.answers.retain(|(p, _)| p != prefix);
        inner.answers.push((prefix.to_owned(), answer));
    }

    /// Answers the next `count` requests with `answer` (a failure, say), whatever their path.
    pub fn fail_next(&self, count: usize, answer: Answer) {
        let mut inner = self.inner.lock().unwrap();
        inner.next.extend(std::iter::repeat_n(answer, count));
    }

    /// Stops listening: connections are refused until [`Recorder::resume`].
    pub fn stop(&self) {
        if let Some(task) = self.server.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        // The aborted server's listener is closed once its task is dropped; retry briefly.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "rebind: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        };
        self.serve(listener);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits (within [`PATIENCE`]) until `test` holds for the requests so far; returns them.
    pub async fn wait_until(&self, what: &str, test: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let changed = self.changed.notified();
            let requests = self.requests();
            if test(&requests) {
                return requests;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("the HTTP stand-in never got {what}; requests: {requests:#?}");
            }
        }
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut inner = recorder.inner.lock().unwrap();
        let answer = inner.next.pop_front().unwrap_or_else(|| {
            inner
                .answers
                .iter()
                .filter(|(prefix, _)| uri.path().starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map_or_else(|| Answer::status(200), |(_, a)| a.clone())
        });
        inner.requests.push(Request {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: answer.status,
        });
        answer
    };
    recorder.changed.notify_waiters();
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `a+b%20c` → `a b c`.
fn decode_form(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
