//! `atalaya run`: wiring, supervision and graceful shutdown.
//!
//! Start: open the state store, load the rules, build the bus, bind the HTTP port, spawn the
//! tasks. Any mistake found before the port is bound ends the process with code 64 (bad
//! config or rules) or 1 (the machine said no: port in use, state directory locked).
//!
//! Stop (SIGTERM from Kubernetes, SIGINT from a developer, or a failed task): readiness goes
//! false, sources stop, the bus drains into the sinks, then the process exits — within
//! `shutdown.timeout`. A second signal exits at once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use atalaya_bus::bus::BusBuilder;
use atalaya_bus::connector_metrics::ConnectorMetrics;
use atalaya_bus::delivery::Notifiers;
use atalaya_bus::readiness::Readiness;
use atalaya_bus::store::Store;
use atalaya_connectors::console::ConsoleReceiver;
use atalaya_connectors::notifiers::NotifierContext;
use atalaya_rules::compile::{RuleSet, load_rules};
use atalaya_rules::engine::Engine;
use atalaya_rules::files::is_test_file;
use atalaya_rules::metrics::EngineMetrics;
use atalaya_rules::routing::config::RoutingPolicy;
use jiff::Timestamp;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use self::sources::SourceContext;
use self::supervisor::{Stage, Supervisor};
use crate::alerting::acknowledgements;
use crate::alerting::actions::{self, ActionPublishers};
use crate::alerting::flapping::FlapDetector;
use crate::alerting::history::History;
use crate::alerting::outbox::Outbox;
use crate::alerting::routing::{AlertLimits, Routing, RoutingMetrics, initial_policy};
use crate::alerting::runner::{self, CommitClock, ReloadMetrics, RulesRunner, RunnerProgress};
use crate::config::{Config, ConfigSource};

pub mod reload;
/// Exit codes, after BSD sysexits where one fits.
mod sources;
pub mod supervisor;

pub mod exit {
    /// Something outside the config stopped the service (port in use, store locked), or a
    /// graceful shutdown ran out of time.
    pub const FAILURE: u8 = 1;
    /// EX_USAGE: invalid configuration or rule files.
    pub const CONFIG: u8 = 64;
    /// EX_SOFTWARE: a supervised task failed.
    pub const TASK_FAILED: u8 = 70;
    /// A second signal cut the graceful shutdown short (128 + SIGINT, as shells do).
    pub const INTERRUPTED: u8 = 130;
}

/// Alert transitions and actions waiting for the receivers.
const OUTPUT_QUEUE: usize = 1024;

/// The rules directory in use: as configured, else `./rules`, else the bundled examples —
/// the first that holds rule files (in this repository `./rules` is the rules crate).
pub fn rules_dir(config: &Config) -> Option<PathBuf> {
    config.rules.dir.clone().or_else(|| {
        ["rules", "examples/rules"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| {
                atalaya_rules::files::discover(p)
                    .is_ok_and(|files| files.iter().any(|f| !is_test_file(f)))
            })
    })
}

/// Runs the service; returns the process exit code (see [`exit`]).
pub async fn run(config: Config, source: ConfigSource) -> u8 {
    match start_and_wait(config, source).await {
        Ok(code) => code,
        Err(StartError { code, error }) => {
            fatal("atalaya cannot start.", &format!("{error:#}"));
            code
        }
    }
}

/// A mistake that stops the start, logged as an error — and on stderr besides when the
/// configured log level hides errors (`log.level: off`), so a crash loop is never silent.
fn fatal(message: &str, error: &dyn std::fmt::Display) {
    error!(error = %error, "{message}");
    if !tracing::enabled!(tracing::Level::ERROR) {
        eprintln!("atalaya: {message} {error}");
    }
}

struct StartError {
    code: u8,
    error: anyhow::Error,
}

fn fail(code: u8) -> impl FnOnce(anyhow::Error) -> StartError {
    move |error| StartError { code, error }
}

/// A metric could not be registered: a programming error (a duplicate name), not bad input.
fn registry_error(error: prometheus::Error) -> StartError {
    StartError {
        code: exit::FAILURE,
        error: anyhow::Error::from(error).context("metrics registry"),
    }
}

async fn start_and_wait(config: Config, source: ConfigSource) -> Result<u8, StartError> {
    info!(version = env!("CARGO_PKG_VERSION"), config = %source, "atalaya starting.");
    // First of all, so a signal during start-up is a graceful stop, not a kill.
    let mut terminate = signal(SignalKind::terminate())
        .context("SIGTERM handler")
        .map_err(fail(exit::FAILURE))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .context("SIGINT handler")
        .map_err(fail(exit::FAILURE))?;
    let registry = crate::telemetry::new_registry().map_err(registry_error)?;
    let readiness = Readiness::new(&registry).map_err(registry_error)?;
    let supervisor = Supervisor::new(&registry).map_err(registry_error)?;
    let connectors = ConnectorMetrics::register(&registry).map_err(registry_error)?;

    let store = Store::open(&config.state.dir)
        .map_err(anyhow::Error::from)
        .map_err(fail(exit::FAILURE))?;
    info!(path = %store.path().display(), "State store open.");
    store
        .register_metrics(
            &registry,
            &[runner::SERIES_TABLE, crate::alerting::routing::ROUTER_TABLE],
        )
        .map_err(registry_error)?;

    let rules_ready = readiness.register("rules");
    let rules_dir = rules_dir(&config);
    let rule_set = match &rules_dir {
        Some(dir) => match load_rules(dir) {
            Ok(set) => {
                info!(dir = %dir.display(), rules = set.rules.len(), "Rules loaded.");
                set
            }
            Err(errors) => {
                for e in &errors {
                    fatal("Invalid rule file.", e);
                }
                return Err(StartError {
                    code: exit::CONFIG,
                    error: anyhow::anyhow!("{} error(s) in {}", errors.len(), dir.display()),
                });
            }
        },
        None => {
            info!("No rule files in ./rules or examples/rules; running without rules.");
            RuleSet::default()
        }
    };
    let engine_metrics = EngineMetrics::register(&registry).map_err(registry_error)?;
    let reload_metrics = ReloadMetrics::register(&registry).map_err(registry_error)?;
    let mut engine = Engine::new(rule_set, engine_metrics);
    let tail = crate::alerting::tail::Tail::default();
    let (rule_names_tx, rule_names_rx) = tokio::sync::watch::channel(runner::rule_names(&engine));
    let store = Arc::new(store);
    // High availability: follow the leader's journal until this replica leads (`crate::ha`).
    #[cfg(feature = "nats")]
    if let Some(ha) = &config.ha {
        let stop = async {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        match crate::ha::follow_until_leader(ha, &store, config.http.listen, &registry, stop).await
        {
            Ok(crate::ha::Following::Leading) => {}
            Ok(crate::ha::Following::Stopped) => return Ok(0),
            Err(e) => return Err(fail(exit::FAILURE)(e.into())),
        }
    }
    let restored =
        runner::restore(&mut engine, &store, Timestamp::now()).map_err(fail(exit::FAILURE))?;
    rules_ready.set(true);

    // Routing: the policy (checked before any port is bound), the router beside the
    // engine, and the outbox its notifications are written to.
    let policy = match initial_policy(config.routing.file.as_deref()) {
        Ok(policy) => Arc::new(policy),
        Err(errors) => {
            for e in &errors {
                fatal("Invalid routing file.", e);
            }
            return Err(StartError {
                code: exit::CONFIG,
                error: anyhow::anyhow!("{} error(s) in the routing file", errors.len()),
            });
        }
    };
    let history = History::open(Arc::clone(&store), &registry, config.history)
        .map_err(fail(exit::FAILURE))?;
    let outbox = Outbox::open(Arc::clone(&store), &registry, config.outbox.clone())
        .map_err(fail(exit::FAILURE))?
        .with_history(history.clone());
    let (policy_tx, policy_rx) = tokio::sync::watch::channel(Arc::clone(&policy));
    let mut routing = Routing {
        router: atalaya_rules::routing::router::Router::new(policy),
        outbox: outbox.clone(),
        policy_file: config.routing.file.clone(),
        policy_tx,
        metrics: RoutingMetrics::register(&registry).map_err(registry_error)?,
        limits: AlertLimits {
            per_request: config.routing.max_alerts_per_request,
            total: config.routing.max_alerts,
        },
        history: Some(history.clone()),
        happened: Vec::new(),
    };
    // The history stays within its bounds: the oldest pruned every few minutes, off the
    // rules runner's path.
    {
        let history = history.clone();
        let token = supervisor.token().clone();
        supervisor.spawn(Stage::Sink, "history", async move {
            crate::alerting::history::prune_every(history, token).await;
            Ok(())
        });
    }
    let now = Timestamp::now();
    routing.restore(&store, now).map_err(fail(exit::FAILURE))?;
    // Alerts the engine resolved while restoring (their rule changed while atalaya was down)
    // are news for the router too.
    routing.on_outputs(now, &restored);
    // Firing alerts of the engine the router lost track of are routed now. All of this is
    // written by the rules runner's first commit, at once when it starts.
    routing.reconcile(now, &engine.alerts(now));

    let mut bus = BusBuilder::new(config.bus.capacity, &registry).map_err(registry_error)?;
    // A consumer sees every event: one that would print none is not put on the bus.
    if config.receivers.console.enabled && config.receivers.console.events {
        let consumer = bus.consumer("console");
        let receiver = ConsoleReceiver::new(config.receivers.console.clone());
        let ready = readiness.register("console");
        supervisor.spawn(Stage::Sink, "console", async move {
            ready.set(true);
            receiver.run(consumer, tokio::io::stdout()).await?;
            Ok(())
        });
    }
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let rules_consumer = bus.consumer("rules");
    let publisher = bus.build();
    let progress = RunnerProgress::default();
    let bus_ready = readiness.register("bus");
    bus_ready.set(true);
    runner::watch_progress(
        progress.clone(),
        publisher.queue_watch(),
        rules_ready,
        bus_ready,
        config.rules.stall_timeout,
    );

    // Sources onto the bus; the brokers' publishers serve rule actions and notifications.
    let sources = SourceContext {
        publisher: &publisher,
        connectors: &connectors,
        readiness: &readiness,
        supervisor: &supervisor,
        store: &store,
    };
    let mut action_publishers = ActionPublishers::default();
    // The router's commands: the HTTP API, the Telegram bot, the MQTT keeper.
    let (router_tx, router_rx) = mpsc::channel(64);
    #[cfg(feature = "mqtt")]
    if let Some(mqtt) = config.mqtt.clone() {
        let alerts = crate::alerting::retained::RouterAlerts {
            router: router_tx.clone(),
            rules: rule_names_rx.clone(),
        };
        let state_topics = crate::alerting::retained::state_topic_settings(&policy_rx.borrow());
        action_publishers.mqtt = Some(sources::mqtt(
            &sources,
            mqtt,
            state_topics,
            std::sync::Arc::new(alerts),
        )?);
    }
    #[cfg(feature = "nats")]
    if let Some(nats) = config.nats.clone() {
        action_publishers.nats = Some(sources::nats(&sources, nats).await?);
    }
    #[cfg(feature = "kubernetes")]
    if let Some(kubernetes) = config.kubernetes.clone() {
        sources::kubernetes(&sources, kubernetes).await?;
    }
    #[cfg(feature = "homeassistant")]
    if let Some(homeassistant) = config.homeassistant.clone() {
        sources::homeassistant(&sources, homeassistant)?;
    }
    // Delivery: each receiver integration retried on its own until delivered or given up,
    // through the current policy's receivers opened as notifiers.
    let mut notifier_context =
        NotifierContext::new(&config.routing.external_url, Arc::clone(&store))
            .map_err(|e| fail(exit::FAILURE)(e.into()))?;
    #[cfg(feature = "mqtt")]
    {
        notifier_context.mqtt = action_publishers.mqtt.clone();
    }
    #[cfg(feature = "nats")]
    {
        notifier_context.nats = action_publishers.nats.clone();
    }
    // Acknowledgements made in a receiver's app (Pushover) become silences.
    let (acknowledgements_tx, acknowledgements_rx) = mpsc::channel(64);
    notifier_context.acknowledgements = Some(acknowledgements_tx);
    supervisor.spawn(
        Stage::Sink,
        "acknowledgements",
        acknowledgements::run(
            acknowledgements_rx,
            router_tx.clone(),
            supervisor.token().clone(),
        ),
    );
    // The Telegram bot (buttons and commands) for the integrations naming allowed_users.
    #[cfg(feature = "telegram")]
    {
        use atalaya_connectors::telegram::bot::TelegramBot;
        let ops = crate::alerting::chat::RouterOps {
            router: router_tx.clone(),
            registry: registry.clone(),
            reload: reload_metrics.clone(),
            started_at: Timestamp::now(),
        };
        let bot = TelegramBot::new(
            &notifier_context.telegram,
            Arc::clone(&store),
            Arc::new(ops),
            &registry,
        )
        .map_err(registry_error)?;
        let (receivers_tx, receivers_rx) = watch::channel(Vec::new());
        let token = supervisor.token().clone();
        let policies = policy_rx.clone();
        supervisor.spawn(Stage::Sink, "telegram-bot", async move {
            tokio::select! {
                () = crate::alerting::chat::follow_policy(policies, receivers_tx) => {}
                () = bot.run(receivers_rx, token) => {}
            }
            Ok(())
        });
    }
    let notifiers = open_notifiers(policy_rx, notifier_context, &supervisor);
    let token = supervisor.token().clone();
    supervisor.spawn(Stage::Sink, "outbox", outbox.clone().run(notifiers, token));

    let actions_tx = if action_publishers.is_empty() {
        None
    } else {
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        supervisor.spawn(Stage::Sink, "actions", actions::run(rx, action_publishers));
        Some(tx)
    };

    let runner = RulesRunner {
        engine,
        dir: rules_dir.clone(),
        rules_commit: rules_dir
            .as_deref()
            .and_then(crate::alerting::history::rules_revision),
        actions: actions_tx,
        reload_metrics,
        routing,
        heartbeat: config.state.heartbeat,
        commit_interval: config.state.commit_interval,
        clock: CommitClock::default(),
        flapping: FlapDetector::register(
            &registry,
            config.rules.flap_threshold,
            config.rules.flap_window,
        )
        .map_err(registry_error)?,
        progress: progress.clone(),
        rule_names: rule_names_tx,
        tail: tail.clone(),
        change_budget: Default::default(),
    };
    supervisor.spawn(
        Stage::Sink,
        "rules",
        runner.run(rules_consumer, reload_rx, router_rx),
    );

    // Reload triggers: the directory changing, SIGHUP, and POST /-/reload (below).
    let _watcher = if rules_dir.is_some() || config.routing.file.is_some() {
        match reload::watch_sources(
            rules_dir.as_deref(),
            config.routing.file.as_deref(),
            reload_tx.clone(),
        ) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                warn!(error = %e, "Cannot watch the rules directory or routing file; reload with SIGHUP or POST /-/reload.");
                None
            }
        }
    } else {
        None
    };
    supervisor.spawn(
        Stage::Source,
        "sighup",
        reload::reload_on_sighup(reload_tx.clone(), supervisor.token().clone()),
    );

    let address = sources::http(
        &sources,
        &config.http,
        &registry,
        reload_tx,
        router_tx,
        sources::Told {
            history,
            outbox: outbox.clone(),
            tail,
        },
    )
    .await?;
    // Every source has its own publisher now: the bus closes when they stop (shutdown).
    drop(publisher);
    info!(address = %address, auth = config.http.token.is_some(), "HTTP API listening.");
    if config.http.token.is_none() && !address.ip().is_loopback() {
        warn!(address = %address, "The HTTP API is open to every machine that can reach it, without a token (http.insecure: true): anyone there can silence every alert, reload the rules and post alerts.");
    }
    info!("{}", first_event_hint(address));

    tokio::select! {
        _ = terminate.recv() => info!(signal = "SIGTERM", "Shutting down."),
        _ = interrupt.recv() => info!(signal = "SIGINT", "Shutting down."),
        _ = supervisor.token().cancelled() => warn!("Shutting down after a task failure."),
    }
    readiness.set_shutting_down();
    supervisor.token().cancel();

    let timeout = config.shutdown.timeout;
    spawn_shutdown_watchdog(timeout);
    let code = tokio::select! {
        finished = tokio::time::timeout(timeout, supervisor.drain()) => match finished {
            Ok(()) if supervisor.any_failed() => exit::TASK_FAILED,
            Ok(()) => {
                info!("Shutdown complete.");
                0
            }
            Err(_) => {
                error!(timeout = ?timeout, "Shutdown did not finish in time; exiting anyway.");
                exit::FAILURE
            }
        },
        _ = terminate.recv() => {
            warn!("Second signal: exiting without finishing the shutdown.");
            exit::INTERRUPTED
        }
        _ = interrupt.recv() => {
            warn!("Second signal: exiting without finishing the shutdown.");
            exit::INTERRUPTED
        }
    };
    drop(_watcher);
    drop(store);
    Ok(code)
}

/// The last resort of a shutdown: an OS thread that ends the process a little after
/// `timeout` has passed, whatever the async runtime is doing. The timeout above runs on the
/// runtime's timers, which a task stuck on every worker thread (a busy loop, a blocking call)
/// would stop; this does not depend on them.
fn spawn_shutdown_watchdog(timeout: std::time::Duration) {
    let limit = timeout + WATCHDOG_GRACE;
    let spawned = std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!(
                "atalaya: the shutdown is stuck {}s after it began; exiting anyway",
                limit.as_secs()
            );
            std::process::exit(exit::FAILURE.into());
        });
    if let Err(e) = spawned {
        warn!(error = %e, "Cannot start the shutdown watchdog.");
    }
}

/// How long after `shutdown.timeout` the watchdog ends a shutdown the runtime could not.
const WATCHDOG_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The receivers of every policy the router takes (the first at once, then each reload's),
/// opened as notifiers for the outbox.
fn open_notifiers(
    mut policies: watch::Receiver<Arc<RoutingPolicy>>,
    context: NotifierContext,
    supervisor: &Supervisor,
) -> watch::Receiver<Arc<Notifiers>> {
    let first = context.open_all(&policies.borrow_and_update().receivers);
    let (tx, rx) = watch::channel(Arc::new(first));
    let cancel = supervisor.token().clone();
    supervisor.spawn(Stage::Sink, "notifiers", async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                changed = policies.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let notifiers = context.open_all(&policies.borrow_and_update().receivers);
                    tx.send_replace(Arc::new(notifiers));
                }
            }
        }
    });
    rx
}

/// How to send a first event to this instance: `atalaya send` (with `--url` when it does
/// not listen where `send` looks by default) or curl, and where the metrics are.
fn first_event_hint(mut address: std::net::SocketAddr) -> String {
    // Listening on every address: this machine reaches it on loopback.
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = if address == std::net::SocketAddr::from(([127, 0, 0, 1], 9470)) {
        String::new()
    } else {
        format!("--url http://{address} ")
    };
    format!(
        "Send a first event: `atalaya send {url}home/hello '{{\"msg\":\"hi\"}}'` or `curl -X POST http://{address}/api/v1/events/home/hello -d '{{\"msg\":\"hi\"}}'`; metrics at http://{address}/metrics"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_hint_names_the_url_when_it_is_not_the_default() {
        let default = first_event_hint("127.0.0.1:9470".parse().unwrap());
        assert!(default.contains("`atalaya send home/hello '"), "{default}");
        let other = first_event_hint("0.0.0.0:8080".parse().unwrap());
        assert!(
            other.contains("`atalaya send --url http://127.0.0.1:8080 home/hello '"),
            "{other}"
        );
        assert!(other.contains("curl -X POST http://127.0.0.1:8080/api/v1/events"));
    }
}
