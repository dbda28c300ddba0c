//! What the MQTT keeper (alert state topics, Home Assistant discovery) learns from the
//! service: [`RouterAlerts`] answers its snapshots from the router and the rules loaded, and
//! [`state_topic_settings`] reads the state topic prefixes of a routing policy.

use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::delivery::notification::Status;
use atalaya_connectors::mqtt::MqttPublishConfig;
use atalaya_connectors::mqtt::keeper::{AlertSnapshot, AlertSource, HeldAlert, SourceFuture};
use atalaya_connectors::mqtt::state_topics::StateTopicSettings;
use atalaya_rules::routing::config::RoutingPolicy;
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceMatcher};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use super::routing::RouterCommand;

/// The router, and the names of the rules loaded (kept by the rules runner).
pub struct RouterAlerts {
    pub router: mpsc::Sender<RouterCommand>,
    pub rules: watch::Receiver<Arc<[String]>>,
}

impl AlertSource for RouterAlerts {
    fn snapshot(&self) -> SourceFuture<'_, Option<AlertSnapshot>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.router
                .send(RouterCommand::ListAlerts(reply))
                .await
                .ok()?;
            let views = answer.await.ok()?;
            let alerts = views
                .into_iter()
                .map(|view| HeldAlert {
                    rule: view.labels.get("alertname").map(str::to_owned),
                    firing: view.status == Status::Firing,
                    silenced: !view.silenced_by.is_empty(),
                    summary: view.annotations.get("summary").map(str::to_owned),
                    fingerprint: view.fingerprint,
                    labels: view.labels,
                    starts_at: view.starts_at,
                })
                .collect();
            Some(AlertSnapshot {
                rules: self.rules.borrow().to_vec(),
                alerts,
            })
        })
    }

    fn silence_rule<'a>(
        &'a self,
        rule: &'a str,
        duration: Duration,
        created_by: &'a str,
    ) -> SourceFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let now = Timestamp::now();
            let ends_at = SignedDuration::try_from(duration)
                .ok()
                .and_then(|d| now.checked_add(d).ok())
                .ok_or("that duration is too long")?;
            let silence = Silence {
                id: uuid::Uuid::now_v7().to_string(),
                matchers: vec![SilenceMatcher::equal("alertname", rule)],
                starts_at: now,
                ends_at,
                created_by: created_by.to_owned(),
                comment: "from Home Assistant".to_owned(),
                updated_at: now,
            };
            let id = silence.id.clone();
            let (reply, answer) = oneshot::channel();
            self.router
                .send(RouterCommand::AddSilence(silence, MuteAll::Refuse, reply))
                .await
                .map_err(|_| "atalaya is shutting down".to_owned())?;
            answer
                .await
                .map_err(|_| "atalaya is shutting down".to_owned())?
                .map_err(|e| e.to_string())?;
            Ok(id)
        })
    }
}

/// The state topic prefixes of `policy`'s `mqtt_configs`, each with its own clearing time.
pub fn state_topic_settings(policy: &RoutingPolicy) -> Vec<StateTopicSettings> {
    policy
        .receivers
        .iter()
        .flat_map(|r| &r.integrations)
        .filter_map(|i| i.settings::<MqttPublishConfig>())
        .filter(|c| !c.state_topic_prefix.is_empty())
        .map(|c| StateTopicSettings {
            prefix: c.state_topic_prefix.clone(),
            clear_resolved_after: SignedDuration::try_from(c.clear_resolved_after)
                .unwrap_or(SignedDuration::MAX),
        })
        .collect()
}
