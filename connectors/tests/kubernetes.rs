//! End-to-end tests of the Kubernetes bridge's list-and-watch handling against a fake API
//! server on loopback that speaks the real protocol (resource versions, chunked watch
//! streams, bookmarks, 410 Gone, paged lists, dropped connections, 403), driven through
//! kube-rs as in production — the client is built from a kubeconfig file pointing at the
//! fake server: one event per change, none repeated by a relist or a restart, none missed
//! while atalaya was down, and a refused permission that stops nothing else.
//!
//! Nothing here sleeps to wait for things: tests wait for events on the bus, for requests at
//! the server, or poll a metric, each bounded by `k8s_support::WAIT`. "Nothing else was
//! told" is checked with a marker: a change made last whose event must be the next one.
//! What each watch tells is tested in `kubernetes_watches.rs`.

#![cfg(feature = "kubernetes")]

#[path = "k8s_support/mod.rs"]
mod k8s_support;

use std::collections::BTreeSet;

use atalaya_connectors::kubernetes::EVENT_TYPE;
use jiff::{SignedDuration, Timestamp};
use k8s_support::objects::{event, node, pod, running};
use k8s_support::{
    Bridge, CapturedLogs, FakeApi, Resource, ago, config, nothing_else_told, store, watching,
};
use serde_json::json;

#[tokio::test]
async fn a_node_going_not_ready_is_one_event_and_ready_again_another() {
    let api = FakeApi::start().await;
    // Whole seconds, as the API server keeps them, so differences are exact.
    let base = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let since = base - SignedDuration::from_secs(3600);
    api.apply(
        Resource::Nodes,
        node("pi-1", "True", &[("DiskPressure", "False")], since),
    );
    api.apply(Resource::Nodes, node("pi-2", "True", &[], since));
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, false);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;

    // A status update that changes nothing kept (the kubelet's heartbeat time): nothing.
    api.apply(
        Resource::Nodes,
        node("pi-1", "True", &[("DiskPressure", "False")], since),
    );
    let down = base - SignedDuration::from_secs(30);
    api.apply(
        Resource::Nodes,
        node("pi-1", "Unknown", &[("DiskPressure", "False")], down),
    );
    let lost = bridge.next().await;
    assert_eq!(lost.subject.as_str(), "k8s/node/pi-1/ready");
    assert_eq!(lost.event_type, EVENT_TYPE);
    assert_eq!(lost.source, api.url);
    assert_eq!(&lost.labels["node"], "pi-1");
    assert_eq!(&lost.labels["reason"], "KubeletReadyUnknown");
    assert_eq!(lost.data["ready"], false);
    assert_eq!(lost.data["status"], "Unknown");
    assert!(lost.data["for_seconds"].as_i64().unwrap() >= 30);
    assert_eq!(
        lost.data["previous_seconds"],
        3600 - 30,
        "how long it was ready"
    );
    drop(lost);

    // Still Unknown: nothing. Ready again: one event, saying how long it was down.
    api.apply(
        Resource::Nodes,
        node("pi-1", "Unknown", &[("DiskPressure", "False")], down),
    );
    api.apply(
        Resource::Nodes,
        node(
            "pi-1",
            "True",
            &[("DiskPressure", "False")],
            Timestamp::now(),
        ),
    );
    let back = bridge.next().await;
    assert_eq!(back.subject.as_str(), "k8s/node/pi-1/ready");
    assert_eq!(back.data["ready"], true);
    assert!(back.data["previous_seconds"].as_i64().unwrap() >= 30);
    drop(back);

    // Disk pressure, then a node removed.
    api.apply(
        Resource::Nodes,
        node(
            "pi-1",
            "True",
            &[("DiskPressure", "True")],
            Timestamp::now(),
        ),
    );
    let pressure = bridge.next().await;
    assert_eq!(
        pressure.subject.as_str(),
        "k8s/node/pi-1/condition/DiskPressure"
    );
    assert_eq!(&pressure.labels["condition"], "DiskPressure");
    assert_eq!(pressure.data["active"], true);
    drop(pressure);
    api.delete(Resource::Nodes, "pi-2");
    assert_eq!(bridge.next_subject().await, "k8s/node/pi-2/removed");

    nothing_else_told(&api, &mut bridge, "marker").await;
    assert_eq!(
        bridge.metric(
            "atalaya_connector_received_total",
            &[("connector", "kubernetes")]
        ),
        5.0
    );
    bridge.stop().await;
}

#[tokio::test]
async fn an_expired_watch_relists_without_repeating_anything_and_tells_what_changed_meanwhile() {
    let api = FakeApi::start().await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], ago(3600)));
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, false);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;
    api.apply(
        Resource::Nodes,
        node("pi-1", "False", &[], Timestamp::now()),
    );
    assert_eq!(bridge.next_subject().await, "k8s/node/pi-1/ready");

    // 410 Gone on the open watch; a node joins while the bridge is out of step.
    let before = api.request_count();
    api.expire();
    api.apply(
        Resource::Nodes,
        node("pi-2", "False", &[], Timestamp::now()),
    );
    api.until_request(before, |r| r.resource == Resource::Nodes && !r.watch)
        .await;
    api.until_watching(before, Resource::Nodes).await;
    let told: Vec<String> = vec![bridge.next_subject().await, bridge.next_subject().await];
    assert_eq!(told, ["k8s/node/pi-2/added", "k8s/node/pi-2/ready"]);

    // Another expiry with nothing changed: the relist tells nothing.
    let before = api.request_count();
    api.expire();
    api.until_request(before, |r| r.resource == Resource::Nodes && !r.watch)
        .await;
    api.until_watching(before, Resource::Nodes).await;
    nothing_else_told(&api, &mut bridge, "marker").await;
    assert_eq!(bridge.errors("watch"), 0.0, "410 is protocol, not an error");
    assert_eq!(bridge.errors("list"), 0.0);
    bridge.stop().await;
}

/// A watch request answered with an HTTP 410 (not an `ERROR` line inside a stream) is the
/// same protocol: kube lists again at once, and nothing is counted as an error.
#[tokio::test]
async fn a_watch_answered_410_relists_at_once_without_an_error() {
    let api = FakeApi::start().await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], ago(3600)));
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, false);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;
    api.until_watching(0, Resource::Nodes).await;

    api.answer_gone_as_status();
    api.apply(
        Resource::Pods,
        pod("media", "web", "Running", json!([]), ago(60)),
    );
    api.compact();
    let compacted = api.version();
    let before = api.request_count();
    api.end_watches();
    // The watch from the old version gets the 410; a list, then a watch from its version.
    let current = |r: &atalaya_test_kit::kubernetes::Request| {
        r.resource == Resource::Nodes
            && r.watch
            && r.resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v >= compacted)
    };
    api.until_request(before, current).await;
    let lists = api.requests()[before..]
        .iter()
        .filter(|r| r.resource == Resource::Nodes && !r.watch)
        .count();
    assert_eq!(lists, 1, "listed again after the 410");
    assert_eq!(
        bridge.errors("watch"),
        0.0,
        "a 410 is protocol, not a failure"
    );
    api.apply(
        Resource::Nodes,
        node("pi-1", "False", &[], Timestamp::now()),
    );
    assert_eq!(bridge.next_subject().await, "k8s/node/pi-1/ready");
    bridge.stop().await;
}

#[tokio::test]
async fn ended_and_cut_watches_resume_from_their_bookmark_and_last_version() {
    let api = FakeApi::start().await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], ago(3600)));
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, false);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;
    let watch = api.until_watching(0, Resource::Nodes).await;
    assert!(watch.resource_version.is_some());

    // Other objects move the resource version on; a bookmark tells the node watch. After a
    // compaction to there, the watch ends (the server's timeout): it resumes from the
    // bookmark, so no relist is needed.
    for n in 0..3 {
        api.apply(
            Resource::Pods,
            pod("media", &format!("web-{n}"), "Running", json!([]), ago(60)),
        );
    }
    api.bookmark();
    let bookmarked = api.version();
    api.compact();
    let before = api.request_count();
    api.end_watches();
    let resumed = api.until_watching(before, Resource::Nodes).await;
    assert_eq!(resumed.resource_version, Some(bookmarked.to_string()));
    assert!(
        api.requests()[before..].iter().all(|r| r.watch),
        "no relist after a bookmark"
    );

    // A connection cut mid-stream (an unexpected EOF to kube): it watches again from the
    // last version seen.
    api.apply(
        Resource::Nodes,
        node("pi-1", "False", &[], Timestamp::now()),
    );
    assert_eq!(bridge.next_subject().await, "k8s/node/pi-1/ready");
    let before = api.request_count();
    api.cut_watches();
    api.until_watching(before, Resource::Nodes).await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], Timestamp::now()));
    let back = bridge.next().await;
    assert_eq!(back.subject.as_str(), "k8s/node/pi-1/ready");
    assert_eq!(back.data["ready"], true);
    drop(back);
    nothing_else_told(&api, &mut bridge, "marker").await;
    assert!(bridge.ready(), "a cut connection is not an outage");
    assert_eq!(
        bridge.errors("watch"),
        0.0,
        "kube resumes a cut stream like an ended one"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_restart_neither_repeats_old_news_nor_misses_what_happened_while_down() {
    let api = FakeApi::start().await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], ago(3600)));
    api.apply(Resource::Nodes, node("pi-2", "True", &[], ago(3600)));
    api.apply(
        Resource::Events,
        event(
            "media",
            "a",
            "Warning",
            "BackOff",
            "Pod",
            "web-0",
            3,
            ago(600),
        ),
    );
    api.apply(
        Resource::Events,
        event("media", "n", "Normal", "Pulled", "Pod", "web-0", 1, ago(60)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, true);

    // First start: a baseline. The Warning from ten minutes ago is not news.
    let mut bridge = Bridge::start(config.clone(), store(dir.path())).await;
    bridge.until_ready().await;
    api.apply(
        Resource::Events,
        event(
            "media",
            "b",
            "Warning",
            "FailedMount",
            "Pod",
            "web-1",
            1,
            Timestamp::now(),
        ),
    );
    let mount = bridge.next().await;
    assert_eq!(
        mount.subject.as_str(),
        "k8s/event/media/Pod/web-1/FailedMount"
    );
    assert_eq!(mount.data["count"], 1);
    drop(mount);
    nothing_else_told(&api, &mut bridge, "marker-1").await;
    bridge.stop().await;

    // While atalaya is down: the mount fails again, a new Warning, a node lost, an old
    // Event expires, and history is compacted.
    api.apply(
        Resource::Events,
        event(
            "media",
            "b",
            "Warning",
            "FailedMount",
            "Pod",
            "web-1",
            2,
            Timestamp::now(),
        ),
    );
    api.apply(
        Resource::Events,
        event(
            "media",
            "c",
            "Warning",
            "Unhealthy",
            "Pod",
            "web-2",
            1,
            Timestamp::now(),
        ),
    );
    api.apply(
        Resource::Nodes,
        node("pi-2", "False", &[], Timestamp::now()),
    );
    api.delete(Resource::Events, "media/web-0.a");
    api.compact();

    let state = store(dir.path());
    let mut bridge = Bridge::start(config.clone(), state.clone()).await;
    let mut told = BTreeSet::new();
    for _ in 0..3 {
        let event = bridge.next().await;
        if event.subject.as_str().ends_with("FailedMount") {
            assert_eq!(event.data["count"], 2);
        }
        told.insert(event.subject.as_str().to_owned());
    }
    assert_eq!(
        told,
        BTreeSet::from([
            "k8s/event/media/Pod/web-1/FailedMount".to_owned(),
            "k8s/event/media/Pod/web-2/Unhealthy".to_owned(),
            "k8s/node/pi-2/ready".to_owned(),
        ])
    );
    bridge.until_ready().await;
    nothing_else_told(&api, &mut bridge, "marker-2").await;
    bridge.stop().await;
    assert_eq!(
        state.count("k8s_events").unwrap(),
        2,
        "the expired Event was forgotten"
    );
    drop(state);

    // And again, with nothing changed: nothing told.
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;
    nothing_else_told(&api, &mut bridge, "marker-3").await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_change_not_done_on_the_bus_at_shutdown_is_told_again_after_the_restart() {
    let api = FakeApi::start().await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], ago(3600)));
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, false);
    let mut bridge = Bridge::start(config.clone(), store(dir.path())).await;
    bridge.until_ready().await;
    api.apply(
        Resource::Nodes,
        node("pi-1", "False", &[], Timestamp::now()),
    );
    // Held, as a consumer that has not persisted what it caused yet holds it.
    let held = bridge.next().await;
    assert_eq!(held.subject.as_str(), "k8s/node/pi-1/ready");
    bridge.stop().await;
    drop(held);

    let mut bridge = Bridge::start(config, store(dir.path())).await;
    let again = bridge.next().await;
    assert_eq!(
        again.subject.as_str(),
        "k8s/node/pi-1/ready",
        "told twice rather than never"
    );
    assert_eq!(again.data["ready"], false);
    drop(again);
    bridge.until_ready().await;
    nothing_else_told(&api, &mut bridge, "marker").await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_forbidden_resource_is_named_counted_and_retried_while_the_other_watches_go_on() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let api = FakeApi::start().await;
    api.apply(Resource::Nodes, node("pi-1", "True", &[], ago(3600)));
    api.forbid(Resource::Pods, "list");
    api.forbid(Resource::Leases, "watch");
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), true, true, false);
    let mut bridge = Bridge::start(config, store(dir.path())).await;

    let pods_line = "Cannot list pods at cluster scope: the service account needs get, list and watch on pods (the core API group); see deploy/kustomize/base/rbac.yaml.";
    let leases_line = "Cannot watch leases in namespace kube-node-lease: the service account needs get, list and watch on leases (API group coordination.k8s.io)";
    bridge
        .wait_for("refusals retried and logged", |b| {
            b.errors("forbidden") >= 6.0
                && !logs.lines_with(&[pods_line]).is_empty()
                && !logs.lines_with(&[leases_line]).is_empty()
        })
        .await;
    assert_eq!(
        logs.lines_with(&[pods_line]).len(),
        1,
        "logged once per outage"
    );
    assert_eq!(logs.lines_with(&[leases_line]).len(), 1);
    assert!(logs.lines_with(&[pods_line])[0].contains("ERROR"));
    assert!(!bridge.ready());
    assert_eq!(
        bridge.metric("atalaya_component_ready", &[("component", "kubernetes")]),
        0.0
    );

    // The node watch goes on.
    api.apply(
        Resource::Nodes,
        node("pi-1", "False", &[], Timestamp::now()),
    );
    assert_eq!(bridge.next_subject().await, "k8s/node/pi-1/ready");

    // Permissions granted: every watch lists, the bridge is ready.
    api.allow(Resource::Pods);
    api.allow(Resource::Leases);
    bridge.until_ready().await;
    assert_eq!(
        logs.lines_with(&["Kubernetes watch recovered.", "resource=\"pods\""])
            .len(),
        1
    );
    assert_eq!(
        bridge.metric(
            "atalaya_connector_connected",
            &[("connector", "kubernetes")]
        ),
        1.0
    );
    nothing_else_told(&api, &mut bridge, "marker").await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_list_in_pages_is_one_list() {
    let api = FakeApi::start().await;
    for n in 0..250 {
        api.apply(
            Resource::Pods,
            pod(
                "bulk",
                &format!("job-{n:03}"),
                "Running",
                json!([running("app", 0, None)]),
                ago(3600),
            ),
        );
    }
    // The second page's continue token has expired: kube lists again from the start.
    api.expire_next_continue();
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, true, false);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;
    let pages: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == Resource::Pods && !r.watch)
        .collect();
    assert_eq!(pages.len(), 5, "1 page, 1 expired, then 3: {pages:?}");
    assert!(pages.iter().all(|p| p.limit.as_deref() == Some("100")));
    assert_eq!(
        pages.iter().filter(|p| p.continue_token.is_some()).count(),
        3
    );
    assert_eq!(bridge.errors("list"), 0.0, "an expired token is protocol");

    // A relist in pages: nothing told. A restart of a listed pod: told as one restart.
    let before = api.request_count();
    api.expire();
    api.until_watching(before, Resource::Pods).await;
    api.apply(
        Resource::Pods,
        pod(
            "bulk",
            "job-200",
            "Running",
            json!([running("app", 1, Some(("Error", Timestamp::now())))]),
            ago(3600),
        ),
    );
    let restarted = bridge.next().await;
    assert_eq!(
        restarted.subject.as_str(),
        "k8s/pod/bulk/job-200/app/Restarted"
    );
    assert_eq!(restarted.data["increase"], 1);
    drop(restarted);
    nothing_else_told(&api, &mut bridge, "marker").await;
    bridge.stop().await;
}
