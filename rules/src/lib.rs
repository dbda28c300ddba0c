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

pub mod files;

pub use files::{RuleFile, RuleFileError, RuleFilesError, RuleSetFiles, discover, load, load_dir};
