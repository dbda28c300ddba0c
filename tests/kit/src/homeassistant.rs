//! [`FakeHomeAssistant`]: Home Assistant's WebSocket API on loopback, speaking the real
//! protocol at `/api/websocket` (anything else is answered 404):
//!
//! - `auth_required` first; `auth` with the right token → `auth_ok`, else `auth_invalid` and
//!   the connection closed;
//! - `subscribe_events` → a `result`, then `event` messages of that subscription;
//! - `config/entity_registry/list`, `config/device_registry/list`,
//!   `config/area_registry/list` → canned registries (or `unauthorized`, as for a user who is
//!   not an administrator);
//! - `ping` → `pong`; other commands → an `unknown_command` error result.
//!
//! Tests act as Home Assistant: push a state change to every `state_changed` subscriber, say
//! a registry changed, drop every connection, send garbage, binary or huge frames, refuse
//! the token, stop answering pings. [`FakeHomeAssistant::wait_until`] waits (within
//! [`PATIENCE`](crate::PATIENCE)) for what the server has seen: connections, logins,
//! subscriptions, commands, and whether command ids always increased.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::PATIENCE;

/// The version the stand-in says it is.
pub const HA_VERSION: &str = "2025.1.0";

/// What the server has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// WebSocket connections accepted.
    pub connections: usize,
    /// `auth` messages received, and those refused.
    pub logins: usize,
    pub refused: usize,
    /// `state_changed` subscriptions made, over all connections.
    pub state_subscriptions: usize,
    /// Open connections subscribed to `state_changed` now.
    pub state_subscribers: usize,
    /// Registry list commands received.
    pub registry_lists: usize,
    /// Pings received.
    pub pings: usize,
    /// Commands whose id was not above the connection's previous one.
    pub ids_out_of_order: usize,
}

/// What a connection is told to do.
enum Control {
    Send(Message),
    /// Drop the TCP connection without a closing handshake, as a crash or a restart does.
    Drop,
}

struct Client {
    tx: mpsc::UnboundedSender<Control>,
    /// The id of its `state_changed` subscription, once made.
    states: Option<u64>,
    /// Its subscriptions to other events: (id, event type).
    others: Vec<(u64, String)>,
}

struct Inner {
    token: String,
    refuse_auth: bool,
    forbid_registries: bool,
    answer_pings: bool,
    entities: Value,
    devices: Value,
    areas: Value,
    seen: Seen,
    /// Open, logged-in connections, by number.
    clients: Vec<(usize, Client)>,
}

/// The stand-in. Stops (and drops every connection) when dropped.
pub struct FakeHomeAssistant {
    /// `ws://127.0.0.1:PORT/api/websocket` (`wss://` over TLS).
    pub url: String,
    /// `http://127.0.0.1:PORT` (`https://`): Home Assistant's web address.
    pub web_url: String,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for FakeHomeAssistant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHomeAssistant {
    /// Starts on a free loopback port, accepting `token`, with [`Self::default_registries`].
    pub async fn start(token: &str) -> Self {
        Self::start_with(token, None).await
    }

    /// As [`Self::start`], over TLS (`wss://`, `https://`) with this PEM certificate chain
    /// and key (see [`crate::make_certs`]).
    pub async fn start_tls(token: &str, cert: &std::path::Path, key: &std::path::Path) -> Self {
        Self::start_with(token, Some(tls_acceptor(cert, key))).await
    }

    async fn start_with(token: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let scheme = if tls.is_some() { "s" } else { "" };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (entities, devices, areas) = Self::default_registries();
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_owned(),
            refuse_auth: false,
            forbid_registries: false,
            answer_pings: true,
            entities,
            devices,
            areas,
            seen: Seen::default(),
            clients: Vec::new(),
        }));
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(accept(
            listener,
            tls,
            Arc::clone(&inner),
            Arc::clone(&changed),
        ));
        Self {
            url: format!("ws{scheme}://127.0.0.1:{port}/api/websocket"),
            web_url: format!("http{scheme}://127.0.0.1:{port}"),
            inner,
            changed,
            task,
        }
    }

    /// The registries it starts with: `sensor.freezer_temperature` on device "Freezer
    /// sensor" in the Kitchen; `binary_sensor.front_door` in the Hall, on a device in the
    /// Kitchen (the entity's own area wins).
    pub fn default_registries() -> (Value, Value, Value) {
        (
            json!([
                {"entity_id": "sensor.freezer_temperature", "device_id": "d-freezer", "area_id": null, "platform": "zha", "name": null},
                {"entity_id": "binary_sensor.front_door", "device_id": "d-door", "area_id": "hall", "platform": "zha", "name": null},
            ]),
            json!([
                {"id": "d-freezer", "name": "TS0201", "name_by_user": "Freezer sensor", "area_id": "kitchen", "manufacturer": "TuYa"},
                {"id": "d-door", "name": "Door contact", "name_by_user": null, "area_id": "kitchen"},
            ]),
            json!([
                {"area_id": "kitchen", "name": "Kitchen"},
                {"area_id": "hall", "name": "Hall"},
            ]),
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_waiters();
        out
    }

    /// What the server has seen so far.
    pub fn seen(&self) -> Seen {
        // Not through `with`: a read must not wake the waiters (`wait_until` would spin).
        lock(&self.inner).seen.clone()
    }

    /// Waits (within [`PATIENCE`](crate::PATIENCE)) until what the server has seen
    /// satisfies `test`; returns it.
    pub async fn wait_until(&self, what: &str, test: impl Fn(&Seen) -> bool) -> Seen {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                let seen = self.seen();
                if test(&seen) {
                    return seen;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(PATIENCE, wait).await {
            Ok(seen) => seen,
            Err(_) => panic!(
                "Home Assistant stand-in: never saw {what}; saw {:?}",
                self.seen()
            ),
        }
    }

    /// A state change of `entity_id`, sent to every `state_changed` subscriber (`None`:
    /// the entity is new, or removed). Returns how many connections it was sent to.
    pub fn push_state(
        &self,
        entity_id: &str,
        old: Option<&str>,
        new: Option<&str>,
        attributes: Value,
    ) -> usize {
        let now = jiff::Timestamp::now().to_string();
        let state = |value: &str, attributes: Value| {
            json!({"entity_id": entity_id, "state": value, "attributes": attributes,
                   "last_changed": now, "last_updated": now,
                   "context": {"id": "01JFAKECONTEXT", "parent_id": null, "user_id": null}})
        };
        let data = json!({
            "entity_id": entity_id,
            "old_state": old.map(|o| state(o, attributes.clone())),
            "new_state": new.map(|n| state(n, attributes)),
        });
        self.push_event("state_changed", data)
    }

    /// An event of `event_type` with `data`, sent to every subscriber of that type.
    pub fn push_event(&self, event_type: &str, data: Value) -> usize {
        self.with(|inner| {
            let mut sent = 0;
            for (_, client) in &inner.clients {
                let ids: Vec<u64> = if event_type == "state_changed" {
                    client.states.into_iter().collect()
                } else {
                    client
                        .others
                        .iter()
                        .filter(|(_, t)| t == event_type)
                        .map(|(id, _)| *id)
                        .collect()
                };
                for id in ids {
                    let message = json!({"id": id, "type": "event", "event": {
                        "event_type": event_type, "data": data, "origin": "LOCAL",
                        "time_fired": jiff::Timestamp::now().to_string(),
                        "context": {"id": "01JFAKECONTEXT", "parent_id": null, "user_id": null}}});
                    if client
                        .tx
                        .send(Control::Send(Message::text(message.to_string())))
                        .is_ok()
                    {
                        sent += 1;
                    }
                }
            }
            sent
        })
    }

    /// Replaces the registries (what the next list commands answer).
    pub fn set_registries(&self, entities: Value, devices: Value, areas: Value) {
        self.with(|inner| {
            inner.entities = entities;
            inner.devices = devices;
            inner.areas = areas;
        });
    }

    /// Sends `frame` as it is to every logged-in connection.
    pub fn send_frame(&self, frame: Message) {
        self.with(|inner| {
            for (_, client) in &inner.clients {
                let _ = client.tx.send(Control::Send(frame.clone()));
            }
        });
    }

    /// Sends a text frame holding `text` (garbage, a huge message) to every logged-in
    /// connection.
    pub fn send_text(&self, text: &str) {
        self.send_frame(Message::text(text.to_owned()));
    }

    /// Sends a binary frame to every logged-in connection (the API has none).
    pub fn send_binary(&self, bytes: &[u8]) {
        self.send_frame(Message::binary(bytes.to_vec()));
    }

    /// Drops every connection without a closing handshake.
    pub fn drop_connections(&self) {
        self.with(|inner| {
            for (_, client) in inner.clients.drain(..) {
                let _ = client.tx.send(Control::Drop);
            }
            recount(inner);
        });
    }

    /// Refuses (`auth_invalid`) or accepts the token from now on.
    pub fn refuse_auth(&self, refuse: bool) {
        self.with(|inner| inner.refuse_auth = refuse);
    }

    /// Answers registry lists with `unauthorized` (a token of a user who is not an
    /// administrator), or with the registries.
    pub fn forbid_registries(&self, forbid: bool) {
        self.with(|inner| inner.forbid_registries = forbid);
    }

    /// Stops answering pings (a connection that died half-way), or answers them again.
    pub fn answer_pings(&self, answer: bool) {
        self.with(|inner| inner.answer_pings = answer);
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
) {
    // Owned here: aborting this task (the stand-in dropped) drops every connection.
    let mut connections = JoinSet::new();
    let mut number = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        number += 1;
        let (inner, changed, tls) = (Arc::clone(&inner), Arc::clone(&changed), tls.clone());
        connections.spawn(async move {
            match tls {
                None => serve(stream, number, inner, changed).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, number, inner, changed).await;
                    }
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

/// A TLS acceptor for the PEM certificate chain and key, with ring.
fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    let read = |path: &std::path::Path| std::fs::read(path).expect("read a PEM file");
    let chain = rustls_pemfile::certs(&mut read(cert).as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = rustls_pemfile::private_key(&mut read(key).as_slice())
        .expect("a key")
        .expect("a key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a certificate and its key");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection: login, then commands and controls until either side ends it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    number: usize,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
) {
    #[allow(
        clippy::result_large_err,
        reason = "the callback's type is tungstenite's, ErrorResponse included"
    )]
    let only_the_api = |request: &Request, response: Response| {
        if request.uri().path() == "/api/websocket" {
            Ok(response)
        } else {
            let mut refusal = ErrorResponse::new(Some("404: Not Found".to_owned()));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            Err(refusal)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, only_the_api).await else {
        return;
    };
    let touch = |f: &dyn Fn(&mut Inner)| {
        f(&mut lock(&inner));
        changed.notify_waiters();
    };
    touch(&|i| i.seen.connections += 1);
    let hello = json!({"type": "auth_required", "ha_version": HA_VERSION}).to_string();
    if ws.send(Message::text(hello)).await.is_err() {
        return;
    }
    let auth: Value = match ws.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap_or_default(),
        _ => return,
    };
    let accepted = {
        let mut i = lock(&inner);
        i.seen.logins += 1;
        let ok = auth["type"] == "auth" && auth["access_token"] == i.token && !i.refuse_auth;
        if !ok {
            i.seen.refused += 1;
        }
        ok
    };
    changed.notify_waiters();
    if !accepted {
        let refusal =
            json!({"type": "auth_invalid", "message": "Invalid access token or password"});
        let _ = ws.send(Message::text(refusal.to_string())).await;
        let _ = ws.close(None).await;
        return;
    }
    let ok = json!({"type": "auth_ok", "ha_version": HA_VERSION}).to_string();
    if ws.send(Message::text(ok)).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&inner).clients.push((
        number,
        Client {
            tx,
            states: None,
            others: Vec::new(),
        },
    ));
    let mut last_id = 0;
    loop {
        tokio::select! {
            control = rx.recv() => match control {
                Some(Control::Send(message)) => {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                Some(Control::Drop) | None => break,
            },
            frame = ws.next() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    match frame {
                        Some(Ok(_)) => continue,
                        _ => break,
                    }
                };
                let command: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                let id = command["id"].as_u64().unwrap_or(0);
                if id <= last_id {
                    touch(&|i| i.seen.ids_out_of_order += 1);
                }
                last_id = last_id.max(id);
                let answer = answer(&command, id, number, &inner);
                changed.notify_waiters();
                if let Some(answer) = answer
                    && ws.send(Message::text(answer.to_string())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    // Dropping `ws` drops the TCP connection.
    {
        let mut i = lock(&inner);
        i.clients.retain(|(n, _)| *n != number);
        recount(&mut i);
    }
    changed.notify_waiters();
}

fn recount(inner: &mut Inner) {
    inner.seen.state_subscribers = inner
        .clients
        .iter()
        .filter(|(_, c)| c.states.is_some())
        .count();
}

/// The answer to one command, with what it changes recorded.
fn answer(command: &Value, id: u64, number: usize, inner: &Mutex<Inner>) -> Option<Value> {
    let mut i = lock(inner);
    let result =
        |result: Value| json!({"id": id, "type": "result", "success": true, "result": result});
    let error = |code: &str, message: &str| json!({"id": id, "type": "result", "success": false, "error": {"code": code, "message": message}});
    match command["type"].as_str().unwrap_or("") {
        "subscribe_events" => {
            let event_type = command["event_type"].as_str().unwrap_or("*").to_owned();
            let (_, client) = i.clients.iter_mut().find(|(n, _)| *n == number)?;
            if event_type == "state_changed" {
                client.states = Some(id);
                i.seen.state_subscriptions += 1;
            } else {
                client.others.push((id, event_type));
            }
            recount(&mut i);
            Some(result(Value::Null))
        }
        kind @ ("config/entity_registry/list"
        | "config/device_registry/list"
        | "config/area_registry/list") => {
            i.seen.registry_lists += 1;
            if i.forbid_registries {
                return Some(error("unauthorized", "Unauthorized"));
            }
            Some(result(match kind {
                "config/entity_registry/list" => i.entities.clone(),
                "config/device_registry/list" => i.devices.clone(),
                _ => i.areas.clone(),
            }))
        }
        "ping" => {
            i.seen.pings += 1;
            i.answer_pings.then(|| json!({"id": id, "type": "pong"}))
        }
        _ => Some(error("unknown_command", "Unknown command.")),
    }
}
