//! The CLI commands other than `run` (which is [`crate::service`]), one file each.
//!
//! # Layout
//! - `check`: `atalaya check` — validate configuration, rule, routing and test files.
//! - `test`: `atalaya test` — rule unit tests on virtual time.
//! - `replay`: `atalaya replay` — recorded events through the rules and routing on virtual
//!   time.
//! - `schema`: `atalaya schema` — the JSON Schemas of rule and test files.
//! - `send`: `atalaya send` — one event to a running instance.
//! - `alerts`: `atalaya alerts` and `atalaya silence …`, like amtool, against the HTTP API.
//! - `routes`: `atalaya routes test` — which receivers an alert's labels reach.
//! - `explain`: `atalaya explain`, `notifications` and `dead-letters`, from the history API.
//! - `api_client`: what the commands talking to a running instance share.

pub mod alerts;
pub mod api_client;
pub mod check;
pub mod explain;
pub mod replay;
pub mod routes;
pub mod schema;
pub mod send;
pub mod test;
