//! atalaya's rule files.
//!
//! The admin keeps rule files in a Git repository; Argo CD or Flux syncs them into a
//! ConfigMap, which Kubernetes mounts as a directory of symlinks. This crate finds those
//! files and checks that each one is well-formed YAML, reporting every problem as
//! `file:line:col: message` so `atalaya check` can print it and an editor can jump to it.
//!
//! The rule language itself (parsing rules out of these documents, the sans-IO engine and the
//! router) comes later and will build on the [`files::RuleFile`]s loaded here.
//!
//! # Layout
//! - [`files`]: discovering rule files under a directory (ConfigMap-aware), loading each one
//!   and checking its YAML syntax with positions, and loading a whole directory at once.
//! - [`yaml`]: a YAML tree that keeps the position of every node, and a serde deserializer
//!   over it whose errors point at the key or value at fault.
//! - [`active`]: a rule's active days and hours in a time zone (`22:00-07:00`, `mon-fri`):
//!   whether an instant falls inside, and when that next changes.
//! - [`notation`]: the compact series notation of rule unit tests (`1+1x3 _ 5`).
//! - [`expr`]: CEL expressions for a rule's `value:` and `condition:`, compiled once and
//!   evaluated per event against `value`, `data`, `labels`, `subject` and `time`.
//! - [`template`]: Jinja templates (minijinja) for a rule's severity, labels and
//!   annotations: strict about undefined values, bounded by fuel, never HTML-escaped.

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
pub mod template;
pub mod testing;
pub mod yaml;

pub use files::{RuleFile, RuleFileError, RuleFilesError, RuleSetFiles, discover, load, load_dir};
