//! End-to-end tests of what each watch of the Kubernetes bridge tells — pod failures, node
//! heartbeats, Events of both APIs — against the fake API server of `k8s_support`, through
//! kube-rs as in production. The protocol (relists, restarts, 403) is tested in
//! `kubernetes.rs`.

#![cfg(feature = "kubernetes")]

#[path = "k8s_support/mod.rs"]
mod k8s_support;

use std::time::Duration;

use jiff::Timestamp;
use k8s_support::objects::{event, event_v1, lease, pod, running, waiting};
use k8s_support::{Bridge, FakeApi, Resource, ago, config, nothing_else_told, store, watching};
use serde_json::json;

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
    assert_eq!(&crash.labels["namespace"], "media");
    assert_eq!(&crash.labels["pod"], "api-0");
    assert_eq!(&crash.labels["container"], "app");
    assert_eq!(&crash.labels["reason"], "CrashLoopBackOff");
    assert_eq!(&crash.labels["node"], "pi-2");
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
    assert_eq!(&stale.labels["node"], "pi-1");
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
    assert_eq!(&backoff.labels["kind"], "Pod");
    assert_eq!(&backoff.labels["name"], "web-0");
    assert_eq!(&backoff.labels["type"], "Warning");
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

/// The API server serves every Event under core/v1 and events.k8s.io/v1: both are watched,
/// and each occurrence is told once, with repeats counted from `series.count`.
#[tokio::test]
async fn events_of_both_apis_are_told_once_with_repeats_from_their_series() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, true);
    let mut bridge = Bridge::start(config.clone(), store(dir.path())).await;
    bridge.until_ready().await;
    let watched: Vec<Resource> = api
        .requests()
        .iter()
        .filter(|r| r.watch)
        .map(|r| r.resource)
        .collect();
    assert!(watched.contains(&Resource::Events) && watched.contains(&Resource::EventsV1));

    // Written by a newer component through events.k8s.io/v1 (no series yet): once.
    api.apply(
        Resource::EventsV1,
        event_v1("media", "s1", "FailedScheduling", "web-0", None),
    );
    let first = bridge.next().await;
    assert_eq!(
        first.subject.as_str(),
        "k8s/event/media/Pod/web-0/FailedScheduling"
    );
    assert_eq!(first.data["message"], "FailedScheduling on web-0");
    assert_eq!(first.data["count"], 1);
    assert_eq!(first.data["component"], "default-scheduler");
    drop(first);
    nothing_else_told(&api, &mut bridge, "marker-1").await;

    // It happened twice more: the series says so; once again, with that count.
    api.apply(
        Resource::EventsV1,
        event_v1(
            "media",
            "s1",
            "FailedScheduling",
            "web-0",
            Some((3, Timestamp::now())),
        ),
    );
    let repeated = bridge.next().await;
    assert_eq!(repeated.data["count"], 3);
    drop(repeated);
    nothing_else_told(&api, &mut bridge, "marker-2").await;
    bridge.stop().await;

    // While atalaya was down it happened again; after the restart both APIs list it with
    // count 4, and it is told once.
    api.apply(
        Resource::EventsV1,
        event_v1(
            "media",
            "s1",
            "FailedScheduling",
            "web-0",
            Some((4, Timestamp::now())),
        ),
    );
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    let again = bridge.next().await;
    assert_eq!(
        again.subject.as_str(),
        "k8s/event/media/Pod/web-0/FailedScheduling"
    );
    assert_eq!(again.data["count"], 4);
    drop(again);
    bridge.until_ready().await;
    nothing_else_told(&api, &mut bridge, "marker-3").await;
    assert_eq!(
        bridge.metric(
            "atalaya_connector_received_total",
            &[("connector", "kubernetes")]
        ),
        2.0,
        "the repeat and the marker, nothing twice"
    );
    bridge.stop().await;
}

/// Where RBAC grants only one API, the Events still arrive through the other.
#[tokio::test]
async fn events_arrive_through_whichever_api_is_allowed() {
    let api = FakeApi::start().await;
    api.forbid(Resource::Events, "list");
    api.forbid(Resource::Events, "watch");
    let dir = tempfile::tempdir().unwrap();
    let config = watching(config(&api, dir.path()), false, false, true);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    api.until_watching(0, Resource::EventsV1).await;
    api.apply(
        Resource::Events,
        event(
            "media",
            "e1",
            "Warning",
            "BackOff",
            "Pod",
            "web-0",
            1,
            Timestamp::now(),
        ),
    );
    let told = bridge.next().await;
    assert_eq!(told.subject.as_str(), "k8s/event/media/Pod/web-0/BackOff");
    assert_eq!(told.data["message"], "BackOff on web-0");
    drop(told);
    nothing_else_told(&api, &mut bridge, "marker").await;
    assert!(bridge.errors("forbidden") >= 1.0, "the refusal is counted");
    bridge.stop().await;
}

#[tokio::test]
async fn timers_wait_for_the_first_list_after_a_restart() {
    let api = FakeApi::start().await;
    api.apply(
        Resource::Pods,
        pod("media", "stuck-0", "Pending", json!([]), ago(600)),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = watching(config(&api, dir.path()), false, true, false);
    config.pods.pending_after = Duration::from_secs(3600);
    let mut bridge = Bridge::start(config.clone(), store(dir.path())).await;
    bridge.until_ready().await;
    nothing_else_told(&api, &mut bridge, "marker-1").await;
    bridge.stop().await;

    // Deleted while atalaya was down; its Pending deadline passed meanwhile (the bound is
    // shorter now). The stored state is stale until the list says so: nothing is told.
    api.delete(Resource::Pods, "media/stuck-0");
    config.pods.pending_after = Duration::from_secs(300);
    let mut bridge = Bridge::start(config, store(dir.path())).await;
    bridge.until_ready().await;
    nothing_else_told(&api, &mut bridge, "marker-2").await;
    bridge.stop().await;
}
