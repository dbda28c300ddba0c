//! The rule engine in the service: a bus consumer that feeds the sans-IO engine with events
//! and real time, persists what changed, hands alerts and actions on, and reloads rules.
//!
//! After every batch of events (everything waiting in the queue, up to a bound) and every
//! tick, what changed — series whose alert phase changed, minor changes once due, the
//! router's items that changed, the notifications due — is written to the state store in one
//! transaction, with a `saved_at` heartbeat, so a restart knows how long atalaya was down and
//! pauses timers for that long. When nothing changed nothing is written, except the heartbeat
//! every `state.heartbeat` (an SD card wears by commits). At shutdown everything is written.
//!
//! Group commit: at most one transaction per `state.commit_interval` (5 ms). Events that
//! arrive sooner are evaluated and routed at once, and *held* — their sources do not
//! acknowledge them — until the transaction that holds their effects commits, so a burst with
//! thousands of alert changes a second costs a couple of hundred fsyncs, not thousands.
//!
//! The transaction itself (the store's inserts, its commit and fsync, the history's and the
//! outbox's records) is written on a blocking thread while the runner goes on evaluating
//! and routing: one write in flight at a time, in order. The events it holds are let go, and
//! their outputs handed on, when it has committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use atalaya_bus::Event;
use atalaya_bus::bus::{Consumer, QueueWatch, Received};
use atalaya_bus::delivery::notification::Notification;
use atalaya_bus::readiness::ReadyHandle;
use atalaya_bus::store::{Entry, Store, TableBatch};
use atalaya_rules::alert::{ActionRequest, AlertState, Output};
use atalaya_rules::compile::{RuleError, load_rules};
use atalaya_rules::engine::{Changes, Engine};
use atalaya_rules::routing::router::RouterChanges;
use jiff::Timestamp;
use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::alerting::flapping::FlapDetector;
use crate::alerting::history::{ChangeBudget, History, HistoryEntry, HistoryRows, rules_revision};
use crate::alerting::outbox::Outbox;
use crate::alerting::routing::{ROUTER_TABLE, RouterCommand, Routing, initial_policy};
use crate::alerting::tail::Tail;

/// The store table of engine state: `rule \0 fingerprint` → series; [`SAVED_AT_KEY`] → when.
pub const SERIES_TABLE: &str = "rule_series";
/// Key of the heartbeat: the last time the engine state was known to be current.
const SAVED_AT_KEY: &[u8] = b"\0saved_at";
/// How often the runner looks whether the heartbeat is due, and refreshes the router's
/// gauges.
const HEARTBEAT_CHECK: Duration = Duration::from_secs(10);
/// The longest a reload may take to read and compile the files.
const RELOAD_BUDGET: Duration = Duration::from_secs(10);
/// Most events evaluated and held before state is persisted (the runner stops taking
/// events from the bus meanwhile, which pushes back on the sources).
const MAX_HELD: usize = 4096;
/// How often the router's alert and silence gauges are recomputed at most (it walks every
/// alert held).
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Whether the runner is making progress: when it began the step it is working on, `0`
/// while it waits for work. Read by [`watch_progress`], which turns the `rules` readiness off
/// when one step takes too long (a stalled runner used to leave `/readyz` at 200 while every
/// ingest answered 503).
#[derive(Clone, Default)]
pub struct RunnerProgress(Arc<AtomicI64>);

impl RunnerProgress {
    fn busy(&self) {
        self.0
            .store(Timestamp::now().as_millisecond().max(1), Ordering::Relaxed);
    }

    fn idle(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// How long the current step has taken; `None` while waiting for work.
    pub fn busy_for(&self, now: Timestamp) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(
                u64::try_from(now.as_millisecond() - since).unwrap_or(0),
            )),
        }
    }
}

/// Turns readiness off while the service cannot take events: `rules` while the runner's
/// current step has taken longer than `stall`, `bus` while a consumer's queue has stayed full
/// for longer than `stall` (publishers wait, HTTP ingest answers 503); on again when they
/// move. An OS thread, not a task: a runner stuck on a worker thread may hold up the async
/// runtime too.
pub fn watch_progress(
    progress: RunnerProgress,
    queues: QueueWatch,
    rules: ReadyHandle,
    bus: ReadyHandle,
    stall: Duration,
) {
    let spawned = std::thread::Builder::new()
        .name("progress-watchdog".into())
        .spawn(move || {
            let (mut rules_stalled, mut bus_stalled) = (false, false);
            let mut full_since: Option<std::time::Instant> = None;
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let stalled = progress
                    .busy_for(Timestamp::now())
                    .is_some_and(|busy| busy > stall);
                if stalled != rules_stalled {
                    rules_stalled = stalled;
                    if stalled {
                        error!(after = ?stall, "The rules runner has made no progress; not ready.");
                    } else {
                        info!("The rules runner is moving again.");
                    }
                    rules.set(!stalled);
                }
                let full = queues.full_consumers();
                full_since = match (full.is_empty(), full_since) {
                    (true, _) => None,
                    (false, None) => Some(std::time::Instant::now()),
                    (false, since) => since,
                };
                let stalled = full_since.is_some_and(|since| since.elapsed() > stall);
                if stalled != bus_stalled {
                    bus_stalled = stalled;
                    if stalled {
                        error!(consumers = ?full, after = ?stall, "A bus queue has stayed full; events are refused; not ready.");
                    } else {
                        info!("The bus queues move again.");
                    }
                    bus.set(!stalled);
                }
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "Cannot start the progress watchdog.");
    }
}

/// A request to reload the rules, with where to send the outcome.
pub struct ReloadRequest {
    /// Why: `file change`, `SIGHUP`, `HTTP`.
    pub cause: &'static str,
    pub reply: Option<oneshot::Sender<Result<usize, Vec<String>>>>,
}

/// Reload metrics, and the last refusal's errors (for the Telegram bot's `/status`).
#[derive(Clone)]
pub struct ReloadMetrics {
    reloads: IntCounter,
    failures: IntCounter,
    last_success: IntGauge,
    /// The errors of the last reload, when it was refused.
    last_error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl ReloadMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reloads = IntCounter::new("atalaya_rules_reloads_total", "Rule reloads attempted.")?;
        let failures = IntCounter::new(
            "atalaya_rules_reload_failures_total",
            "Rule reloads refused because a rule file had errors (the running rules were kept).",
        )?;
        let last_success = IntGauge::new(
            "atalaya_rules_last_reload_success_timestamp_seconds",
            "When the rules were last loaded successfully (Unix seconds).",
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        last_success.set(Timestamp::now().as_second());
        Ok(Self {
            reloads,
            failures,
            last_success,
            last_error: std::sync::Arc::default(),
        })
    }

    /// The errors of the last reload, when it was refused (a later success clears them).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

pub struct RulesRunner {
    pub engine: Engine,
    /// Where rules are reloaded from; `None`: no rules directory, nothing to reload.
    pub dir: Option<PathBuf>,
    /// The rules directory's Git commit when it is a checkout, read at every load, told in
    /// the alert history.
    pub rules_commit: Option<String>,
    /// Actions, to the brokers that publish them (when any is configured).
    pub actions: Option<mpsc::Sender<ActionRequest>>,
    pub reload_metrics: ReloadMetrics,
    /// The router and the outbox its notifications go to.
    pub routing: Routing,
    /// The longest the store goes without a commit (`state.heartbeat`): the `saved_at` a
    /// restart after a crash measures the downtime from.
    pub heartbeat: Duration,
    /// The shortest time between two commits while events arrive (`state.commit_interval`).
    pub commit_interval: Duration,
    pub clock: CommitClock,
    pub flapping: FlapDetector,
    pub progress: RunnerProgress,
    /// The names of the rules loaded, for whoever shows them (Home Assistant discovery).
    pub rule_names: tokio::sync::watch::Sender<Arc<[String]>>,
    /// Each event evaluated, for `atalaya tail`.
    pub tail: Tail,
    /// Which state changes go into the history: a flapping alert's are counted instead.
    pub change_budget: ChangeBudget,
}

/// Waits for the write in flight to commit (at once when there is none).
async fn written(in_flight: &mut Option<InFlight>) -> anyhow::Result<()> {
    match in_flight {
        Some(in_flight) => (&mut in_flight.task)
            .await
            .context("the store write panicked")?,
        None => Ok(()),
    }
}

/// The names of `engine`'s rules, in order, each once.
pub fn rule_names(engine: &Engine) -> Arc<[String]> {
    let mut seen = std::collections::HashSet::new();
    engine
        .rules()
        .iter()
        .filter(|r| seen.insert(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect()
}

/// When the runner last committed, and did other periodic work.
#[derive(Default)]
pub struct CommitClock {
    /// When a transaction was last written.
    written: Option<tokio::time::Instant>,
    /// When a commit was last attempted (it writes nothing when nothing changed).
    attempted: Option<tokio::time::Instant>,
    /// When the router's gauges were last recomputed.
    metrics: Option<tokio::time::Instant>,
    /// The write being committed, when one is.
    in_flight: Option<InFlight>,
}

/// Events evaluated but not yet committed, and what they caused.
#[derive(Default)]
struct Held {
    /// Dropped once committed: then their sources may acknowledge them.
    events: Vec<Received>,
    outputs: Vec<Output>,
    /// A command changed the router since the last commit.
    commands: bool,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && !self.commands
    }
}

/// What one transaction writes, gathered from the engine and the router on the runner's
/// task, written on a blocking thread ([`Write::run`]).
struct Write {
    series_puts: Vec<Entry>,
    series_deletes: Vec<Vec<u8>>,
    router: RouterChanges,
    /// Serialized into history rows on the writing thread.
    happened: Vec<HistoryEntry>,
    notifications: Vec<Notification>,
    outbox: Outbox,
    history: Option<History>,
}

impl Write {
    /// Writes it all in **one** transaction: a crash leaves all of a step or none of it. The
    /// outbox takes the notifications once it has committed.
    fn run(self) -> anyhow::Result<()> {
        let mut batches = vec![TableBatch {
            table: SERIES_TABLE,
            puts: &self.series_puts,
            deletes: &self.series_deletes,
        }];
        if !self.router.is_empty() {
            batches.push(TableBatch {
                table: ROUTER_TABLE,
                puts: &self.router.puts,
                deletes: &self.router.deletes,
            });
        }
        let history = match &self.history {
            Some(history) if !self.happened.is_empty() => history.rows(&self.happened),
            _ => HistoryRows::default(),
        };
        if !history.is_empty() {
            batches.extend(history.batches());
        }
        self.outbox
            .enqueue_with(self.notifications, &batches)
            .context("persisting rule and router state")
    }
}

/// The write being committed, and the events and outputs that wait for it.
struct InFlight {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Let go (their sources may acknowledge them) once it has committed.
    events: Vec<Received>,
    /// Handed on once it has committed.
    outputs: Vec<Output>,
}

/// The store key of a series: `rule \0 fingerprint`.
fn series_key(rule: &str, fingerprint: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(rule.len() + fingerprint.len() + 1);
    key.extend_from_slice(rule.as_bytes());
    key.push(0);
    key.extend_from_slice(fingerprint.as_bytes());
    key
}

/// Loads the persisted state into `engine`; returns the outputs of the restore (resolutions
/// of alerts whose rule changed while atalaya was down).
pub fn restore(engine: &mut Engine, store: &Store, now: Timestamp) -> anyhow::Result<Vec<Output>> {
    let entries = store.scan(SERIES_TABLE).context("reading rule state")?;
    let mut saved_at = None;
    let mut records = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if key == SAVED_AT_KEY {
            saved_at = std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse().ok());
            continue;
        }
        let Some(split) = key.iter().position(|b| *b == 0) else {
            continue;
        };
        let rule = String::from_utf8_lossy(&key[..split]).into_owned();
        let fingerprint = String::from_utf8_lossy(&key[split + 1..]).into_owned();
        records.push((rule, fingerprint, value));
    }
    let count = records.len();
    let outputs = engine.restore(records, saved_at, now);
    for unreadable in engine.take_unreadable() {
        store
            .set_aside(
                SERIES_TABLE,
                &series_key(&unreadable.rule, &unreadable.fingerprint),
                &unreadable.record,
                &unreadable.reason,
            )
            .context("setting an unreadable series aside")?;
    }
    if count > 0 {
        info!(series = count, saved_at = ?saved_at.map(|t| t.to_string()), "Rule state restored.");
    }
    Ok(outputs)
}

impl RulesRunner {
    pub async fn run(
        mut self,
        mut consumer: Consumer,
        mut reloads: mpsc::Receiver<ReloadRequest>,
        mut commands: mpsc::Receiver<RouterCommand>,
    ) -> anyhow::Result<()> {
        // What the start changed (restored timers shifted by the downtime, alerts routed by
        // reconciliation, a new policy's groups) is written before anything else happens.
        self.commit(false, Held::default()).await?;
        self.settle().await?;
        let mut heartbeat = tokio::time::interval(HEARTBEAT_CHECK);
        let mut held = Held::default();
        loop {
            let deadline = match (
                self.engine.next_deadline(),
                self.routing.router.next_deadline(),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = match deadline {
                Some(deadline) => {
                    let wait = deadline.duration_since(Timestamp::now());
                    Duration::try_from(wait).unwrap_or(Duration::ZERO)
                }
                None => Duration::from_secs(3600),
            };
            // While events are held, the commit is due an interval after the last one.
            let commit_due = (!held.is_empty()).then(|| self.next_commit());
            if commit_due.is_none() {
                self.progress.idle();
            }
            tokio::select! {
                written = written(&mut self.clock.in_flight), if self.clock.in_flight.is_some() => {
                    self.finish(written).await?;
                }
                event = consumer.recv(), if held.events.len() < MAX_HELD => {
                    self.progress.busy();
                    let Some(event) = event else { break };
                    let first = held.outputs.len();
                    // One reading of the clock for every few hundred events drained together
                    // (a fraction of a millisecond's work).
                    let mut now = Timestamp::now();
                    held.outputs.extend(self.evaluate(now, &event));
                    held.events.push(event);
                    while held.events.len() < MAX_HELD {
                        let Some(event) = consumer.try_recv() else { break };
                        if held.events.len() % 256 == 0 {
                            now = Timestamp::now();
                        }
                        held.outputs.extend(self.evaluate(now, &event));
                        held.events.push(event);
                    }
                    self.route(&held.outputs[first..]);
                    // Events that changed nothing to store are let go at once.
                    if self.next_commit() <= tokio::time::Instant::now() || !self.would_write(&held) {
                        self.release(&mut held).await?;
                    }
                }
                () = tokio::time::sleep_until(commit_due.unwrap_or_else(tokio::time::Instant::now)), if commit_due.is_some() => {
                    self.release(&mut held).await?;
                }
                _ = tokio::time::sleep(sleep) => {
                    self.progress.busy();
                    let outputs = self.engine.on_tick(Timestamp::now());
                    self.route(&outputs);
                    held.outputs.extend(outputs);
                    self.release(&mut held).await?;
                }
                Some(request) = reloads.recv() => {
                    self.progress.busy();
                    self.release(&mut held).await?;
                    self.reload(request).await?;
                }
                // Alerts posted by Prometheus are committed with the next group commit, like
                // events (Prometheus sends them again at every evaluation anyway).
                Some(command) = commands.recv() => {
                    self.progress.busy();
                    let command = match command {
                        RouterCommand::ExplainRule(rule, reply) => {
                            let _ = reply.send(self.engine.explain(&rule));
                            continue;
                        }
                        RouterCommand::RulesOverview(reply) => {
                            let _ = reply.send(self.rules_overview());
                            continue;
                        }
                        command => command,
                    };
                    self.routing.handle(Timestamp::now(), command);
                    held.commands = true;
                    if self.next_commit() <= tokio::time::Instant::now() {
                        self.release(&mut held).await?;
                    }
                }
                _ = heartbeat.tick() => {
                    self.progress.busy();
                    if self.routing.expire_acknowledged(Timestamp::now()) > 0 {
                        held.commands = true;
                    }
                    self.release(&mut held).await?;
                    self.routing.update_metrics(Timestamp::now());
                    self.flapping.check(Timestamp::now());
                }
            }
        }
        // The bus is drained: save everything, minor changes included.
        self.release(&mut held).await?;
        self.commit(true, Held::default()).await?;
        self.settle().await
    }

    /// Waits for the write in flight, if any, to commit, and lets its events go.
    async fn settle(&mut self) -> anyhow::Result<()> {
        let result = written(&mut self.clock.in_flight).await;
        self.finish(result).await
    }

    /// After the write in flight has committed (or failed: fatal): lets its events go and
    /// hands its outputs on.
    async fn finish(&mut self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        let in_flight = self.clock.in_flight.take();
        result?;
        if let Some(InFlight {
            events, outputs, ..
        }) = in_flight
        {
            drop(events);
            self.deliver(outputs).await;
        }
        Ok(())
    }

    /// Every rule explained, and how the last reload went (the web page's rules).
    fn rules_overview(&self) -> crate::alerting::routing::RulesOverview {
        let mut seen = std::collections::HashSet::new();
        let rules = self
            .engine
            .rules()
            .iter()
            .filter(|r| seen.insert(r.name.as_str()))
            .filter_map(|r| self.engine.explain(&r.name))
            .collect();
        crate::alerting::routing::RulesOverview {
            rules,
            loaded_at: Timestamp::from_second(self.reload_metrics.last_success.get()).ok(),
            reload_error: self.reload_metrics.last_error(),
            rules_commit: self.rules_commit.clone(),
        }
    }

    /// Whether committing now would write anything (so holding the events until the next
    /// group commit is worth it).
    fn would_write(&self, held: &Held) -> bool {
        let now = Timestamp::now();
        let durable = held.events.iter().any(Received::wants_durable);
        held.commands
            || self.engine.has_changes(now, durable)
            || self.routing.router.is_dirty()
            || self
                .routing
                .router
                .next_deadline()
                .is_some_and(|d| d <= now)
            || self
                .clock
                .written
                .is_none_or(|last| last.elapsed() >= self.heartbeat)
    }

    /// When the next commit may happen.
    fn next_commit(&self) -> tokio::time::Instant {
        match self.clock.attempted {
            Some(at) => at + self.commit_interval,
            None => tokio::time::Instant::now(),
        }
    }

    /// Commits what the held events (and anything since the last commit) changed; once
    /// committed, the events are let go — their sources may acknowledge them — and their
    /// outputs handed on.
    async fn release(&mut self, held: &mut Held) -> anyhow::Result<()> {
        // A publisher waiting for durability gets every change written now, minor ones
        // included.
        let durable = held.events.iter().any(Received::wants_durable);
        self.commit(durable, std::mem::take(held)).await
    }

    /// Evaluates one event at `now`, telling `atalaya tail` about it when someone listens.
    fn evaluate(&mut self, now: Timestamp, event: &Event) -> Vec<Output> {
        let outputs = self.engine.on_event(now, event);
        if self.tail.listened() {
            self.tail
                .send(event, self.engine.rules_for(event), &outputs);
        }
        outputs
    }

    /// Routes the alerts among `outputs` and keeps their changes for the history (in
    /// memory; [`RulesRunner::commit`] writes).
    fn route(&mut self, outputs: &[Output]) {
        let now = Timestamp::now();
        if self.routing.history.is_some() {
            for output in outputs {
                if let Output::Alert(alert) = output {
                    if !self
                        .change_budget
                        .admit(&alert.fingerprint, &alert.labels, now)
                    {
                        continue;
                    }
                    let hash = self
                        .engine
                        .rules()
                        .iter()
                        .find(|r| r.name == alert.rule)
                        .map(|r| r.hash);
                    let at = match alert.state {
                        AlertState::Pending => Some(alert.active_since),
                        AlertState::Firing => alert.fired_at,
                        AlertState::Resolved => alert.resolved_at,
                    };
                    self.routing.happened.push(HistoryEntry::state(
                        at.unwrap_or(now),
                        &alert.labels,
                        alert.state.as_str(),
                        alert.value.clone(),
                        (hash, self.rules_commit.as_deref()),
                    ));
                }
            }
        }
        self.routing.on_outputs(now, outputs);
    }

    async fn deliver(&mut self, outputs: Vec<Output>) {
        let now = Timestamp::now();
        for output in outputs {
            match output {
                Output::Action(action) => {
                    if let Some(actions) = &self.actions {
                        let _ = actions.send(action).await;
                    }
                }
                // Debug only: what a person asked to see of an alert is routed (the console
                // integration, Telegram, …), and a flapping rule would flood the log; it is
                // reported once by the flap detector instead.
                Output::Alert(alert) => {
                    debug!(rule = %alert.rule, state = alert.state.as_str(), fingerprint = %alert.fingerprint, "Alert {}.", alert.state.as_str());
                    self.flapping.observe(&alert.rule, now);
                }
            }
        }
    }

    /// Flushes the router's groups that are due, and starts the write of their notifications,
    /// the changed series (`all`: minor changes too, not only those due), the heartbeat and
    /// the router's state in **one** transaction ([`Write::run`]) once the write before it has
    /// committed: a crash leaves all of a step or none of it, never a series firing that the
    /// router never heard of. `held` is let go once it has committed, at once when there is
    /// nothing to write. A store failure is fatal: going on would lose state silently.
    async fn commit(&mut self, all: bool, held: Held) -> anyhow::Result<()> {
        let now = Timestamp::now();
        self.clock.attempted = Some(tokio::time::Instant::now());
        let notifications = self.routing.flush_due(now);
        let Changes { upserts, deletes } = if all {
            self.engine.take_all_changes()
        } else {
            self.engine.take_changes(now)
        };
        let mut series_puts: Vec<Entry> = upserts
            .into_iter()
            .map(|(rule, fp, bytes)| (series_key(&rule, &fp), bytes))
            .collect();
        let series_deletes: Vec<Vec<u8>> = deletes.iter().map(|(r, f)| series_key(r, f)).collect();
        let router = self.routing.take_changes()?;
        let flapped = self.change_budget.take_ended(now);
        self.routing.happened.extend(flapped);
        let happened = std::mem::take(&mut self.routing.happened);
        let heartbeat_due = self
            .clock
            .written
            .is_none_or(|last| last.elapsed() >= self.heartbeat);
        if !all
            && !heartbeat_due
            && notifications.is_empty()
            && series_puts.is_empty()
            && series_deletes.is_empty()
            && router.is_empty()
            && happened.is_empty()
        {
            // Nothing changed: no write. `saved_at` is refreshed by the heartbeat alone. The
            // events go with the write in flight, if any, so outputs keep their order.
            match &mut self.clock.in_flight {
                Some(in_flight) => {
                    in_flight.events.extend(held.events);
                    in_flight.outputs.extend(held.outputs);
                }
                None => {
                    drop(held.events);
                    self.deliver(held.outputs).await;
                }
            }
            return Ok(());
        }
        self.clock.written = Some(tokio::time::Instant::now());
        series_puts.push((SAVED_AT_KEY.to_vec(), now.to_string().into_bytes()));
        if !router.is_empty()
            && self
                .clock
                .metrics
                .is_none_or(|last| last.elapsed() >= METRICS_EVERY)
        {
            self.clock.metrics = Some(tokio::time::Instant::now());
            self.routing.update_metrics(now);
        }
        let write = Write {
            series_puts,
            series_deletes,
            router,
            happened,
            notifications,
            outbox: self.routing.outbox.clone(),
            history: self.routing.history.clone(),
        };
        // One write in flight: the one before commits first.
        self.settle().await?;
        self.clock.in_flight = Some(InFlight {
            task: tokio::task::spawn_blocking(move || write.run()),
            events: held.events,
            outputs: held.outputs,
        });
        Ok(())
    }

    /// Reloads the rules and the routing policy together: both are read and compiled first,
    /// and only if both are good do they replace the running ones.
    async fn reload(&mut self, request: ReloadRequest) -> anyhow::Result<()> {
        if self.dir.is_none() && self.routing.policy_file.is_none() {
            if let Some(reply) = request.reply {
                let _ = reply.send(Err(vec![
                    "no rules directory or routing file is configured".to_owned(),
                ]));
            }
            return Ok(());
        }
        self.reload_metrics.reloads.inc();
        let dir = self.dir.clone();
        let policy_file = self.routing.policy_file.clone();
        // Read and compiled off the async threads, within a budget: a reload that takes
        // longer is refused like a broken file (the compiling thread finishes on its own;
        // every expression and file it reads is bounded).
        let load = tokio::task::spawn_blocking(move || {
            let rules = dir.map(|dir| load_rules(&dir));
            let policy = policy_file.map(|file| initial_policy(Some(&file)));
            (rules, policy)
        });
        let (rules, policy) = match tokio::time::timeout(RELOAD_BUDGET, load).await {
            Ok(loaded) => loaded.context("rule loading task")?,
            Err(_) => {
                let error = format!(
                    "the rule and routing files took longer than {}s to compile",
                    RELOAD_BUDGET.as_secs()
                );
                (Some(Err(Vec::new())), Some(Err(vec![error])))
            }
        };
        let mut errors: Vec<String> = Vec::new();
        if let Some(Err(e)) = &rules {
            errors.extend(e.iter().map(RuleError::to_string));
        }
        if let Some(Err(e)) = &policy {
            errors.extend(e.iter().cloned());
        }
        let result = if errors.is_empty() {
            let now = Timestamp::now();
            let mut count = self.engine.rules().len();
            let mut outputs = Vec::new();
            if let Some(Ok(set)) = rules {
                count = set.rules.len();
                outputs = self.engine.reload(set, now);
                self.rule_names.send_replace(rule_names(&self.engine));
                self.rules_commit = self.dir.as_deref().and_then(rules_revision);
            }
            if let Some(Ok(policy)) = policy {
                self.routing.set_policy(policy, now);
            }
            self.route(&outputs);
            self.commit(
                false,
                Held {
                    outputs,
                    ..Held::default()
                },
            )
            .await?;
            self.settle().await?;
            self.reload_metrics
                .last_success
                .set(Timestamp::now().as_second());
            self.reload_metrics.set_last_error(None);
            info!(cause = request.cause, rules = count, "Rules reloaded.");
            Ok(count)
        } else {
            self.reload_metrics.failures.inc();
            self.reload_metrics.set_last_error(Some(errors.join("; ")));
            for e in &errors {
                error!(cause = request.cause, error = %e, "Rule reload refused; the running rules and routing stay.");
            }
            Err(errors)
        };
        if let Some(reply) = request.reply {
            let _ = reply.send(result);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use atalaya_bus::bus::BusBuilder;
    use atalaya_rules::compile::RuleSet;
    use atalaya_rules::metrics::EngineMetrics;
    use atalaya_rules::routing::config::RoutingPolicy;
    use atalaya_rules::routing::router::Router;

    use super::*;
    use crate::alerting::outbox::Outbox;
    use crate::alerting::routing::{AlertLimits, RoutingMetrics};

    /// A runner over `store` with `rules` (YAML), on the console policy.
    fn runner(
        store: &Arc<Store>,
        registry: &Registry,
        rules: Option<&str>,
    ) -> (RulesRunner, Consumer, atalaya_bus::bus::Publisher) {
        let policy = Arc::new(RoutingPolicy::console_default());
        let (policy_tx, _policy_rx) = tokio::sync::watch::channel(Arc::clone(&policy));
        let routing = Routing {
            router: Router::new(policy),
            outbox: Outbox::open(Arc::clone(store), registry, Default::default()).unwrap(),
            policy_file: None,
            policy_tx,
            metrics: RoutingMetrics::register(registry).unwrap(),
            limits: AlertLimits {
                per_request: 10,
                total: 10,
            },
            history: None,
            happened: Vec::new(),
        };
        let rules = match rules {
            Some(yaml) => {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("rules.yaml"), yaml).unwrap();
                load_rules(dir.path()).unwrap()
            }
            None => RuleSet::default(),
        };
        let mut bus = BusBuilder::new(8, registry).unwrap();
        let consumer = bus.consumer("rules");
        let publisher = bus.build();
        let runner = RulesRunner {
            engine: Engine::new(rules, EngineMetrics::unregistered().unwrap()),
            dir: None,
            rules_commit: None,
            actions: None,
            reload_metrics: ReloadMetrics::register(registry).unwrap(),
            routing,
            heartbeat: Duration::from_secs(300),
            commit_interval: Duration::from_millis(5),
            clock: CommitClock::default(),
            flapping: FlapDetector::register(registry, 20, Duration::from_secs(600)).unwrap(),
            progress: RunnerProgress::default(),
            rule_names: tokio::sync::watch::channel(Arc::from([])).0,
            tail: Tail::default(),
            change_budget: ChangeBudget::default(),
        };
        (runner, consumer, publisher)
    }

    /// Group commit: a flapping rule fed one event at a time (each taken alone, each
    /// changing the alert's phase) costs one transaction per `commit_interval`, not one per
    /// event (with no interval: 200); and every event is released after its commit.
    #[tokio::test(start_paused = true)]
    async fn a_flapping_burst_costs_one_commit_per_interval_not_one_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let registry = Registry::new();
        let rules =
            "rules:\n  - name: hot\n    subject: kitchen/temperature\n    condition: value > 70\n";
        let (runner, consumer, publisher) = runner(&store, &registry, Some(rules));
        let (_reload_tx, reloads) = mpsc::channel(1);
        let (_commands_tx, commands) = mpsc::channel(1);
        let task = tokio::spawn(runner.run(consumer, reloads, commands));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let before = store.commits();
        let mut deliveries = Vec::new();
        for n in 0..200 {
            let value = if n % 2 == 0 { 71 } else { 65 };
            let event = atalaya_bus::Event::new(
                "/test",
                atalaya_bus::Subject::parse("kitchen/temperature").unwrap(),
                serde_json::json!(value),
                Timestamp::now(),
            );
            deliveries.push(publisher.publish_tracked(vec![event]).await.unwrap());
            // The runner takes this event alone before the next is published.
            tokio::task::yield_now().await;
        }
        for delivery in deliveries {
            tokio::time::timeout(Duration::from_secs(1), delivery.done())
                .await
                .expect("every event is released");
        }
        let commits = store.commits() - before;
        assert!(
            commits <= 2,
            "{commits} commits for 200 phase changes in one instant"
        );
        assert_eq!(
            atalaya_test_kit::metrics::sample(
                &registry,
                "atalaya_rule_flapping",
                &[("rule", "hot")]
            ),
            1.0
        );
        drop(publisher);
        task.await.unwrap().unwrap();
    }

    /// `what`, or a failed test after ten seconds.
    async fn bounded<T>(what: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), what)
            .await
            .expect("done within ten seconds")
    }

    /// A store write that waits for the HA journal, one item at a time.
    struct GatedJournal {
        /// One `()` lets one write through.
        permits: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
        /// Told when a write has come to the gate.
        arrived: tokio::sync::mpsc::UnboundedSender<()>,
        position: std::sync::atomic::AtomicU64,
    }

    impl atalaya_bus::store::Journal for GatedJournal {
        fn append(&self, _: &Store, _: &[TableBatch<'_>]) -> Result<u64, String> {
            let _ = self.arrived.send(());
            let permits = self.permits.lock().unwrap();
            permits
                .recv_timeout(Duration::from_secs(30))
                .map_err(|e| e.to_string())?;
            Ok(self.position.fetch_add(1, Ordering::Relaxed) + 1)
        }
    }

    /// The transaction is written off the runner's task: while it is being committed (here
    /// held at the HA journal) the runner still answers, and the event whose effects it holds
    /// is not let go — its source does not acknowledge it — until it has committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runner_answers_while_a_write_commits_and_holds_its_events_until_then() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let registry = Registry::new();
        let (permit, permits) = std::sync::mpsc::channel();
        let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
        store.set_journal(Arc::new(GatedJournal {
            permits: std::sync::Mutex::new(permits),
            arrived: arrived_tx,
            position: std::sync::atomic::AtomicU64::new(0),
        }));
        let rules =
            "rules:\n  - name: hot\n    subject: kitchen/temperature\n    condition: value > 70\n";
        let (runner, consumer, publisher) = runner(&store, &registry, Some(rules));
        let (_reload_tx, reloads) = mpsc::channel(1);
        let (commands_tx, commands) = mpsc::channel(1);
        // The start's write goes through.
        permit.send(()).unwrap();
        let task = tokio::spawn(runner.run(consumer, reloads, commands));
        bounded(arrived.recv()).await.unwrap();
        let event = atalaya_bus::Event::new(
            "/test",
            atalaya_bus::Subject::parse("kitchen/temperature").unwrap(),
            serde_json::json!(75),
            Timestamp::now(),
        );
        let delivery = publisher.publish_tracked(vec![event]).await.unwrap();
        let mut done = std::pin::pin!(delivery.done());
        // The alert's write has come to the journal, and waits there.
        bounded(arrived.recv()).await.unwrap();
        assert!(
            futures_util::poll!(done.as_mut()).is_pending(),
            "the event was let go before the write holding its effects committed"
        );
        let (reply, answer) = oneshot::channel();
        commands_tx
            .send(RouterCommand::ListAlerts(reply))
            .await
            .unwrap();
        let alerts = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the runner answers while a write is being committed")
            .unwrap();
        assert_eq!(alerts.len(), 1, "the firing alert is routed meanwhile");
        assert!(futures_util::poll!(done.as_mut()).is_pending());
        // Every write from now on goes through.
        for _ in 0..100 {
            permit.send(()).unwrap();
        }
        bounded(done).await;
        assert!(
            store
                .scan(SERIES_TABLE)
                .unwrap()
                .iter()
                .any(|(key, _)| key.starts_with(b"hot\0")),
            "the series is stored when its event is let go"
        );
        drop(publisher);
        bounded(task).await.unwrap().unwrap();
    }

    /// Group commit holds only events with something to write: an event that changed
    /// nothing is released at once, not at the next interval (a JetStream consumer's
    /// throughput would otherwise be `max_ack_pending` per interval).
    #[tokio::test(start_paused = true)]
    async fn events_that_change_nothing_are_released_without_waiting_for_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let registry = Registry::new();
        let rules = "rules:\n  - name: hot\n    subject: kitchen/temperature\n    condition: value > 1000\n";
        let (runner, consumer, publisher) = runner(&store, &registry, Some(rules));
        let (_reload_tx, reloads) = mpsc::channel(1);
        let (_commands_tx, commands) = mpsc::channel(1);
        let task = tokio::spawn(runner.run(consumer, reloads, commands));
        let event = || {
            atalaya_bus::Event::new(
                "/test",
                atalaya_bus::Subject::parse("kitchen/temperature").unwrap(),
                serde_json::json!(20),
                Timestamp::now(),
            )
        };
        // The first event creates the series, which is written.
        let delivery = publisher.publish_tracked(vec![event()]).await.unwrap();
        delivery.done().await;
        // Just after that commit, the next may come only 5 ms later.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let before = tokio::time::Instant::now();
        let delivery = publisher.publish_tracked(vec![event()]).await.unwrap();
        delivery.done().await;
        assert_eq!(tokio::time::Instant::now() - before, Duration::ZERO);
        drop(publisher);
        task.await.unwrap().unwrap();
    }

    /// A whole-state router record (earlier versions) that is not a state at all is set
    /// aside once and removed, not set aside again at every start.
    #[tokio::test]
    async fn an_unreadable_legacy_router_record_is_set_aside_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        store.put(ROUTER_TABLE, b"state", b"[1,2]").unwrap();
        for _ in 0..2 {
            let registry = Registry::new();
            let (mut runner, _consumer, _publisher) = runner(&store, &registry, None);
            runner.routing.restore(&store, Timestamp::now()).unwrap();
        }
        assert!(store.get(ROUTER_TABLE, b"state").unwrap().is_none());
        assert_eq!(
            store
                .scan(atalaya_bus::store::SET_ASIDE_TABLE)
                .unwrap()
                .len(),
            1
        );
    }

    /// An idle runner writes only its heartbeat: an hour of nothing is a dozen commits, not
    /// one every ten seconds (which wrote 230 MB a day to an SD card).
    #[tokio::test(start_paused = true)]
    async fn an_idle_hour_writes_only_the_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let registry = Registry::new();
        let (runner, consumer, publisher) = runner(&store, &registry, None);
        let (_reload_tx, reloads) = mpsc::channel(1);
        let (_commands_tx, commands) = mpsc::channel(1);
        let task = tokio::spawn(runner.run(consumer, reloads, commands));
        let before = store.commits();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let commits = store.commits() - before;
        // The start's commit, then one every five minutes.
        assert!(
            (12..=14).contains(&commits),
            "{commits} commits in an idle hour"
        );
        drop(publisher);
        task.await.unwrap().unwrap();
    }
}
