//! Known state: what the bridge last told about each object, so only changes become events.
//!
//! Each watched kind is a [`Kind`]: it keys its objects, boils each one down to a small
//! summary (a node's condition statuses, a container's restart count, an Event's count), and
//! compares a new summary with the last known one to say what changed. The summaries live in
//! memory and in the store (one table per kind), so the comparison survives restarts: on the
//! first list after a start, an object is compared with what was known before the stop, and a
//! change made meanwhile is told once; one unchanged is not told again.
//!
//! Writes follow the events they describe (at-least-once): the events of a change are
//! published tracked, and the new summary is written only once every bus consumer is done with
//! them (the rules runner has persisted what they caused). A crash in between leaves the old
//! summary in the store, so the change is told again after the restart — twice rather than
//! never.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::bus::Delivery;
use atalaya_bus::store::{Entry, Store, TableBatch};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::KubernetesError;
use super::report::Report;

/// The store table of watch markers: `<resource>/<namespace or *>` → when its first list
/// completed. A watch without one has never listed: its first list is a baseline.
pub(crate) const SYNC_TABLE: &str = "k8s_sync";

/// At shutdown, how long events already on the bus may take to be done, so their summaries
/// are written rather than told again after the restart.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Most writes gathered into one store transaction.
const MAX_BATCH: usize = 512;

/// What was known about an object before this sighting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Before<'a, S> {
    /// Nothing, and the watch has never completed a list: this is the first look at the
    /// cluster. What exists is not news; only problems present now are told.
    Baseline,
    /// Nothing: the object appeared since the last known state (created while watched, or
    /// while atalaya was down). Compared with a fresh, healthy object.
    Unknown,
    /// The last known summary.
    Known(&'a S),
}

impl<S> Before<'_, S> {
    pub fn known(&self) -> Option<&S> {
        match self {
            Self::Known(summary) => Some(summary),
            _ => None,
        }
    }

    pub fn is_baseline(&self) -> bool {
        matches!(self, Self::Baseline)
    }
}

/// What happens to an entry after its timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterCheck {
    Keep,
    /// Drop the entry (an Event old enough to be forgotten).
    Forget,
}

/// One watched kind of object.
pub(crate) trait Kind: Send + Sync + 'static {
    /// The slim view the watch deserializes.
    type Object: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// What is compared and kept per object.
    type Summary: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static;

    /// The resource as RBAC names it (`nodes`).
    const RESOURCE: &'static str;
    /// Its API group (`""` for core).
    const GROUP: &'static str;
    /// The store table of its summaries.
    const TABLE: &'static str;
    /// The name of its list markers in [`SYNC_TABLE`]: the resource, qualified by its group
    /// where two APIs serve one resource name.
    const SYNC_NAME: &'static str = Self::RESOURCE;

    /// The object's key: `name`, or `namespace/name` for namespaced kinds.
    fn key(&self, object: &Self::Object) -> Option<String>;

    /// The summary of `object`, or `None` when it is of no interest (a filtered-out Event).
    fn summarize(&self, object: &Self::Object, now: Timestamp) -> Option<Self::Summary>;

    /// Tells what changed from `before` to `after` into `report`. May record in `after` what
    /// was told (so it is not told twice).
    fn compare(
        &self,
        key: &str,
        before: Before<'_, Self::Summary>,
        after: &mut Self::Summary,
        object: &Self::Object,
        report: &mut Report<'_>,
    );

    /// Tells that the object is gone.
    fn removed(&self, key: &str, before: &Self::Summary, report: &mut Report<'_>);

    /// When the summary needs looking at again with time alone (a lease going stale).
    fn next_check(&self, _summary: &Self::Summary) -> Option<Timestamp> {
        None
    }

    /// Looks at the summary again at `report.now`, its [`Kind::next_check`] having come.
    fn check(
        &self,
        _key: &str,
        _summary: &mut Self::Summary,
        _report: &mut Report<'_>,
    ) -> AfterCheck {
        AfterCheck::Keep
    }

    /// Whether two summaries are the same as far as the store is concerned (a lease's renew
    /// time changes every 10 seconds, but only whether it is stale is kept).
    fn stored_alike(a: &Self::Summary, b: &Self::Summary) -> bool {
        a == b
    }
}

/// Loads the summaries of `table` whose keys start with `prefix`; entries that no longer
/// decode (written by another version) are left out, and so count as unknown.
pub(crate) fn load<S: DeserializeOwned>(
    store: &Store,
    table: &str,
    prefix: &str,
) -> Result<HashMap<String, S>, KubernetesError> {
    let mut known = HashMap::new();
    for (key, value) in store.scan(table)? {
        let Ok(key) = String::from_utf8(key) else {
            continue;
        };
        if !key.starts_with(prefix) {
            continue;
        }
        if let Ok(summary) = serde_json::from_slice(&value) {
            known.insert(key, summary);
        }
    }
    Ok(known)
}

/// Timers of a watch: which keys need looking at, and when.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    by_time: BTreeSet<(Timestamp, String)>,
    by_key: HashMap<String, Timestamp>,
}

impl Deadlines {
    /// Sets (or with `None` clears) the deadline of `key`.
    pub fn set(&mut self, key: &str, at: Option<Timestamp>) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.to_owned()));
        }
        if let Some(at) = at {
            self.by_key.insert(key.to_owned(), at);
            self.by_time.insert((at, key.to_owned()));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the keys due at `now`.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.by_time.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        due
    }
}

/// One write: table, key, and the value to put (`None`: delete the key).
type Write = (&'static str, Vec<u8>, Option<Vec<u8>>);
/// Writes gathered for one transaction: the last per key of each table.
type Batch = BTreeMap<&'static str, BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

/// Store writes that follow a published change.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    /// In order.
    entries: Vec<Write>,
}

impl Writes {
    pub fn put(&mut self, table: &'static str, key: &str, value: Vec<u8>) {
        self.entries
            .push((table, key.as_bytes().to_vec(), Some(value)));
    }

    pub fn delete(&mut self, table: &'static str, key: &str) {
        self.entries.push((table, key.as_bytes().to_vec(), None));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Writes waiting for their events to be done on the bus.
pub(crate) struct Commit {
    /// `None`: nothing was published (a summary changed without news).
    pub delivery: Option<Delivery>,
    pub writes: Writes,
}

/// Writes commits in the order they were made, each once its delivery is done, several at a
/// time in one transaction. At shutdown, deliveries get [`SHUTDOWN_GRACE`] to complete; writes
/// still waiting then are dropped (their changes are told again after the restart). A store
/// failure ends the connector: going on would lose state silently.
pub(crate) async fn commit_stage(
    mut commits: mpsc::Receiver<Commit>,
    store: Arc<Store>,
    stop: CancellationToken,
) -> Result<(), KubernetesError> {
    let give_up = async {
        stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(give_up);
    while let Some(first) = commits.recv().await {
        // Last write per key wins, in order: a put then a delete of one key is a delete.
        let mut batch: BTreeMap<&'static str, BTreeMap<Vec<u8>, Option<Vec<u8>>>> = BTreeMap::new();
        let mut count = 0;
        let mut next = Some(first);
        let mut gave_up = false;
        while let Some(commit) = next.take() {
            if let Some(delivery) = commit.delivery {
                tokio::select! {
                    () = delivery.done() => {}
                    () = &mut give_up => {
                        gave_up = true;
                        break;
                    }
                }
            }
            for (table, key, value) in commit.writes.entries {
                batch.entry(table).or_default().insert(key, value);
                count += 1;
            }
            if count >= MAX_BATCH {
                break;
            }
            next = commits.try_recv().ok();
        }
        write(&store, batch).await?;
        if gave_up {
            break;
        }
    }
    Ok(())
}

async fn write(store: &Arc<Store>, batch: Batch) -> Result<(), KubernetesError> {
    if batch.is_empty() {
        return Ok(());
    }
    let store = Arc::clone(store);
    // redb commits with an fsync: off the async threads.
    tokio::task::spawn_blocking(move || {
        let mut tables = Vec::with_capacity(batch.len());
        for (table, entries) in batch {
            let mut puts: Vec<Entry> = Vec::new();
            let mut deletes = Vec::new();
            for (key, value) in entries {
                match value {
                    Some(value) => puts.push((key, value)),
                    None => deletes.push(key),
                }
            }
            tables.push((table, puts, deletes));
        }
        let batches: Vec<TableBatch<'_>> = tables
            .iter()
            .map(|(table, puts, deletes)| TableBatch {
                table,
                puts,
                deletes,
            })
            .collect();
        store.write_tables(&batches)
    })
    .await
    .map_err(|_| KubernetesError::Stopped)??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn deadlines_come_due_in_order_and_can_be_moved() {
        let mut deadlines = Deadlines::default();
        deadlines.set("a", Some(at("2026-01-05T12:00:30Z")));
        deadlines.set("b", Some(at("2026-01-05T12:00:10Z")));
        deadlines.set("c", Some(at("2026-01-05T12:00:20Z")));
        deadlines.set("c", None);
        deadlines.set("a", Some(at("2026-01-05T12:00:15Z")));
        assert_eq!(deadlines.next(), Some(at("2026-01-05T12:00:10Z")));
        assert_eq!(deadlines.take_due(at("2026-01-05T12:00:15Z")), ["b", "a"]);
        assert_eq!(deadlines.next(), None);
    }

    #[tokio::test]
    async fn commits_wait_for_their_delivery_and_keep_the_last_write_per_key() {
        let registry = prometheus::Registry::new();
        let mut bus = atalaya_bus::bus::BusBuilder::new(8, &registry).unwrap();
        let mut consumer = bus.consumer("test");
        let bus = bus.build();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let (tx, rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let stage = tokio::spawn(commit_stage(rx, Arc::clone(&store), stop.clone()));

        let event = atalaya_bus::Event::new(
            "/test",
            atalaya_bus::Subject::parse("k8s/x").unwrap(),
            serde_json::Value::Null,
            Timestamp::now(),
        );
        let delivery = bus.publish_tracked(vec![event]).await.unwrap();
        let mut writes = Writes::default();
        writes.put("k8s_test", "a", b"1".to_vec());
        writes.put("k8s_test", "b", b"1".to_vec());
        writes.delete("k8s_test", "b");
        tx.send(Commit {
            delivery: Some(delivery),
            writes,
        })
        .await
        .unwrap();
        // The consumer holds the event: nothing is written yet.
        let held = consumer.recv().await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(store.get("k8s_test", b"a").unwrap(), None);
        drop(held);
        drop(tx);
        stage.await.unwrap().unwrap();
        assert_eq!(
            store.get("k8s_test", b"a").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(store.get("k8s_test", b"b").unwrap(), None);
    }
}
