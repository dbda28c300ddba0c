//! End-to-end tests of the Kubernetes bridge against a fake API server on loopback that
//! speaks the real list-and-watch protocol (resource versions, chunked watch streams,
//! bookmarks, 410 Gone, dropped connections, 403), driven through kube-rs as in production
//! — the client is built from a kubeconfig file pointing at the fake server.
//!
//! Nothing here sleeps to wait for things: tests wait for events on the bus, for requests at
//! the server, or poll a metric, each bounded by `k8s_support::WAIT`. "Nothing else was told" is checked
//! with a marker: a change made last whose event must be the next one.

#![cfg(feature = "kubernetes")]

#[path = "k8s_support/mod.rs"]
mod k8s_support;

use std::collections::BTreeSet;
use std::time::Duration;

use atalaya_connectors::kubernetes::{EVENT_TYPE, KubernetesConfig};
use jiff::{SignedDuration, Timestamp};
use k8s_support::objects::{event, lease, node, pod, running, waiting};
use k8s_support::{Bridge, CapturedLogs, FakeApi, Resource, config, store};
use serde_json::json;

fn ago(seconds: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_secs(seconds)
}

/// Only the watches named (`nodes` always, for the marker).
fn watching(
    mut config: KubernetesConfig,
    leases: bool,
    pods: bool,
    events: bool,
) -> KubernetesConfig {
    config.watches.nodes = true;
    config.watches.leases = leases;
    config.watches.pods = pods;
    config.watches.events = events;
    config
}

/// Adds a new healthy node and checks its `added` is the next event: nothing was told
/// between what the test already took and now.
async fn nothing_else_told(api: &FakeApi, bridge: &mut Bridge, marker: &str) {
    api.apply(Resource::Nodes, node(marker, "True", &[], Timestamp::now()));
    assert_eq!(
        bridge.next_subject().await,
        format!("k8s/node/{marker}/added"),
        "nothing but the marker was told"
    );
}

#[tokio::test]
async fn a_node_going_not_ready_is_one_event_and_ready_again_another() {
    let api = FakeApi::start().await;
    // Whole seconds, as the API server keeps them, so differences are exact.
    let base = Timestamp::now().round(jiff::Unit::Second).unwrap();
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
    assert_eq!(lost.labels["node"], "pi-1");
    assert_eq!(lost.labels["reason"], "KubeletReadyUnknown");
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
    assert_eq!(pressure.labels["condition"], "DiskPressure");
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
async fn pod_failures_become_events_once_each() {
    let api = FakeApi::start().await;
    let old = ago(3600);
    api.apply(
        Resource::Pods,
        pod(
            "media",
            "web-0",
            "Running",
            json!([running("app", 0, None)]),
            old,
        ),
    );
    api.apply(
        Resource::Pods,
        pod(
            "media",
            "api-0",
            "Running",
            json!([waiting("app", "CrashLoopBackOff", 4)]),
            old,
        ),
    );
    let mut evicted = pod("media", "old-0", "Failed", json!([]), old);
    evicted["status"]["reason"] = json!("Evicted");
    api.apply(Resource::Pods, evicted);
    api.apply(
        Resource::Pods,
        pod(
            "other",
            "x-0",
            "Running",
            json!([waiting("app", "CrashLoopBackOff", 9)]),
            old,
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = watching(config(&api, dir.path()), false, true, false);
    config.namespaces = vec!["media".to_owned()];
    config.pods.pending_after = Duration::from_secs(1);
    let mut bridge = Bridge::start(config, store(dir.path())).await;

    // The baseline tells problems present now (not the old eviction, nor other namespaces).
    let crash = bridge.next().await;
    assert_eq!(
        crash.subject.as_str(),
        "k8s/pod/media/api-0/app/CrashLoopBackOff"
    );
    assert_eq!(crash.labels["namespace"], "media");
    assert_eq!(crash.labels["pod"], "api-0");
    assert_eq!(crash.labels["container"], "app");
    assert_eq!(crash.labels["reason"], "CrashLoopBackOff");
    assert_eq!(crash.labels["node"], "pi-2");
    assert_eq!(crash.data["restarts"], 4);
    drop(crash);
    bridge.until_ready().await;
    assert!(
        api.requests()
            .iter()
            .filter(|r| r.resource == Resource::Pods)
            .all(|r| r.namespace.as_deref() == Some("media")),
        "only the configured namespace is watched"
    );

    // OOM-killed and restarted.
    api.apply(
        Resource::Pods,
        pod(
            "media",
            "web-0",
            "Running",
            json!([running("app", 1, Some(("OOMKilled", Timestamp::now())))]),
            old,
        ),
    );
    let restarted = bridge.next().await;
    assert_eq!(
        restarted.subject.as_str(),
        "k8s/pod/media/web-0/app/Restarted"
    );
    assert_eq!(restarted.data["increase"], 1);
    assert_eq!(restarted.data["last_termination"]["reason"], "OOMKilled");
    drop(restarted);
    let oom = bridge.next().await;
    assert_eq!(oom.subject.as_str(), "k8s/pod/media/web-0/app/OOMKilled");
    assert_eq!(oom.data["exit_code"], 137);
    drop(oom);

    // An image that cannot be pulled: told once per reason, however it flaps; Pending too
    // long by the timer (whenever it fires among these); running at last ends Pending.
    let created = Timestamp::now();
    let img = |phase: &str, container: serde_json::Value| {
        pod("media", "img-0", phase, json!([container]), created)
    };
    api.apply(
        Resource::Pods,
        img("Pending", waiting("app", "ErrImagePull", 0)),
    );
    api.apply(
        Resource::Pods,
        img("Pending", waiting("app", "ImagePullBackOff", 0)),
    );
    api.apply(
        Resource::Pods,
        img("Pending", waiting("app", "ErrImagePull", 0)),
    );
    let mut told = Vec::new();
    for _ in 0..3 {
        let event = bridge.next().await;
        if event.subject.as_str().ends_with("/Pending") {
            assert_eq!(event.data["active"], true);
        }
        told.push(event.subject.as_str().to_owned());
    }
    let position = |s: &str| {
        told.iter()
            .position(|t| t == s)
            .unwrap_or_else(|| panic!("{s} in {told:?}"))
    };
    assert!(
        position("k8s/pod/media/img-0/app/ErrImagePull")
            < position("k8s/pod/media/img-0/app/ImagePullBackOff")
    );
    position("k8s/pod/media/img-0/Pending");
    api.apply(Resource::Pods, img("Running", running("app", 0, None)));
    let ended = bridge.next().await;
    assert_eq!(ended.subject.as_str(), "k8s/pod/media/img-0/Pending");
    assert_eq!(ended.data["active"], false);
    drop(ended);

    // Evicted.
    let mut evicted = pod("media", "web-0", "Failed", json!([]), old);
    evicted["status"]["reason"] = json!("Evicted");
    evicted["status"]["message"] = json!("The node was low on resource: memory.");
    api.apply(Resource::Pods, evicted);
    let told = bridge.next().await;
    assert_eq!(told.subject.as_str(), "k8s/pod/media/web-0/Evicted");
    assert_eq!(
        told.data["message"],
        "The node was low on resource: memory."
    );
    drop(told);

    // Not watched: another namespace.
    api.apply(
        Resource::Pods,
        pod(
            "other",
            "x-0",
            "Running",
            json!([waiting("app", "CrashLoopBackOff", 10)]),
            old,
        ),
    );
    nothing_else_told(&api, &mut bridge, "marker").await;
    bridge.stop().await;
}

#[tokio::test]
async fn stale_heartbeats_are_told_once_and_fresh_again_once() {
    let api = FakeApi::start().await;
    api.apply(Resource::Leases, lease("pi-1", ago(3600)));
    api.apply(Resource::Leases, lease("pi-2", Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let mut config = watching(config(&api, dir.path()), true, false, false);
    config.leases.stale_after = Some(Duration::from_secs(2));
    let mut bridge = Bridge::start(config, store(dir.path())).await;

    let stale = bridge.next().await;
    assert_eq!(stale.subject.as_str(), "k8s/node/pi-1/heartbeat");
    assert_eq!(stale.labels["node"], "pi-1");
    assert_eq!(stale.data["stale"], true);
    assert!(stale.data["age_seconds"].as_i64().unwrap() >= 3600);
    assert_eq!(stale.data["threshold_seconds"], 2);
    drop(stale);
    bridge.until_ready().await;

    // pi-2 stops renewing: told by the timer, once.
    let quiet = bridge.next().await;
    assert_eq!(quiet.subject.as_str(), "k8s/node/pi-2/heartbeat");
    assert_eq!(quiet.data["stale"], true);
    drop(quiet);

    // pi-1 beats again: fresh, once. pi-2's lease is deleted.
    api.apply(Resource::Leases, lease("pi-1", Timestamp::now()));
    let fresh = bridge.next().await;
    assert_eq!(fresh.subject.as_str(), "k8s/node/pi-1/heartbeat");
    assert_eq!(fresh.data["stale"], false);
    drop(fresh);
    api.delete(Resource::Leases, "kube-node-lease/pi-2");

    // pi-2's stale series ends; pi-1, quiet again, goes stale again (in either order).
    let mut told = Vec::new();
    for _ in 0..2 {
        let event = bridge.next().await;
        told.push((event.subject.as_str().to_owned(), event.data.clone()));
    }
    told.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(told[0].0, "k8s/node/pi-1/heartbeat");
    assert_eq!(told[0].1["stale"], true);
    assert_eq!(told[1].0, "k8s/node/pi-2/heartbeat");
    assert_eq!(told[1].1, json!({"stale": false, "removed": true}));
    bridge.stop().await;
}

#[tokio::test]
async fn events_are_filtered_and_deduplicated_by_uid_and_count() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = watching(config(&api, dir.path()), false, false, true);
    config.events.exclude_reasons = vec!["Rebooted".to_owned()];
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;

    let now = Timestamp::now();
    api.apply(
        Resource::Events,
        event("media", "n1", "Normal", "Pulled", "Pod", "web-0", 1, now),
    );
    api.apply(
        Resource::Events,
        event(
            "default", "r1", "Warning", "Rebooted", "Node", "pi-1", 1, now,
        ),
    );
    api.apply(
        Resource::Events,
        event("media", "e1", "Warning", "BackOff", "Pod", "web-0", 1, now),
    );
    let backoff = bridge.next().await;
    assert_eq!(
        backoff.subject.as_str(),
        "k8s/event/media/Pod/web-0/BackOff"
    );
    assert_eq!(backoff.labels["kind"], "Pod");
    assert_eq!(backoff.labels["name"], "web-0");
    assert_eq!(backoff.labels["type"], "Warning");
    assert_eq!(backoff.data["message"], "BackOff on web-0");
    assert_eq!(backoff.data["count"], 1);
    drop(backoff);

    // It happens again: told with the new count. Touched without a new count: nothing.
    api.apply(
        Resource::Events,
        event(
            "media",
            "e1",
            "Warning",
            "BackOff",
            "Pod",
            "web-0",
            2,
            Timestamp::now(),
        ),
    );
    let again = bridge.next().await;
    assert_eq!(again.data["count"], 2);
    drop(again);
    let mut touched = event(
        "media",
        "e1",
        "Warning",
        "BackOff",
        "Pod",
        "web-0",
        2,
        Timestamp::now(),
    );
    touched["message"] = json!("edited");
    api.apply(Resource::Events, touched);

    // A relist and a deletion tell nothing.
    let before = api.request_count();
    api.expire();
    api.until_request(before, |r| r.resource == Resource::Events && !r.watch)
        .await;
    api.until_watching(before, Resource::Events).await;
    api.delete(Resource::Events, "media/web-0.e1");
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
