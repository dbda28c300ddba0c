//! [`MqttConnector`]: builds the connection, then runs it — the connection loop, the bus
//! stage and the ack stage — until shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use atalaya_bus::store::Store;
use atalaya_bus::{Pattern, Subject};
use rumqttc::QoS;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::MqttError;
use super::config::MqttConfig;
use super::delivery::{BusStage, Inbound, Link, PendingAck, ack_stage};
use super::message::{Subscriptions, mqtt_filter};
use super::options::{self, OFFLINE, ONLINE};
use super::publisher::MqttPublisher;
use super::session::SessionWatch;
use super::telemetry::{ConnectionTelemetry, MessageTelemetry};
use super::wire::{Filter, Polled, Received, WireClient, WireLoop};
use atalaya_bus::backoff::Backoff;

/// At shutdown, how long events already on the bus may take to be done, so their messages
/// are acknowledged rather than redelivered after the restart.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// At shutdown, how long the goodbye (`offline`, DISCONNECT) may take to go out.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);
/// While the bus stage is behind, the longest the connection loop stops reading before it
/// polls once anyway, so keep-alive pings and action publishes still move when the whole
/// pipeline is stalled (each such poll reads at most a few packets).
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The MQTT source: one broker connection whose subscriptions become events on the bus. Its
/// [`MqttPublisher`] publishes over the same connection.
pub struct MqttConnector {
    /// `mqtt://host:port`, for log lines and event sources.
    broker: String,
    /// Queues acknowledgements and the goodbye; publishers hold clones.
    client: WireClient,
    /// The connection itself; only the connection loop polls it.
    eventloop: WireLoop,
    subscriptions: Subscriptions,
    status_topic: Option<String>,
    bus: Publisher,
    counters: ConnectorCounters,
    ready: Option<ReadyHandle>,
    required_for_ready: bool,
    reconnect: (Duration, Duration),
    /// Bounds deliveries awaiting their PUBACK, and QoS 0 messages awaiting the bus stage.
    max_inflight: usize,
    /// The incoming packet limit, for log lines about messages over it.
    packet_limit: usize,
    session: SessionWatch,
    /// Topics also handed to someone inside atalaya as they arrive (see [`MqttConnector::tap`]).
    taps: Vec<Tap>,
}

/// A message on a tapped topic, as it arrived.
#[derive(Debug, Clone)]
pub struct Tapped {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The broker replayed it from its retained store (at subscribing).
    pub retained: bool,
}

/// One tap: its pattern, and where its messages go.
struct Tap {
    pattern: Pattern,
    to: mpsc::Sender<Tapped>,
}

impl MqttConnector {
    /// Builds the connector; the returned [`MqttPublisher`] publishes over the same connection
    /// (once [`MqttConnector::run`] runs it). Nothing connects yet. Configuration and TLS file
    /// problems are errors here, all of them at once.
    pub fn new(
        config: MqttConfig,
        bus: Publisher,
        counters: ConnectorCounters,
        ready: Option<ReadyHandle>,
    ) -> Result<(Self, MqttPublisher), MqttError> {
        let (client, eventloop) = options::connection(&config)?;
        let broker = options::broker_uri(&config);
        let publisher =
            MqttPublisher::new(client.clone(), counters.clone(), config.max_payload_bytes);
        let session = SessionWatch::new(!config.clean_session, &config.client_id, &broker);
        let connector = Self {
            subscriptions: Subscriptions::new(
                &config.subscriptions,
                broker.clone(),
                config.max_payload_bytes,
            ),
            broker,
            client,
            eventloop,
            status_topic: config.status_topic,
            bus,
            counters,
            ready,
            required_for_ready: config.required_for_ready,
            reconnect: (config.reconnect_min, config.reconnect_max),
            max_inflight: usize::from(config.max_inflight),
            packet_limit: options::incoming_packet_limit(config.max_payload_bytes),
            session,
            taps: Vec::new(),
        };
        if !config.clean_session {
            connector.counters.keeps_sessions();
        }
        Ok((connector, publisher))
    }

    /// Remembers in `store` that the broker held a session, so one lost while atalaya was
    /// down is noticed at the next start (without it, only within one process).
    pub fn remember_sessions_in(mut self, store: Arc<Store>) -> Self {
        self.session.remember_in(store);
        self
    }

    /// Also sends a copy of every message on a topic matching `pattern` to `to`, subscribed
    /// at QoS 0 beside the configured subscriptions — the broker's retained copies at
    /// subscribing included, flagged [`Tapped::retained`]. It is how atalaya reads back what it
    /// keeps retained (alert states, Home Assistant discovery) and hears Home Assistant's
    /// birth message. The message goes on to the bus as any message does (an event only when
    /// a configured subscription matches too). When `to` is full the copy is dropped: taps
    /// carry state that is read again anyway, never events. Call before [`run`](Self::run).
    pub fn tap(&mut self, pattern: Pattern, to: mpsc::Sender<Tapped>) {
        self.taps.push(Tap { pattern, to });
    }

    /// Runs until `shutdown` is cancelled: connects, subscribes, turns messages into events,
    /// reconnects with back-off. At shutdown it stops taking messages, gives events already on
    /// the bus a few seconds to be done so their messages are acknowledged, publishes
    /// `offline` and disconnects. Returns an error only for what retrying cannot fix: the bus
    /// closing under it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MqttError> {
        let Self {
            broker,
            client,
            eventloop,
            subscriptions,
            status_topic,
            bus,
            counters,
            ready,
            required_for_ready,
            reconnect,
            max_inflight,
            packet_limit,
            session,
            taps,
        } = self;
        // Also cancelled when the bus stage fails, so everything winds down.
        let stop = shutdown.child_token();
        // Cancelled once the goodbye is queued: the connection loop flushes it and ends.
        let goodbye = CancellationToken::new();
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = mpsc::channel::<PendingAck>(max_inflight);
        let (link_tx, link_rx) = watch::channel::<Link>(None);
        let queued = Arc::new(Queued::default());
        let queued_for_acks = Arc::clone(&queued);

        let telemetry =
            ConnectionTelemetry::new(broker.clone(), counters.clone(), ready, required_for_ready);
        let connection = Connection {
            eventloop,
            telemetry,
            filters: subscriptions
                .filters()
                .iter()
                .cloned()
                .chain(taps.iter().map(|tap| Filter {
                    path: mqtt_filter(&tap.pattern),
                    qos: QoS::AtMostOnce,
                }))
                .collect(),
            taps,
            status_topic: status_topic.clone(),
            inbound: inbound_tx,
            link: link_tx,
            queued: Arc::clone(&queued),
            max_queued: max_inflight,
            backoff: Backoff::new(reconnect.0, reconnect.1),
            packet_limit,
            session,
        };
        let bus_stage = BusStage {
            subscriptions,
            bus,
            telemetry: MessageTelemetry::new(broker, counters),
            queued,
        };
        let bus_stage = async {
            let result = bus_stage.run(inbound_rx, ack_tx, &stop).await;
            if result.is_err() {
                stop.cancel();
            }
            result
        };
        let mut connection_gone = link_rx.clone();
        let acks = async {
            let drain = ack_stage(ack_rx, client.clone(), link_rx, &queued_for_acks);
            tokio::select! {
                () = drain => {}
                () = async {
                    stop.cancelled().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } => {}
                // Nothing can be acknowledged any more.
                () = async { while connection_gone.changed().await.is_ok() {} } => {}
            }
            // The ack stage only ends once stopping. Best effort: when the request queue is
            // full, dropping the connection makes the broker publish the last will instead.
            if let Some(topic) = &status_topic {
                client.try_publish(topic, true, OFFLINE);
            }
            client.try_disconnect();
            goodbye.cancel();
        };
        let ((), bus_stage, ()) = tokio::join!(connection.run(&stop, &goodbye), bus_stage, acks);
        bus_stage
    }
}

/// The connection loop: polls rumqttc's event loop and never waits on anything else, so
/// requests (acknowledgements, publishes) always move.
struct Connection {
    eventloop: WireLoop,
    telemetry: ConnectionTelemetry,
    filters: Vec<Filter>,
    status_topic: Option<String>,
    inbound: mpsc::UnboundedSender<Inbound>,
    link: watch::Sender<Link>,
    queued: Arc<Queued>,
    /// While this many messages wait for the bus stage, the loop stops reading.
    max_queued: usize,
    backoff: Backoff,
    packet_limit: usize,
    /// Whether the broker kept the persistent session.
    session: SessionWatch,
    taps: Vec<Tap>,
}

impl Connection {
    async fn run(mut self, stop: &CancellationToken, goodbye: &CancellationToken) {
        self.telemetry.starting();
        let limit = self.packet_limit;
        let mut connected = false;
        let mut subscribed_once = false;
        // The number of the current (or last) connection, for the ack stage.
        let mut connection = 0;
        // Set once the goodbye is queued: the loop ends when the broker closes the
        // connection, or at this instant at the latest.
        let mut deadline: Option<Instant> = None;
        loop {
            // Stopping: never (re)connect, only finish with a live connection.
            if stop.is_cancelled() && !connected {
                break;
            }
            if deadline.is_none() && goodbye.is_cancelled() {
                deadline = Some(Instant::now() + GOODBYE_GRACE);
            }
            let polled = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.eventloop.poll(limit)).await {
                        Ok(polled) => polled,
                        Err(_) => break,
                    }
                }
                // Connected, the loop is not cancelled mid-poll (it could drop a request);
                // it wakes for the goodbye the ack stage queues.
                None if connected => {
                    self.wait_for_room(stop).await;
                    self.eventloop.poll(limit).await
                }
                None => tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    polled = self.eventloop.poll(limit) => polled,
                },
            };
            match polled {
                Ok(Polled::ConnAck { session_present }) => {
                    connected = true;
                    // PUBACKs of the last connection were dropped with it.
                    self.queued.forget_unsent_acks();
                    self.backoff.reset();
                    connection += 1;
                    self.link.send_replace(Some(connection));
                    // Subscribe on the first connection (the config may have changed since
                    // the session was made) and whenever the broker forgot the session.
                    let subscribe = !subscribed_once || !session_present;
                    self.queue_hello(subscribe);
                    subscribed_once = true;
                    let lost = self.session.connected(session_present);
                    self.telemetry.connected(session_present, lost);
                }
                Ok(Polled::Publish(publish)) => {
                    self.copy_to_taps(&publish);
                    self.hand_over(publish, connection);
                }
                Ok(Polled::SubAck { refused }) => {
                    for filter in refused.iter().filter_map(|i| self.filters.get(*i)) {
                        self.telemetry.subscribe_failed(&filter.path);
                    }
                }
                // The broker closes the connection once it has read the DISCONNECT, and so
                // everything before it: wait for that (the error below) rather than closing
                // first, which could reset the connection with PUBACKs still unread.
                Ok(Polled::DisconnectSent | Polled::Other) => {}
                Ok(Polled::PubAckSent) => self.queued.ack_sent(),
                Err(failure) => {
                    if stop.is_cancelled() {
                        break;
                    }
                    let delay = self.backoff.next_delay();
                    if connected {
                        connected = false;
                        self.link.send_replace(None);
                        self.telemetry.lost(failure);
                    } else {
                        self.telemetry.connect_failed(failure, delay);
                    }
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.telemetry.stopped();
    }

    /// Queues the subscriptions and the `online` status ahead of everything else. They go
    /// into the event loop's own pending queue, not the bounded request channel, so the
    /// connection loop never waits on itself.
    fn queue_hello(&mut self, subscribe: bool) {
        if subscribe && !self.filters.is_empty() {
            self.eventloop.queue_subscribe(&self.filters);
        }
        if let Some(topic) = &self.status_topic {
            self.eventloop.queue_retained(topic, ONLINE);
        }
    }

    /// Backpressure: while `max_queued` messages wait for the bus stage, reads nothing more
    /// from the socket (the kernel's buffers fill, then the broker holds the messages) until
    /// the bus stage takes one, or [`MAX_PAUSE`] has passed. Never while PUBACKs wait to be
    /// sent: the bus stage may be waiting for the ack stage, which waits for them to go out
    /// (and for QoS 1 the broker's in-flight window bounds what is read meanwhile).
    async fn wait_for_room(&mut self, stop: &CancellationToken) {
        if stop.is_cancelled() || !self.queued.full(self.max_queued) {
            return;
        }
        let paused = Instant::now();
        let deadline = paused + MAX_PAUSE;
        while self.queued.full(self.max_queued) {
            tokio::select! {
                () = self.queued.room.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
                () = stop.cancelled() => break,
            }
        }
        self.telemetry.paused(paused.elapsed());
    }

    /// A copy of `publish` to every tap whose pattern matches its topic, without waiting.
    fn copy_to_taps(&self, publish: &Received) {
        if self.taps.is_empty() {
            return;
        }
        let Ok(subject) = Subject::parse(&publish.topic) else {
            return;
        };
        for tap in self.taps.iter().filter(|t| t.pattern.is_match(&subject)) {
            let _ = tap.to.try_send(Tapped {
                topic: publish.topic.clone(),
                payload: publish.payload.to_vec(),
                retained: publish.retain,
            });
        }
    }

    /// Passes a message to the bus stage, without waiting. Only a QoS 0 message past twice
    /// `max_queued` is dropped: the loop stopped reading at `max_queued`, so that many more
    /// come in only while the bus has been stalled for seconds.
    fn hand_over(&mut self, publish: Received, connection: u64) {
        if publish.at_most_once && self.queued.len() >= 2 * self.max_queued {
            self.telemetry.overflow(&publish.topic);
            return;
        }
        self.queued.count.fetch_add(1, Ordering::Relaxed);
        if self
            .inbound
            .send(Inbound {
                publish,
                connection,
                arrived: Instant::now(),
            })
            .is_err()
        {
            // The bus stage has stopped: shutting down. Unacknowledged, the message comes
            // back from the broker next time.
            self.queued.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Messages handed from the connection loop to the bus stage and not yet taken, with the
/// signal that the bus stage took one (or that a PUBACK waits to be sent), and the PUBACKs
/// queued and not yet sent.
#[derive(Default)]
pub(crate) struct Queued {
    count: AtomicUsize,
    room: Notify,
    unsent_acks: AtomicUsize,
}

impl Queued {
    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the connection loop should stop reading: `max` messages wait for the bus
    /// stage and no PUBACK waits to be sent.
    fn full(&self, max: usize) -> bool {
        self.len() >= max && self.unsent_acks.load(Ordering::Relaxed) == 0
    }

    /// The connection loop sent a PUBACK.
    fn ack_sent(&self) {
        let _ = self
            .unsent_acks
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    fn forget_unsent_acks(&self) {
        self.unsent_acks.store(0, Ordering::Relaxed);
    }

    /// The bus stage took a message.
    pub(crate) fn taken(&self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.room.notify_one();
    }

    /// The ack stage queued a PUBACK for the connection loop to send.
    pub(crate) fn requested(&self) {
        self.unsent_acks.fetch_add(1, Ordering::Relaxed);
        self.room.notify_one();
    }
}
