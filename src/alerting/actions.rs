//! Rule actions carried out: every action the engine emits is published through each
//! configured broker (MQTT, NATS). Failures are counted by the publishers and logged here;
//! an action never blocks the rule engine (it has its own queue and task).

use atalaya_rules::alert::ActionRequest;
use tokio::sync::mpsc;
use tracing::warn;

/// The publishers actions go out through.
#[derive(Default)]
pub struct ActionPublishers {
    #[cfg(feature = "mqtt")]
    pub mqtt: Option<atalaya_connectors::mqtt::MqttPublisher>,
    #[cfg(feature = "nats")]
    pub nats: Option<atalaya_connectors::nats::NatsPublisher>,
}

impl ActionPublishers {
    /// Whether no broker is configured (actions are then only printed).
    pub fn is_empty(&self) -> bool {
        let empty = true;
        #[cfg(feature = "mqtt")]
        let empty = empty && self.mqtt.is_none();
        #[cfg(feature = "nats")]
        let empty = empty && self.nats.is_none();
        empty
    }
}

/// Publishes actions until the engine is gone.
pub async fn run(
    mut actions: mpsc::Receiver<ActionRequest>,
    publishers: ActionPublishers,
) -> anyhow::Result<()> {
    while let Some(action) = actions.recv().await {
        // A deposed leader (high availability) ends here rather than publish.
        #[cfg(feature = "nats")]
        crate::ha::ensure_leading("publish a rule action");
        #[cfg(feature = "mqtt")]
        if let Some(mqtt) = &publishers.mqtt
            && let Err(e) = mqtt
                .publish(
                    &action.subject,
                    action.payload.clone().into_bytes(),
                    action.retain,
                )
                .await
        {
            warn!(rule = %action.rule, subject = %action.subject, error = %e, "Action not published to MQTT.");
        }
        #[cfg(feature = "nats")]
        if let Some(nats) = &publishers.nats
            && let Err(e) = nats
                .publish(&action.subject, action.payload.clone().into_bytes())
                .await
        {
            warn!(rule = %action.rule, subject = %action.subject, error = %e, "Action not published to NATS.");
        }
        // In a build without broker features both are otherwise unused.
        let _ = (&action, &publishers);
    }
    Ok(())
}
