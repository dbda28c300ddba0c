//! One connection to Home Assistant, from the WebSocket upgrade to its end: log in, list the
//! registries, subscribe, then read state changes onto the bus, pinging as it goes.
//!
//! Reading stops while the bus is full (the publish is awaited before the next frame is
//! read), so nothing is dropped when atalaya is merely busy; Home Assistant buffers what it
//! has not sent meanwhile. Every wait selects on the stop token.

use std::collections::{BTreeSet, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::Pattern;
use atalaya_bus::bus::Publisher;
use atalaya_bus::secret::Secret;
use futures_util::{FutureExt, SinkExt, StreamExt};
use jiff::Timestamp;
use tokio::net::TcpStream;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::config::Endpoint;
use super::protocol::{Command, ErrorBody, Incoming, StateChanged, auth_text, decode};
use super::registry::{Registries, RegistryKind};
use super::state::{Skip, to_event};
use super::telemetry::{Failure, Telemetry};

/// The longest the TCP connection, TLS and the WebSocket upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest Home Assistant may take to answer one step of login and set-up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest one frame may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a registry changed, how long to wait before listing it again: Home Assistant
/// fires these events in bursts (an integration set up, a device renamed with its entities).
const REFRESH_DELAY: Duration = Duration::from_secs(1);
/// The event this source follows.
const STATE_CHANGED: &str = "state_changed";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every connection is made with.
pub(crate) struct Link {
    pub endpoint: Endpoint,
    /// For `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub max_frame_bytes: usize,
    pub heartbeat: Duration,
    pub entities: Vec<Pattern>,
    pub bus: Publisher,
}

/// How a connection ended.
pub(crate) enum End {
    /// The stop token fired.
    Stopped,
    /// The bus is closed: nothing more can be published.
    BusClosed,
    /// It failed; `connected` if it had logged in and subscribed first.
    Failed { failure: Failure, connected: bool },
}

/// Why a step stopped the connection.
enum Halt {
    Stop,
    Bus,
    Fail(Failure),
}

impl From<Failure> for Halt {
    fn from(failure: Failure) -> Self {
        Self::Fail(failure)
    }
}

/// Runs one connection until it fails or `stop` fires.
pub(crate) async fn run(
    link: &Link,
    token: &Secret,
    registries: &mut Registries,
    telemetry: &mut Telemetry,
    stop: &CancellationToken,
) -> End {
    let ws = match open(link, stop).await {
        Ok(ws) => ws,
        Err(halt) => return end(halt, false),
    };
    let mut session = Session {
        ws,
        next_id: 1,
        link,
        telemetry,
        registries,
        stop,
        states: 0,
        updates: HashMap::new(),
        fetching: HashMap::new(),
        dirty: BTreeSet::new(),
        refresh_at: None,
        ping: None,
        paused_for_bus: false,
    };
    let ha_version = match session.set_up(token).await {
        Ok(version) => version,
        Err(halt) => return session.close(halt, false).await,
    };
    session.telemetry.connected(ha_version.as_deref());
    let halt = session.follow().await;
    session.close(halt, true).await
}

fn end(halt: Halt, connected: bool) -> End {
    match halt {
        Halt::Stop => End::Stopped,
        Halt::Bus => End::BusClosed,
        Halt::Fail(failure) => End::Failed { failure, connected },
    }
}

/// The WebSocket upgrade, within [`CONNECT_TIMEOUT`].
async fn open(link: &Link, stop: &CancellationToken) -> Result<Ws, Halt> {
    let request = link
        .endpoint
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure::Connect(e.to_string()))?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(link.max_frame_bytes))
        .max_frame_size(Some(link.max_frame_bytes));
    let connector = match &link.tls {
        Some(tls) => Connector::Rustls(Arc::clone(tls)),
        None => Connector::Plain,
    };
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    let connected = tokio::select! {
        biased;
        () = stop.cancelled() => return Err(Halt::Stop),
        connected = tokio::time::timeout(CONNECT_TIMEOUT, connect) => connected,
    };
    match connected {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(WsError::Http(response))) => Err(Failure::Connect(format!(
            "the server answered HTTP {} to the WebSocket upgrade (is the url Home Assistant's, with /api/websocket?)",
            response.status()
        ))
        .into()),
        Ok(Err(error)) => Err(Failure::Connect(error.to_string()).into()),
        Err(_) => Err(Failure::Connect(format!("no connection within {CONNECT_TIMEOUT:?}")).into()),
    }
}

struct Session<'a> {
    ws: Ws,
    /// The id of the next command: they increase per connection.
    next_id: u64,
    link: &'a Link,
    telemetry: &'a mut Telemetry,
    /// Kept across connections: labels stay known while reconnecting.
    registries: &'a mut Registries,
    stop: &'a CancellationToken,
    /// The id of the `state_changed` subscription.
    states: u64,
    /// Subscriptions to registry updates, by id.
    updates: HashMap<u64, RegistryKind>,
    /// Registry lists asked for and not answered yet, by command id.
    fetching: HashMap<u64, RegistryKind>,
    /// Registries that changed and are to be listed again at `refresh_at`.
    dirty: BTreeSet<RegistryKind>,
    refresh_at: Option<Instant>,
    /// The id of the ping not answered yet.
    ping: Option<u64>,
    /// A publish had to wait for room on the bus since the heartbeat last looked.
    paused_for_bus: bool,
}

impl Session<'_> {
    /// Login, registries, subscriptions. Returns Home Assistant's version.
    async fn set_up(&mut self, token: &Secret) -> Result<Option<String>, Halt> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        match self.next_meaningful(deadline).await? {
            Incoming::AuthRequired { .. } => {}
            other => return Err(unexpected("auth_required", &other)),
        }
        self.send(auth_text(token)).await?;
        let version = match self.next_meaningful(deadline).await? {
            Incoming::AuthOk { ha_version } => ha_version,
            Incoming::AuthInvalid { message } => {
                return Err(Failure::AuthInvalid(
                    message.unwrap_or_else(|| "no reason given".to_owned()),
                )
                .into());
            }
            other => return Err(unexpected("auth_ok", &other)),
        };
        let mut listed = Vec::new();
        for kind in RegistryKind::ALL {
            let (success, result, error) = self.call(Command::List(kind.list_command())).await?;
            if success {
                self.load_registry(kind, result);
                listed.push(kind);
            } else {
                let reason = ErrorBody::describe(error.as_ref());
                self.telemetry.registry_unavailable(kind, &reason);
            }
        }
        for kind in listed {
            let id = self.next_id;
            let (success, _, error) = self
                .call(Command::SubscribeEvents(kind.updated_event()))
                .await?;
            if success {
                self.updates.insert(id, kind);
            } else {
                let reason = ErrorBody::describe(error.as_ref());
                self.telemetry.registry_unavailable(kind, &reason);
            }
        }
        let id = self.next_id;
        let (success, _, error) = self.call(Command::SubscribeEvents(STATE_CHANGED)).await?;
        if !success {
            return Err(Failure::Subscribe(ErrorBody::describe(error.as_ref())).into());
        }
        self.states = id;
        Ok(version)
    }

    /// Sends `command` and reads until its result, handling whatever comes meanwhile.
    async fn call(
        &mut self,
        command: Command<'_>,
    ) -> Result<(bool, serde_json::Value, Option<ErrorBody>), Halt> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let id = self.command(command).await?;
        loop {
            match self.next_meaningful(deadline).await? {
                Incoming::Result {
                    id: answered,
                    success,
                    result,
                    error,
                } if answered == id => return Ok((success, result, error)),
                other => self.handle(other).await?,
            }
        }
    }

    /// Follows state changes until the connection fails or `stop` fires.
    async fn follow(&mut self) -> Halt {
        let period = self.link.heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            match self.follow_step(&mut heartbeat).await {
                Ok(()) => {}
                Err(halt) => return halt,
            }
        }
    }

    async fn follow_step(&mut self, heartbeat: &mut Interval) -> Result<(), Halt> {
        let stop = self.stop;
        let refresh_at = self.refresh_at;
        let refresh = async move {
            match refresh_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => Err(Halt::Stop),
            _ = heartbeat.tick() => {
                if self.ping.is_some() {
                    return Err(Failure::Heartbeat.into());
                }
                self.ping = Some(self.command(Command::Ping).await?);
                Ok(())
            }
            () = refresh => self.refresh().await,
            frame = self.ws.next() => {
                for message in self.read(frame)? {
                    self.handle(message).await?;
                    if self.paused_for_bus {
                        // The pong may be waiting unread behind the events: a full period
                        // more for it.
                        heartbeat.reset();
                        self.paused_for_bus = false;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Session<'_> {
    /// Reads until a message arrives, skipping (and counting) frames that hold none, within
    /// `deadline`.
    async fn next_meaningful(&mut self, deadline: Instant) -> Result<Incoming, Halt> {
        loop {
            let frame = tokio::select! {
                biased;
                () = self.stop.cancelled() => return Err(Halt::Stop),
                frame = tokio::time::timeout_at(deadline, self.ws.next()) => match frame {
                    Ok(frame) => frame,
                    Err(_) => {
                        return Err(Failure::Protocol(format!(
                            "no answer within {SETUP_TIMEOUT:?}"
                        ))
                        .into());
                    }
                },
            };
            let mut messages = self.read(frame)?.into_iter();
            if let Some(first) = messages.next() {
                // A coalesced frame during set-up: what follows the first message is handled
                // as it would be later.
                for rest in messages {
                    self.handle(rest).await?;
                }
                return Ok(first);
            }
        }
    }

    /// The messages of one frame; nothing for frames that hold none (pings, garbage,
    /// binary), which are counted when unexpected.
    fn read(&mut self, frame: Option<Result<Message, WsError>>) -> Result<Vec<Incoming>, Halt> {
        let message = match frame {
            None => return Err(Failure::Lost("the connection closed".to_owned()).into()),
            Some(Ok(message)) => message,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                return Err(Failure::TooLarge(format!(
                    "a message of {size} bytes is over the limit of {max_size}"
                ))
                .into());
            }
            Some(Err(WsError::Capacity(error))) => {
                return Err(Failure::TooLarge(error.to_string()).into());
            }
            Some(Err(error)) => return Err(Failure::Lost(error.to_string()).into()),
        };
        match message {
            Message::Text(text) => match decode(text.as_str()) {
                Ok(messages) => Ok(messages),
                Err(error) => {
                    self.telemetry.frame_skipped("decode", &error.to_string());
                    Ok(Vec::new())
                }
            },
            Message::Binary(bytes) => {
                let reason = format!("a binary frame of {} bytes", bytes.len());
                self.telemetry.frame_skipped("decode", &reason);
                Ok(Vec::new())
            }
            Message::Close(close) => {
                let reason = close.map_or_else(
                    || "Home Assistant closed the connection".to_owned(),
                    |c| {
                        format!(
                            "Home Assistant closed the connection ({}: {})",
                            c.code, c.reason
                        )
                    },
                );
                Err(Failure::Lost(reason).into())
            }
            // tungstenite answers pings by itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Vec::new()),
        }
    }

    /// One message outside of the result being waited for.
    async fn handle(&mut self, message: Incoming) -> Result<(), Halt> {
        match message {
            Incoming::Event { id, event } if id == self.states && self.states != 0 => {
                let change = match serde_json::from_value::<StateChanged>(event.data) {
                    Ok(change) => change,
                    Err(error) => {
                        let reason = format!("a state_changed event that does not read: {error}");
                        self.telemetry.frame_skipped("decode", &reason);
                        return Ok(());
                    }
                };
                let entity_id = change.entity_id.clone();
                let event = to_event(
                    change,
                    event.time_fired.as_deref(),
                    &self.link.endpoint.source,
                    &self.link.entities,
                    self.registries,
                    Timestamp::now(),
                );
                match event {
                    Ok(event) => self.publish(event).await?,
                    Err(Skip::BadEntityId(reason)) => {
                        self.telemetry.entity_skipped(&entity_id, &reason);
                    }
                    Err(Skip::Filtered) => {}
                }
            }
            Incoming::Event { id, .. } => {
                if let Some(kind) = self.updates.get(&id) {
                    self.dirty.insert(*kind);
                    self.refresh_at
                        .get_or_insert_with(|| Instant::now() + REFRESH_DELAY);
                }
            }
            Incoming::Result {
                id,
                success,
                result,
                error,
            } => {
                if let Some(kind) = self.fetching.remove(&id) {
                    if success {
                        self.load_registry(kind, result);
                    } else {
                        let reason = ErrorBody::describe(error.as_ref());
                        self.telemetry.registry_unavailable(kind, &reason);
                    }
                }
            }
            Incoming::Pong { id } => {
                if self.ping == Some(id) {
                    self.ping = None;
                }
            }
            Incoming::AuthRequired { .. }
            | Incoming::AuthOk { .. }
            | Incoming::AuthInvalid { .. } => {
                self.telemetry
                    .frame_skipped("decode", "a login message after login");
            }
        }
        Ok(())
    }

    /// Puts an event on the bus, waiting (and not reading) while the bus is full.
    async fn publish(&mut self, event: atalaya_bus::Event) -> Result<(), Halt> {
        let bus = &self.link.bus;
        let mut publish = pin!(bus.publish(event));
        let published = match (&mut publish).now_or_never() {
            Some(published) => published,
            None => {
                let started = Instant::now();
                let published = tokio::select! {
                    biased;
                    () = self.stop.cancelled() => return Err(Halt::Stop),
                    published = &mut publish => published,
                };
                self.telemetry.paused(started.elapsed());
                self.paused_for_bus = true;
                published
            }
        };
        match published {
            Ok(()) => {
                self.telemetry.published();
                Ok(())
            }
            Err(_) => {
                self.telemetry.bus_closed();
                Err(Halt::Bus)
            }
        }
    }

    /// Lists again the registries that changed (those not already being listed).
    async fn refresh(&mut self) -> Result<(), Halt> {
        self.refresh_at = None;
        let due = std::mem::take(&mut self.dirty);
        for kind in due {
            if self.fetching.values().any(|k| *k == kind) {
                // Listed again once the answer in flight is in.
                self.dirty.insert(kind);
                continue;
            }
            let id = self.command(Command::List(kind.list_command())).await?;
            self.fetching.insert(id, kind);
        }
        if !self.dirty.is_empty() {
            self.refresh_at = Some(Instant::now() + REFRESH_DELAY);
        }
        Ok(())
    }

    fn load_registry(&mut self, kind: RegistryKind, result: serde_json::Value) {
        match self.registries.replace(kind, result) {
            Ok(entries) => self.telemetry.registry_loaded(kind, entries),
            Err(reason) => self.telemetry.registry_unavailable(kind, &reason),
        }
    }

    /// Sends `command` with the next id; returns the id.
    async fn command(&mut self, command: Command<'_>) -> Result<u64, Halt> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(command.text(id)).await?;
        Ok(id)
    }

    async fn send(&mut self, text: String) -> Result<(), Halt> {
        let sent = tokio::select! {
            biased;
            () = self.stop.cancelled() => return Err(Halt::Stop),
            sent = tokio::time::timeout(WRITE_TIMEOUT, self.ws.send(Message::text(text))) => sent,
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Failure::Lost(error.to_string()).into()),
            Err(_) => Err(Failure::Lost(format!(
                "a frame could not be written within {WRITE_TIMEOUT:?}"
            ))
            .into()),
        }
    }

    /// Says goodbye (briefly: the server may be gone) and tells how the connection ended.
    async fn close(mut self, halt: Halt, connected: bool) -> End {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
        end(halt, connected)
    }
}

/// A message that has no place at this step of the login.
fn unexpected(wanted: &str, got: &Incoming) -> Halt {
    let got = match got {
        Incoming::AuthRequired { .. } => "auth_required",
        Incoming::AuthOk { .. } => "auth_ok",
        Incoming::AuthInvalid { .. } => "auth_invalid",
        Incoming::Result { .. } => "result",
        Incoming::Event { .. } => "event",
        Incoming::Pong { .. } => "pong",
    };
    Failure::Protocol(format!("expected {wanted}, got {got}")).into()
}
