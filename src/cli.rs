//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;

/// atalaya: the event bus and alerting service of a home Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "atalaya", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (with no config: HTTP on 127.0.0.1:9470, state in ./data, console
    /// output).
    Run(RunArgs),
    /// Validate config files and rule directories; print every error as file:line:col.
    Check(CheckArgs),
    /// Run rule unit tests (*.test.yaml) on virtual time; exit 1 on any failure.
    Test(TestArgs),
    /// Run recorded events (JSON lines, gzip or not, `-` for stdin) through the rules and
    /// routing on virtual time; print every transition and notification. Nothing is sent.
    Replay(ReplayArgs),
    /// Publish one event to a running atalaya (reads the token from $ATALAYA_TOKEN).
    Send(SendArgs),
    /// Print the JSON Schema of rule files or rule test files, for editors.
    Schema(SchemaArgs),
    /// List the alerts a running atalaya holds, with their state (like `amtool alert`).
    Alerts(ApiArgs),
    /// Add, list or expire silences on a running atalaya (like `amtool silence`).
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Work with the routing policy (like `amtool config routes`).
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// What happened to an alert: its state changes (with the values that caused them),
    /// the notifications that held it, each delivery attempt, its silences.
    Explain(ExplainArgs),
    /// The latest delivery attempts of a running atalaya, newest first.
    Notifications(NotificationsArgs),
    /// Notifications given up on: list them, queue one again, or drop it.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Live events of a running atalaya, as `mosquitto_sub -v` prints them.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only events whose subject matches this pattern (`home/#`, `zigbee2mqtt/+device`).
    pub pattern: Option<String>,
    /// Also the rules that took each event, and the alert changes it caused.
    #[arg(long)]
    pub rules: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The alert: its fingerprint (16 hex digits, as `atalaya alerts` shows), its rule's
    /// name, or `alertname=NAME` with other `NAME=VALUE` labels to pick among its alerts.
    #[arg(required_unless_present = "rule")]
    pub alert: Vec<String>,
    /// Instead: why the rule does or does not fire now, series by series.
    #[arg(long, conflicts_with = "alert")]
    pub rule: Option<String>,
    /// Print the history as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    /// Only attempts that failed (retried or given up).
    #[arg(long)]
    pub failed: bool,
    /// How many attempts to show.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List the dead letters, oldest first.
    List(ApiArgs),
    /// Queue dead letters again, by notification id; their attempts count from zero.
    Retry(DeadLetterIds),
    /// Forget dead letters, by notification id.
    Drop(DeadLetterIds),
}

#[derive(Debug, Args)]
pub struct DeadLetterIds {
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Where a running atalaya is; the token comes from `$ATALAYA_TOKEN`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Where atalaya listens.
    #[arg(long, env = "ATALAYA_URL", default_value = "http://127.0.0.1:9470")]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence the alerts matching every MATCHER (`alertname=disk_full`, `node=~"pi.*"`).
    Add(SilenceAddArgs),
    /// List silences: active and pending, and with --expired the expired ones too.
    List(SilenceListArgs),
    /// End silences now.
    Expire(SilenceExpireArgs),
}

#[derive(Debug, Args)]
pub struct SilenceAddArgs {
    /// Matchers, as in Alertmanager: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
    #[arg(required = true)]
    pub matchers: Vec<String>,
    /// How long the silence lasts (`2h`, `1d`).
    #[arg(short, long, default_value = "1h")]
    pub duration: String,
    /// Who sets it. Default: $USER.
    #[arg(short, long)]
    pub author: Option<String>,
    /// Why.
    #[arg(short, long)]
    pub comment: String,
    /// Allow matchers that mute every alert (`alertname=~".+"`); refused without it.
    #[arg(long)]
    pub mute_all: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct SilenceListArgs {
    /// Include expired silences.
    #[arg(long)]
    pub expired: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct SilenceExpireArgs {
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Print the receivers an alert with these labels reaches, as `amtool config routes
    /// test` does.
    Test(RoutesTestArgs),
}

#[derive(Debug, Args)]
pub struct RoutesTestArgs {
    /// The alert's labels, `NAME=VALUE` or `NAME="VALUE"` (quoted as amtool quotes: `\"`
    /// and `\\` are unescaped). None at all: the root route's answer, as amtool gives it.
    pub labels: Vec<String>,
    /// The routing policy file. Default: `routing.file` of the config `run` would use
    /// (without one, the built-in policy: everything to the console).
    #[arg(long)]
    pub routing: Option<PathBuf>,
    /// Config file. Default: ./atalaya.yaml if present.
    #[arg(short, long, env = "ATALAYA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Exit 1 unless the receivers are exactly these (comma-separated), as amtool's
    /// `--verify.receivers`.
    #[arg(long)]
    pub verify_receivers: Option<String>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files, or directories to search for `*.test.yaml`. Default: the rules directory.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recorded events: one JSON event a line (CloudEvents, or `{"time", "subject",
    /// "data", "labels"}`), in time order; gzipped or not; `-` reads stdin.
    pub events: PathBuf,
    /// The rules: a directory or one rule file. Default: the rules directory `run` would use.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// A routing policy file. Default: every alert to a `console` receiver, grouped by
    /// alertname, with `group_wait: 0`.
    #[arg(long)]
    pub routing: Option<PathBuf>,
    /// Skip events before this time (RFC 3339, `2026-01-05T00:00:00Z`).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<jiff::Timestamp>,
    /// Skip events after this time; timers run up to it at the end.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<jiff::Timestamp>,
    /// Stop at the first line that is not an event (exit 1), instead of reporting and
    /// skipping it.
    #[arg(long)]
    pub strict: bool,
    /// `text`, or `json`: one JSON object a line (`kind`: transition, notification, action,
    /// summary).
    #[arg(long, value_enum, default_value = "text")]
    pub output: ReplayOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayOutput {
    Text,
    Json,
}

fn parse_time(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse()
        .map_err(|e| format!("`{text}` is not an RFC 3339 time such as 2026-01-05T00:00:00Z ({e})"))
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema.
    #[arg(value_enum, default_value = "rules")]
    pub kind: SchemaKind,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaKind {
    /// Rule files.
    Rules,
    /// Rule unit-test files.
    Tests,
    /// The configuration file (`atalaya.yaml`).
    Config,
    /// Routing policy files.
    Routing,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (YAML). Default: ./atalaya.yaml if present, else embedded defaults.
    #[arg(short, long, env = "ATALAYA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format; overrides `log.format`. `json` is for the cluster's log collector.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config files (.yaml/.yml) and rule directories. Default: the config `run` would use,
    /// and its rules directory.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The subject, e.g. `home/kitchen/temperature`.
    pub subject: String,
    /// The data: JSON (`21.5`, `{"t": 21.5}`, `true`), plain text (sent as a JSON string),
    /// or `-` to read it from stdin. Default: null.
    pub data: Option<String>,
    /// A label, `NAME=VALUE`; repeat for more.
    #[arg(short, long = "label", value_name = "NAME=VALUE")]
    pub labels: Vec<String>,
    /// The event's `source` attribute.
    #[arg(long, default_value = "/atalaya/send")]
    pub source: String,
    /// The event's `type` attribute.
    #[arg(long = "type", default_value = atalaya_bus::event::DEFAULT_EVENT_TYPE)]
    pub event_type: String,
    /// Where atalaya listens.
    #[arg(long, env = "ATALAYA_URL", default_value = "http://127.0.0.1:9470")]
    pub url: String,
}
