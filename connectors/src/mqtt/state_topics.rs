//! Alert state topics that tell the truth: what is retained under a `mqtt_configs`
//! `state_topic_prefix` ends resolved once the alert is no longer held firing, and is cleared
//! (an empty retained payload) `clear_resolved_after` later.
//!
//! The notifier publishes each alert's state as it notifies (firing; resolved, when the route
//! sends resolved notifications; a one-shot alert firing then at once resolved). That alone
//! left topics firing forever: a route with `send_resolved: false`, an alert silenced until
//! it resolved, a rule removed while atalaya was down. So [`StateTopics`] also reads back what
//! the broker retains under each prefix — at every start the broker replays it, and every
//! later publish comes back too — and compares it with the alerts the router holds:
//! - a topic showing firing whose alert is not held firing is published resolved;
//! - a resolved topic is cleared `clear_resolved_after` after it resolved (`endsAt`), also
//!   when that time passed while atalaya was down;
//! - a payload that is not an alert state (not JSON, no `status`) counts as resolved now.
//!
//! Sans-IO: the [`keeper`](super::keeper) feeds it what the broker sends and what the router
//! holds, and publishes what it returns.

use std::collections::{BTreeMap, HashSet};

use atalaya_bus::Pattern;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// One prefix to keep true: `<prefix>/<fingerprint>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTopicSettings {
    /// Without a trailing `/`.
    pub prefix: String,
    pub clear_resolved_after: SignedDuration,
}

/// A retained publish to make; an empty payload clears the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retain {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What is known of one topic: its last retained state.
#[derive(Debug)]
struct Known {
    fingerprint: String,
    state: Value,
    /// `None` while it shows firing.
    resolved_at: Option<Timestamp>,
    clear_after: SignedDuration,
}

/// The state topics under every configured prefix, as the broker retains them.
#[derive(Debug, Default)]
pub struct StateTopics {
    settings: Vec<StateTopicSettings>,
    known: BTreeMap<String, Known>,
}

impl StateTopics {
    pub fn new(mut settings: Vec<StateTopicSettings>) -> Self {
        for s in &mut settings {
            s.prefix = s.prefix.trim_end_matches('/').to_owned();
        }
        settings.retain(|s| !s.prefix.is_empty());
        settings.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        settings.dedup_by(|a, b| a.prefix == b.prefix);
        Self {
            settings,
            known: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// What to tap: `<prefix>/+fingerprint` for each prefix that makes a pattern.
    pub fn patterns(&self) -> Vec<Pattern> {
        self.settings
            .iter()
            .filter_map(|s| Pattern::parse(&format!("{}/+fingerprint", s.prefix)).ok())
            .collect()
    }

    /// A message the broker sent on a tapped topic; `false` when it is not a state topic.
    pub fn tapped(&mut self, topic: &str, payload: &[u8], now: Timestamp) -> bool {
        let Some((prefix, fingerprint)) = topic.rsplit_once('/') else {
            return false;
        };
        let Some(settings) = self.settings.iter().find(|s| s.prefix == prefix) else {
            return false;
        };
        if payload.is_empty() {
            self.known.remove(topic);
            return true;
        }
        let state: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let resolved_at = match state.get("status").and_then(Value::as_str) {
            Some("firing") => None,
            Some("resolved") => Some(
                state
                    .get("endsAt")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(now),
            ),
            _ => Some(now),
        };
        self.known.insert(
            topic.to_owned(),
            Known {
                fingerprint: fingerprint.to_owned(),
                state,
                resolved_at,
                clear_after: settings.clear_resolved_after,
            },
        );
        true
    }

    /// Topics showing firing whose alert is not among `firing` (fingerprints of the alerts
    /// the router holds firing), published resolved as of `now`.
    pub fn repair(&mut self, firing: &HashSet<&str>, now: Timestamp) -> Vec<Retain> {
        let mut out = Vec::new();
        for (topic, known) in &mut self.known {
            if known.resolved_at.is_some() || firing.contains(known.fingerprint.as_str()) {
                continue;
            }
            if let Value::Object(state) = &mut known.state {
                state.insert("status".to_owned(), Value::from("resolved"));
                state.insert("endsAt".to_owned(), Value::from(now.to_string()));
            }
            known.resolved_at = Some(now);
            out.push(Retain {
                topic: topic.clone(),
                payload: serde_json::to_vec(&known.state).unwrap_or_default(),
            });
        }
        out
    }

    /// Resolved topics due to be cleared by `now`; they are forgotten.
    pub fn due(&mut self, now: Timestamp) -> Vec<Retain> {
        let due: Vec<String> = self
            .known
            .iter()
            .filter(|(_, k)| k.clear_at().is_some_and(|at| at <= now))
            .map(|(topic, _)| topic.clone())
            .collect();
        due.into_iter()
            .map(|topic| {
                self.known.remove(&topic);
                Retain {
                    topic,
                    payload: Vec::new(),
                }
            })
            .collect()
    }

    /// When the next resolved topic is due to be cleared.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.known.values().filter_map(Known::clear_at).min()
    }
}

impl Known {
    fn clear_at(&self) -> Option<Timestamp> {
        self.resolved_at
            .map(|at| at.checked_add(self.clear_after).unwrap_or(Timestamp::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn topics() -> StateTopics {
        StateTopics::new(vec![StateTopicSettings {
            prefix: "atalaya/alerts/".to_owned(),
            clear_resolved_after: SignedDuration::from_hours(1),
        }])
    }

    fn state(status: &str, ends_at: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "status": status, "labels": {"alertname": "x"}, "endsAt": ends_at,
        }))
        .unwrap()
    }

    #[test]
    fn a_firing_topic_whose_alert_is_not_held_is_resolved_then_cleared() {
        let mut topics = topics();
        let now = t("2026-12-04T10:00:00Z");
        assert_eq!(
            topics.patterns(),
            vec![Pattern::parse("atalaya/alerts/+fingerprint").unwrap()]
        );
        assert!(topics.tapped("atalaya/alerts/aaa", &state("firing", None), now));
        assert!(topics.tapped("atalaya/alerts/bbb", &state("firing", None), now));
        assert!(!topics.tapped("elsewhere/ccc", &state("firing", None), now));
        let held = HashSet::from(["aaa"]);
        let repaired = topics.repair(&held, now);
        assert_eq!(repaired.len(), 1);
        assert_eq!(repaired[0].topic, "atalaya/alerts/bbb");
        let payload: Value = serde_json::from_slice(&repaired[0].payload).unwrap();
        assert_eq!(payload["status"], "resolved");
        assert_eq!(payload["endsAt"], "2026-12-04T10:00:00Z");
        assert_eq!(payload["labels"]["alertname"], "x", "the rest is kept");
        assert!(topics.repair(&held, now).is_empty(), "once");
        assert_eq!(topics.next_deadline(), Some(t("2026-12-04T11:00:00Z")));
        assert!(topics.due(t("2026-12-04T10:59:59Z")).is_empty());
        let cleared = topics.due(t("2026-12-04T11:00:00Z"));
        assert_eq!(
            cleared,
            vec![Retain {
                topic: "atalaya/alerts/bbb".to_owned(),
                payload: Vec::new()
            }]
        );
        assert_eq!(topics.next_deadline(), None, "the held alert stays");
    }

    #[test]
    fn resolved_topics_found_at_start_are_cleared_from_when_they_resolved() {
        let mut topics = topics();
        let now = t("2026-12-04T10:00:00Z");
        topics.tapped(
            "atalaya/alerts/old",
            &state("resolved", Some("2026-12-04T08:00:00Z")),
            now,
        );
        topics.tapped(
            "atalaya/alerts/new",
            &state("resolved", Some("2026-12-04T09:30:00Z")),
            now,
        );
        topics.tapped("atalaya/alerts/junk", b"not json", now);
        let cleared: Vec<String> = topics.due(now).into_iter().map(|r| r.topic).collect();
        assert_eq!(cleared, ["atalaya/alerts/old"]);
        assert_eq!(topics.next_deadline(), Some(t("2026-12-04T10:30:00Z")));
        // A clear coming back (or someone else's) forgets the topic.
        topics.tapped("atalaya/alerts/new", b"", now);
        assert_eq!(topics.next_deadline(), Some(t("2026-12-04T11:00:00Z")));
    }

    #[test]
    fn a_topic_firing_again_is_not_cleared() {
        let mut topics = topics();
        let now = t("2026-12-04T10:00:00Z");
        topics.tapped(
            "atalaya/alerts/a",
            &state("resolved", Some("2026-12-04T09:00:00Z")),
            now,
        );
        topics.tapped("atalaya/alerts/a", &state("firing", None), now);
        assert!(topics.due(t("2026-12-05T00:00:00Z")).is_empty());
        assert!(topics.repair(&HashSet::from(["a"]), now).is_empty());
    }
}
