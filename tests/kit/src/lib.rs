//! atalaya's test kit: what every test crate of the workspace shares, so a broker is
//! launched, a port found or a log line captured one way everywhere.
//!
//! Real servers where a user would run one (mosquitto, nats-server, an SMTP server); where
//! none can run here, a stand-in speaking the real protocol on loopback (the Telegram Bot
//! API, the Kubernetes API server, Home Assistant, a webhook receiver). Everything listens on 127.0.0.1, on a
//! port of its own, with its files in a directory of its own, and is killed when dropped.
//!
//! # Layout
//! - this file: [`PATIENCE`], [`free_port`], [`wait_for_port`].
//! - [`mosquitto`]: a mosquitto process (TLS, passwords, kill and restart) and its CLI clients.
//! - [`nats`]: a nats-server process with JetStream (extra config: auth, TLS), and a
//!   JetStream cluster of them ([`nats::NatsCluster`]) for replicated streams.
//! - [`smtp`]: an SMTP server process (Debian's python3-aiosmtpd, `smtpd.py`) writing a
//!   Maildir, with STARTTLS, implicit TLS and AUTH.
//! - [`telegram`]: a Telegram Bot API stand-in, with Telegram's limits and errors.
//! - [`kubernetes`]: a Kubernetes API server stand-in (list, watch, bookmarks, 410 Gone).
//! - [`homeassistant`]: Home Assistant's WebSocket API stand-in (login, subscriptions, state
//!   changes, registries, ping), with garbage, huge frames and dropped connections on demand.
//! - [`http`]: [`http::Recorder`], an HTTP server recording every request and answering as
//!   told (statuses, `Retry-After`, outages): the base of every HTTP stand-in.
//! - [`webhook`]: a webhook receiver recording what it accepts, failing on demand.
//! - [`proxy`]: a TCP proxy the test can cut (a partition of one client) and restore.
//! - [`certs`]: certificates made with the `openssl` CLI.
//! - [`ha_discovery`]: a checker of Home Assistant MQTT discovery payloads, after its
//!   documented schema.
//! - [`logs`]: captured `tracing` output; [`metrics`]: one sample out of a registry or a
//!   `/metrics` page.

pub mod alertmanager;
pub mod certs;
pub mod ha_discovery;
pub mod homeassistant;
pub mod http;
pub mod kubernetes;
pub mod logs;
pub mod metrics;
pub mod mosquitto;
pub mod nats;
pub mod openapi;
pub mod proxy;
pub mod smtp;
pub mod telegram;
pub mod webhook;
pub mod yaml;

use std::net::TcpListener;
use std::time::Duration;

pub use certs::make_certs;
pub use logs::CapturedLogs;

/// The bound on anything a test waits for; generous for a loaded CI machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A free loopback port: bound to port 0, then released for the server to take (a race with
/// another process is possible but unlikely on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Waits (within [`PATIENCE`]) until something accepts connections on `port`. Waiting on
/// another process is the one place a poll is the right tool; it is bounded.
pub async fn wait_for_port(port: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copies the directory tree `from` into `to` (created), as a test's scratch copy of a
/// folder of the repository.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
