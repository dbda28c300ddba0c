//! atalaya: the event bus and alerting service of a home Kubernetes cluster.
//!
//! # Layout
//! - `cli`: the command line (clap).
//! - `config`: the configuration file and environment overrides.
//! - `service`: `atalaya run` — wiring, supervision, shutdown.
//! - `supervisor`: spawning tasks so that none dies unnoticed.
//! - `http`: the HTTP API (ingest, health, metrics).
//! - `telemetry`: logging and the metrics registry; `internal_events`: log line + metric.
//! - `actions`: rule actions published through the brokers.
//! - `outbox`: notifications from routing, stored, then delivered with retries.
//! - `rules_runner`: the rule engine on the bus, with persistence; `reload`: what asks
//!   for a rule reload (file changes, SIGHUP).
//! - `check`, `send`, `rule_tests`: the `atalaya check`, `send` and `test` commands.

mod actions;
mod alerts_cli;
mod api_client;
mod check;
mod cli;
mod config;
mod http;
mod internal_events;
mod outbox;
mod reload;
mod routes_test;
mod routing;
mod rule_tests;
mod rules_runner;
mod send;
mod service;
mod supervisor;
mod telemetry;

use std::io::Write;
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
        Command::Check(args) => match check::run(args) {
            0 => ExitCode::SUCCESS,
            n => {
                eprintln!("atalaya check: {n} error(s)");
                ExitCode::FAILURE
            }
        },
        Command::Test(args) => match rule_tests::run(args) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
        Command::Schema(args) => {
            let schema = match args.kind {
                cli::SchemaKind::Rules => atalaya_rules::model::rule_file_schema(),
                cli::SchemaKind::Tests => atalaya_rules::testing::test_file_schema(),
            };
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            // A closed pipe (`| head`) is not worth a panic.
            let _ = writeln!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Command::Send(args) => finish("send", runtime().block_on(send::run(args))),
        Command::Alerts(args) => finish("alerts", runtime().block_on(alerts_cli::alerts(args))),
        Command::Silence(command) => {
            finish("silence", runtime().block_on(alerts_cli::silence(command)))
        }
        Command::Routes(cli::RoutesCommand::Test(args)) => match routes_test::run(args) {
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
