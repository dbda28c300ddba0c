//! The NATS connection: checking the server, auth and TLS settings, building the client
//! options from them, and following the connection's life — the connected gauge, readiness,
//! the reconnect counter, and one log line per outage rather than one per attempt.
//!
//! async-nats connects in the background (`retry_on_initial_connect`) and reconnects by itself
//! forever; what it tells about that arrives as [`async_nats::Event`]s at
//! [`ConnectionStatus::on_event`].

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::rustls::pki_types::pem::PemObject;
use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use async_nats::{ClientError, ConnectOptions, Event, ServerAddr, ServerError};
use atalaya_bus::connector_metrics::ConnectorCounters;
use atalaya_bus::readiness::ReadyHandle;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::config::{NatsAuth, NatsConfig};
use super::error::{NatsConfigError, redact_server};
use super::internal_events::LogThrottle;
use crate::tls::TlsConfig;

/// The checked servers and the client options for `config`, or every problem found.
pub(crate) async fn connect_options(
    config: &NatsConfig,
    errors: &mut Vec<NatsConfigError>,
) -> Option<(Vec<ServerAddr>, ConnectOptions)> {
    let servers = check_servers(&config.servers, errors);
    let mut options = ConnectOptions::new()
        .name(&config.name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .subscription_capacity(config.max_pending.max(1));
    // TLS first: a credentials file that cannot be read ends the checks.
    if let Some(tls) = &config.tls {
        options = tls_options(options, tls, errors).await;
    }
    match &config.auth {
        NatsAuth::None => {}
        NatsAuth::Token(token) => {
            if token.expose().is_empty() {
                errors.push(NatsConfigError::Auth("the token is empty"));
            }
            options = options.token(token.expose().to_owned());
        }
        NatsAuth::UserPassword { user, password } => {
            if user.is_empty() {
                errors.push(NatsConfigError::Auth("the user name is empty"));
            }
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        NatsAuth::NKey(seed) => {
            let seed = seed.expose().trim();
            if !looks_like_user_seed(seed) {
                errors.push(NatsConfigError::Auth(
                    "the nkey seed is not a user seed (58 characters of base32 starting with `SU`)",
                ));
            }
            options = options.nkey(seed.to_owned());
        }
        NatsAuth::CredentialsFile(path) => match options.credentials_file(path).await {
            Ok(with_creds) => options = with_creds,
            Err(source) => {
                errors.push(NatsConfigError::File {
                    what: "credentials file",
                    path: path.clone(),
                    source,
                });
                return None;
            }
        },
    }
    Some((servers?, options))
}

fn check_servers(servers: &[String], errors: &mut Vec<NatsConfigError>) -> Option<Vec<ServerAddr>> {
    if servers.is_empty() {
        errors.push(NatsConfigError::NoServers);
        return None;
    }
    let mut parsed = Vec::with_capacity(servers.len());
    for server in servers {
        match ServerAddr::from_str(server) {
            Ok(addr) => parsed.push(addr),
            // The URL parser's messages do not repeat the input, so no secret leaks here.
            Err(e) => errors.push(NatsConfigError::InvalidServer {
                server: redact_server(server),
                reason: e.to_string(),
            }),
        }
    }
    (parsed.len() == servers.len()).then_some(parsed)
}

/// A user nkey seed: `SU` then base32, 58 characters in all. The checksum is checked by the
/// client when it signs the server's nonce.
fn looks_like_user_seed(seed: &str) -> bool {
    seed.len() == 58
        && seed.starts_with("SU")
        && seed
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// TLS: the CA to trust, the client certificate for mutual TLS, and TLS required. The files
/// are read and parsed now, so a wrong path is a config error naming the file rather than a
/// connection that fails forever.
async fn tls_options(
    mut options: ConnectOptions,
    tls: &TlsConfig,
    errors: &mut Vec<NatsConfigError>,
) -> ConnectOptions {
    // The client builds its rustls config with the process-wide crypto provider; the service
    // installs ring at start, and this makes a library user (or a test) work the same.
    if async_nats::rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
    }
    if let Some(ca) = &tls.ca_file {
        if let Err(e) = check_certificates(ca, "tls ca_file").await {
            errors.push(e);
        }
        options = options.add_root_certificates(ca.clone());
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            if let Err(e) = check_certificates(cert, "tls cert_file").await {
                errors.push(e);
            }
            if let Err(e) = check_key(key).await {
                errors.push(e);
            }
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => errors.push(NatsConfigError::ClientCertWithoutKey),
    }
    options.require_tls(true)
}

async fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, NatsConfigError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| NatsConfigError::File {
            what,
            path: path.to_owned(),
            source,
        })
}

async fn check_certificates(path: &Path, what: &'static str) -> Result<(), NatsConfigError> {
    let pem = read(path, what).await?;
    let pem_error = |reason: String| NatsConfigError::Pem {
        what,
        path: path.to_owned(),
        expected: "certificate",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no `BEGIN CERTIFICATE` block".to_owned()));
    }
    Ok(())
}

async fn check_key(path: &Path) -> Result<(), NatsConfigError> {
    const WHAT: &str = "tls key_file";
    let pem = read(path, WHAT).await?;
    // The parse error names the PEM section kinds it found, never the key material.
    PrivateKeyDer::from_pem_slice(&pem)
        .map(drop)
        .map_err(|e| NatsConfigError::Pem {
            what: WHAT,
            path: path.to_owned(),
            expected: "private key",
            reason: e.to_string(),
        })
}

/// Follows the connection: the `connected` gauge, readiness, reconnects, and the log.
pub(crate) struct ConnectionStatus {
    /// The first server, for log lines (user info redacted).
    server: String,
    counters: ConnectorCounters,
    /// `Some` when readiness follows the connection (`required_for_ready`).
    ready: Option<ReadyHandle>,
    state: Mutex<StatusState>,
    /// Bumped on every (re)connection: pull consumers re-issue their fetch, since a request
    /// sent on the old connection may be lost.
    generation: watch::Sender<u64>,
    throttle: LogThrottle,
}

#[derive(Default)]
struct StatusState {
    ever_connected: bool,
    /// The reason last logged during this outage; a repeat is counted, not logged.
    outage_reason: Option<String>,
}

impl ConnectionStatus {
    pub fn new(
        server: String,
        counters: ConnectorCounters,
        ready: Option<ReadyHandle>,
        required_for_ready: bool,
    ) -> Arc<Self> {
        counters.set_connected(false);
        let ready = match ready {
            Some(handle) if required_for_ready => {
                handle.set(false);
                Some(handle)
            }
            // Not required: ready from the start, whatever the connection does.
            Some(handle) => {
                handle.set(true);
                None
            }
            None => None,
        };
        Arc::new(Self {
            server,
            counters,
            ready,
            state: Mutex::default(),
            generation: watch::channel(0).0,
            throttle: LogThrottle::default(),
        })
    }

    /// A receiver of the connection generation (see the field).
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusState> {
        // Two plain fields: a panic elsewhere cannot leave them half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_up(&self, up: bool) {
        self.counters.set_connected(up);
        if let Some(ready) = &self.ready {
            ready.set(up);
        }
    }

    /// Handles one event from the client.
    pub fn on_event(&self, event: Event) {
        let server = self.server.as_str();
        match event {
            Event::Connected => {
                let reconnected = {
                    let mut state = self.lock();
                    state.outage_reason = None;
                    std::mem::replace(&mut state.ever_connected, true)
                };
                self.set_up(true);
                self.generation.send_modify(|g| *g = g.wrapping_add(1));
                if reconnected {
                    self.counters.reconnects.inc();
                    info!(server, "Reconnected to NATS.");
                } else {
                    info!(server, "Connected to NATS.");
                }
            }
            Event::Disconnected => {
                self.set_up(false);
                self.lock().outage_reason = Some("disconnected".to_owned());
                warn!(server, "Lost the NATS connection; reconnecting.");
            }
            Event::ClientError(ClientError::Other(kind)) => self.connect_failed(&kind),
            Event::ServerError(ServerError::AuthorizationViolation) => {
                self.connect_failed("authorization violation");
            }
            Event::SlowConsumer(sid) | Event::ServerError(ServerError::SlowConsumer(sid)) => {
                self.counters.error("overflow");
                if let Some(suppressed) = self.throttle.admit() {
                    warn!(
                        server,
                        sid,
                        suppressed,
                        "NATS messages dropped: more than nats.max_pending waited while atalaya was behind (raise it, or use JetStream to have the server keep them)."
                    );
                }
            }
            Event::ServerError(ServerError::Other(text)) => {
                let lower = text.to_ascii_lowercase();
                let stage = if lower.contains("subscription") {
                    "subscribe"
                } else if lower.contains("publish") {
                    "publish"
                } else {
                    "connect"
                };
                self.counters.error(stage);
                if let Some(suppressed) = self.throttle.admit() {
                    warn!(server, error = %text, suppressed, "NATS server reported an error.");
                }
            }
            Event::ClientError(other) => {
                self.counters.error("connect");
                error!(server, error = %other, "NATS client error.");
            }
            Event::LameDuckMode => {
                info!(
                    server,
                    "NATS server is shutting down (lame duck mode); the client will move."
                );
            }
            Event::Closed => {
                self.set_up(false);
                error!(server, "NATS connection closed for good.");
            }
            Event::Draining => {}
        }
    }

    /// One failed connection attempt: counted always, logged when the reason is new in this
    /// outage.
    fn connect_failed(&self, kind: &str) {
        self.counters.error("connect");
        let new_reason = {
            let mut state = self.lock();
            let new = state.outage_reason.as_deref() != Some(kind);
            state.outage_reason = Some(kind.to_owned());
            new
        };
        if new_reason {
            warn!(
                server = %self.server,
                reason = explain(kind),
                "Cannot connect to NATS; retrying."
            );
        }
    }
}

/// A reader's explanation of async-nats' connection error kinds (their `Display`).
fn explain(kind: &str) -> &str {
    match kind {
        "authorization violation" => {
            "the server refused the credentials (authorization violation): check the token, user and password, nkey or credentials file"
        }
        "failed signing nonce" => {
            "the nkey seed or credentials could not sign the server's challenge"
        }
        "TLS error" => {
            "TLS failed: check the CA, the client certificate and that the server speaks TLS"
        }
        "IO error" => "the server cannot be reached",
        "timed out" => "the connection attempt timed out",
        "DNS error" => "the server's name does not resolve",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_seeds() {
        let seed = format!("SU{}", "A".repeat(56));
        assert!(looks_like_user_seed(&seed));
        assert!(!looks_like_user_seed(&seed[1..]));
        assert!(!looks_like_user_seed(&format!("SA{}", "A".repeat(56))));
        assert!(!looks_like_user_seed(&format!("SU{}", "a".repeat(56))));
    }
}
