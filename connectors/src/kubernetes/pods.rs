//! Pods: containers crash-looping, OOM-killed, unable to pull their image, restarting; pods
//! Pending too long, and evicted.
//!
//! | subject | when | data |
//! |---|---|---|
//! | `k8s/pod/<ns>/<pod>/<container>/CrashLoopBackOff` | the container enters back-off after a crash (each crash) | `reason`, `message`, `restarts`, `last_termination` |
//! | `k8s/pod/<ns>/<pod>/<container>/ImagePullBackOff`, `…/ErrImagePull` | the image cannot be pulled (once each until the container runs) | `reason`, `message`, `restarts` |
//! | `k8s/pod/<ns>/<pod>/<container>/OOMKilled` | a termination by the OOM killer (each) | `exit_code`, `finished_at`, `restarts` |
//! | `k8s/pod/<ns>/<pod>/<container>/Restarted` | the restart count went up | `restarts`, `increase`, `last_termination` |
//! | `k8s/pod/<ns>/<pod>/Pending` | Pending longer than `pods.pending_after` (`active: true`); no longer Pending, or deleted, after that (`active: false`) | `active`, `since`, `for_seconds`, `reason`, `message`, `phase`, `removed` |
//! | `k8s/pod/<ns>/<pod>/Evicted` | the pod was evicted | `message` |
//!
//! Labels: `namespace`, `pod`, `container` (container subjects), `reason`, `node` (when
//! scheduled). Init containers count as containers.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::known::{AfterCheck, Before, Kind};
use super::objects::{ContainerStatusView, PodView, TerminatedView};
use super::report::{Report, from_millis, millis, seconds_between};

/// Waiting reasons that are problems.
pub const WAITING_PROBLEMS: [&str; 3] = ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"];

pub(crate) struct Pods {
    pub pending_after: Duration,
}

/// What is kept of a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PodSummary {
    evicted: bool,
    /// Since when the pod has been Pending (ms), while it is.
    pending_since: Option<i64>,
    /// Pending too long was told, and its end not yet.
    pending_told: bool,
    containers: BTreeMap<String, ContainerSummary>,
    /// For timer-told events, which have no object at hand; the next list gives them again.
    #[serde(skip)]
    node: Option<String>,
    #[serde(skip)]
    pending_reason: (Option<String>, Option<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ContainerSummary {
    restarts: i32,
    waiting: Option<String>,
    /// Waiting problems told since the container last ran or restarted.
    told: Vec<String>,
    /// When its latest termination finished (ms): each termination is told once.
    finished: Option<i64>,
}

fn statuses(pod: &PodView) -> impl Iterator<Item = &ContainerStatusView> {
    let status = pod.status.as_ref();
    let init = status.and_then(|s| s.init_container_statuses.as_deref());
    let main = status.and_then(|s| s.container_statuses.as_deref());
    init.unwrap_or_default()
        .iter()
        .chain(main.unwrap_or_default())
}

fn termination_json(t: Option<&TerminatedView>) -> Value {
    match t {
        Some(t) => json!({
            "reason": t.reason,
            "exit_code": t.exit_code,
            "finished_at": t.finished_at.as_ref().map(|f| f.0.to_string()),
        }),
        None => Value::Null,
    }
}

fn finished(t: &TerminatedView) -> Option<i64> {
    t.finished_at.as_ref().map(|f| millis(f.0))
}

impl Pods {
    fn pending_overdue(&self, since: Option<i64>, now: Timestamp) -> bool {
        since.and_then(from_millis).is_some_and(|since| {
            now.duration_since(since).as_secs() >= self.pending_after.as_secs() as i64
        })
    }

    fn tell_pending(
        &self,
        key: &str,
        summary: &PodSummary,
        active: bool,
        phase: Option<&str>,
        removed: bool,
        report: &mut Report<'_>,
    ) {
        let (namespace, pod) = split(key);
        let since = summary.pending_since.and_then(from_millis);
        let node = summary.node.as_deref().unwrap_or("");
        report.tell(
            &["pod", namespace, pod, "Pending"],
            &[
                ("namespace", namespace),
                ("pod", pod),
                ("reason", "Pending"),
                ("node", node),
            ],
            json!({
                "active": active,
                "since": since.map(|s| s.to_string()),
                "for_seconds": since.map(|s| seconds_between(s, report.now)),
                "reason": summary.pending_reason.0,
                "message": summary.pending_reason.1,
                "phase": phase,
                "removed": removed,
            }),
            None,
        );
    }
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl Kind for Pods {
    type Object = PodView;
    type Summary = PodSummary;
    const RESOURCE: &'static str = "pods";
    const GROUP: &'static str = "";
    const TABLE: &'static str = "k8s_pods";

    fn key(&self, pod: &PodView) -> Option<String> {
        let meta = &pod.metadata;
        Some(format!(
            "{}/{}",
            meta.namespace.as_deref()?,
            meta.name.as_deref()?
        ))
    }

    fn summarize(&self, pod: &PodView, _now: Timestamp) -> Option<PodSummary> {
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        let pending = phase == Some("Pending");
        let scheduled = status.and_then(|s| s.conditions.as_ref()).and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status != "True")
        });
        let pending_reason = match scheduled {
            Some(c) => (c.reason.clone(), c.message.clone()),
            None => (
                status.and_then(|s| s.reason.clone()),
                status.and_then(|s| s.message.clone()),
            ),
        };
        Some(PodSummary {
            evicted: phase == Some("Failed")
                && status.and_then(|s| s.reason.as_deref()) == Some("Evicted"),
            pending_since: pending
                .then(|| {
                    pod.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| millis(t.0))
                })
                .flatten(),
            pending_told: false,
            containers: statuses(pod)
                .map(|c| {
                    let state = c.state.as_ref();
                    let waiting = state
                        .and_then(|s| s.waiting.as_ref())
                        .map(|w| w.reason.clone().unwrap_or_default());
                    let latest = [
                        state.and_then(|s| s.terminated.as_ref()),
                        c.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
                    ]
                    .into_iter()
                    .flatten()
                    .filter_map(finished)
                    .max();
                    (
                        c.name.clone(),
                        ContainerSummary {
                            restarts: c.restart_count,
                            waiting,
                            told: Vec::new(),
                            finished: latest,
                        },
                    )
                })
                .collect(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            pending_reason: if pending {
                pending_reason
            } else {
                (None, None)
            },
        })
    }

    fn compare(
        &self,
        key: &str,
        before: Before<'_, PodSummary>,
        after: &mut PodSummary,
        pod: &PodView,
        report: &mut Report<'_>,
    ) {
        let (namespace, name) = split(key);
        let old = before.known();
        let baseline = before.is_baseline();
        let node = after.node.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());

        // Pending: a level, told when overdue and when it ends.
        let was_told = old.is_some_and(|o| o.pending_told);
        if after.pending_since.is_some() {
            after.pending_told = was_told;
            if !was_told && self.pending_overdue(after.pending_since, report.now) {
                after.pending_told = true;
                self.tell_pending(key, after, true, phase, false, report);
            }
        } else if was_told {
            let mut ended = after.clone();
            ended.pending_since = old.and_then(|o| o.pending_since);
            ended.pending_reason = old.map(|o| o.pending_reason.clone()).unwrap_or_default();
            self.tell_pending(key, &ended, false, phase, false, report);
        }

        if after.evicted && !baseline && !old.is_some_and(|o| o.evicted) {
            report.tell(
                &["pod", namespace, name, "Evicted"],
                &[
                    ("namespace", namespace),
                    ("pod", name),
                    ("reason", "Evicted"),
                    ("node", &node),
                ],
                json!({"message": pod.status.as_ref().and_then(|s| s.message.as_deref())}),
                None,
            );
        }

        for status in statuses(pod) {
            let Some(container) = after.containers.get_mut(&status.name) else {
                continue;
            };
            let was = old.and_then(|o| o.containers.get(&status.name));
            let labels = |reason: &'static str| {
                [
                    ("namespace", namespace),
                    ("pod", name),
                    ("container", status.name.as_str()),
                    ("reason", reason),
                    ("node", node.as_str()),
                ]
            };
            let tokens =
                |reason: &'static str| ["pod", namespace, name, status.name.as_str(), reason];
            let state = status.state.as_ref();
            let last = status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());

            let increase = match was {
                Some(was) => container.restarts - was.restarts,
                None if baseline => 0,
                None => container.restarts,
            };
            if increase > 0 {
                report.tell(
                    &tokens("Restarted"),
                    &labels("Restarted"),
                    json!({
                        "restarts": container.restarts,
                        "increase": increase,
                        "last_termination": termination_json(last),
                    }),
                    last.and_then(|t| t.finished_at.as_ref()).map(|f| f.0),
                );
            }

            // Each termination once: newer than the latest one known.
            if !baseline {
                let known_finished = was.and_then(|w| w.finished);
                let mut terminations: Vec<&TerminatedView> =
                    [last, state.and_then(|s| s.terminated.as_ref())]
                        .into_iter()
                        .flatten()
                        .collect();
                terminations.sort_by_key(|t| finished(t));
                terminations.dedup_by_key(|t| finished(t));
                for t in terminations {
                    let new = match (finished(t), known_finished) {
                        (Some(at), Some(known)) => at > known,
                        (Some(_), None) => true,
                        (None, _) => increase > 0,
                    };
                    if new && t.reason.as_deref() == Some("OOMKilled") {
                        report.tell(
                            &tokens("OOMKilled"),
                            &labels("OOMKilled"),
                            json!({
                                "exit_code": t.exit_code,
                                "finished_at": t.finished_at.as_ref().map(|f| f.0.to_string()),
                                "restarts": container.restarts,
                            }),
                            t.finished_at.as_ref().map(|f| f.0),
                        );
                    }
                }
            }

            // Waiting problems: each reason once per episode (until the container runs or
            // restarts), so ErrImagePull ⇄ ImagePullBackOff flapping is told once each.
            if let Some(was) = was
                && was.waiting.is_some()
                && container.waiting.is_some()
                && was.restarts == container.restarts
            {
                container.told = was.told.clone();
            }
            let waiting = state.and_then(|s| s.waiting.as_ref());
            if let Some(reason) = WAITING_PROBLEMS
                .iter()
                .find(|r| container.waiting.as_deref() == Some(**r))
                && !container.told.iter().any(|t| t == reason)
            {
                container.told.push((*reason).to_owned());
                report.tell(
                    &tokens(reason),
                    &labels(reason),
                    json!({
                        "reason": reason,
                        "message": waiting.and_then(|w| w.message.as_deref()),
                        "restarts": container.restarts,
                        "last_termination": termination_json(last),
                    }),
                    None,
                );
            }
        }
    }

    fn removed(&self, key: &str, before: &PodSummary, report: &mut Report<'_>) {
        if before.pending_told {
            self.tell_pending(key, before, false, None, true, report);
        }
    }

    fn next_check(&self, summary: &PodSummary) -> Option<Timestamp> {
        if summary.pending_told {
            return None;
        }
        let since = summary.pending_since.and_then(from_millis)?;
        since
            .checked_add(jiff::SignedDuration::try_from(self.pending_after).ok()?)
            .ok()
    }

    fn check(&self, key: &str, summary: &mut PodSummary, report: &mut Report<'_>) -> AfterCheck {
        if !summary.pending_told && self.pending_overdue(summary.pending_since, report.now) {
            summary.pending_told = true;
            self.tell_pending(key, summary, true, Some("Pending"), false, report);
        }
        AfterCheck::Keep
    }
}

#[cfg(test)]
mod tests;
