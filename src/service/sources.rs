//! One function per source: each builds its connector from its configuration section,
//! registers its readiness and spawns it under the supervisor as a source (it publishes
//! onto the bus). A source's mistake found here (bad TLS files, an unreachable NATS server
//! at start) ends the start with code 64 or 1, before the HTTP port is bound.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::ConnectorMetrics;
use atalaya_bus::readiness::Readiness;
use atalaya_bus::store::Store;
use prometheus::Registry;
use tokio::sync::mpsc;

use super::supervisor::{Stage, Supervisor};
use super::{StartError, exit, fail};
use crate::alerting::routing::RouterCommand;
use crate::alerting::runner::ReloadRequest;
use crate::config::HttpConfig;
use crate::http::{self, ApiState};
use crate::internal_events::{LogThrottle, RejectStage};

/// What every source is built with.
pub(super) struct SourceContext<'a> {
    /// Where events go. Each source holds a clone; the bus closes once every source has
    /// stopped and dropped its own.
    pub publisher: &'a Publisher,
    pub connectors: &'a ConnectorMetrics,
    pub readiness: &'a Readiness,
    pub supervisor: &'a Supervisor,
    /// The Kubernetes bridge keeps what it last saw here.
    pub store: &'a Arc<Store>,
}

/// What the HTTP API reads besides the router: what happened, what was given up on, what
/// happens now.
pub(super) struct Told {
    pub history: crate::alerting::history::History,
    pub outbox: crate::alerting::outbox::Outbox,
    pub tail: crate::alerting::tail::Tail,
}

/// `mqtt:` — the broker connection: subscriptions onto the bus; its publisher for rule
/// actions and `mqtt_configs` notifications.
#[cfg(feature = "mqtt")]
pub(super) fn mqtt(
    ctx: &SourceContext<'_>,
    config: atalaya_connectors::mqtt::config::MqttConfig,
    state_topics: Vec<atalaya_connectors::mqtt::state_topics::StateTopicSettings>,
    alerts: Arc<dyn atalaya_connectors::mqtt::keeper::AlertSource>,
) -> Result<atalaya_connectors::mqtt::MqttPublisher, StartError> {
    use atalaya_connectors::mqtt::keeper::{KeeperSettings, MqttKeeper};
    let counters = ctx
        .connectors
        .connection("mqtt", atalaya_connectors::mqtt::ERROR_STAGES);
    let ready = config
        .required_for_ready
        .then(|| ctx.readiness.register("mqtt"));
    let client_id = config.client_id.clone();
    let settings = KeeperSettings {
        state_topics,
        discovery: config.discovery.clone(),
        availability: config.status_topic.clone(),
    };
    let (connector, publisher) = atalaya_connectors::mqtt::MqttConnector::new(
        config,
        ctx.publisher.clone(),
        counters,
        ready,
    )
    .map_err(anyhow::Error::from)
    .map_err(fail(exit::CONFIG))?;
    let mut connector = connector.remember_sessions_in(Arc::clone(ctx.store));
    // Alert state topics and Home Assistant discovery, kept true over the same connection.
    if let Some(keeper) = MqttKeeper::new(
        &mut connector,
        &client_id,
        publisher.clone(),
        settings,
        alerts,
    ) {
        let token = ctx.supervisor.token().clone();
        ctx.supervisor
            .spawn(Stage::Sink, "mqtt-keeper", async move {
                keeper.run(token).await;
                Ok(())
            });
    }
    let token = ctx.supervisor.token().clone();
    ctx.supervisor.spawn(Stage::Source, "mqtt", async move {
        connector.run(token).await?;
        Ok(())
    });
    Ok(publisher)
}

/// `nats:` — core subscriptions and JetStream consumers onto the bus; its publisher for rule
/// actions and `nats_configs` notifications.
#[cfg(feature = "nats")]
pub(super) async fn nats(
    ctx: &SourceContext<'_>,
    config: atalaya_connectors::nats::NatsConfig,
) -> Result<atalaya_connectors::nats::NatsPublisher, StartError> {
    let counters = ctx
        .connectors
        .connection("nats", atalaya_connectors::nats::ERROR_STAGES);
    let ready = config
        .required_for_ready
        .then(|| ctx.readiness.register("nats"));
    let (connector, publisher) = atalaya_connectors::nats::NatsConnector::connect(
        config,
        ctx.publisher.clone(),
        counters,
        ready,
    )
    .await
    .map_err(anyhow::Error::from)
    .map_err(fail(exit::CONFIG))?;
    let token = ctx.supervisor.token().clone();
    ctx.supervisor.spawn(Stage::Source, "nats", async move {
        connector.run(token).await?;
        Ok(())
    });
    Ok(publisher)
}

/// `kubernetes:` — node, lease, pod and Event watches. A refused permission (403) or an
/// unreachable API server is retried inside the connector; only the bus or the store
/// failing ends its task.
#[cfg(feature = "kubernetes")]
pub(super) async fn kubernetes(
    ctx: &SourceContext<'_>,
    config: atalaya_connectors::kubernetes::KubernetesConfig,
) -> Result<(), StartError> {
    let counters = ctx
        .connectors
        .connection("kubernetes", atalaya_connectors::kubernetes::ERROR_STAGES);
    let ready = config
        .required_for_ready
        .then(|| ctx.readiness.register("kubernetes"));
    let connector = atalaya_connectors::kubernetes::KubernetesConnector::connect(
        config,
        ctx.publisher.clone(),
        Arc::clone(ctx.store),
        counters,
        ready,
    )
    .await
    .map_err(anyhow::Error::from)
    .map_err(fail(exit::CONFIG))?;
    let token = ctx.supervisor.token().clone();
    ctx.supervisor
        .spawn(Stage::Source, "kubernetes", async move {
            connector.run(token).await?;
            Ok(())
        });
    Ok(())
}

/// `homeassistant:` — state changes of Home Assistant's entities. An unreachable Home
/// Assistant or a refused token is retried inside the connector; only the bus closing ends
/// its task. TLS files that cannot be used end the start with 64.
#[cfg(feature = "homeassistant")]
pub(super) fn homeassistant(
    ctx: &SourceContext<'_>,
    config: atalaya_connectors::homeassistant::HomeAssistantConfig,
) -> Result<(), StartError> {
    let counters = ctx.connectors.connection(
        "homeassistant",
        atalaya_connectors::homeassistant::ERROR_STAGES,
    );
    let ready = config
        .required_for_ready
        .then(|| ctx.readiness.register("homeassistant"));
    let connector = atalaya_connectors::homeassistant::HomeAssistantConnector::new(
        config,
        ctx.publisher.clone(),
        counters,
        ready,
    )
    .map_err(anyhow::Error::from)
    .map_err(fail(exit::CONFIG))?;
    let token = ctx.supervisor.token().clone();
    ctx.supervisor
        .spawn(Stage::Source, "homeassistant", async move {
            connector.run(token).await?;
            Ok(())
        });
    Ok(())
}

/// `http:` — the API: event ingest onto the bus, and the router's and the reloads' commands.
/// Returns the address it listens on.
pub(super) async fn http(
    ctx: &SourceContext<'_>,
    config: &HttpConfig,
    registry: &Registry,
    reload: mpsc::Sender<ReloadRequest>,
    router: mpsc::Sender<RouterCommand>,
    told: Told,
) -> Result<SocketAddr, StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))
        .map_err(fail(exit::FAILURE))?;
    let address = listener
        .local_addr()
        .context("listening socket")
        .map_err(fail(exit::FAILURE))?;
    let ready = ctx.readiness.register("http");
    let state = Arc::new(ApiState {
        publisher: ctx.publisher.clone(),
        token: config.token.clone(),
        read_token: config.read_token.clone(),
        anonymous_read: config.anonymous_read,
        readiness: ctx.readiness.clone(),
        connectors: ctx.connectors.clone(),
        registry: registry.clone(),
        counters: ctx.connectors.connector("http", &RejectStage::ALL),
        reject_log: LogThrottle::default(),
        publish_timeout: config.publish_timeout,
        reload,
        router,
        requests: tokio::sync::Semaphore::new(config.max_concurrent_requests),
        request_timeout: config.request_timeout,
        listen: address,
        started_at: jiff::Timestamp::now(),
        history: told.history,
        outbox: told.outbox,
        tail: told.tail,
        web: http::WebAccess::new(
            config.token.clone(),
            config.read_token.clone(),
            config.web_anonymous_read || config.anonymous_read,
        ),
    });
    let app = http::router(Arc::clone(&state), config);
    let token = ctx.supervisor.token().clone();
    let limits = http::ConnectionLimits {
        max_connections: config.max_connections,
        header_timeout: config.header_timeout,
    };
    ctx.supervisor.spawn(
        Stage::Source,
        "http",
        http::serve(listener, app, state, limits, token),
    );
    ready.set(true);
    Ok(address)
}
