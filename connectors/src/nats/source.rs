//! The source: [`NatsConnector`] sets up the connection (in the background) and runs the core
//! subscriptions (at most once) and the JetStream consumers (at least once), feeding the bus.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ServerAddr, Subscriber};
use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::config::NatsConfig;
use super::connection::{ConnectionStatus, connect_options};
use super::error::{NatsConfigError, NatsError, redact_server};
use super::internal_events::{BusPublishFailed, LogThrottle};
use super::jetstream::{self, ConsumerSpec};
use super::message::{EventRecipe, Shared};
use super::publisher::NatsPublisher;
use super::subject::{check_queue_group, pattern_to_nats};

/// How long `run` waits, once stopping, for acks and naks to reach the server.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// The NATS source: core subscriptions and JetStream pull consumers feeding the bus.
pub struct NatsConnector {
    /// Shared with the [`NatsPublisher`]: one connection for both jobs.
    client: Client,
    /// What every task needs: the bus, the counters, the log throttle.
    shared: Arc<Shared>,
    /// Lets the pull consumers see reconnections.
    status: Arc<ConnectionStatus>,
    subscriptions: Vec<CoreSubscription>,
    consumers: Vec<ConsumerSpec>,
}

/// One configured core subscription, checked.
struct CoreSubscription {
    /// The NATS subjects to subscribe to: the pattern's, and the zero-token case of a
    /// trailing `#`.
    subjects: Vec<String>,
    queue_group: Option<String>,
    recipe: EventRecipe,
}

impl NatsConnector {
    /// Validates the config (files readable, subjects and names valid; every problem at once)
    /// and sets up the client, which connects in the background: this does not fail when the
    /// server is down. The returned publisher shares the connection.
    pub async fn connect(
        config: NatsConfig,
        bus: Publisher,
        counters: ConnectorCounters,
        ready: Option<ReadyHandle>,
    ) -> Result<(Self, NatsPublisher), NatsError> {
        let mut errors = Vec::new();
        if config.max_payload_bytes == 0 {
            errors.push(NatsConfigError::ZeroMaxPayload);
        }
        let prepared = connect_options(&config, &mut errors).await;
        let source = event_source(&config.servers);
        let subscriptions = core_subscriptions(&config, &source, &mut errors);
        let consumers = jetstream::consumer_specs(&config, &source, &mut errors);
        let (servers, options) = match prepared {
            Some(prepared) if errors.is_empty() => prepared,
            _ => return Err(NatsError::Config(errors)),
        };
        let status = ConnectionStatus::new(
            config
                .servers
                .first()
                .map(|s| redact_server(s))
                .unwrap_or_default(),
            counters.clone(),
            ready,
            config.required_for_ready,
        );
        let events = status.clone();
        let client = options
            .event_callback(move |event| {
                let status = events.clone();
                async move { status.on_event(event) }
            })
            .connect(servers)
            .await
            .map_err(NatsError::Client)?;
        let publisher = NatsPublisher::new(client.clone(), &config, counters.clone());
        let connector = Self {
            client,
            shared: Arc::new(Shared {
                bus,
                counters,
                throttle: LogThrottle::default(),
            }),
            status,
            subscriptions,
            consumers,
        };
        Ok((connector, publisher))
    }

    /// Runs until `shutdown`: the core subscriptions and the JetStream consumers, each in its
    /// own task. The client reconnects by itself; this returns early only when a task fails
    /// (the bus closed, the connection closed for good), having stopped the others.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NatsError> {
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        for subscription in self.subscriptions {
            for subject in &subscription.subjects {
                let subscriber = match &subscription.queue_group {
                    Some(group) => {
                        self.client
                            .queue_subscribe(subject.clone(), group.clone())
                            .await
                    }
                    None => self.client.subscribe(subject.clone()).await,
                }
                .map_err(|source| NatsError::Subscribe {
                    subject: subject.clone(),
                    source,
                })?;
                tasks.spawn(core_loop(
                    subscriber,
                    subscription.recipe.clone(),
                    self.shared.clone(),
                    stop.clone(),
                ));
            }
        }
        let context = async_nats::jetstream::new(self.client.clone());
        for spec in self.consumers {
            tasks.spawn(jetstream::run_consumer(
                spec,
                context.clone(),
                self.shared.clone(),
                self.status.generation(),
                stop.clone(),
            ));
        }

        let mut result = Ok(());
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(joined) = tasks.join_next() => {
                    if let Some(error) = task_error(joined) {
                        error!(error = %error, "NATS source task failed; stopping the NATS source.");
                        result = Err(error);
                        break;
                    }
                }
            }
        }
        stop.cancel();
        while let Some(joined) = tasks.join_next().await {
            if let Some(error) = task_error(joined)
                && result.is_ok()
            {
                result = Err(error);
            }
        }
        // Acks and naks are publishes still queued in the client: send them on their way.
        let _ = tokio::time::timeout(FINAL_FLUSH, self.client.flush()).await;
        result
    }
}

fn task_error(joined: Result<Result<(), NatsError>, tokio::task::JoinError>) -> Option<NatsError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(join) => Some(NatsError::Task(join)),
    }
}

/// `nats://host:port` of the first server, without user info: the `source` of every event.
fn event_source(servers: &[String]) -> String {
    servers
        .first()
        .and_then(|s| s.parse::<ServerAddr>().ok())
        .map(|addr| format!("nats://{}:{}", addr.host(), addr.port()))
        .unwrap_or_else(|| "nats://".to_owned())
}

fn core_subscriptions(
    config: &NatsConfig,
    source: &str,
    errors: &mut Vec<NatsConfigError>,
) -> Vec<CoreSubscription> {
    let mut subscriptions = Vec::with_capacity(config.subscriptions.len());
    for subscription in &config.subscriptions {
        let problem = |reason: String| NatsConfigError::Subscription {
            pattern: subscription.pattern.to_string(),
            reason,
        };
        if let Some(group) = &subscription.queue_group
            && let Err(reason) = check_queue_group(group)
        {
            errors.push(problem(reason));
        }
        match pattern_to_nats(&subscription.pattern) {
            Ok(filter) => subscriptions.push(CoreSubscription {
                subjects: [Some(filter.subject), filter.zero_rest]
                    .into_iter()
                    .flatten()
                    .collect(),
                queue_group: subscription.queue_group.clone(),
                recipe: EventRecipe {
                    source: source.into(),
                    pattern: Some(subscription.pattern.clone()),
                    max_payload_bytes: config.max_payload_bytes,
                },
            }),
            Err(reason) => errors.push(problem(reason)),
        }
    }
    subscriptions
}

/// Most messages of one core subscription published on the bus as one batch.
const MAX_CORE_BATCH: usize = 256;

/// One core subscription: each message becomes an event published on the bus (at most
/// once: nothing is acknowledged, and what arrives while the bus is full waits in the
/// client's subscription buffer, up to `max_pending`). The messages already buffered go to
/// the bus together, one publish per batch.
async fn core_loop(
    mut subscriber: Subscriber,
    recipe: EventRecipe,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), NatsError> {
    let max_batch = shared.bus.max_batch().clamp(1, MAX_CORE_BATCH);
    let mut events = Vec::with_capacity(max_batch);
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            message = subscriber.next() => message,
        };
        // One reading of the clock for the messages drained together. Messages are read
        // where they lie, not moved about: one is larger than the event made of it.
        let now = jiff::Timestamp::now();
        let Some(message) = message else {
            // The client ends a subscription only when the connection is closed for good.
            return Err(NatsError::ConnectionClosed);
        };
        shared.push_event(&recipe, &message, now, &mut events);
        while events.len() < max_batch {
            match subscriber.next().now_or_never() {
                Some(Some(message)) => shared.push_event(&recipe, &message, now, &mut events),
                Some(None) => return Err(NatsError::ConnectionClosed),
                None => break,
            }
        }
        if events.is_empty() {
            continue;
        }
        let count = events.len() as u64;
        let published = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            published = shared.bus.publish_batch(std::mem::replace(&mut events, Vec::with_capacity(max_batch))) => published,
        };
        match published {
            Ok(()) => shared.counters.received.inc_by(count),
            Err(error) => {
                BusPublishFailed {
                    subject: recipe.pattern.as_ref().map_or("", |p| p.as_str()),
                    error: &error,
                }
                .emit(&shared.counters);
                return Err(NatsError::BusClosed);
            }
        }
    }
}
