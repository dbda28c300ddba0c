//! What the outbox keeps in the store: queued entries and dead letters, as JSON under keys
//! that sort by creation time.

use atalaya_bus::delivery::notification::Notification;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The store table of queued notifications: [`key`] → [`QueuedEntry`] (JSON).
pub const OUTBOX_TABLE: &str = "outbox";
/// The store table of notifications given up on: [`key`] → [`DeadLetter`] (JSON).
pub const DEAD_LETTER_TABLE: &str = "outbox_dead_letters";

/// A notification waiting for delivery, with what its attempts so far left behind. Written
/// again after each failed attempt, so a restart neither resets the count nor forgets why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEntry {
    pub notification: Notification,
    /// Attempts made and failed.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed (never holds a webhook URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A notification that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub notification: Notification,
    pub attempts: u32,
    pub reason: String,
    pub dead_lettered_at: Timestamp,
}

/// The store key of a notification: its creation time (16 bytes, big-endian nanoseconds with
/// the sign bit flipped, so byte order is time order), then its id. Keys, and therefore scans
/// and each lane, are in (created_at, id) order.
pub fn key(notification: &Notification) -> Vec<u8> {
    let nanos = notification.created_at.as_nanosecond();
    // Flipping the sign bit maps i128's order onto u128's (and thus big-endian bytes').
    let ordered = (nanos as u128) ^ (1 << 127);
    let mut key = Vec::with_capacity(16 + notification.id.len());
    key.extend_from_slice(&ordered.to_be_bytes());
    key.extend_from_slice(notification.id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::outbox::tests::notification;

    #[test]
    fn keys_sort_by_creation_time_then_id() {
        let at = |time: &str, id: &str| {
            let mut n = notification("home", 0, id);
            n.created_at = time.parse().unwrap();
            key(&n)
        };
        let mut keys = vec![
            at("2026-01-01T00:00:01Z", "a"),
            at("1969-12-31T23:59:59Z", "z"),
            at("2026-01-01T00:00:00.5Z", "b"),
            at("2026-01-01T00:00:00.5Z", "a"),
            at("2100-01-01T00:00:00Z", "a"),
        ];
        let expected = vec![
            keys[1].clone(),
            keys[3].clone(),
            keys[2].clone(),
            keys[0].clone(),
            keys[4].clone(),
        ];
        keys.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn entries_round_trip_through_json() {
        let entry = QueuedEntry {
            notification: notification("home", 1, "n1"),
            attempts: 3,
            last_error: Some("the webhook answered HTTP 503".into()),
        };
        let json = serde_json::to_vec(&entry).unwrap();
        assert_eq!(serde_json::from_slice::<QueuedEntry>(&json).unwrap(), entry);
    }
}
