//! Nodes: Ready transitions, pressure conditions, nodes added and removed.
//!
//! | subject | when | data |
//! |---|---|---|
//! | `k8s/node/<node>/ready` | Ready changes status (`True`, `False`, `Unknown`) | `ready`, `status`, `reason`, `message`, `since`, `for_seconds`, `previous_seconds` |
//! | `k8s/node/<node>/condition/<type>` | DiskPressure, MemoryPressure, PIDPressure or NetworkUnavailable changes | `condition`, `active`, `status`, `reason`, `message`, `since`, `for_seconds` |
//! | `k8s/node/<node>/added` | a node joins | `kubelet_version`, `architecture` |
//! | `k8s/node/<node>/removed` | a node is deleted | — |
//!
//! Labels: `node`, and `condition` on condition events. A removed node ends its problem
//! series: when it was not ready, a last `ready` event says `ready: true, removed: true` (and
//! an active condition `active: false, removed: true`), so alerts about it resolve.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::known::{Before, Kind};
use super::objects::{ConditionView, NodeView};
use super::report::{Report, from_millis, millis, seconds_between};

/// The conditions that are problems when `True`.
pub const PROBLEM_CONDITIONS: [&str; 4] = [
    "DiskPressure",
    "MemoryPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

pub(crate) struct Nodes;

/// What is kept of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeSummary {
    /// The Ready condition's status, and since when (ms); `None` before the kubelet said.
    ready: Option<Condition>,
    /// The problem conditions present, by type.
    conditions: BTreeMap<String, Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Condition {
    status: String,
    since: Option<i64>,
}

impl Condition {
    fn of(view: &ConditionView) -> Self {
        Self {
            status: view.status.clone(),
            since: view.last_transition_time.as_ref().map(|t| millis(t.0)),
        }
    }
}

fn condition<'a>(node: &'a NodeView, type_: &str) -> Option<&'a ConditionView> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

impl Kind for Nodes {
    type Object = NodeView;
    type Summary = NodeSummary;
    const RESOURCE: &'static str = "nodes";
    const GROUP: &'static str = "";
    const TABLE: &'static str = "k8s_nodes";

    fn key(&self, node: &NodeView) -> Option<String> {
        node.metadata.name.clone()
    }

    fn summarize(&self, node: &NodeView, _now: Timestamp) -> Option<NodeSummary> {
        Some(NodeSummary {
            ready: condition(node, "Ready").map(Condition::of),
            conditions: PROBLEM_CONDITIONS
                .iter()
                .filter_map(|t| condition(node, t).map(|c| ((*t).to_owned(), Condition::of(c))))
                .collect(),
        })
    }

    fn compare(
        &self,
        name: &str,
        before: Before<'_, NodeSummary>,
        after: &mut NodeSummary,
        node: &NodeView,
        report: &mut Report<'_>,
    ) {
        if matches!(before, Before::Unknown) {
            let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
            report.tell(
                &["node", name, "added"],
                &[("node", name)],
                json!({
                    "node": name,
                    "kubelet_version": info.and_then(|i| i.kubelet_version.as_deref()),
                    "architecture": info.and_then(|i| i.architecture.as_deref()),
                }),
                node.metadata.creation_timestamp.as_ref().map(|t| t.0),
            );
        }
        let old = before.known();
        if let Some(new) = &after.ready {
            let was = old.and_then(|o| o.ready.as_ref());
            let changed = match was {
                Some(was) => was.status != new.status,
                // First sight: only a node that is not ready is news.
                None => new.status != "True" || old.is_some(),
            };
            if changed {
                let view = condition(node, "Ready");
                let since = new.since.and_then(from_millis);
                let previous = match (was.and_then(|w| w.since), new.since) {
                    (Some(from), Some(to)) => Some(((to - from) / 1000).max(0)),
                    _ => None,
                };
                report.tell(
                    &["node", name, "ready"],
                    &[
                        ("node", name),
                        (
                            "reason",
                            view.and_then(|v| v.reason.as_deref()).unwrap_or(""),
                        ),
                    ],
                    json!({
                        "ready": new.status == "True",
                        "status": new.status,
                        "reason": view.and_then(|v| v.reason.as_deref()),
                        "message": view.and_then(|v| v.message.as_deref()),
                        "since": since.map(|s| s.to_string()),
                        "for_seconds": since.map(|s| seconds_between(s, report.now)),
                        "previous_seconds": previous,
                        "removed": false,
                    }),
                    since,
                );
            }
        }
        for type_ in PROBLEM_CONDITIONS {
            let new = after.conditions.get(type_);
            let was = old.and_then(|o| o.conditions.get(type_));
            let active = |c: Option<&Condition>| c.is_some_and(|c| c.status == "True");
            let changed = match (was, new) {
                (Some(was), Some(new)) => was.status != new.status,
                // Gone from the node's status: news only if it was a problem.
                (Some(_), None) => active(was),
                // First sight: only a problem is news.
                (None, Some(_)) => active(new),
                (None, None) => false,
            };
            if changed {
                let view = condition(node, type_);
                let since = new.and_then(|c| c.since).and_then(from_millis);
                report.tell(
                    &["node", name, "condition", type_],
                    &[
                        ("node", name),
                        ("condition", type_),
                        (
                            "reason",
                            view.and_then(|v| v.reason.as_deref()).unwrap_or(""),
                        ),
                    ],
                    json!({
                        "condition": type_,
                        "active": active(new),
                        "status": new.map_or("Unknown", |c| c.status.as_str()),
                        "reason": view.and_then(|v| v.reason.as_deref()),
                        "message": view.and_then(|v| v.message.as_deref()),
                        "since": since.map(|s| s.to_string()),
                        "for_seconds": since.map(|s| seconds_between(s, report.now)),
                        "removed": false,
                    }),
                    since,
                );
            }
        }
    }

    fn removed(&self, name: &str, before: &NodeSummary, report: &mut Report<'_>) {
        if before.ready.as_ref().is_some_and(|r| r.status != "True") {
            report.tell(
                &["node", name, "ready"],
                &[("node", name), ("reason", "Removed")],
                json!({"ready": true, "status": "Removed", "reason": "Removed", "removed": true}),
                None,
            );
        }
        for (type_, condition) in &before.conditions {
            if condition.status == "True" {
                report.tell(
                    &["node", name, "condition", type_],
                    &[("node", name), ("condition", type_), ("reason", "Removed")],
                    json!({"condition": type_, "active": false, "status": "Removed", "removed": true}),
                    None,
                );
            }
        }
        report.tell(
            &["node", name, "removed"],
            &[("node", name)],
            json!({"node": name}),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(conditions: &[(&str, &str, &str)]) -> NodeView {
        let conditions: Vec<_> = conditions
            .iter()
            .map(|(t, s, since)| {
                json!({"type": t, "status": s, "reason": format!("R{t}{s}"),
                       "lastTransitionTime": since})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "pi-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.33.1", "architecture": "arm64"}}
        }))
        .unwrap()
    }

    fn tell(
        before: Before<'_, NodeSummary>,
        view: &NodeView,
    ) -> (NodeSummary, Vec<(String, serde_json::Value)>) {
        let now = "2026-01-05T12:05:00Z".parse().unwrap();
        let mut report = Report::new("test", now);
        let mut after = Nodes.summarize(view, now).unwrap();
        Nodes.compare("pi-1", before, &mut after, view, &mut report);
        let told = report
            .events
            .into_iter()
            .map(|e| (e.subject.as_str().to_owned(), e.data))
            .collect();
        (after, told)
    }

    const T0: &str = "2026-01-05T12:00:00Z";
    const T1: &str = "2026-01-05T12:04:00Z";

    #[test]
    fn a_baseline_tells_only_problems() {
        let healthy = node(&[("Ready", "True", T0), ("DiskPressure", "False", T0)]);
        assert!(tell(Before::Baseline, &healthy).1.is_empty());
        let sick = node(&[("Ready", "False", T0), ("DiskPressure", "True", T0)]);
        let (_, told) = tell(Before::Baseline, &sick);
        let subjects: Vec<&str> = told.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "k8s/node/pi-1/ready",
                "k8s/node/pi-1/condition/DiskPressure"
            ]
        );
        assert_eq!(told[0].1["ready"], false);
        assert_eq!(told[1].1["active"], true);
    }

    #[test]
    fn ready_transitions_are_told_once_with_how_long() {
        let (ready, _) = tell(Before::Baseline, &node(&[("Ready", "True", T0)]));
        // Heartbeat updates change nothing kept: nothing told.
        let (same, told) = tell(Before::Known(&ready), &node(&[("Ready", "True", T0)]));
        assert!(told.is_empty());
        assert_eq!(same, ready);
        let (not_ready, told) = tell(Before::Known(&ready), &node(&[("Ready", "Unknown", T1)]));
        assert_eq!(told.len(), 1);
        let data = &told[0].1;
        assert_eq!(data["ready"], false);
        assert_eq!(data["status"], "Unknown");
        assert_eq!(data["reason"], "RReadyUnknown");
        assert_eq!(data["for_seconds"], 60);
        assert_eq!(data["previous_seconds"], 240, "ready for 4 minutes before");
        let (_, told) = tell(
            Before::Known(&not_ready),
            &node(&[("Ready", "True", "2026-01-05T12:05:00Z")]),
        );
        assert_eq!(told[0].1["ready"], true);
        assert_eq!(told[0].1["previous_seconds"], 60, "down for a minute");
    }

    #[test]
    fn a_new_node_is_added_and_a_removed_one_resolves_its_problems() {
        let view = node(&[("Ready", "False", T0), ("MemoryPressure", "True", T0)]);
        let (summary, told) = tell(Before::Unknown, &view);
        assert_eq!(told[0].0, "k8s/node/pi-1/added");
        assert_eq!(told[0].1["architecture"], "arm64");
        assert_eq!(told.len(), 3);
        let mut report = Report::new("test", Timestamp::now());
        Nodes.removed("pi-1", &summary, &mut report);
        let told: Vec<(String, serde_json::Value)> = report
            .events
            .into_iter()
            .map(|e| (e.subject.as_str().to_owned(), e.data))
            .collect();
        assert_eq!(told[0].0, "k8s/node/pi-1/ready");
        assert_eq!(told[0].1["ready"], true);
        assert_eq!(told[0].1["removed"], true);
        assert_eq!(told[1].0, "k8s/node/pi-1/condition/MemoryPressure");
        assert_eq!(told[1].1["active"], false);
        assert_eq!(told[2].0, "k8s/node/pi-1/removed");
    }

    #[test]
    fn a_pressure_that_ends_is_told() {
        let (pressed, _) = tell(
            Before::Baseline,
            &node(&[("Ready", "True", T0), ("PIDPressure", "True", T0)]),
        );
        let (_, told) = tell(
            Before::Known(&pressed),
            &node(&[("Ready", "True", T0), ("PIDPressure", "False", T1)]),
        );
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].0, "k8s/node/pi-1/condition/PIDPressure");
        assert_eq!(told[0].1["active"], false);
    }
}
