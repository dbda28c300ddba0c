//! Whether the broker kept atalaya's persistent session.
//!
//! With `clean_session: false` the broker queues QoS 1 messages for atalaya while it is away —
//! as long as it keeps the session: a broker restarted without persistence, a session expired
//! (mosquitto's `persistent_client_expiration`) or a client id taken by someone else loses
//! them, and a queue over the broker's limit (mosquitto's `max_queued_messages`, 1000 by
//! default) drops messages without telling anyone. The gaps themselves are invisible here; a
//! connection answered "no session present" when there should be one is not. The first
//! connection that found one is remembered in the store, so this also holds across
//! atalaya's restarts, when the broker had the most to keep.

use std::sync::Arc;

use atalaya_bus::store::Store;
use tracing::warn;

/// The store table: `<client id>@<broker URI>` → empty, once the broker held a session.
pub const SESSIONS_TABLE: &str = "mqtt_sessions";

/// What atalaya expects of the broker's session, and what it remembers of it.
pub(crate) struct SessionWatch {
    /// `false` with `clean_session: true`: no session is asked for, none can be lost.
    persistent: bool,
    /// A connection of this client id at this broker was answered before, so the broker
    /// should hold a session.
    expected: bool,
    /// Where `expected` is remembered across restarts, under `key`.
    store: Option<Arc<Store>>,
    key: Vec<u8>,
}

impl SessionWatch {
    /// Remembered for this process only, until [`remember_in`](Self::remember_in).
    pub(crate) fn new(persistent: bool, client_id: &str, broker: &str) -> Self {
        Self {
            persistent,
            expected: false,
            store: None,
            key: format!("{client_id}@{broker}").into_bytes(),
        }
    }

    /// Remembers across restarts in `store`, reading what an earlier run remembered.
    pub(crate) fn remember_in(&mut self, store: Arc<Store>) {
        self.expected = self.persistent
            && store
                .get(SESSIONS_TABLE, &self.key)
                .unwrap_or_else(|error| {
                    warn!(%error, "Cannot read whether the MQTT broker held a session before; assuming not.");
                    None
                })
                .is_some();
        self.store = Some(store);
    }

    /// A connection was answered with or without a session: whether one was lost (expected,
    /// and the broker had none).
    pub(crate) fn connected(&mut self, session_present: bool) -> bool {
        if !self.persistent {
            return false;
        }
        let lost = self.expected && !session_present;
        if !self.expected {
            self.expected = true;
            if let Some(store) = &self.store
                && let Err(error) = store.put(SESSIONS_TABLE, &self.key, &[])
            {
                warn!(%error, "Cannot remember that the MQTT broker holds a session; a session lost across the next restart will not be noticed.");
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_expected_after_the_first_connection_also_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let broker = "mqtt://127.0.0.1:1883";
        let remembering = |persistent, client_id| {
            let mut watch = SessionWatch::new(persistent, client_id, broker);
            watch.remember_in(Arc::clone(&store));
            watch
        };
        let mut first = remembering(true, "atalaya");
        assert!(
            !first.connected(false),
            "a new client id has no session yet"
        );
        assert!(!first.connected(true));
        assert!(first.connected(false), "the broker forgot it");

        let mut restarted = remembering(true, "atalaya");
        assert!(restarted.connected(false), "lost while atalaya was down");
        let mut other = remembering(true, "atalaya-2");
        assert!(!other.connected(false), "another client id");

        let mut clean = remembering(false, "atalaya");
        assert!(!clean.connected(false), "clean sessions are never lost");

        let mut forgetful = SessionWatch::new(true, "atalaya", broker);
        assert!(
            !forgetful.connected(false),
            "without a store: this process only"
        );
        assert!(forgetful.connected(false));
    }
}
