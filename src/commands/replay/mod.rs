//! `atalaya replay EVENTS`: recorded events through the rules and the routing policy on
//! virtual time, at full speed, printing every alert transition and every notification that
//! would be sent. Nothing is stored, published or sent.
//!
//! The file is read as a stream (`atalaya_rules::recorded`), one line at a time, so a week
//! of events costs the memory of the rules' state, not of the file. Each event is evaluated
//! at its own time by the same engine and router the service runs
//! (`atalaya_rules::replay::VirtualRun`), every timer in between firing at its own instant.
//!
//! # Layout
//! - this file: reading, the virtual-time loop, bounds and bad lines.
//! - `report`: what is printed, as text or JSON lines, and the summary.

mod report;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use atalaya_rules::compile::{RuleSet, compile_files};
use atalaya_rules::engine::Engine;
use atalaya_rules::metrics::EngineMetrics;
use atalaya_rules::recorded::{RecordedError, RecordedEvents, open_reader};
use atalaya_rules::replay::VirtualRun;
use atalaya_rules::routing::config::RoutingPolicy;
use atalaya_rules::routing::router::Router;
use jiff::Timestamp;

use self::report::{Report, Summary};
use crate::cli::ReplayArgs;
use crate::config::{self, ConfigSource};

/// How a replay ended, for the exit code.
pub enum Outcome {
    /// Read to the end (bad lines, if any, reported and skipped).
    Done,
    /// `--strict` met a bad line.
    Stopped,
    /// The file could not be read to its end (a truncated gzip stream, an I/O error); what
    /// was read was replayed.
    Unreadable,
}

/// Runs the replay; errors are about the rules, the policy or reading the file.
pub fn run(args: ReplayArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let rules = load_rules(args.rules.as_deref())?;
    let policy = match &args.routing {
        Some(path) => crate::alerting::routing::initial_policy(Some(path))
            .map_err(|errors| anyhow!("{}", errors.join("\n")))?,
        None => replay_policy(),
    };
    let registry = prometheus::Registry::new();
    let metrics = EngineMetrics::register(&registry).context("engine metrics")?;
    let policy = Arc::new(policy);
    let mut run = VirtualRun::new(
        Engine::new(rules, metrics),
        Router::new(Arc::clone(&policy)),
    );

    let name = if args.events == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        args.events.display().to_string()
    };
    let reader = if args.events == Path::new("-") {
        open_reader(io::stdin().lock())
    } else {
        std::fs::File::open(&args.events).and_then(open_reader)
    }
    .with_context(|| format!("cannot read {name}"))?;

    let stdout = io::stdout().lock();
    let mut report = Report::new(
        io::BufWriter::with_capacity(64 * 1024, stdout),
        args.output,
        &policy,
    );
    let mut summary = Summary::default();
    let mut happened = Vec::new();
    let mut last_time: Option<Timestamp> = None;
    let mut outcome = Outcome::Done;
    let mut events = RecordedEvents::new(reader);
    let result: io::Result<()> = (|| {
        for read in events.by_ref() {
            let recorded = match read {
                Ok(recorded) => recorded,
                Err(error) => {
                    eprintln!("{name}:{}: {}", error.line(), message(&error));
                    if matches!(error, RecordedError::Io { .. }) {
                        outcome = Outcome::Unreadable;
                        break;
                    }
                    summary.bad_lines += 1;
                    if args.strict {
                        outcome = Outcome::Stopped;
                        break;
                    }
                    continue;
                }
            };
            let time = recorded.event.time;
            if args.from.is_some_and(|from| time < from) || args.to.is_some_and(|to| time > to) {
                summary.out_of_range += 1;
                continue;
            }
            if let Some(last) = last_time
                && time < last
            {
                summary.out_of_order += 1;
                eprintln!(
                    "{name}:{}: warning: {time} is before the previous event ({last}); taken at {last}",
                    recorded.line
                );
            }
            if summary.first.is_none() {
                summary.first = Some(time);
                // Timers start from the lower bound when one is given.
                if let Some(from) = args.from {
                    run.advance_to(from, &mut happened);
                }
            }
            let at = run.on_event(time, &recorded.event, &mut happened);
            last_time = Some(at);
            summary.events += 1;
            for happening in happened.drain(..) {
                report.happening(&happening, Some(recorded.line), &mut summary)?;
            }
        }
        // The end: timers up to `--to`, else to the last event.
        if let Some(until) = args.to.or(last_time)
            && matches!(outcome, Outcome::Done)
        {
            run.advance_to(until, &mut happened);
            for happening in happened.drain(..) {
                report.happening(&happening, None, &mut summary)?;
            }
        }
        Ok(())
    })();
    summary.lines = events.lines_read();
    summary.last = run.now();
    summary.wall = started.elapsed();
    summary.read_errors(&registry);
    match result {
        Ok(()) => {}
        // `atalaya replay … | head`: the reader went away; nothing more to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(outcome),
        Err(e) => {
            let _ = report.flush();
            return Err(anyhow!(e));
        }
    }
    match report.summary(&summary).and_then(|()| report.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(anyhow!(e)),
        _ => {}
    }
    match outcome {
        Outcome::Stopped => eprintln!("atalaya replay: stopped at the first bad line (--strict)"),
        Outcome::Unreadable => eprintln!("atalaya replay: {name} could not be read to its end"),
        Outcome::Done => {}
    }
    Ok(outcome)
}

/// What a reading error says, without its line number (printed before it).
fn message(error: &RecordedError) -> String {
    match error {
        RecordedError::Line { message, .. } => message.clone(),
        RecordedError::Io { source, .. } => format!("cannot read on: {source}"),
    }
}

/// The rules named (a directory or a file), else the rules directory `run` would use.
fn load_rules(path: Option<&Path>) -> anyhow::Result<RuleSet> {
    let path: PathBuf = match path {
        Some(path) => path.to_owned(),
        None => config::load(&ConfigSource::resolve(None), None)
            .ok()
            .and_then(|c| crate::service::rules_dir(&c))
            .ok_or_else(|| {
                anyhow!("no rules: name them with --rules DIR (no ./rules directory found)")
            })?,
    };
    let files = if path.is_dir() {
        atalaya_rules::files::load_dir(&path).map(|set| set.files)
    } else {
        atalaya_rules::files::load(&path)
            .map(|f| vec![f])
            .map_err(|e| vec![e])
    }
    .map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!("{}", lines.join("\n"))
    })?;
    compile_files(&files).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!("{}", lines.join("\n"))
    })
}

/// The policy without `--routing`: every alert to the console, grouped by `alertname`, told
/// at once (`group_wait: 0`) so a notification follows each transition that fires.
fn replay_policy() -> RoutingPolicy {
    let mut policy = RoutingPolicy::console_default();
    policy.tree.root.group_wait = Duration::ZERO;
    policy
}

#[cfg(test)]
mod tests {

    use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
    use atalaya_rules::alert::{Alert, AlertState};
    use atalaya_rules::replay::Happening;

    use super::*;
    use crate::cli::ReplayOutput;

    /// Writes `happenings` (for tests of the report).
    fn report_all(
        output: ReplayOutput,
        policy: &RoutingPolicy,
        happenings: &[Happening],
    ) -> String {
        let mut bytes = Vec::new();
        let mut summary = Summary::default();
        let mut report = Report::new(&mut bytes, output, policy);
        for h in happenings {
            report.happening(h, Some(7), &mut summary).unwrap();
        }
        report.flush().unwrap();
        String::from_utf8(bytes).unwrap()
    }

    fn alert(state: AlertState) -> Alert {
        Alert {
            rule: "freezer_warm".to_owned(),
            fingerprint: "abc".to_owned(),
            state,
            labels: [
                ("alertname", "freezer_warm"),
                ("device", "freezer"),
                ("severity", "warning"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            annotations: Default::default(),
            value: serde_json::json!(-9.6),
            active_since: "2026-01-05T10:12:00Z".parse().unwrap(),
            fired_at: None,
            resolved_at: None,
        }
    }

    fn notification() -> Notification {
        let a = alert(AlertState::Firing);
        let notified = |fp: &str| NotifiedAlert {
            status: Status::Firing,
            fingerprint: fp.to_owned(),
            labels: a.labels.clone(),
            annotations: Default::default(),
            starts_at: a.active_since,
            ends_at: None,
            value: a.value.clone(),
            generator_url: None,
            instant: false,
        };
        Notification {
            id: "n1".to_owned(),
            receiver: "console".to_owned(),
            integration: 0,
            group_key: "{}:{alertname=\"freezer_warm\"}".to_owned(),
            status: Status::Firing,
            group_labels: [("alertname".to_owned(), "freezer_warm".to_owned())].into(),
            common_labels: a.labels.clone(),
            common_annotations: Default::default(),
            alerts: vec![notified("abc"), notified("def")],
            created_at: "2026-01-05T10:17:30Z".parse().unwrap(),
            silent: false,
        }
    }

    #[test]
    fn transitions_and_notifications_print_one_line_each() {
        let at: Timestamp = "2026-01-05T10:17:00Z".parse().unwrap();
        let text = report_all(
            ReplayOutput::Text,
            &replay_policy(),
            &[
                Happening::Transition {
                    at,
                    alert: alert(AlertState::Firing),
                },
                Happening::Notification {
                    at,
                    notification: notification(),
                },
            ],
        );
        assert_eq!(
            text,
            "2026-01-05T10:17:00Z firing   freezer_warm {device=\"freezer\", severity=\"warning\"} value=-9.6\n\
             2026-01-05T10:17:00Z notify   console/console [firing] freezer_warm (2 alerts) group={alertname=\"freezer_warm\"}\n"
        );
    }

    #[test]
    fn json_lines_parse_and_say_their_kind() {
        let at: Timestamp = "2026-01-05T10:17:00Z".parse().unwrap();
        let text = report_all(
            ReplayOutput::Json,
            &replay_policy(),
            &[
                Happening::Transition {
                    at,
                    alert: alert(AlertState::Pending),
                },
                Happening::Notification {
                    at,
                    notification: notification(),
                },
            ],
        );
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["kind"], "transition");
        assert_eq!(lines[0]["state"], "pending");
        assert_eq!(lines[0]["line"], 7);
        assert_eq!(lines[0]["labels"]["device"], "freezer");
        assert_eq!(lines[1]["kind"], "notification");
        assert_eq!(lines[1]["integration_kind"], "console");
        assert_eq!(lines[1]["alerts"].as_array().unwrap().len(), 2);
    }
}
