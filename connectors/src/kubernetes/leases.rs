//! Node heartbeats: the kubelet renews its Lease in `kube-node-lease` every 10 seconds; a
//! lease not renewed for `stale_after` is a missing heartbeat, told long before the node
//! controller marks the node NotReady (40 s later by default, and the Ready change needs a
//! working controller).
//!
//! | subject | when | data |
//! |---|---|---|
//! | `k8s/node/<node>/heartbeat` | the lease goes stale, or is renewed again after | `stale`, `renew_time`, `age_seconds`, `threshold_seconds`, `holder`, `removed` |
//!
//! Label: `node`. Staleness needs time, not a change: [`heartbeat`] decides it from the
//! renew time, the lease duration, the threshold and now, and says when to look again; the
//! watch's timer does the looking. A stale lease is told once, and fresh again once.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::known::{AfterCheck, Before, Kind};
use super::objects::LeaseView;
use super::report::{Report, from_millis, millis};

/// The namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The threshold when neither the config nor the lease gives one.
const DEFAULT_THRESHOLD: Duration = Duration::from_secs(40);

/// The verdict on one heartbeat at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Not renewed for the threshold or longer.
    pub stale: bool,
    /// How long since the last renewal (negative when the renew time is ahead of this clock).
    pub age: Option<jiff::SignedDuration>,
    /// The threshold used.
    pub threshold: Duration,
    /// When a fresh heartbeat goes stale unless renewed before; `None` once stale or
    /// without a renew time.
    pub stale_at: Option<Timestamp>,
}

/// Decides whether a lease renewed at `renew` is stale at `now`: stale once `now - renew`
/// reaches the threshold — `stale_after` when configured, else the lease's own duration
/// (else 40 s). A lease never renewed is not judged.
pub fn heartbeat(
    renew: Option<Timestamp>,
    lease_duration: Option<Duration>,
    now: Timestamp,
    stale_after: Option<Duration>,
) -> Heartbeat {
    let threshold = stale_after
        .or(lease_duration)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_THRESHOLD);
    let Some(renew) = renew else {
        return Heartbeat {
            stale: false,
            age: None,
            threshold,
            stale_at: None,
        };
    };
    let stale_at = jiff::SignedDuration::try_from(threshold)
        .ok()
        .and_then(|t| renew.checked_add(t).ok());
    let stale = stale_at.is_some_and(|at| now >= at);
    Heartbeat {
        stale,
        age: Some(now.duration_since(renew)),
        threshold,
        stale_at: if stale { None } else { stale_at },
    }
}

pub(crate) struct Leases {
    pub stale_after: Option<Duration>,
}

/// What is kept of a lease. Only whether it was told stale is stored: the renew time changes
/// every 10 seconds, and the first list after a restart gives it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeaseSummary {
    stale: bool,
    #[serde(skip)]
    renew: Option<i64>,
    #[serde(skip)]
    duration: Option<u64>,
    #[serde(skip)]
    holder: Option<String>,
}

impl Leases {
    fn verdict(&self, summary: &LeaseSummary, now: Timestamp) -> Heartbeat {
        heartbeat(
            summary.renew.and_then(from_millis),
            summary.duration.map(Duration::from_secs),
            now,
            self.stale_after,
        )
    }

    fn tell(
        &self,
        node: &str,
        summary: &LeaseSummary,
        verdict: &Heartbeat,
        report: &mut Report<'_>,
    ) {
        report.tell(
            &["node", node, "heartbeat"],
            &[("node", node)],
            json!({
                "stale": verdict.stale,
                "renew_time": summary.renew.and_then(from_millis).map(|t| t.to_string()),
                "age_seconds": verdict.age.map(|a| a.as_secs()),
                "threshold_seconds": verdict.threshold.as_secs(),
                "holder": summary.holder,
                "removed": false,
            }),
            None,
        );
    }
}

impl Kind for Leases {
    type Object = LeaseView;
    type Summary = LeaseSummary;
    const RESOURCE: &'static str = "leases";
    const GROUP: &'static str = "coordination.k8s.io";
    const TABLE: &'static str = "k8s_leases";

    fn key(&self, lease: &LeaseView) -> Option<String> {
        lease.metadata.name.clone()
    }

    fn summarize(&self, lease: &LeaseView, _now: Timestamp) -> Option<LeaseSummary> {
        let spec = lease.spec.as_ref();
        Some(LeaseSummary {
            stale: false,
            renew: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| millis(t.0)),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok()),
            holder: spec.and_then(|s| s.holder_identity.clone()),
        })
    }

    fn compare(
        &self,
        node: &str,
        before: Before<'_, LeaseSummary>,
        after: &mut LeaseSummary,
        _lease: &LeaseView,
        report: &mut Report<'_>,
    ) {
        let was_stale = before.known().is_some_and(|b| b.stale);
        let verdict = self.verdict(after, report.now);
        after.stale = verdict.stale;
        if verdict.stale != was_stale {
            self.tell(node, after, &verdict, report);
        }
    }

    fn removed(&self, node: &str, before: &LeaseSummary, report: &mut Report<'_>) {
        if before.stale {
            report.tell(
                &["node", node, "heartbeat"],
                &[("node", node)],
                json!({"stale": false, "removed": true}),
                None,
            );
        }
    }

    fn next_check(&self, summary: &LeaseSummary) -> Option<Timestamp> {
        if summary.stale {
            return None;
        }
        // `now` only decides staleness, not when a fresh lease goes stale.
        self.verdict(summary, Timestamp::MIN).stale_at
    }

    fn check(&self, node: &str, summary: &mut LeaseSummary, report: &mut Report<'_>) -> AfterCheck {
        let verdict = self.verdict(summary, report.now);
        if verdict.stale && !summary.stale {
            summary.stale = true;
            self.tell(node, summary, &verdict, report);
        }
        AfterCheck::Keep
    }

    fn stored_alike(a: &LeaseSummary, b: &LeaseSummary) -> bool {
        a.stale == b.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const RENEW: &str = "2026-01-05T12:00:00Z";

    #[test]
    fn stale_once_the_threshold_has_passed() {
        let renew = Some(at(RENEW));
        let forty = Some(Duration::from_secs(40));
        let fresh = heartbeat(renew, forty, at("2026-01-05T12:00:39Z"), None);
        assert!(!fresh.stale);
        assert_eq!(fresh.stale_at, Some(at("2026-01-05T12:00:40Z")));
        assert_eq!(fresh.age.unwrap().as_secs(), 39);
        let stale = heartbeat(renew, forty, at("2026-01-05T12:00:40Z"), None);
        assert!(stale.stale);
        assert_eq!(stale.stale_at, None);
    }

    #[test]
    fn the_configured_threshold_wins_over_the_lease_duration() {
        let renew = Some(at(RENEW));
        let verdict = heartbeat(
            renew,
            Some(Duration::from_secs(40)),
            at("2026-01-05T12:00:20Z"),
            Some(Duration::from_secs(15)),
        );
        assert!(verdict.stale);
        assert_eq!(verdict.threshold, Duration::from_secs(15));
        let no_duration = heartbeat(renew, None, at("2026-01-05T12:00:39Z"), None);
        assert_eq!(no_duration.threshold, DEFAULT_THRESHOLD);
        assert!(!no_duration.stale);
    }

    #[test]
    fn a_renew_time_ahead_of_this_clock_is_fresh_and_no_renew_time_is_not_judged() {
        let ahead = heartbeat(Some(at(RENEW)), None, at("2026-01-05T11:59:50Z"), None);
        assert!(!ahead.stale);
        assert_eq!(ahead.age.unwrap().as_secs(), -10);
        let never = heartbeat(None, None, at(RENEW), None);
        assert!(!never.stale);
        assert_eq!(never.stale_at, None);
    }

    fn lease(renew: &str) -> LeaseView {
        serde_json::from_value(json!({
            "metadata": {"name": "pi-1", "namespace": NODE_LEASE_NAMESPACE},
            "spec": {"holderIdentity": "pi-1", "leaseDurationSeconds": 40, "renewTime": renew}
        }))
        .unwrap()
    }

    #[test]
    fn stale_is_told_once_by_the_timer_and_fresh_again_once() {
        let leases = Leases { stale_after: None };
        let view = lease("2026-01-05T12:00:00.000000Z");
        let mut report = Report::new("t", at("2026-01-05T12:00:05Z"));
        let mut summary = leases.summarize(&view, report.now).unwrap();
        leases.compare("pi-1", Before::Baseline, &mut summary, &view, &mut report);
        assert!(report.events.is_empty());
        assert_eq!(
            leases.next_check(&summary),
            Some(at("2026-01-05T12:00:40Z"))
        );

        let mut report = Report::new("t", at("2026-01-05T12:00:40Z"));
        leases.check("pi-1", &mut summary, &mut report);
        assert_eq!(report.events.len(), 1);
        assert_eq!(report.events[0].subject.as_str(), "k8s/node/pi-1/heartbeat");
        assert_eq!(report.events[0].data["stale"], true);
        assert_eq!(report.events[0].data["age_seconds"], 40);
        assert_eq!(leases.next_check(&summary), None);
        let mut report = Report::new("t", at("2026-01-05T12:00:50Z"));
        leases.check("pi-1", &mut summary, &mut report);
        assert!(report.events.is_empty(), "told once");

        let renewed = lease("2026-01-05T12:01:00.000000Z");
        let mut report = Report::new("t", at("2026-01-05T12:01:00Z"));
        let mut after = leases.summarize(&renewed, report.now).unwrap();
        leases.compare(
            "pi-1",
            Before::Known(&summary),
            &mut after,
            &renewed,
            &mut report,
        );
        assert_eq!(report.events.len(), 1);
        assert_eq!(report.events[0].data["stale"], false);
        assert!(!<Leases as Kind>::stored_alike(&summary, &after));
    }

    #[test]
    fn a_stale_lease_at_first_sight_is_told() {
        let leases = Leases { stale_after: None };
        let view = lease("2026-01-05T11:00:00.000000Z");
        let mut report = Report::new("t", at("2026-01-05T12:00:00Z"));
        let mut summary = leases.summarize(&view, report.now).unwrap();
        leases.compare("pi-1", Before::Baseline, &mut summary, &view, &mut report);
        assert_eq!(report.events.len(), 1);
        assert_eq!(report.events[0].data["age_seconds"], 3600);
    }
}
