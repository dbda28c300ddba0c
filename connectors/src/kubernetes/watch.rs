//! One watch: kube's `watcher` (list, then watch from the list's resource version; list
//! again after 410 Gone) for one kind in one scope, its known state and timers.
//!
//! During a list (`Init` … `InitApply` … `InitDone`) every object is compared with its known
//! summary like any change, so a relist tells nothing about objects that did not change;
//! at `InitDone`, known objects missing from the list are gone (deleted while the watch was
//! away). Errors are classified ([`WatchTelemetry`]), and the next poll waits out a back-off
//! (selecting on shutdown). A 403, or a watch that cannot start, drops the stream and starts
//! a new one, so recovery is a fresh list that marks the watch healthy again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::bus::{PublishError, Publisher};
use atalaya_bus::event::Event;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use jiff::Timestamp;
use kube::Api;
use kube::api::WatchParams;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::KubernetesError;
use super::known::{AfterCheck, Before, Commit, Deadlines, Kind, SYNC_TABLE, Writes};
use super::report::Report;
use super::telemetry::{Stage, WatchTelemetry};
use atalaya_bus::backoff::Backoff;

/// Objects per list page: bounds what the watcher holds during a list.
const PAGE_SIZE: u32 = 100;
/// The longest wait for the answer to a permission probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every watch of the bridge shares.
pub(crate) struct Shared {
    pub bus: Publisher,
    pub commits: mpsc::Sender<Commit>,
    /// The event `source`: the API server's URL.
    pub source: String,
    pub reconnect: (Duration, Duration),
}

/// One watch of kind `K` over the cluster or one namespace.
pub(crate) struct Watch<K: Kind> {
    kind: K,
    api: Api<K::Object>,
    /// The store key of this watch's list marker.
    sync_key: String,
    known: HashMap<String, K::Summary>,
    /// Whether a list ever completed (in this process or before): until then a list is a
    /// baseline.
    synced: bool,
    deadlines: Deadlines,
    shared: Arc<Shared>,
    telemetry: WatchTelemetry,
    /// The API server refused to watch (403) and has not been seen to allow it since: a
    /// list succeeding does not end that outage.
    watch_refused: bool,
    /// Whether a list completed in this process: until then the summaries are the store's,
    /// maybe stale (a pod deleted while atalaya was down), and timers wait.
    listed: bool,
}

type WatchStream<K> =
    BoxStream<'static, Result<watcher::Event<<K as Kind>::Object>, watcher::Error>>;

impl<K: Kind> Watch<K> {
    /// A watch over what `api` reaches; `known` holds its summaries from the store,
    /// `synced` whether it ever listed.
    pub fn new(
        kind: K,
        api: Api<K::Object>,
        sync_key: String,
        known: HashMap<String, K::Summary>,
        synced: bool,
        shared: Arc<Shared>,
        telemetry: WatchTelemetry,
    ) -> Self {
        let mut deadlines = Deadlines::default();
        for (key, summary) in &known {
            deadlines.set(key, kind.next_check(summary));
        }
        Self {
            kind,
            api,
            sync_key,
            known,
            synced,
            deadlines,
            shared,
            telemetry,
            watch_refused: false,
            listed: false,
        }
    }

    fn stream(&self) -> WatchStream<K> {
        watcher(
            self.api.clone(),
            watcher::Config::default().page_size(PAGE_SIZE),
        )
        .boxed()
    }

    /// Runs until `stop`. Returns an error only for what retrying cannot fix: the bus or the
    /// store gone.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), KubernetesError> {
        let mut stream = self.stream();
        let mut backoff = Backoff::new(self.shared.reconnect.0, self.shared.reconnect.1);
        // The keys seen by the list in progress.
        let mut listing: Option<HashSet<String>> = None;
        loop {
            let wake = self.deadlines.next().filter(|_| self.listed);
            let item = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                () = sleep_until(wake) => {
                    self.checks(&stop).await?;
                    continue;
                }
                item = stream.next() => item,
            };
            let Some(item) = item else {
                // kube's watcher never ends; should it, start over.
                stream = self.stream();
                continue;
            };
            let failure = match item {
                Ok(watcher::Event::Init) => {
                    listing = Some(HashSet::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(object)) => {
                    let baseline = !self.synced;
                    if let Some(key) = self.apply(object, baseline, &stop).await?
                        && let Some(listing) = &mut listing
                    {
                        listing.insert(key);
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    let listed = listing.take().unwrap_or_default();
                    self.listed(listed, &stop).await?;
                    backoff.reset();
                    continue;
                }
                Ok(watcher::Event::Apply(object)) => {
                    self.apply(object, false, &stop).await?;
                    backoff.reset();
                    continue;
                }
                Ok(watcher::Event::Delete(object)) => {
                    self.delete(&object, &stop).await?;
                    backoff.reset();
                    continue;
                }
                Err(error) => error,
            };
            let restart = self.failed(&failure);
            if restart {
                stream = self.stream();
                listing = None;
            }
            if is_expired(&failure) {
                // kube lists again at once, as client-go does.
                continue;
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Classifies and reports a failure; returns whether to drop the stream and list anew.
    fn failed(&mut self, error: &watcher::Error) -> bool {
        use kube::Error as Client;
        use watcher::Error as W;
        let forbidden = |e: &Client| matches!(e, Client::Api(status) if status.is_forbidden());
        let text = error.to_string();
        match error {
            W::InitialListFailed(e) if forbidden(e) => {
                self.telemetry.forbidden("list", &text);
                true
            }
            W::WatchStartFailed(e) if forbidden(e) => {
                self.watch_refused = true;
                self.telemetry.forbidden("watch", &text);
                true
            }
            W::WatchError(status) if status.code == 403 => {
                self.watch_refused = true;
                self.telemetry.forbidden("watch", &status.message);
                true
            }
            W::WatchError(status) if status.code == 410 => {
                self.telemetry.expired();
                false
            }
            // The same, answered to the watch request itself (HTTP 410, not a line in the
            // stream): kube would retry from the expired version forever, so start anew.
            W::WatchStartFailed(Client::Api(status)) if status.code == 410 => {
                self.telemetry.expired();
                true
            }
            // A list's continue token expired: kube lists from the start again.
            W::InitialListFailed(Client::Api(status)) if status.code == 410 => {
                self.telemetry.expired();
                false
            }
            // kube starts over from a list by itself.
            W::InitialListFailed(_) => {
                self.telemetry.failed(Stage::List, "list", &text, true);
                false
            }
            W::WatchStartFailed(_) => {
                self.telemetry
                    .failed(Stage::Watch, "start watching", &text, true);
                true
            }
            // kube watches again from the last resource version.
            W::WatchError(_) | W::WatchFailed(_) | W::NoResourceVersion => {
                self.telemetry
                    .failed(Stage::Watch, "follow changes", &text, false);
                false
            }
        }
    }

    /// An object listed or changed: compares it with what is known and tells the
    /// difference. Returns its key.
    async fn apply(
        &mut self,
        object: K::Object,
        baseline: bool,
        stop: &CancellationToken,
    ) -> Result<Option<String>, KubernetesError> {
        let Some(key) = self.kind.key(&object) else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let Some(mut after) = self.kind.summarize(&object, now) else {
            return Ok(None);
        };
        let mut report = Report::new(&self.shared.source, now);
        let old = self.known.get(&key);
        let before = match old {
            Some(summary) => Before::Known(summary),
            None if baseline => Before::Baseline,
            None => Before::Unknown,
        };
        self.kind
            .compare(&key, before, &mut after, &object, &mut report);
        let mut writes = Writes::default();
        if old.is_none_or(|old| !K::stored_alike(old, &after)) {
            writes.put(K::TABLE, &key, encode(&after));
        }
        self.deadlines.set(&key, self.kind.next_check(&after));
        self.known.insert(key.clone(), after);
        let events = report.events;
        self.publish(events, writes, stop).await?;
        Ok(Some(key))
    }

    async fn delete(
        &mut self,
        object: &K::Object,
        stop: &CancellationToken,
    ) -> Result<(), KubernetesError> {
        let Some(key) = self.kind.key(object) else {
            return Ok(());
        };
        let shared = Arc::clone(&self.shared);
        let mut report = Report::new(&shared.source, Timestamp::now());
        let mut writes = Writes::default();
        self.forget(&key, &mut report, &mut writes);
        let events = report.events;
        self.publish(events, writes, stop).await
    }

    fn forget(&mut self, key: &str, report: &mut Report<'_>, writes: &mut Writes) {
        if let Some(before) = self.known.remove(key) {
            self.kind.removed(key, &before, report);
            self.deadlines.set(key, None);
            writes.delete(K::TABLE, key);
        }
    }

    /// A list completed: what is known and was not listed is gone.
    async fn listed(
        &mut self,
        listed: HashSet<String>,
        stop: &CancellationToken,
    ) -> Result<(), KubernetesError> {
        let now = Timestamp::now();
        let shared = Arc::clone(&self.shared);
        let mut report = Report::new(&shared.source, now);
        let mut writes = Writes::default();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|key| !listed.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key, &mut report, &mut writes);
        }
        self.listed = true;
        let baseline = !self.synced;
        if baseline {
            writes.put(SYNC_TABLE, &self.sync_key, now.to_string().into_bytes());
            self.synced = true;
        }
        if self.watch_refused && !self.may_watch().await {
            self.telemetry.forbidden("watch", "still forbidden");
        } else {
            self.watch_refused = false;
            self.telemetry.listed(listed.len(), baseline);
        }
        let events = report.events;
        self.publish(events, writes, stop).await
    }

    /// Whether the API server lets this watch start now: after a 403 on watch, a list
    /// succeeding says nothing about watching, and kube's own watch request gives no sign
    /// when it succeeds. The probe watches a name no object has, for a second at most.
    async fn may_watch(&self) -> bool {
        let probe = WatchParams::default()
            .fields("metadata.name=atalaya-permission-probe")
            .timeout(1);
        // A server that does not answer in time is not a refusal: kube's own watch tells.
        let answer = tokio::time::timeout(PROBE_TIMEOUT, self.api.watch(&probe, "0")).await;
        !matches!(answer, Ok(Err(kube::Error::Api(status))) if status.is_forbidden())
    }

    /// Timers: looks again at every entry whose time has come.
    async fn checks(&mut self, stop: &CancellationToken) -> Result<(), KubernetesError> {
        let now = Timestamp::now();
        let mut report = Report::new(&self.shared.source, now);
        let mut writes = Writes::default();
        for key in self.deadlines.take_due(now) {
            let Some(summary) = self.known.get_mut(&key) else {
                continue;
            };
            let before = summary.clone();
            match self.kind.check(&key, summary, &mut report) {
                AfterCheck::Keep => {
                    if !K::stored_alike(&before, summary) {
                        writes.put(K::TABLE, &key, encode(summary));
                    }
                    let next = self.kind.next_check(summary);
                    // A deadline that is due again at once would spin.
                    self.deadlines.set(&key, next.filter(|at| *at > now));
                }
                AfterCheck::Forget => {
                    self.known.remove(&key);
                    writes.delete(K::TABLE, &key);
                }
            }
        }
        let events = report.events;
        self.publish(events, writes, stop).await
    }

    /// Publishes `events` (tracked) and hands `writes` to the commit stage, which writes
    /// them once the events are done. At shutdown, an unfinished publish is dropped with its
    /// writes: the change is told again after the restart.
    async fn publish(
        &self,
        events: Vec<Event>,
        writes: Writes,
        stop: &CancellationToken,
    ) -> Result<(), KubernetesError> {
        if events.is_empty() && writes.is_empty() {
            return Ok(());
        }
        let delivery = if events.is_empty() {
            None
        } else {
            let count = events.len();
            let published = tokio::select! {
                published = self.shared.bus.publish_tracked(events) => published,
                () = stop.cancelled() => return Ok(()),
            };
            let delivery = published.map_err(|error| match error {
                PublishError::Closed => KubernetesError::BusClosed,
                error => KubernetesError::Publish(error),
            })?;
            self.telemetry.published(count);
            Some(delivery)
        };
        self.shared
            .commits
            .send(Commit { delivery, writes })
            .await
            .map_err(|_| KubernetesError::Stopped)
    }
}

/// 410 Gone: the resource version or continue token expired; kube lists again.
fn is_expired(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

fn encode<S: serde::Serialize>(summary: &S) -> Vec<u8> {
    // Summaries are plain structs of strings, numbers and maps with string keys.
    serde_json::to_vec(summary).unwrap_or_default()
}

/// Sleeps until `at`, or forever without a deadline.
async fn sleep_until(at: Option<Timestamp>) {
    match at {
        Some(at) => {
            let wait = at.duration_since(Timestamp::now());
            tokio::time::sleep(Duration::try_from(wait).unwrap_or(Duration::ZERO)).await;
        }
        None => std::future::pending().await,
    }
}
