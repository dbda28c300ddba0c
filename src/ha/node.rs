//! One replica's NATS side, on a thread and runtime of its own (so that the lease is renewed
//! whatever the service's workers are doing, and a store write can wait for its journal
//! append without starving the client that carries it):
//!
//! 1. connect; check (or create) the lease bucket and the journal stream; check the clock;
//! 2. follow: apply the journal to the local store, and take part in the election;
//! 3. elected: catch up to the stream's end, append an epoch entry (which fences off the
//!    previous leader's appends), write a snapshot, install the journal into the store and
//!    hand over to the service; then renew the lease and append the store's transactions
//!    until the process ends — or exit at once when the lease is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, consumer, kv, stream};
use atalaya_bus::store::Store;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::config::HaConfig;
use super::election::{Election, ElectionStep, ElectionTimings, LeaseHolder, Role, WriteOutcome};
use super::journal::{self, Applier, Apply, JournalEntry};
use super::lease::{Lease, depose};
use super::replication::{AppendRequest, JournalMessage, Kind, SNAPSHOT_START_HEADER, TERM_HEADER};
use super::setup::{self, HaSetupError};

/// The key of the lease in the bucket.
pub const LEADER_KEY: &str = "leader";
/// The longest one NATS request of the election may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long start-up waits for NATS before giving up (the pod restarts and tries again).
const SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// What a follower shows on `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStatus {
    pub leader: Option<String>,
    /// Where the leader's HTTP API is (from its lease record).
    pub leader_url: Option<String>,
    pub position: u64,
}

/// The replica's NATS side, running.
pub(super) struct Node {
    pub config: HaConfig,
    pub store: Arc<Store>,
    pub js: jetstream::Context,
    pub kv: kv::Store,
    pub stream: stream::Stream,
    pub lease: Arc<Lease>,
    pub status: watch::Sender<FollowerStatus>,
    /// This replica's HTTP API, for followers to forward to while it leads.
    pub url: String,
}

/// Connects and checks the NATS side (step 1).
pub(super) async fn connect(
    config: &HaConfig,
    store: Arc<Store>,
    status: watch::Sender<FollowerStatus>,
    url: String,
) -> Result<Node, HaSetupError> {
    let (servers, options) = atalaya_connectors::nats::client_options(&config.nats)
        .await
        .map_err(|errors| {
            HaSetupError::Connection(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    let client = options
        .name(format!("atalaya-ha-{}", config.replica))
        .connect(servers)
        .await
        .map_err(|e| HaSetupError::Unreachable {
            servers: config.nats.servers.len().to_string() + " server(s)",
            reason: e.to_string(),
        })?;
    let version = client.server_info().version;
    if setup::racy_compare_and_swap(&version) {
        warn!(
            version = %version,
            "ha: this nats-server may accept two compare-and-swap writes of the same revision at once (nats-io/nats-server#4320, fixed after 2.9.20): two followers taking over together can both lose the lease, and a failover then waits for a restart. Run nats-server 2.10 or later."
        );
    }
    let js = jetstream::new(client);
    let deadline = Instant::now() + SETUP_PATIENCE;
    // The NATS cluster may still be electing its JetStream leaders: retry what is not a
    // misconfiguration, within bounds.
    let (kv, stream) = loop {
        let attempt = async {
            let kv = setup::lease_bucket(&js, config).await?;
            let stream = setup::journal_stream(&js, config).await?;
            setup::check_clock(&kv, config).await?;
            Ok::<_, HaSetupError>((kv, stream))
        }
        .await;
        match attempt {
            Ok(found) => break found,
            Err(
                e @ (HaSetupError::Misconfigured(_)
                | HaSetupError::ClockSkew { .. }
                | HaSetupError::Connection(_)),
            ) => return Err(e),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => {
                warn!(error = %e, "ha: NATS not ready yet; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    Ok(Node {
        config: config.clone(),
        store,
        js,
        kv,
        stream,
        lease: Lease::global(),
        status,
        url,
    })
}

impl Node {
    fn timings(&self) -> ElectionTimings {
        ElectionTimings {
            ttl: self.config.lease_ttl,
            renew_interval: self.config.renew_interval,
            poll_interval: self.config.poll_interval,
        }
    }

    fn lease_value(&self) -> bytes::Bytes {
        serde_json::json!({
            "replica": self.config.replica,
            "cluster": self.config.cluster,
            "url": self.url,
        })
        .to_string()
        .into()
    }

    /// Steps 2 and 3: follows until elected, takes over, then serves the lease and the
    /// journal forever. `promoted` is told the term once the service may start.
    pub async fn run(
        mut self,
        promoted: oneshot::Sender<u64>,
        appends: mpsc::UnboundedReceiver<AppendRequest>,
    ) {
        let (mut election, mut follower) = match self.follow().await {
            Ok(elected) => elected,
            Err(e) => depose(&format!("following the journal failed: {e}")),
        };
        let Role::Leader { term } = election.role() else {
            depose("the election ended without a leader")
        };
        let last = match self.take_over(&mut election, &mut follower, term).await {
            Ok(last) => last,
            Err(e) => depose(&format!("taking over failed: {e}")),
        };
        drop(follower);
        let appender = super::replication::Appender::new(
            self.js.clone(),
            &self.config,
            Arc::clone(&self.lease),
            term,
            last,
        );
        let _ = promoted.send(term);
        info!(term, position = last, replica = %self.config.replica, "ha: leading.");
        let lease_task = tokio::spawn(async move {
            self.lead(election).await;
        });
        appender.serve(appends).await;
        let _ = lease_task.await;
    }

    /// Follows: applies the journal and takes part in the election until elected.
    async fn follow(&mut self) -> Result<(Election, Follower), String> {
        let mut follower = Follower::start(self).await?;
        // A replica with nothing at all — an empty store and an empty journal — lets one with
        // state lead first: when a single replica's store goes to three (started together),
        // it is the one with the state that must write it into the journal.
        let empty = follower.stream_empty
            && self
                .store
                .dump()
                .map(|tables| tables.iter().all(|(_, entries)| entries.is_empty()))
                .unwrap_or(false);
        let first_try = if empty {
            info!(
                wait = ?self.config.lease_ttl,
                "ha: an empty store and an empty journal: leaving the first election to a replica with state."
            );
            Instant::now() + self.config.lease_ttl
        } else {
            Instant::now()
        };
        let mut election = Election::new(
            self.config.replica.clone(),
            self.timings(),
            first_try,
            fastrand::u64(..),
        );
        let mut step = election.step(Instant::now());
        loop {
            step = match step {
                ElectionStep::WaitUntil(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until.into()) => {}
                        applied = follower.next(self) => applied?,
                    }
                    election.step(Instant::now())
                }
                ElectionStep::Read => {
                    let holder = self.read_holder().await;
                    match holder {
                        Ok(holder) => {
                            let leader = holder.as_ref().map(|(h, _)| h.replica.clone());
                            let url = holder.as_ref().and_then(|(_, url)| url.clone());
                            self.status.send_modify(|s| {
                                s.leader = leader;
                                s.leader_url = url;
                            });
                            election.on_read(Instant::now(), holder.map(|(h, _)| h))
                        }
                        Err(e) => {
                            warn!(error = %e, "ha: cannot read the lease.");
                            election.on_read_failed(Instant::now());
                            election.step(Instant::now())
                        }
                    }
                }
                ElectionStep::Take | ElectionStep::TakeOver { .. } => {
                    let sent = Instant::now();
                    let outcome = match step {
                        ElectionStep::TakeOver { revision } => self.renew(revision).await,
                        _ => self.take().await,
                    };
                    election.on_take(sent, Instant::now(), outcome);
                    if let Role::Leader { .. } = election.role() {
                        return Ok((election, follower));
                    }
                    election.step(Instant::now())
                }
                ElectionStep::Renew { revision } => {
                    let sent = Instant::now();
                    let outcome = self.renew(revision).await;
                    election.on_renew(sent, Instant::now(), outcome);
                    if let Role::Leader { .. } = election.role() {
                        return Ok((election, follower));
                    }
                    election.step(Instant::now())
                }
                ElectionStep::Deposed { .. } => return Err("deposed while following".into()),
            };
        }
    }

    /// The lease holder and its HTTP API's URL.
    async fn read_holder(&self) -> Result<Option<(LeaseHolder, Option<String>)>, String> {
        let entry = tokio::time::timeout(REQUEST_TIMEOUT, self.kv.entry(LEADER_KEY))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| {
                let record = serde_json::from_slice::<serde_json::Value>(&e.value).ok();
                let field = |name: &str| {
                    record
                        .as_ref()
                        .and_then(|v| v[name].as_str().map(str::to_owned))
                };
                (
                    LeaseHolder {
                        replica: field("replica").unwrap_or_else(|| "?".to_owned()),
                        revision: e.revision,
                    },
                    field("url"),
                )
            }))
    }

    async fn take(&self) -> WriteOutcome {
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.kv.create(LEADER_KEY, self.lease_value()),
        )
        .await
        {
            Ok(Ok(revision)) => WriteOutcome::Written { revision },
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => WriteOutcome::Refused,
            Ok(Err(e)) => {
                warn!(error = %e, "ha: taking the lease failed.");
                WriteOutcome::Unknown
            }
            Err(_) => WriteOutcome::Unknown,
        }
    }

    async fn renew(&self, revision: u64) -> WriteOutcome {
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.kv.update(LEADER_KEY, self.lease_value(), revision),
        )
        .await
        {
            Ok(Ok(revision)) => WriteOutcome::Written { revision },
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                WriteOutcome::Refused
            }
            Ok(Err(e)) => {
                warn!(error = %e, "ha: renewing the lease failed.");
                WriteOutcome::Unknown
            }
            Err(_) => WriteOutcome::Unknown,
        }
    }

    /// Elected: applies the rest of the journal, appends the epoch entry (retrying after
    /// catching up again if the previous leader got one more append in) and a snapshot.
    /// Returns the stream's last sequence, this leader's first expected one.
    async fn take_over(
        &mut self,
        election: &mut Election,
        follower: &mut Follower,
        term: u64,
    ) -> Result<u64, String> {
        self.publish_lease(election, term);
        let epoch = journal::encode_epoch(term, &self.config.replica);
        loop {
            self.check_lease(election).await?;
            let last = self
                .stream
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            while follower.position < last {
                self.check_lease(election).await?;
                // A slow consumer is waited for (the lease is renewed meanwhile).
                if let Ok(applied) =
                    tokio::time::timeout(REQUEST_TIMEOUT, follower.next(self)).await
                {
                    applied?;
                }
            }
            let message = JournalMessage {
                kind: Kind::Changes,
                payload: epoch.clone(),
                snapshot_start: None,
            };
            let prefix = self.config.subject_prefix();
            match super::replication::publish(&self.js, &prefix, term, follower.position, &message)
                .await
            {
                Ok(sequence) => {
                    follower.position = sequence;
                    self.store
                        .apply_replicated(&[], sequence, false)
                        .map_err(|e| e.to_string())?;
                    break;
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    info!("ha: the previous leader appended meanwhile; catching up again.");
                }
                Err(e) => {
                    warn!(error = %e, "ha: cannot append the epoch entry yet.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if follower.applier.needs_snapshot() {
            warn!(
                "ha: the journal holds no snapshot this replica could start from; leading with its own store"
            );
        }
        // Every new leader writes a snapshot, so a replica starting later begins there.
        let mut position = follower.position;
        let dump = self.store.dump().map_err(|e| e.to_string())?;
        let messages = super::replication::snapshot_messages(term, position + 1, &dump);
        for message in &messages {
            self.check_lease(election).await?;
            position = super::replication::publish(
                &self.js,
                &self.config.subject_prefix(),
                term,
                position,
                message,
            )
            .await
            .map_err(|e| format!("writing the snapshot: {e}"))?;
        }
        self.store
            .apply_replicated(&[], position, false)
            .map_err(|e| e.to_string())?;
        self.publish_lease(election, term);
        Ok(position)
    }

    fn publish_lease(&self, election: &Election, term: u64) {
        if let Some(until) = election.valid_until() {
            self.lease.set(term, until);
        }
    }

    /// Renews while catching up (the take-over may take longer than a renewal interval);
    /// an error once the lease is lost.
    async fn check_lease(&self, election: &mut Election) -> Result<(), String> {
        match election.step(Instant::now()) {
            ElectionStep::Deposed { .. } => Err("the lease ended while taking over".into()),
            ElectionStep::Renew { revision } => {
                let sent = Instant::now();
                let outcome = self.renew(revision).await;
                election.on_renew(sent, Instant::now(), outcome);
                match election.role() {
                    Role::Leader { term } => {
                        self.publish_lease(election, term);
                        Ok(())
                    }
                    _ => Err("the lease was lost while taking over".into()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Leads: renews the lease until it is lost, then ends the process.
    async fn lead(self, mut election: Election) {
        loop {
            match election.step(Instant::now()) {
                ElectionStep::WaitUntil(until) => {
                    tokio::time::sleep_until(until.into()).await;
                }
                ElectionStep::Renew { revision } => {
                    let sent = Instant::now();
                    let outcome = self.renew(revision).await;
                    election.on_renew(sent, Instant::now(), outcome);
                    if let Role::Leader { term } = election.role() {
                        self.publish_lease(&election, term);
                    }
                }
                ElectionStep::Deposed { term } => depose(&format!(
                    "term {term}: the lease could not be renewed in time"
                )),
                ElectionStep::Read | ElectionStep::Take | ElectionStep::TakeOver { .. } => {
                    depose("the election went back to following")
                }
            }
        }
    }
}

/// A follower's reading of the journal: an ordered consumer from the local position on.
pub(super) struct Follower {
    messages: consumer::pull::Ordered,
    applier: Applier,
    /// The last stream sequence the local store reflects.
    pub position: u64,
    /// The journal held nothing when following began.
    stream_empty: bool,
}

impl Follower {
    async fn start(node: &mut Node) -> Result<Self, String> {
        let position = node.store.journal_position().map_err(|e| e.to_string())?;
        let state = node
            .stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .clone();
        let snapshot_start = latest_snapshot(&node.stream, &node.config.subject_prefix()).await;
        // Where to read from: after the local position when the stream still holds what
        // follows it; else from the latest snapshot.
        let behind = position + 1 < state.first_sequence || position > state.last_sequence;
        let fresh = position == 0 && snapshot_start.is_some();
        let (start, needs_snapshot) = match snapshot_start {
            Some(start) if behind || fresh => (start, true),
            _ if behind => {
                warn!(
                    position,
                    first = state.first_sequence,
                    "ha: the journal no longer holds what follows this replica's state and has no snapshot; following from its start"
                );
                (state.first_sequence.max(1), false)
            }
            _ => (position + 1, false),
        };
        info!(
            position,
            start,
            last = state.last_sequence,
            needs_snapshot,
            "ha: following the journal."
        );
        let consumer = node
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: if start <= 1 {
                    consumer::DeliverPolicy::All
                } else {
                    consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    }
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let messages = consumer.messages().await.map_err(|e| e.to_string())?;
        node.status.send_modify(|s| s.position = position);
        Ok(Self {
            messages,
            applier: Applier::new(needs_snapshot),
            position: start.saturating_sub(1),
            stream_empty: state.last_sequence == 0,
        })
    }

    /// Waits for the next entry and applies it.
    async fn next(&mut self, node: &Node) -> Result<(), String> {
        let message = match self.messages.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(format!("reading the journal: {e}")),
            None => return Err("the journal consumer ended".into()),
        };
        let sequence = message.info().map_err(|e| e.to_string())?.stream_sequence;
        let entry = match journal::decode(&message.payload) {
            Ok(entry) => entry,
            Err(e) => {
                warn!(sequence, error = %e, "ha: skipping an unreadable journal entry.");
                self.position = sequence;
                return Ok(());
            }
        };
        if let JournalEntry::Epoch { term, replica } = &entry {
            info!(term, leader = %replica, sequence, "ha: a new leader's epoch.");
        }
        let store = &node.store;
        match self.applier.on_entry(entry) {
            Apply::Write { tables, replace } => {
                let batches: Vec<_> = tables.iter().map(journal::TableChanges::as_batch).collect();
                store
                    .apply_replicated(&batches, sequence, replace)
                    .map_err(|e| e.to_string())?;
            }
            Apply::Fenced { term, highest } => {
                warn!(
                    sequence,
                    term, highest, "ha: ignoring an entry of a deposed leader."
                );
            }
            Apply::Skip => {}
        }
        self.position = sequence;
        node.status.send_modify(|s| s.position = sequence);
        Ok(())
    }
}

/// Where the latest snapshot in the stream begins.
async fn latest_snapshot(stream: &stream::Stream, prefix: &str) -> Option<u64> {
    let last = stream
        .get_last_raw_message_by_subject(&format!("{prefix}.snapshot"))
        .await
        .ok()?;
    let start = last
        .headers
        .get(SNAPSHOT_START_HEADER)?
        .as_str()
        .parse()
        .ok()?;
    // Only when the whole snapshot is still in the stream.
    let first = stream.get_raw_message(start).await.ok()?;
    let _ = first.headers.get(TERM_HEADER);
    Some(start)
}

/// Builds the empty headers of a journal message (for the replication module).
pub(super) fn headers() -> HeaderMap {
    HeaderMap::new()
}
