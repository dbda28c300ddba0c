//! [`HomeAssistantConnector`]: connects, and connects again with back-off, until shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::backoff::Backoff;
use atalaya_bus::bus::Publisher;
use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use atalaya_bus::secret::Secret;
use tokio_util::sync::CancellationToken;

use super::HomeAssistantError;
use super::config::HomeAssistantConfig;
use super::connection::{self, End, Link};
use super::registry::Registries;
use super::telemetry::{Failure, Telemetry};
use crate::tls::client_config;

/// The Home Assistant source: state changes of its entities as events on the bus.
pub struct HomeAssistantConnector {
    link: Link,
    token: Token,
    reconnect: (Duration, Duration),
    telemetry: Telemetry,
}

/// The access token: the one read at start, and the file to read it again from.
struct Token {
    current: Secret,
    file: Option<PathBuf>,
}

impl Token {
    /// The token for the next attempt: `token_file` read again when there is one (a Secret
    /// rotated in place), else the one read before.
    async fn fresh(&mut self, telemetry: &mut Telemetry) -> &Secret {
        if let Some(file) = &self.file {
            match tokio::fs::read_to_string(file).await {
                Ok(text) if !text.trim().is_empty() => {
                    self.current = Secret::new(text.trim().to_owned());
                }
                Ok(_) => telemetry.token_file_unreadable("the file is empty"),
                Err(error) => telemetry.token_file_unreadable(&error.kind().to_string()),
            }
        }
        &self.current
    }
}

impl HomeAssistantConnector {
    /// Builds the connector. Nothing connects yet; TLS files that cannot be read or used are
    /// an error here.
    pub fn new(
        config: HomeAssistantConfig,
        bus: Publisher,
        counters: ConnectorCounters,
        ready: Option<ReadyHandle>,
    ) -> Result<Self, HomeAssistantError> {
        let tls = if config.endpoint.tls {
            let settings = config.tls.clone().unwrap_or_default();
            Some(Arc::new(client_config(&settings)?))
        } else {
            None
        };
        let telemetry = Telemetry::new(config.endpoint.url.clone(), counters, ready);
        Ok(Self {
            link: Link {
                endpoint: config.endpoint,
                tls,
                max_frame_bytes: config.max_frame_bytes,
                heartbeat: config.heartbeat,
                entities: config.entities,
                bus,
            },
            token: Token {
                current: config.token,
                file: config.token_file,
            },
            reconnect: (config.reconnect_min, config.reconnect_max),
            telemetry,
        })
    }

    /// The `source` of its events: `homeassistant://host:port`.
    pub fn source(&self) -> &str {
        &self.link.endpoint.source
    }

    /// Runs until `shutdown`: connects, logs in, subscribes, publishes state changes, and
    /// after any failure connects again with back-off (reset once a connection got as far
    /// as subscribing; a refused token waits the longest). Returns an error only when the
    /// bus closes under it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), HomeAssistantError> {
        let Self {
            link,
            mut token,
            reconnect,
            mut telemetry,
        } = self;
        let mut backoff = Backoff::new(reconnect.0, reconnect.1);
        // Kept across connections, so labels stay while a connection is made again.
        let mut registries = Registries::default();
        telemetry.starting();
        let result = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            let secret = token.fresh(&mut telemetry).await;
            let end =
                connection::run(&link, secret, &mut registries, &mut telemetry, &shutdown).await;
            let (failure, connected) = match end {
                End::Stopped => break Ok(()),
                End::BusClosed => break Err(HomeAssistantError::BusClosed),
                End::Failed { failure, connected } => (failure, connected),
            };
            if connected {
                backoff.reset();
            }
            let delay = match failure {
                // Retrying sooner would not help: a person has to change the token.
                Failure::AuthInvalid(_) => {
                    backoff.next_delay();
                    reconnect.1.max(reconnect.0)
                }
                _ => backoff.next_delay(),
            };
            telemetry.failed(&failure, connected, delay);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        };
        telemetry.stopped();
        result
    }
}
