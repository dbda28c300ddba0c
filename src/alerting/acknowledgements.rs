//! Acknowledgements made in a receiver's app (Pushover), turned into silences: each
//! acknowledged alert is silenced on its exact labels for the time its integration says,
//! created by whoever acknowledged it.

use atalaya_bus::delivery::Acknowledgement;
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceMatcher};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::routing::RouterCommand;

/// Silences what `acknowledgements` bring until `cancel` (the service stopping): dropping
/// the receiver then is what ends the receivers' waits for acknowledgements.
pub async fn run(
    mut acknowledgements: mpsc::Receiver<Acknowledgement>,
    router: mpsc::Sender<RouterCommand>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let acknowledgement = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            next = acknowledgements.recv() => match next {
                Some(acknowledgement) => acknowledgement,
                None => return Ok(()),
            },
        };
        for labels in &acknowledgement.alerts {
            let now = Timestamp::now();
            let duration = SignedDuration::try_from(acknowledgement.duration)
                .unwrap_or(SignedDuration::from_hours(1));
            let silence = Silence {
                id: uuid::Uuid::now_v7().to_string(),
                matchers: labels
                    .iter()
                    .map(|(name, value)| SilenceMatcher::equal(name, value))
                    .collect(),
                starts_at: now,
                ends_at: now.saturating_add(duration).unwrap_or(now),
                created_by: acknowledgement.by.clone(),
                comment: acknowledgement.comment.clone(),
                updated_at: now,
            };
            let id = silence.id.clone();
            let (reply, answer) = oneshot::channel();
            if router
                .send(RouterCommand::AddSilence(silence, MuteAll::Refuse, reply))
                .await
                .is_err()
            {
                return Ok(());
            }
            match answer.await {
                Ok(Ok(())) => info!(
                    silence = %id,
                    by = %acknowledgement.by,
                    until = ?acknowledgement.duration,
                    "Alert acknowledged; silenced."
                ),
                Ok(Err(e)) => warn!(
                    by = %acknowledgement.by,
                    error = %e,
                    "An acknowledgement could not silence its alert."
                ),
                Err(_) => return Ok(()),
            }
        }
    }
}
