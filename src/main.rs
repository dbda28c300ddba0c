//! atalaya: the event bus and alerting service of a home Kubernetes cluster.
//!
//! # Layout
//! - `cli`: the command line (clap).
//! - `config`: the configuration file and environment overrides.
//! - `service`: `atalaya run` — wiring (one function per source), supervision, reload
//!   triggers, shutdown.
//! - `alerting`: the rules runner, the router beside it, the outbox, rule actions.
//! - `ha`: high availability (`ha:`): leader election and the replicated journal on NATS.
//! - `http`: the HTTP API (ingest, alerts, silences, health, metrics).
//! - `commands`: every other command, one file each (`check`, `test`, `schema`, `send`,
//!   `alerts`, `silence`, `routes test`).
//! - `telemetry`: logging and the metrics registry; `internal_events`: log line + metric.

// A build leaving out some connectors leaves their configuration readers and wiring unused.
#![cfg_attr(
    not(all(
        feature = "mqtt",
        feature = "nats",
        feature = "kubernetes",
        feature = "homeassistant"
    )),
    allow(
        unused_imports,
        unused_mut,
        dead_code,
        reason = "parts only a build with every source uses"
    )
)]

mod alerting;
mod cli;
mod commands;
mod config;
#[cfg(feature = "nats")]
mod ha;
mod http;
mod internal_events;
mod service;
mod telemetry;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::ConfigSource;
use crate::service::exit;

/// How long the runtime may take to stop its tasks once `atalaya run` has decided to exit.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One process-wide crypto provider for every rustls user (kube panics without one).
    // Installing fails only if one is already installed, which is then just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Run(args) => {
            let source = ConfigSource::resolve(args.config.as_deref());
            let mut config = match config::load(&source, None) {
                Ok(config) => config,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!(
                        "atalaya: {} configuration error(s) in {source}; not starting",
                        errors.len()
                    );
                    return ExitCode::from(exit::CONFIG);
                }
            };
            if let Some(format) = args.log_format {
                config.log.format = format;
            }
            telemetry::init_logging(config.log.format, &config.log.level);
            let runtime = runtime();
            let code = runtime.block_on(service::run(config, source));
            // A task stuck where cancellation cannot reach it (a blocking write to a full
            // stdout pipe, a busy loop) would keep the runtime's drop waiting forever, long
            // after the shutdown gave up on it: leave it behind and exit for real.
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            std::process::exit(code.into())
        }
        Command::Check(args) => match commands::check::run(args) {
            0 => ExitCode::SUCCESS,
            n => {
                eprintln!("atalaya check: {n} error(s)");
                ExitCode::FAILURE
            }
        },
        Command::Test(args) => match commands::test::run(args) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
        Command::Replay(args) => match commands::replay::run(args) {
            Ok(commands::replay::Outcome::Done) => ExitCode::SUCCESS,
            Ok(commands::replay::Outcome::Stopped | commands::replay::Outcome::Unreadable) => {
                ExitCode::FAILURE
            }
            Err(e) => finish("replay", Err(e)),
        },
        Command::Schema(args) => commands::schema::run(args),
        Command::Send(args) => finish("send", runtime().block_on(commands::send::run(args))),
        Command::Alerts(args) => {
            finish("alerts", runtime().block_on(commands::alerts::alerts(args)))
        }
        Command::Silence(command) => finish(
            "silence",
            runtime().block_on(commands::alerts::silence(command)),
        ),
        Command::Explain(args) => finish(
            "explain",
            runtime().block_on(commands::explain::explain(args)),
        ),
        Command::Notifications(args) => finish(
            "notifications",
            runtime().block_on(commands::explain::notifications(args)),
        ),
        Command::Tail(args) => finish("tail", runtime().block_on(commands::explain::tail(args))),
        Command::DeadLetters(command) => finish(
            "dead-letters",
            runtime().block_on(commands::explain::dead_letters(command)),
        ),
        Command::Routes(cli::RoutesCommand::Test(args)) => match commands::routes::run(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => finish("routes test", Err(e)),
        },
    }
}

/// The exit of a client command: success, or its error on stderr and exit 1.
fn finish(command: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atalaya {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("atalaya: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILURE.into());
        }
    }
}
