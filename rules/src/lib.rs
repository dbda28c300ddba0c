//! atalaya's rule files.
//!
//! The admin keeps rule files in a Git repository; Argo CD or Flux syncs them into a
//! ConfigMap, which Kubernetes mounts as a directory of symlinks. This crate finds those
//! files and checks that each one is well-formed YAML, reporting every problem as
//! `file:line:col: message` so `atalaya check` can print it and an editor can jump to it.
//!
//! The rule language builds on the [`files::RuleFile`]s loaded here: rules are compiled
//! ([`compile`]) and run by a sans-IO engine ([`engine`]); alerts are routed to receivers by [`routing`].
//!
//! # Layout
//! - [`files`]: discovering rule files under a directory (ConfigMap-aware), loading each one
//!   and checking its YAML syntax with positions, and loading a whole directory at once.
//! - [`yaml`]: a YAML tree that keeps the position of every node, and a serde deserializer
//!   over it whose errors point at the key or value at fault (from `atalaya-bus`, which the
//!   receivers' settings share).
//! - [`model`]: rule files as written, the serde shape from which the JSON Schema is generated.
//! - [`compile`]: checking and compiling rules, every error as `file:line:col: message`
//!   (`compile/mod.rs`); one rule's checks in `compile/check.rs`, error positions inside
//!   scalars in `compile/position.rs`.
//! - [`active`]: a rule's active days and hours in a time zone (`22:00-07:00`, `mon-fri`):
//!   whether an instant falls inside, and when that next changes.
//! - [`expr`]: CEL expressions for a rule's `value:` and `condition:`, compiled once and
//!   evaluated per event against `value`, `data`, `labels`, `subject` and `time`
//!   (`expr/mod.rs`); JSON and CEL values in `expr/json.rs`, parsing and its limits in
//!   `expr/syntax.rs`, walking the syntax tree in `expr/tree.rs`.
//! - [`template`]: Jinja templates (minijinja) for a rule's severity, labels and
//!   annotations: strict about undefined values, bounded by fuel, never HTML-escaped.
//! - [`index`]: which rules an event's subject can match, without trying every rule.
//! - [`engine`]: the sans-IO rule engine, evaluation in `engine/mod.rs`; a series' state in
//!   `engine/series.rs`, rendering alerts in `engine/alerts.rs`, persistence in
//!   `engine/persist.rs`, reloading rules in `engine/reload.rs`.
//! - [`alert`]: the alerts and actions the engine outputs.
//! - [`metrics`]: the engine's metrics.
//! - [`testing`]: rule unit tests (`atalaya test`), run on virtual time.
//! - [`notation`]: the compact series notation of rule unit tests (`1+1x3 _ 5`).
//! - [`recorded`]: recorded events, JSON lines (gzipped or not), read as a stream: what
//!   `atalaya replay` and a rule test's `events_file:` read.
//! - [`replay`]: the engine and the router driven together on virtual time.
//! - [`routing`]: the routing policy (Alertmanager's route tree, receivers, inhibition,
//!   time intervals), silences, and the sans-IO router that turns alerts into notifications.
//!
//! Unit tests sit beside the code, in a `tests.rs` of the module's folder where they are long.

pub mod active;
pub mod alert;
pub mod compile;
pub mod engine;
pub mod expr;
pub mod files;
pub mod index;
pub mod metrics;
pub mod model;
pub mod notation;
pub mod recorded;
pub mod replay;
pub mod routing;
pub mod template;
pub mod testing;

pub use atalaya_bus::yaml;

pub use files::{RuleFile, RuleFileError, RuleFilesError, RuleSetFiles, discover, load, load_dir};
