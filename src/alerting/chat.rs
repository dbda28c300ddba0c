//! The Telegram bot's way to the router: [`RouterOps`] answers its [`ChatOps`] with router
//! commands (the same as the HTTP API's), and [`bot_receivers`] lists the Telegram
//! integrations of a routing policy for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::delivery::notification::Status;
use atalaya_connectors::telegram::TelegramConfig;
use atalaya_connectors::telegram::bot::{
    BotReceiver, ChatAlert, ChatOps, ChatSilence, ChatStatus, OpFuture, SilenceMatchers,
    SilenceRequest,
};
use atalaya_rules::routing::config::RoutingPolicy;
use atalaya_rules::routing::matcher::Matcher;
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceMatcher, SilenceState};
use jiff::{SignedDuration, Timestamp};
use prometheus::Registry;
use tokio::sync::{mpsc, oneshot};

use super::routing::RouterCommand;
use super::runner::ReloadMetrics;

/// The router, and what `/status` reads.
pub struct RouterOps {
    pub router: mpsc::Sender<RouterCommand>,
    pub registry: Registry,
    pub reload: ReloadMetrics,
    pub started_at: Timestamp,
}

const GONE: &str = "atalaya is shutting down";

impl RouterOps {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> RouterCommand,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.router
            .send(command(reply))
            .await
            .map_err(|_| GONE.to_owned())?;
        answer.await.map_err(|_| GONE.to_owned())
    }

    async fn add(&self, silence: Silence) -> Result<ChatSilence, String> {
        let kept = chat_silence(&silence);
        self.ask(|reply| RouterCommand::AddSilence(silence, MuteAll::Refuse, reply))
            .await?
            .map_err(|e| e.to_string())?;
        Ok(kept)
    }

    /// The sum of the samples of a gauge family, or each sample by one label.
    fn gauge(&self, family: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| f.get_metric().iter())
            .map(|m| {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_owned(), l.value().to_owned()))
                    .collect();
                (labels, m.get_gauge().get_value())
            })
            .collect()
    }
}

fn chat_silence(silence: &Silence) -> ChatSilence {
    let matchers = silence
        .matchers
        .iter()
        .filter_map(|m| m.compile().ok())
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ChatSilence {
        id: silence.id.clone(),
        matchers,
        starts_at: silence.starts_at,
        ends_at: silence.ends_at,
        created_by: silence.created_by.clone(),
        comment: silence.comment.clone(),
    }
}

fn until(now: Timestamp, duration: Duration) -> Result<Timestamp, String> {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .ok_or_else(|| "that duration is too long".to_owned())
}

impl ChatOps for RouterOps {
    fn alerts(&self) -> OpFuture<'_, Result<Vec<ChatAlert>, String>> {
        Box::pin(async move {
            let views = self.ask(RouterCommand::ListAlerts).await?;
            Ok(views
                .into_iter()
                .filter(|v| v.status == Status::Firing)
                .map(|v| ChatAlert {
                    summary: v
                        .annotations
                        .get("summary")
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_owned)
                        .or_else(|| v.labels.get("alertname").map(ToString::to_string))
                        .unwrap_or_default(),
                    fingerprint: v.fingerprint,
                    labels: v
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    starts_at: v.starts_at,
                    firing: true,
                    silenced_by: v.silenced_by,
                    inhibited: !v.inhibited_by.is_empty(),
                })
                .collect())
        })
    }

    fn silences(&self) -> OpFuture<'_, Result<Vec<ChatSilence>, String>> {
        Box::pin(async move {
            let now = Timestamp::now();
            let mut silences = self.ask(RouterCommand::ListSilences).await?;
            silences.retain(|s| s.state(now) != SilenceState::Expired);
            silences.sort_by_key(|s| s.ends_at);
            Ok(silences.iter().map(chat_silence).collect())
        })
    }

    fn silence(&self, request: SilenceRequest) -> OpFuture<'_, Result<ChatSilence, String>> {
        Box::pin(async move {
            let matchers: Vec<SilenceMatcher> = match &request.matchers {
                SilenceMatchers::Exact(labels) => labels
                    .iter()
                    .map(|(name, value)| SilenceMatcher::equal(name, value))
                    .collect(),
                SilenceMatchers::Written(written) => {
                    let mut parsed = Vec::new();
                    for text in written {
                        let matcher = Matcher::parse(text).map_err(|e| format!("{text}: {e}"))?;
                        parsed.push(SilenceMatcher::from_matcher(&matcher));
                    }
                    parsed
                }
            };
            let now = Timestamp::now();
            let silence = Silence {
                id: uuid::Uuid::now_v7().to_string(),
                matchers,
                starts_at: now,
                ends_at: until(now, request.duration)?,
                created_by: request.created_by,
                comment: request.comment,
                updated_at: now,
            };
            self.add(silence).await
        })
    }

    fn extend(&self, id: String, duration: Duration) -> OpFuture<'_, Result<ChatSilence, String>> {
        Box::pin(async move {
            let silences = self.ask(RouterCommand::ListSilences).await?;
            let now = Timestamp::now();
            let Some(mut silence) = silences
                .into_iter()
                .find(|s| s.id == id && s.state(now) == SilenceState::Active)
            else {
                return Err(format!("no active silence with id `{id}`"));
            };
            silence.ends_at = until(now, duration)?;
            silence.updated_at = now;
            self.add(silence).await
        })
    }

    fn expire(&self, id: String) -> OpFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.ask(|reply| RouterCommand::ExpireSilence(id, reply))
                .await?
                .map_err(|e| e.to_string())
        })
    }

    fn status(&self) -> OpFuture<'_, ChatStatus> {
        Box::pin(async move {
            let total = |family: &str| {
                self.gauge(family)
                    .iter()
                    .map(|(_, v)| *v)
                    .sum::<f64>()
                    .max(0.0) as u64
            };
            let connectors = self
                .gauge("atalaya_connector_connected")
                .into_iter()
                .filter_map(|(labels, value)| Some((labels.get("connector")?.clone(), value > 0.0)))
                .collect();
            ChatStatus {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime: Timestamp::now()
                    .duration_since(self.started_at)
                    .try_into()
                    .unwrap_or_default(),
                connectors,
                rules_loaded: total("atalaya_rules_loaded"),
                reload_error: self.reload.last_error(),
                outbox_depth: total("atalaya_outbox_depth"),
            }
        })
    }
}

/// The Telegram integrations of `policy`, for the bot (it keeps those naming
/// `allowed_users`).
pub fn bot_receivers(policy: &RoutingPolicy) -> Vec<BotReceiver> {
    let mut found = Vec::new();
    for receiver in &policy.receivers {
        for (index, integration) in receiver.integrations.iter().enumerate() {
            if let Some(config) = integration.settings::<TelegramConfig>() {
                found.push(BotReceiver {
                    receiver: receiver.name.clone(),
                    integration: index,
                    config: config.clone(),
                });
            }
        }
    }
    found
}

/// Keeps the policy's Telegram integrations in `into` as the policy changes, until the
/// policy's sender is gone.
pub async fn follow_policy(
    mut policies: tokio::sync::watch::Receiver<Arc<RoutingPolicy>>,
    into: tokio::sync::watch::Sender<Vec<BotReceiver>>,
) {
    loop {
        let receivers = bot_receivers(&policies.borrow_and_update());
        into.send_if_modified(|current| {
            let changed = *current != receivers;
            if changed {
                *current = receivers;
            }
            changed
        });
        if policies.changed().await.is_err() {
            return;
        }
    }
}
