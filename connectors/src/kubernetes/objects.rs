//! Slim views of the watched objects: only the fields the bridge reads are deserialized.
//!
//! A Node's image list, a Pod's spec, managed fields and annotations (`last-applied-
//! configuration` alone can be kilobytes) are skipped while the JSON is parsed, so they are
//! never allocated — not for an object in flight, nor for a page of 100 objects the watcher
//! holds during a list. This is what keeps the bridge's memory small on a Raspberry Pi.
//! Every field is optional: an API server that omits one (or sends `null`) is not an error.
//!
//! Each view is a [`kube::Resource`], so kube's `Api` and `watcher` drive it exactly as they
//! drive k8s-openapi's full types (the same URLs, the same list-and-watch protocol).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use serde::{Deserialize, Deserializer};

/// The metadata the bridge reads; everything else in `metadata` is skipped.
fn slim_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Slim {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        creation_timestamp: Option<Time>,
    }
    let slim = Slim::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: slim.name,
        namespace: slim.namespace,
        uid: slim.uid,
        resource_version: slim.resource_version,
        creation_timestamp: slim.creation_timestamp,
        ..ObjectMeta::default()
    })
}

macro_rules! resource {
    // `$inner`: the field that holds the object, for a view wrapping another.
    ($view:ty, $kind:literal, $group:literal, $version:literal, $plural:literal, $scope:ty $(, $inner:tt)?) => {
        impl kube::Resource for $view {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self$(.$inner)?.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self$(.$inner)?.metadata
            }
        }
    };
}

/// A core/v1 Node.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeView {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    pub status: Option<NodeStatusView>,
}
resource!(NodeView, "Node", "", "v1", "nodes", ClusterResourceScope);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusView {
    pub conditions: Option<Vec<ConditionView>>,
    pub node_info: Option<NodeInfoView>,
}

/// A node or pod condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Time>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfoView {
    pub kubelet_version: Option<String>,
    pub architecture: Option<String>,
}

/// A coordination.k8s.io/v1 Lease (a node's heartbeat, in `kube-node-lease`).
#[derive(Debug, Clone, Deserialize)]
pub struct LeaseView {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    pub spec: Option<LeaseSpecView>,
}
resource!(
    LeaseView,
    "Lease",
    "coordination.k8s.io",
    "v1",
    "leases",
    NamespaceResourceScope
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpecView {
    pub holder_identity: Option<String>,
    pub lease_duration_seconds: Option<i32>,
    pub renew_time: Option<MicroTime>,
}

/// A core/v1 Pod.
#[derive(Debug, Clone, Deserialize)]
pub struct PodView {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpecView>,
    pub status: Option<PodStatusView>,
}
resource!(PodView, "Pod", "", "v1", "pods", NamespaceResourceScope);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    pub phase: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub conditions: Option<Vec<ConditionView>>,
    pub container_statuses: Option<Vec<ContainerStatusView>>,
    pub init_container_statuses: Option<Vec<ContainerStatusView>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatusView {
    pub name: String,
    #[serde(default)]
    pub restart_count: i32,
    pub state: Option<ContainerStateView>,
    pub last_state: Option<ContainerStateView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContainerStateView {
    pub waiting: Option<WaitingView>,
    pub terminated: Option<TerminatedView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WaitingView {
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminatedView {
    pub reason: Option<String>,
    #[serde(default)]
    pub exit_code: i32,
    pub finished_at: Option<Time>,
}

/// An Event, as core/v1 serves it. The same view reads events.k8s.io/v1's names for the
/// same fields (`regarding`, `note`, `deprecatedCount`, …): the API server keeps one object
/// and serves it under both APIs, renamed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(alias = "regarding")]
    pub involved_object: Option<ObjectReferenceView>,
    pub reason: Option<String>,
    #[serde(alias = "note")]
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(alias = "deprecatedCount")]
    pub count: Option<i32>,
    pub series: Option<EventSeriesView>,
    #[serde(alias = "deprecatedFirstTimestamp")]
    pub first_timestamp: Option<Time>,
    #[serde(alias = "deprecatedLastTimestamp")]
    pub last_timestamp: Option<Time>,
    pub event_time: Option<MicroTime>,
    #[serde(alias = "deprecatedSource")]
    pub source: Option<EventSourceView>,
    #[serde(alias = "reportingController")]
    pub reporting_component: Option<String>,
}
resource!(
    EventView,
    "Event",
    "",
    "v1",
    "events",
    NamespaceResourceScope
);

/// An events.k8s.io/v1 Event (what `kubectl events` and newer components use), read into
/// the same fields as core/v1's.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct EventV1View(pub EventView);
resource!(
    EventV1View,
    "Event",
    "events.k8s.io",
    "v1",
    "events",
    NamespaceResourceScope,
    0
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReferenceView {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub field_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeriesView {
    pub count: Option<i32>,
    pub last_observed_time: Option<MicroTime>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventSourceView {
    pub component: Option<String>,
    pub host: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_fields_are_skipped_and_nulls_accepted() {
        let node: NodeView = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "pi-1",
                "uid": "u-1",
                "resourceVersion": "7",
                "creationTimestamp": null,
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
                "annotations": {"a": "b"}
            },
            "status": {
                "images": [{"names": ["x"], "sizeBytes": 1}],
                "conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-01-05T12:00:00Z"}]
            }
        }))
        .unwrap();
        assert_eq!(node.metadata.name.as_deref(), Some("pi-1"));
        assert!(node.metadata.managed_fields.is_none());
        assert!(node.metadata.annotations.is_none());
        let conditions = node.status.unwrap().conditions.unwrap();
        assert_eq!(conditions[0].type_, "Ready");
    }

    #[test]
    fn urls_are_kubernetes_urls() {
        use kube::Resource;
        assert_eq!(NodeView::url_path(&(), None), "/api/v1/nodes");
        assert_eq!(
            LeaseView::url_path(&(), Some("kube-node-lease")),
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        );
        assert_eq!(
            PodView::url_path(&(), Some("media")),
            "/api/v1/namespaces/media/pods"
        );
        assert_eq!(EventView::url_path(&(), None), "/api/v1/events");
        assert_eq!(
            EventV1View::url_path(&(), Some("media")),
            "/apis/events.k8s.io/v1/namespaces/media/events"
        );
    }
}
