//! [`FakeApi`]: a small Kubernetes API server on loopback that speaks the real list-and-watch
//! protocol, for nodes, pods, Events and leases.
//!
//! - List (`GET /api/v1/nodes`, `…/namespaces/<ns>/pods`, …): the objects with the current
//!   `resourceVersion`, in pages when the client sends `limit` (`continue` tokens).
//! - Watch (`?watch=true&resourceVersion=N`): a chunked response of newline-delimited JSON
//!   events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` when `allowWatchBookmarks`, `ERROR`),
//!   replaying every change after `N` first. A watch from a version older than the compaction
//!   point gets an `ERROR` with a 410 `Expired` Status, as the real server sends it.
//! - One resource version counter for everything, as etcd has.
//!
//! - Events under both APIs, as the real server keeps them: one object per Event, served by
//!   core/v1 and by events.k8s.io/v1 with its fields renamed ([`Resource::EventsV1`]).
//!
//! [`objects`] builds nodes, leases, pods and Events as the API server sends them.
//! - Test controls: change and delete objects, send bookmarks, expire (410) or end open
//!   watches (in the stream, or as an HTTP 410 to the watch request), cut their connections
//!   mid-stream, expire a list's continue token (410), and
//!   refuse requests with 403.
//! - Every request is recorded, and tests can wait for one.

pub mod objects;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::PATIENCE as WAIT;

/// A watched resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Nodes,
    Pods,
    /// core/v1 Events.
    Events,
    /// events.k8s.io/v1 Events: the same objects as [`Resource::Events`], renamed.
    EventsV1,
    Leases,
}

/// core/v1 Event fields and their events.k8s.io/v1 names (the API server's conversion).
const EVENT_FIELDS_V1: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename_fields(mut object: Value, to_v1: bool) -> Value {
    if let Some(fields) = object.as_object_mut() {
        for (core, v1) in EVENT_FIELDS_V1 {
            let (from, to) = if to_v1 { (core, v1) } else { (v1, core) };
            if let Some(value) = fields.remove(from) {
                fields.insert(to.to_owned(), value);
            }
        }
    }
    object
}

impl Resource {
    fn kind(self) -> &'static str {
        match self {
            Self::Nodes => "Node",
            Self::Pods => "Pod",
            Self::Events | Self::EventsV1 => "Event",
            Self::Leases => "Lease",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Self::Leases => "coordination.k8s.io/v1",
            Self::EventsV1 => "events.k8s.io/v1",
            _ => "v1",
        }
    }

    fn group(self) -> &'static str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    fn plural(self) -> &'static str {
        match self {
            Self::Nodes => "nodes",
            Self::Pods => "pods",
            Self::Events | Self::EventsV1 => "events",
            Self::Leases => "leases",
        }
    }

    /// Where its objects are kept: events.k8s.io/v1 serves core/v1's Events.
    fn storage(self) -> Self {
        match self {
            Self::EventsV1 => Self::Events,
            other => other,
        }
    }

    /// A stored object as this API serves it.
    fn serve(self, object: &Value) -> Value {
        let mut object = object.clone();
        if self == Self::EventsV1 {
            object = rename_fields(object, true);
        }
        object["apiVersion"] = json!(self.api_version());
        object
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub watch: bool,
    pub resource_version: Option<String>,
    pub limit: Option<String>,
    pub continue_token: Option<String>,
}

/// An open watch: where its lines go.
struct Watcher {
    resource: Resource,
    namespace: Option<String>,
    bookmarks: bool,
    lines: mpsc::UnboundedSender<Result<String, std::io::Error>>,
}

#[derive(Default)]
struct Collection {
    /// `namespace/name` (or `name`) → object.
    objects: BTreeMap<String, Value>,
    /// Every change: resource version, type, object.
    log: Vec<(u64, &'static str, Value)>,
}

#[derive(Default)]
struct Inner {
    version: u64,
    /// Watches from a version older than this get 410.
    compacted: u64,
    collections: HashMap<Resource, Collection>,
    /// `(resource, verb)` answered with 403.
    forbidden: HashSet<(Resource, &'static str)>,
    watchers: Vec<Watcher>,
    requests: Vec<Request>,
    /// The next list page asked for with a `continue` token gets 410 (the token expired).
    expire_continue: bool,
    /// A watch from a compacted version is answered with an HTTP 410 (as some servers and
    /// proxies do) instead of an `ERROR` line in a 200 stream.
    gone_as_status: bool,
}

/// The fake API server. Stops when dropped.
pub struct FakeApi {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    requests: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ServerState {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<watch::Sender<usize>>,
}

fn namespace_of(object: &Value) -> Option<&str> {
    object["metadata"]["namespace"].as_str()
}

fn key_of(object: &Value) -> String {
    let name = object["metadata"]["name"]
        .as_str()
        .expect("objects have a name");
    match namespace_of(object) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

fn line(type_: &str, object: &Value) -> String {
    let mut line =
        serde_json::to_string(&json!({"type": type_, "object": object})).expect("JSON serializes");
    line.push('\n');
    line
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("a valid response")
}

fn route(path: &str) -> Option<(Resource, Option<String>)> {
    let (group, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("", rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let (group, rest) = rest.split_once("/v1/")?;
        (group, rest)
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (namespace, plural) = match parts.as_slice() {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some((*ns).to_owned()), *plural),
        _ => return None,
    };
    let resource = match (group, plural) {
        ("", "nodes") => Resource::Nodes,
        ("", "pods") => Resource::Pods,
        ("", "events") => Resource::Events,
        ("events.k8s.io", "events") => Resource::EventsV1,
        ("coordination.k8s.io", "leases") => Resource::Leases,
        _ => return None,
    };
    Some((resource, namespace))
}

async fn handle(
    State(state): State<ServerState>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some((resource, namespace)) = route(uri.path()) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let request = Request {
        resource,
        namespace: namespace.clone(),
        watch,
        resource_version: query.get("resourceVersion").cloned(),
        limit: query.get("limit").cloned(),
        continue_token: query.get("continue").cloned(),
    };
    let mut inner = state.inner.lock().unwrap();
    inner.requests.push(request);
    state.notify.send_replace(inner.requests.len());
    let verb = if watch { "watch" } else { "list" };
    if inner.forbidden.contains(&(resource, verb)) {
        let scope = match &namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let group = resource.group();
        let message = format!(
            "{plural} is forbidden: User \"system:serviceaccount:atalaya:atalaya\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}",
            plural = resource.plural()
        );
        return json_response(StatusCode::FORBIDDEN, &status(403, "Forbidden", &message));
    }
    if watch {
        inner.watch(resource, namespace, &query)
    } else if query.contains_key("continue") && std::mem::take(&mut inner.expire_continue) {
        let message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";
        json_response(StatusCode::GONE, &status(410, "Expired", message))
    } else {
        inner.list(resource, namespace.as_deref(), &query)
    }
}

impl Inner {
    fn list(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        query: &HashMap<String, String>,
    ) -> Response {
        let objects: Vec<Value> = self
            .collections
            .get(&resource.storage())
            .map(|c| {
                c.objects
                    .values()
                    .filter(|o| namespace.is_none() || namespace_of(o) == namespace)
                    .map(|o| resource.serve(o))
                    .collect()
            })
            .unwrap_or_default();
        let offset: usize = query
            .get("continue")
            .and_then(|c| c.split_once(':'))
            .and_then(|(_, offset)| offset.parse().ok())
            .unwrap_or(0);
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let page: Vec<&Value> = objects.iter().skip(offset).take(limit).collect();
        let next = offset.saturating_add(limit);
        let mut metadata = json!({"resourceVersion": self.version.to_string()});
        if next < objects.len() {
            metadata["continue"] = json!(format!("{}:{next}", self.version));
        }
        json_response(
            StatusCode::OK,
            &json!({
                "apiVersion": resource.api_version(),
                "kind": format!("{}List", resource.kind()),
                "metadata": metadata,
                "items": page,
            }),
        )
    }

    fn watch(
        &mut self,
        resource: Resource,
        namespace: Option<String>,
        query: &HashMap<String, String>,
    ) -> Response {
        let (tx, rx) = mpsc::unbounded_channel();
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.version);
        if from < self.compacted {
            let message = format!("too old resource version: {from} ({})", self.compacted);
            if self.gone_as_status {
                return json_response(StatusCode::GONE, &status(410, "Expired", &message));
            }
            let _ = tx.send(Ok(line("ERROR", &status(410, "Expired", &message))));
        } else {
            if let Some(collection) = self.collections.get(&resource.storage()) {
                for (version, type_, object) in &collection.log {
                    if *version > from
                        && (namespace.is_none() || namespace_of(object) == namespace.as_deref())
                    {
                        let _ = tx.send(Ok(line(type_, &resource.serve(object))));
                    }
                }
            }
            self.watchers.push(Watcher {
                resource,
                namespace,
                bookmarks: query
                    .get("allowWatchBookmarks")
                    .is_some_and(|b| b == "true"),
                lines: tx,
            });
        }
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (line, rx))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .expect("a valid response")
    }

    /// Stores a change of `resource` (given as that API serves it) and sends it to the
    /// watches of every API that serves it.
    fn change(&mut self, resource: Resource, type_: &'static str, mut object: Value) {
        if resource == Resource::EventsV1 {
            object = rename_fields(object, false);
        }
        let resource = resource.storage();
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind());
        let key = key_of(&object);
        let collection = self.collections.entry(resource).or_default();
        if type_ == "DELETED" {
            collection.objects.remove(&key);
        } else {
            collection.objects.insert(key, object.clone());
        }
        collection.log.push((self.version, type_, object.clone()));
        let namespace = namespace_of(&object).map(str::to_owned);
        self.watchers.retain(|w| {
            if w.resource.storage() != resource
                || (w.namespace.is_some() && w.namespace != namespace)
            {
                return !w.lines.is_closed();
            }
            w.lines
                .send(Ok(line(type_, &w.resource.serve(&object))))
                .is_ok()
        });
    }
}

impl FakeApi {
    /// A server on a free loopback port, with no objects.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (notify, requests) = watch::channel(0);
        let notify = Arc::new(notify);
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(ServerState {
                inner: Arc::clone(&inner),
                notify: Arc::clone(&notify),
            });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url,
            inner,
            requests,
            task,
        }
    }

    /// Adds or replaces an object (`ADDED` or `MODIFIED` to open watches), given as
    /// `resource`'s API serves it (an Event under either API).
    pub fn apply(&self, resource: Resource, object: Value) {
        let mut inner = self.inner.lock().unwrap();
        let exists = inner
            .collections
            .get(&resource.storage())
            .is_some_and(|c| c.objects.contains_key(&key_of(&object)));
        inner.change(resource, if exists { "MODIFIED" } else { "ADDED" }, object);
    }

    /// Deletes the object with `key` (`namespace/name`, or `name`).
    pub fn delete(&self, resource: Resource, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        let object = inner
            .collections
            .get(&resource.storage())
            .and_then(|c| c.objects.get(key).cloned())
            .expect("the object exists");
        inner.change(resource.storage(), "DELETED", object);
    }

    /// Sends a `BOOKMARK` at the current version to every open watch that asked for them.
    pub fn bookmark(&self) {
        let mut inner = self.inner.lock().unwrap();
        let version = inner.version.to_string();
        inner.watchers.retain(|w| {
            if !w.bookmarks {
                return !w.lines.is_closed();
            }
            let object = json!({
                "kind": w.resource.kind(), "apiVersion": w.resource.api_version(),
                "metadata": {"resourceVersion": version},
            });
            w.lines.send(Ok(line("BOOKMARK", &object))).is_ok()
        });
    }

    /// Compacts history up to now: watches from an older version get 410 from now on.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted = inner.version;
    }

    /// Compacts, and tells every open watch its version expired (`ERROR` 410), ending it.
    pub fn expire(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted = inner.version;
        let message = format!("too old resource version ({})", inner.version);
        for w in inner.watchers.drain(..) {
            let _ = w
                .lines
                .send(Ok(line("ERROR", &status(410, "Expired", &message))));
        }
    }

    /// From now on, a watch from a compacted version gets an HTTP 410 answer rather than an
    /// `ERROR` 410 line inside the stream.
    pub fn answer_gone_as_status(&self) {
        self.inner.lock().unwrap().gone_as_status = true;
    }

    /// Answers 410 to the next list page asked for with a `continue` token.
    pub fn expire_next_continue(&self) {
        self.inner.lock().unwrap().expire_continue = true;
    }

    /// Ends every open watch cleanly, as the server's watch timeout does.
    pub fn end_watches(&self) {
        self.inner.lock().unwrap().watchers.clear();
    }

    /// Cuts every open watch's connection mid-stream.
    pub fn cut_watches(&self) {
        for w in self.inner.lock().unwrap().watchers.drain(..) {
            let _ = w
                .lines
                .send(Err(std::io::Error::other("connection cut by the test")));
        }
    }

    /// Answers 403 to `verb` (`list` or `watch`) on `resource` from now on.
    pub fn forbid(&self, resource: Resource, verb: &'static str) {
        self.inner
            .lock()
            .unwrap()
            .forbidden
            .insert((resource, verb));
    }

    /// Lifts every 403 on `resource`.
    pub fn allow(&self, resource: Resource) {
        self.inner
            .lock()
            .unwrap()
            .forbidden
            .retain(|(r, _)| *r != resource);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// How many requests were received so far.
    pub fn request_count(&self) -> usize {
        self.inner.lock().unwrap().requests.len()
    }

    /// Waits until a request after the first `after` matches `what`; fails the test after
    /// [`WAIT`].
    pub async fn until_request(&self, after: usize, what: impl Fn(&Request) -> bool) -> Request {
        let mut requests = self.requests.clone();
        let found = async {
            loop {
                let found = self
                    .inner
                    .lock()
                    .unwrap()
                    .requests
                    .get(after..)
                    .unwrap_or_default()
                    .iter()
                    .find(|r| what(r))
                    .cloned();
                if let Some(found) = found {
                    return found;
                }
                requests.changed().await.expect("the server runs");
            }
        };
        tokio::time::timeout(WAIT, found)
            .await
            .expect("the request arrives within the wait")
    }

    /// Waits until `resource` is being watched again (a watch request after the first
    /// `after` requests).
    pub async fn until_watching(&self, after: usize, resource: Resource) -> Request {
        self.until_request(after, |r| r.resource == resource && r.watch)
            .await
    }

    /// The resource version now.
    pub fn version(&self) -> u64 {
        self.inner.lock().unwrap().version
    }
}
