//! The outbox in memory: what is queued, by lane, mirroring the store's outbox table.
//!
//! A lane is one integration of one receiver; its entries are in key ((created_at, id))
//! order and only its head is ever being delivered. A lane is `running` while a task
//! delivers it; claiming idle lanes and releasing empty ones happen under one lock, so a
//! notification enqueued while a lane's task is finishing is never left without a task.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::entry::QueuedEntry;

/// A lane: the receiver's name and the integration's index in it.
pub type LaneId = (String, usize);

#[derive(Default)]
pub struct Queue {
    lanes: HashMap<LaneId, Lane>,
}

#[derive(Default)]
struct Lane {
    entries: BTreeMap<Vec<u8>, QueuedEntry>,
    /// Whether a task is delivering this lane.
    running: bool,
}

impl Queue {
    pub fn insert(&mut self, key: Vec<u8>, entry: QueuedEntry) {
        let lane = (
            entry.notification.receiver.clone(),
            entry.notification.integration,
        );
        self.lanes
            .entry(lane)
            .or_default()
            .entries
            .insert(key, entry);
    }

    /// The first entry of `lane`; `None` when the lane is empty — it is then forgotten, and
    /// its task must end (a later enqueue claims the lane afresh).
    pub fn head_or_release(&mut self, lane: &LaneId) -> Option<(Vec<u8>, QueuedEntry)> {
        let head = self
            .lanes
            .get(lane)
            .and_then(|l| l.entries.first_key_value())
            .map(|(k, e)| (k.clone(), e.clone()));
        if head.is_none() {
            self.lanes.remove(lane);
        }
        head
    }

    /// Replaces the entry under `key` (after a failed attempt), if it is still queued.
    pub fn update(&mut self, lane: &LaneId, key: &[u8], entry: QueuedEntry) {
        if let Some(queued) = self
            .lanes
            .get_mut(lane)
            .and_then(|l| l.entries.get_mut(key))
        {
            *queued = entry;
        }
    }

    pub fn remove(&mut self, lane: &LaneId, key: &[u8]) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.entries.remove(key);
        }
    }

    /// The lanes with work and no task, now marked running: the caller starts their tasks.
    pub fn claim_idle(&mut self) -> Vec<LaneId> {
        let mut claimed = Vec::new();
        for (id, lane) in &mut self.lanes {
            if !lane.running && !lane.entries.is_empty() {
                lane.running = true;
                claimed.push(id.clone());
            }
        }
        claimed.sort();
        claimed
    }

    /// Every lane without a task again (delivery stopped); what is queued stays.
    pub fn stop_all(&mut self) {
        for lane in self.lanes.values_mut() {
            lane.running = false;
        }
    }

    /// Notifications queued, all lanes.
    pub fn depth(&self) -> usize {
        self.lanes.values().map(|l| l.entries.len()).sum()
    }

    /// Notifications queued in each lane, by lane.
    pub fn lanes(&self) -> Vec<(LaneId, usize)> {
        let mut lanes: Vec<(LaneId, usize)> = self
            .lanes
            .iter()
            .map(|(id, lane)| (id.clone(), lane.entries.len()))
            .filter(|(_, depth)| *depth > 0)
            .collect();
        lanes.sort();
        lanes
    }

    /// When the oldest queued notification was created (each lane's head is its oldest).
    pub fn oldest(&self) -> Option<Timestamp> {
        self.lanes
            .values()
            .filter_map(|l| l.entries.values().next())
            .map(|e| e.notification.created_at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::outbox::entry::key;
    use crate::alerting::outbox::tests::notification;

    fn entry(receiver: &str, integration: usize, id: &str, at: &str) -> (Vec<u8>, QueuedEntry) {
        let mut n = notification(receiver, integration, id);
        n.created_at = at.parse().unwrap();
        let entry = QueuedEntry {
            notification: n,
            attempts: 0,
            last_error: None,
        };
        (key(&entry.notification), entry)
    }

    #[test]
    fn lanes_are_claimed_once_and_released_when_empty() {
        let mut queue = Queue::default();
        let (k2, e2) = entry("home", 0, "b", "2026-01-01T00:00:02Z");
        let (k1, e1) = entry("home", 0, "a", "2026-01-01T00:00:01Z");
        let (k3, e3) = entry("home", 1, "c", "2026-01-01T00:00:00Z");
        queue.insert(k2.clone(), e2);
        queue.insert(k1.clone(), e1);
        queue.insert(k3, e3);
        assert_eq!(queue.depth(), 3);
        assert_eq!(
            queue.oldest(),
            Some("2026-01-01T00:00:00Z".parse().unwrap())
        );

        let home0 = ("home".to_owned(), 0);
        assert_eq!(
            queue.claim_idle(),
            vec![home0.clone(), ("home".to_owned(), 1)]
        );
        assert!(
            queue.claim_idle().is_empty(),
            "running lanes are not claimed twice"
        );

        // Created first, delivered first, whatever the enqueue order.
        let (head, _) = queue.head_or_release(&home0).unwrap();
        assert_eq!(head, k1);
        queue.remove(&home0, &k1);
        queue.remove(&home0, &k2);
        assert!(queue.head_or_release(&home0).is_none());
        assert_eq!(queue.depth(), 1);

        // A new entry for the released lane makes it claimable again.
        let (k4, e4) = entry("home", 0, "d", "2026-01-01T00:00:03Z");
        queue.insert(k4, e4);
        assert_eq!(queue.claim_idle(), vec![home0]);
    }
}
