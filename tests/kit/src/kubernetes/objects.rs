//! Kubernetes objects as the API server sends them (JSON), trimmed to what matters plus a
//! little of what does not (managed fields, heartbeat times), as real objects carry.

use jiff::{Timestamp, Unit};
use serde_json::{Value, json};

/// A `Time` (whole seconds).
pub fn time(at: Timestamp) -> String {
    at.round(Unit::Second).expect("rounds").to_string()
}

/// A `MicroTime`.
pub fn micro(at: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.6fZ", at).expect("formats")
}

/// A node whose Ready condition has `ready` status, with `conditions` (type, status), all
/// transitioned at `since`.
pub fn node(name: &str, ready: &str, conditions: &[(&str, &str)], since: Timestamp) -> Value {
    let mut all = vec![("Ready", ready)];
    all.extend_from_slice(conditions);
    let conditions: Vec<Value> = all
        .iter()
        .map(|(type_, status)| {
            json!({
                "type": type_, "status": status,
                "reason": format!("Kubelet{type_}{status}"),
                "message": format!("{type_} is {status}"),
                "lastHeartbeatTime": time(Timestamp::now()),
                "lastTransitionTime": time(since),
            })
        })
        .collect();
    json!({
        "metadata": {
            "name": name, "uid": format!("uid-{name}"),
            "creationTimestamp": time(since),
            "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"podCIDR": "10.42.0.0/24"},
        "status": {
            "conditions": conditions,
            "nodeInfo": {"kubeletVersion": "v1.33.1+k3s1", "architecture": "arm64"},
            "images": [{"names": ["docker.io/library/busybox:1"], "sizeBytes": 1_000_000}],
        },
    })
}

/// The node lease of `node`, renewed at `renew`.
pub fn lease(node: &str, renew: Timestamp) -> Value {
    json!({
        "metadata": {"name": node, "namespace": "kube-node-lease", "uid": format!("lease-{node}")},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro(renew)},
    })
}

/// A pod in `namespace` created at `created`, with `phase` and container statuses.
pub fn pod(
    namespace: &str,
    name: &str,
    phase: &str,
    containers: Value,
    created: Timestamp,
) -> Value {
    json!({
        "metadata": {
            "name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
            "creationTimestamp": time(created),
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"},
        },
        "spec": {"nodeName": "pi-2", "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": phase, "containerStatuses": containers},
    })
}

/// A running container that restarted `restarts` times, the last time for `last` (reason,
/// when).
pub fn running(name: &str, restarts: i32, last: Option<(&str, Timestamp)>) -> Value {
    let mut c = json!({"name": name, "restartCount": restarts, "ready": true, "image": "app:1",
                       "state": {"running": {"startedAt": time(Timestamp::now())}}});
    if let Some((reason, at)) = last {
        c["lastState"] =
            json!({"terminated": {"reason": reason, "exitCode": 137, "finishedAt": time(at)}});
    }
    c
}

/// A container waiting for `reason`.
pub fn waiting(name: &str, reason: &str, restarts: i32) -> Value {
    json!({"name": name, "restartCount": restarts, "ready": false, "image": "app:1",
           "state": {"waiting": {"reason": reason, "message": format!("{reason} for {name}")}}})
}

/// A core/v1 Event.
#[allow(clippy::too_many_arguments, reason = "an Event has that many parts")]
pub fn event(
    namespace: &str,
    uid: &str,
    type_: &str,
    reason: &str,
    kind: &str,
    name: &str,
    count: i32,
    last: Timestamp,
) -> Value {
    json!({
        "metadata": {"name": format!("{name}.{uid}"), "namespace": namespace, "uid": uid},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
        "type": type_, "reason": reason, "message": format!("{reason} on {name}"),
        "count": count, "firstTimestamp": time(last), "lastTimestamp": time(last),
        "source": {"component": "kubelet", "host": "pi-2"},
    })
}

/// An events.k8s.io/v1 Event as a newer component writes it: `note`, `regarding`, the
/// reporting controller, and repeats counted in `series` (none for the first occurrence).
pub fn event_v1(
    namespace: &str,
    uid: &str,
    reason: &str,
    name: &str,
    repeats: Option<(i32, Timestamp)>,
) -> Value {
    let mut event = json!({
        "metadata": {"name": format!("{name}.{uid}"), "namespace": namespace, "uid": uid},
        "regarding": {"kind": "Pod", "name": name, "namespace": namespace},
        "type": "Warning", "reason": reason, "note": format!("{reason} on {name}"),
        "action": "Scheduling", "eventTime": micro(Timestamp::now()),
        "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-pi-1",
    });
    if let Some((count, last)) = repeats {
        event["series"] = json!({"count": count, "lastObservedTime": micro(last)});
    }
    event
}
