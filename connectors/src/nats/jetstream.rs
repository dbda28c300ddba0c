//! JetStream durable pull consumers: at least once, end to end.
//!
//! Each consumer runs in its own task: get the stream, create (or bind) the durable pull
//! consumer, then pull messages in batches. Each message becomes one event published on the
//! bus with [`Publisher::publish_tracked`](atalaya_bus::bus::Publisher::publish_tracked), and
//! is acked only once every bus consumer has finished with it (the rules engine persists what
//! it caused first). Up to `max_ack_pending` messages are in flight at once; their acks complete
//! in any order, which JetStream allows.
//!
//! - A message that cannot be an event (bad subject, payload refused) is counted, logged
//!   without flooding, and acked, so a poison message does not loop forever.
//! - When the bus refuses an event (it is closed), the message is nakked with `nak_delay`.
//! - Setup and fetch failures (server away, stream missing) are counted and retried with a
//!   back-off; after a reconnection the pending pull request is sent again.
//! - On shutdown fetching stops; what the bus finishes within a short grace is acked, the rest
//!   is redelivered after `ack_wait`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State;
use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::pull::{self, Batch};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer};
use async_nats::jetstream::message::{AckKind, Acker};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::config::{JetStreamConsumer, NatsConfig};
use super::error::{NatsConfigError, NatsError};
use super::internal_events::{AckFailed, BusPublishFailed, ConsumerSetupFailed, FetchFailed};
use super::message::EventRecipe;
use super::message::Shared;
use super::subject::{check_name, pattern_to_nats};

/// Most messages asked for in one pull request.
const MAX_FETCH: usize = 256;
/// Longest a pull request waits at the server for messages. It is also kept under half of
/// `ack_wait`: a request outlives the instance that made it (NATS cannot cancel one), and one
/// left by a stopped instance must expire before its unacked messages are redelivered, or they
/// would be delivered into it and lost until the next `ack_wait`.
const MAX_FETCH_EXPIRES: Duration = Duration::from_secs(5);
/// Shortest pull request wait.
const MIN_FETCH_EXPIRES: Duration = Duration::from_millis(100);
/// Most messages in flight per consumer, whatever `max_ack_pending` says.
const MAX_IN_FLIGHT: usize = 4096;
/// How long a stopping consumer waits for the bus to finish messages in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Back-off between setup attempts.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// One configured consumer, checked.
pub(crate) struct ConsumerSpec {
    config: JetStreamConsumer,
    /// `stream/durable`, for log lines.
    name: String,
    /// The NATS form of the filter pattern; empty for the whole stream.
    filter_subject: String,
    recipe: EventRecipe,
    max_in_flight: usize,
    /// How long a pull request waits at the server (see [`MAX_FETCH_EXPIRES`]).
    fetch_expires: Duration,
}

/// Checks the configured consumers; problems go to `errors`.
pub(crate) fn consumer_specs(
    config: &NatsConfig,
    source: &str,
    errors: &mut Vec<NatsConfigError>,
) -> Vec<ConsumerSpec> {
    let mut specs: Vec<ConsumerSpec> = Vec::with_capacity(config.jetstream.len());
    for consumer in &config.jetstream {
        let mut problem = |reason: String| {
            errors.push(NatsConfigError::JetStream {
                stream: consumer.stream.clone(),
                durable: consumer.durable.clone(),
                reason,
            });
        };
        let mut ok = true;
        for (kind, name) in [("stream", &consumer.stream), ("durable", &consumer.durable)] {
            if let Err(reason) = check_name(kind, name) {
                problem(reason);
                ok = false;
            }
        }
        if consumer.max_ack_pending < 1 {
            problem("`max_ack_pending` must be at least 1".to_owned());
            ok = false;
        }
        if consumer.ack_wait.is_zero() {
            problem("`ack_wait` must be longer than zero".to_owned());
            ok = false;
        }
        let filter_subject = match consumer.filter.as_ref().map(pattern_to_nats) {
            None => String::new(),
            Some(Ok(filter)) => filter.subject,
            Some(Err(reason)) => {
                problem(format!("filter: {reason}"));
                ok = false;
                String::new()
            }
        };
        let name = format!("{}/{}", consumer.stream, consumer.durable);
        if specs.iter().any(|s| s.name == name) {
            problem("configured twice".to_owned());
            ok = false;
        }
        if ok {
            specs.push(ConsumerSpec {
                config: consumer.clone(),
                name,
                filter_subject,
                recipe: EventRecipe {
                    source: source.into(),
                    pattern: consumer.filter.clone(),
                    max_payload_bytes: config.max_payload_bytes,
                },
                max_in_flight: usize::try_from(consumer.max_ack_pending)
                    .unwrap_or(1)
                    .clamp(1, MAX_IN_FLIGHT),
                fetch_expires: (consumer.ack_wait / 2).clamp(MIN_FETCH_EXPIRES, MAX_FETCH_EXPIRES),
            });
        }
    }
    specs
}

/// Messages handed to the bus, each resolving to its acker once the bus is done with it.
type InFlight = FuturesUnordered<BoxFuture<'static, Acker>>;

/// How a pull session ended.
enum Pull {
    Stopped,
    /// Set the consumer up again (after a back-off).
    Failed,
    BusClosed,
}

/// Runs one consumer until `stop` (or until the bus closes).
pub(crate) async fn run_consumer(
    spec: ConsumerSpec,
    js: Context,
    shared: Arc<Shared>,
    mut generation: watch::Receiver<u64>,
    stop: CancellationToken,
) -> Result<(), NatsError> {
    let mut in_flight = InFlight::new();
    let mut retry_in = RETRY_MIN;
    let mut last_setup_error: Option<String> = None;
    let outcome = loop {
        let bound = tokio::select! {
            biased;
            () = stop.cancelled() => break Pull::Stopped,
            bound = bind(&js, &spec) => bound,
        };
        match bound {
            Ok(consumer) => {
                if last_setup_error.take().is_some() {
                    info!(consumer = %spec.name, "JetStream consumer set up.");
                }
                retry_in = RETRY_MIN;
                match pull(
                    &js,
                    &consumer,
                    &spec,
                    &shared,
                    &mut in_flight,
                    &mut generation,
                    &stop,
                )
                .await
                {
                    Pull::Failed => {}
                    ended => break ended,
                }
            }
            Err(error) => {
                ConsumerSetupFailed {
                    consumer: &spec.name,
                    error: &error,
                    retry_in,
                    log: last_setup_error.as_ref() != Some(&error),
                }
                .emit(&shared.counters);
                last_setup_error = Some(error);
            }
        }
        if !pause(retry_in, &spec, &shared, &mut in_flight, &stop).await {
            break Pull::Stopped;
        }
        retry_in = (retry_in * 2).min(RETRY_MAX);
    };
    // Whatever the bus finishes in the grace period is acked; the rest comes back after
    // `ack_wait`, to this process or the next.
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace);
    while !in_flight.is_empty() {
        tokio::select! {
            () = &mut grace => break,
            Some(acker) = in_flight.next() => settle(&acker, AckKind::Ack, &spec, &shared).await,
        }
    }
    match outcome {
        Pull::BusClosed => Err(NatsError::BusClosed),
        Pull::Stopped | Pull::Failed => Ok(()),
    }
}

/// Gets the stream, then creates (or updates) or binds the durable pull consumer.
async fn bind(js: &Context, spec: &ConsumerSpec) -> Result<PullConsumer, String> {
    let config = &spec.config;
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| format!("stream `{}`: {e}", config.stream))?;
    let consumer = if config.create {
        stream
            .create_consumer(pull::Config {
                durable_name: Some(config.durable.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_ack_pending: config.max_ack_pending,
                filter_subject: spec.filter_subject.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("creating consumer `{}`: {e}", config.durable))?
    } else {
        stream
            .get_consumer(&config.durable)
            .await
            .map_err(|e| format!("binding to consumer `{}`: {e}", config.durable))?
    };
    Ok(consumer)
}

/// Pulls and handles messages until stopped, a fetch fails, or the bus closes.
async fn pull(
    js: &Context,
    consumer: &PullConsumer,
    spec: &ConsumerSpec,
    shared: &Shared,
    in_flight: &mut InFlight,
    generation: &mut watch::Receiver<u64>,
    stop: &CancellationToken,
) -> Pull {
    let client = js.client();
    let mut batch: Option<Batch> = None;
    // The connection (count) the current pull request goes out on.
    let mut sent_on = 0;
    loop {
        if batch.is_none() && in_flight.len() < spec.max_in_flight {
            let want = (spec.max_in_flight - in_flight.len()).min(MAX_FETCH);
            generation.borrow_and_update();
            sent_on = connection_for_request(&client);
            let request = consumer
                .batch()
                .max_messages(want)
                .expires(spec.fetch_expires)
                .messages();
            let requested = tokio::select! {
                biased;
                () = stop.cancelled() => return Pull::Stopped,
                requested = request => requested,
            };
            match requested {
                Ok(requested) => batch = Some(requested),
                Err(error) => {
                    FetchFailed {
                        consumer: &spec.name,
                        error: &error,
                    }
                    .emit(&shared.counters, &shared.throttle);
                    return Pull::Failed;
                }
            }
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return Pull::Stopped,
            Some(acker) = in_flight.next(), if !in_flight.is_empty() => {
                settle(&acker, AckKind::Ack, spec, shared).await;
            }
            // Reconnected: a pull request sent on an earlier connection is lost with it.
            Ok(()) = generation.changed() => {
                if connections(&client) > sent_on {
                    batch = None;
                }
            }
            next = next_message(&mut batch), if in_flight.len() < spec.max_in_flight => {
                match next {
                    None => batch = None,
                    Some(Err(error)) => {
                        FetchFailed { consumer: &spec.name, error: &error }
                            .emit(&shared.counters, &shared.throttle);
                        return Pull::Failed;
                    }
                    Some(Ok(message)) => {
                        if let Some(ended) = handle(message, spec, shared, in_flight, stop).await {
                            return ended;
                        }
                    }
                }
            }
        }
    }
}

/// How many connections the client has made.
fn connections(client: &Client) -> u64 {
    client.statistics().connects.load(Ordering::Relaxed)
}

/// Which connection (by count) a request made now goes out on: the current one when
/// connected, else the next (the client queues commands while it reconnects).
fn connection_for_request(client: &Client) -> u64 {
    let connects = connections(client);
    match client.connection_state() {
        State::Connected => connects,
        State::Pending | State::Disconnected => connects + 1,
    }
}

/// The next message of the current batch; never resolves without one.
async fn next_message(
    batch: &mut Option<Batch>,
) -> Option<Result<async_nats::jetstream::Message, async_nats::Error>> {
    match batch {
        Some(batch) => batch.next().await,
        None => std::future::pending().await,
    }
}

/// One message: onto the bus (in flight until the bus is done with it), or acked as poison.
/// `Some` when the pull session must end.
async fn handle(
    message: async_nats::jetstream::Message,
    spec: &ConsumerSpec,
    shared: &Shared,
    in_flight: &mut InFlight,
    stop: &CancellationToken,
) -> Option<Pull> {
    let (message, acker) = message.split();
    let subject = message.subject.as_str();
    let Some(event) = shared.event_or_report(
        &spec.recipe,
        subject,
        &message.payload,
        message.headers.as_ref(),
        jiff::Timestamp::now(),
    ) else {
        // Poison or not ours: acked, so it does not come back forever.
        settle(&acker, AckKind::Ack, spec, shared).await;
        return None;
    };
    let published = tokio::select! {
        biased;
        () = stop.cancelled() => {
            // Not on the bus: let the next consumer instance have it at once.
            settle(&acker, AckKind::Nak(None), spec, shared).await;
            return Some(Pull::Stopped);
        }
        published = shared.bus.publish_tracked(vec![event]) => published,
    };
    match published {
        Ok(delivery) => {
            shared.counters.received.inc();
            in_flight.push(Box::pin(async move {
                delivery.done().await;
                acker
            }));
            None
        }
        Err(error) => {
            BusPublishFailed {
                subject,
                error: &error,
            }
            .emit(&shared.counters);
            settle(
                &acker,
                AckKind::Nak(Some(spec.config.nak_delay)),
                spec,
                shared,
            )
            .await;
            Some(Pull::BusClosed)
        }
    }
}

/// Sends an ack or nak; a failure is counted (the message will be redelivered).
async fn settle(acker: &Acker, kind: AckKind, spec: &ConsumerSpec, shared: &Shared) {
    if let Err(error) = acker.ack_with(kind).await {
        AckFailed {
            consumer: &spec.name,
            error: &error,
        }
        .emit(&shared.counters, &shared.throttle);
    }
}

/// Waits `duration`, acking what the bus finishes meanwhile. `false` when stopped.
async fn pause(
    duration: Duration,
    spec: &ConsumerSpec,
    shared: &Shared,
    in_flight: &mut InFlight,
    stop: &CancellationToken,
) -> bool {
    let sleep = tokio::time::sleep(duration);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return false,
            () = &mut sleep => return true,
            Some(acker) = in_flight.next(), if !in_flight.is_empty() => {
                settle(&acker, AckKind::Ack, spec, shared).await;
            }
        }
    }
}
