//! [`Acknowledgement`]: a person acknowledged alerts in a receiver's app (Pushover's
//! emergency messages), and the router silences them for a while — the way back from a
//! receiver to routing, without the receiver knowing the router.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::Labels;

/// Alerts a person acknowledged, to be silenced on their exact labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledgement {
    /// Each acknowledged alert's labels.
    pub alerts: Vec<Labels>,
    /// Who, as the service names them (`pushover:<device>`): the silence's `createdBy`.
    pub by: String,
    /// How long the silences last.
    pub duration: Duration,
    /// The silences' comment: where the acknowledgement came from.
    pub comment: String,
}

/// Where receivers send acknowledgements; the service routes them to the router. Closed
/// when the service stops, which is what ends a receiver's wait for one.
pub type Acknowledgements = mpsc::Sender<Acknowledgement>;
