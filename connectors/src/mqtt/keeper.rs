//! [`MqttKeeper`]: keeps what atalaya leaves retained on the broker true — alert state topics
//! ([`state_topics`](super::state_topics)) and Home Assistant discovery
//! ([`discovery`](super::discovery)).
//!
//! It reads back what the broker retains through taps on the connector's own connection (so
//! the broker's replay at start tells it what an earlier run left; a marker it sends itself,
//! `atalaya/sync/<client id>`, tells it when the replay is over, before its first check),
//! asks the router what it holds every [`CHECK_EVERY`] (and as soon as Home Assistant
//! announces itself), and publishes what the two parts return, retained, over the same
//! connection.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::{Labels, Pattern};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::discovery::{Discovery, DiscoveryConfig};
use super::source::Tapped;
use super::state_topics::{Retain, StateTopicSettings, StateTopics};
use super::{MqttConnector, MqttPublisher};

/// How often the router is asked what it holds.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// The longest one retained publish may wait for room on the connection.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Tapped messages waiting for the keeper; more are dropped (they are read again anyway).
const TAP_CAPACITY: usize = 1024;
/// How long the keeper waits for its marker to come back before sending it again.
const SYNC_PATIENCE: Duration = Duration::from_secs(30);

/// One alert the router holds, as the keeper needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldAlert {
    /// Alertmanager's fingerprint (the last token of its state topic).
    pub fingerprint: String,
    /// The rule that raised it (its `alertname`).
    pub rule: Option<String>,
    pub firing: bool,
    pub silenced: bool,
    pub labels: Labels,
    pub summary: Option<String>,
    pub starts_at: Timestamp,
}

/// The rules loaded and the alerts held, at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertSnapshot {
    pub rules: Vec<String>,
    pub alerts: Vec<HeldAlert>,
}

/// A future of the keeper's source.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the keeper learns what atalaya holds (the service's router and rules), and acts on
/// it.
pub trait AlertSource: Send + Sync {
    /// `None` when atalaya is shutting down.
    fn snapshot(&self) -> SourceFuture<'_, Option<AlertSnapshot>>;

    /// Silences the alerts of `rule` for `duration`, made by `created_by`: the silence's id,
    /// or why not.
    fn silence_rule<'a>(
        &'a self,
        rule: &'a str,
        duration: Duration,
        created_by: &'a str,
    ) -> SourceFuture<'a, Result<String, String>>;
}

/// How long a silence button silences.
pub const SILENCE_BUTTON_FOR: Duration = Duration::from_secs(3600);

/// What to keep: the state topic prefixes of the routing policy, and discovery if enabled.
#[derive(Debug, Clone, Default)]
pub struct KeeperSettings {
    pub state_topics: Vec<StateTopicSettings>,
    pub discovery: Option<DiscoveryConfig>,
    /// The connection's status topic: Home Assistant's availability topic.
    pub availability: Option<String>,
}

/// The task keeping retained state true. See the module docs.
pub struct MqttKeeper {
    state_topics: StateTopics,
    discovery: Option<Discovery>,
    taps: mpsc::Receiver<Tapped>,
    /// Where the keeper sends itself a marker at start: it comes back after everything the
    /// broker replays from its retained store, so the first check knows what is there.
    sync_topic: Option<String>,
    publisher: MqttPublisher,
    source: Arc<dyn AlertSource>,
}

impl MqttKeeper {
    /// Taps what it reads back on `connector` (before it runs); `None` when there is nothing
    /// to keep.
    pub fn new(
        connector: &mut MqttConnector,
        client_id: &str,
        publisher: MqttPublisher,
        settings: KeeperSettings,
        source: Arc<dyn AlertSource>,
    ) -> Option<Self> {
        let state_topics = StateTopics::new(settings.state_topics);
        let discovery = settings
            .discovery
            .map(|d| Discovery::new(d, settings.availability, env!("CARGO_PKG_VERSION")));
        let mut patterns = state_topics.patterns();
        if let Some(d) = &discovery {
            let config = d.config();
            let buttons = config.silence_buttons.then(|| config.silence_pattern());
            patterns.extend(
                [config.config_topic(), config.birth_topic()]
                    .iter()
                    .chain(buttons.as_ref())
                    .filter_map(|topic| Pattern::parse(topic).ok()),
            );
        }
        if patterns.is_empty() {
            return None;
        }
        let sync_topic = format!("atalaya/sync/{client_id}");
        let sync = Pattern::parse(&sync_topic).ok();
        // One channel for every pattern.
        let (to, taps) = mpsc::channel(TAP_CAPACITY);
        for pattern in patterns.into_iter().chain(sync.clone()) {
            connector.tap(pattern, to.clone());
        }
        Some(Self {
            state_topics,
            discovery,
            taps,
            sync_topic: sync.map(|_| sync_topic),
            publisher,
            source,
        })
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        if !self.sync(&stop).await {
            return;
        }
        let mut next_check = tokio::time::Instant::now();
        loop {
            let wake = match self.state_topics.next_deadline() {
                Some(at) => next_check.min(instant_of(at)),
                None => next_check,
            };
            tokio::select! {
                () = stop.cancelled() => return,
                tapped = self.taps.recv() => {
                    let Some(tapped) = tapped else { return };
                    if Some(&tapped.topic) == self.sync_topic.as_ref() {
                        continue;
                    }
                    if self.tapped(&tapped) {
                        // Home Assistant came online: tell it everything now.
                        next_check = tokio::time::Instant::now();
                    }
                    if self.press(&tapped).await {
                        // Show the silence soon.
                        next_check = tokio::time::Instant::now();
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Timestamp::now();
                    let due = self.state_topics.due(now);
                    self.publish(due).await;
                    if tokio::time::Instant::now() >= next_check {
                        next_check = tokio::time::Instant::now() + CHECK_EVERY;
                        let Some(snapshot) = self.source.snapshot().await else { return };
                        self.check(&snapshot).await;
                    }
                }
            }
        }
    }

    /// Waits until the broker has replayed what it retains under the tapped topics (the
    /// first connection subscribes to them): a marker sent to the sync topic comes back after
    /// all of it. Sent again every [`SYNC_PATIENCE`] while it does not (the broker away).
    /// `false` when stopped.
    async fn sync(&mut self, stop: &CancellationToken) -> bool {
        let Some(topic) = self.sync_topic.clone() else {
            return true;
        };
        let nonce = Timestamp::now().as_nanosecond().to_string().into_bytes();
        loop {
            if tokio::time::timeout(
                PUBLISH_TIMEOUT,
                self.publisher.publish(&topic, nonce.clone(), false),
            )
            .await
            .is_err()
            {
                debug!("No room on the MQTT connection for the keeper's marker yet.");
            }
            let deadline = tokio::time::Instant::now() + SYNC_PATIENCE;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return false,
                    () = tokio::time::sleep_until(deadline) => break,
                    tapped = self.taps.recv() => {
                        let Some(tapped) = tapped else { return false };
                        if tapped.topic == topic {
                            if tapped.payload == nonce {
                                return true;
                            }
                        } else {
                            self.tapped(&tapped);
                        }
                    }
                }
            }
        }
    }

    /// A silence button pressed (never a retained copy: it would silence at every start);
    /// whether one was.
    async fn press(&self, tapped: &Tapped) -> bool {
        let Some(rule) = self
            .discovery
            .as_ref()
            .filter(|_| !tapped.retained)
            .and_then(|d| d.pressed(&tapped.topic))
        else {
            return false;
        };
        match self
            .source
            .silence_rule(rule, SILENCE_BUTTON_FOR, "Home Assistant")
            .await
        {
            Ok(id) => info!(%rule, silence = %id, "Silenced a rule from Home Assistant."),
            Err(error) => {
                warn!(%rule, %error, "Cannot silence a rule from Home Assistant.");
            }
        }
        true
    }

    /// Whether it was Home Assistant's birth.
    fn tapped(&mut self, tapped: &Tapped) -> bool {
        debug!(topic = %tapped.topic, retained = tapped.retained, "Read back a retained topic.");
        if self
            .state_topics
            .tapped(&tapped.topic, &tapped.payload, Timestamp::now())
        {
            return false;
        }
        match &mut self.discovery {
            Some(d) => {
                d.tapped(&tapped.topic, &tapped.payload)
                    && tapped.topic == d.config().birth_topic()
                    && tapped.payload == b"online"
            }
            None => false,
        }
    }

    async fn check(&mut self, snapshot: &AlertSnapshot) {
        let firing: HashSet<&str> = snapshot
            .alerts
            .iter()
            .filter(|a| a.firing)
            .map(|a| a.fingerprint.as_str())
            .collect();
        let repaired = self.state_topics.repair(&firing, Timestamp::now());
        self.publish(repaired).await;
        let Some(out) = self.discovery.as_mut().map(|d| d.publish(snapshot)) else {
            return;
        };
        if !self.publish(out).await
            && let Some(d) = &mut self.discovery
        {
            // Not all went out: everything again at the next check.
            d.forget();
        }
    }

    /// Publishes each retained, in order; whether all went out.
    async fn publish(&self, retains: Vec<Retain>) -> bool {
        for Retain { topic, payload } in retains {
            let sent = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                self.publisher.publish(&topic, payload, true),
            )
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    warn!(%topic, %error, "Cannot publish a retained state; trying again later.");
                    return false;
                }
                Err(_) => {
                    warn!(%topic, "The MQTT connection had no room for a retained state; trying again later.");
                    return false;
                }
            }
        }
        true
    }
}

/// The tokio instant of a wall-clock time (now, if it has passed).
fn instant_of(at: Timestamp) -> tokio::time::Instant {
    let wait = at.duration_since(Timestamp::now());
    tokio::time::Instant::now() + Duration::try_from(wait).unwrap_or(Duration::ZERO)
}
