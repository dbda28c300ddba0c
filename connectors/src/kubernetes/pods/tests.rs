//! Pod changes, from views built as the API server sends them.

use serde_json::json;

use super::*;

const NOW: &str = "2026-01-05T12:10:00Z";

fn pods() -> Pods {
    Pods {
        pending_after: Duration::from_secs(300),
    }
}

fn pod(phase: &str, containers: serde_json::Value) -> PodView {
    serde_json::from_value(json!({
        "metadata": {"name": "jellyfin-0", "namespace": "media",
                     "creationTimestamp": "2026-01-05T12:00:00Z"},
        "spec": {"nodeName": "pi-2"},
        "status": {"phase": phase, "containerStatuses": containers}
    }))
    .unwrap()
}

fn running(restarts: i32, last: Option<(&str, &str)>) -> serde_json::Value {
    let mut c = json!({"name": "app", "restartCount": restarts, "state": {"running": {}}});
    if let Some((reason, at)) = last {
        c["lastState"] =
            json!({"terminated": {"reason": reason, "exitCode": 137, "finishedAt": at}});
    }
    json!([c])
}

fn waiting(reason: &str, restarts: i32) -> serde_json::Value {
    json!([{"name": "app", "restartCount": restarts,
            "state": {"waiting": {"reason": reason, "message": "m"}}}])
}

fn tell(before: Before<'_, PodSummary>, view: &PodView) -> (PodSummary, Vec<String>) {
    let mut report = Report::new("t", NOW.parse().unwrap());
    let mut after = pods().summarize(view, report.now).unwrap();
    pods().compare("media/jellyfin-0", before, &mut after, view, &mut report);
    let told = report
        .events
        .iter()
        .map(|e| {
            e.subject
                .as_str()
                .trim_start_matches("k8s/pod/media/jellyfin-0/")
                .to_owned()
        })
        .collect();
    (after, told)
}

#[test]
fn a_baseline_tells_current_waiting_problems_but_not_history() {
    let (_, told) = tell(
        Before::Baseline,
        &pod(
            "Running",
            running(5, Some(("OOMKilled", "2026-01-01T00:00:00Z"))),
        ),
    );
    assert!(told.is_empty(), "{told:?}");
    let (_, told) = tell(
        Before::Baseline,
        &pod("Running", waiting("CrashLoopBackOff", 5)),
    );
    assert_eq!(told, ["app/CrashLoopBackOff"]);
}

#[test]
fn an_oom_kill_restart_is_told_once() {
    let (healthy, _) = tell(Before::Baseline, &pod("Running", running(0, None)));
    let oom = pod(
        "Running",
        running(1, Some(("OOMKilled", "2026-01-05T12:09:00Z"))),
    );
    let (after, told) = tell(Before::Known(&healthy), &oom);
    assert_eq!(told, ["app/Restarted", "app/OOMKilled"]);
    // The same status again (a relist, another field changing): nothing.
    let (_, told) = tell(Before::Known(&after), &oom);
    assert!(told.is_empty(), "{told:?}");
}

#[test]
fn each_crash_loop_cycle_is_told_and_image_pull_flapping_once_each() {
    let (s0, _) = tell(Before::Baseline, &pod("Running", running(0, None)));
    let (s1, told) = tell(
        Before::Known(&s0),
        &pod("Running", waiting("CrashLoopBackOff", 1)),
    );
    assert_eq!(told, ["app/Restarted", "app/CrashLoopBackOff"]);
    let (s2, told) = tell(
        Before::Known(&s1),
        &pod("Running", waiting("CrashLoopBackOff", 1)),
    );
    assert!(told.is_empty());
    let (_, told) = tell(
        Before::Known(&s2),
        &pod("Running", waiting("CrashLoopBackOff", 2)),
    );
    assert_eq!(
        told,
        ["app/Restarted", "app/CrashLoopBackOff"],
        "a new crash, told again"
    );

    let (p0, told) = tell(Before::Unknown, &pod("Pending", waiting("ErrImagePull", 0)));
    assert_eq!(
        told,
        ["Pending", "app/ErrImagePull"],
        "created ten minutes ago, still Pending"
    );
    let (p1, told) = tell(
        Before::Known(&p0),
        &pod("Pending", waiting("ImagePullBackOff", 0)),
    );
    assert_eq!(told, ["app/ImagePullBackOff"]);
    let (_, told) = tell(
        Before::Known(&p1),
        &pod("Pending", waiting("ErrImagePull", 0)),
    );
    assert!(told.is_empty(), "{told:?}");
}

#[test]
fn pending_too_long_is_told_by_the_timer_and_its_end_once() {
    let view = pod("Pending", json!([]));
    let mut report = Report::new("t", "2026-01-05T12:01:00Z".parse().unwrap());
    let mut summary = pods().summarize(&view, report.now).unwrap();
    pods().compare(
        "media/jellyfin-0",
        Before::Baseline,
        &mut summary,
        &view,
        &mut report,
    );
    assert!(report.events.is_empty());
    assert_eq!(
        pods().next_check(&summary),
        Some("2026-01-05T12:05:00Z".parse().unwrap())
    );
    let mut report = Report::new("t", "2026-01-05T12:05:00Z".parse().unwrap());
    pods().check("media/jellyfin-0", &mut summary, &mut report);
    assert_eq!(report.events.len(), 1);
    assert_eq!(report.events[0].data["active"], true);
    assert_eq!(report.events[0].data["for_seconds"], 300);
    assert_eq!(&report.events[0].labels["node"], "pi-2");
    assert_eq!(pods().next_check(&summary), None);

    let (_, told) = tell(Before::Known(&summary), &pod("Running", running(0, None)));
    assert_eq!(told, ["Pending"]);
    let mut report = Report::new("t", NOW.parse().unwrap());
    pods().removed("media/jellyfin-0", &summary, &mut report);
    assert_eq!(report.events[0].data["removed"], true);
    assert_eq!(report.events[0].data["active"], false);
}

#[test]
fn an_eviction_is_told_unless_it_is_history() {
    let evicted: PodView = serde_json::from_value(json!({
        "metadata": {"name": "jellyfin-0", "namespace": "media"},
        "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
    }))
    .unwrap();
    let (_, told) = tell(Before::Baseline, &evicted);
    assert!(told.is_empty());
    let (running, _) = tell(Before::Baseline, &pod("Running", running(0, None)));
    let mut report = Report::new("t", NOW.parse().unwrap());
    let mut after = pods().summarize(&evicted, report.now).unwrap();
    pods().compare(
        "media/jellyfin-0",
        Before::Known(&running),
        &mut after,
        &evicted,
        &mut report,
    );
    assert_eq!(report.events.len(), 1);
    assert_eq!(
        report.events[0].subject.as_str(),
        "k8s/pod/media/jellyfin-0/Evicted"
    );
    assert_eq!(
        report.events[0].data["message"],
        "The node was low on resource: memory."
    );
}

#[test]
fn restarts_while_unknown_are_told_with_the_whole_count() {
    let (_, told) = tell(
        Before::Unknown,
        &pod(
            "Running",
            running(3, Some(("Error", "2026-01-05T12:08:00Z"))),
        ),
    );
    assert_eq!(told, ["app/Restarted"]);
}
