//! [`NatsError`], what can go wrong in the NATS connector, and [`NatsConfigError`], one
//! problem found in its configuration. Neither ever holds a secret: server addresses are shown
//! without their user info, and tokens, passwords and seeds are never part of a message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// An error of the NATS connector. [`NatsError::stage`] is its `stage` metric label.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The configuration is invalid: every problem found, not only the first.
    #[error("invalid NATS configuration: {}", ConfigErrors(.0))]
    Config(Vec<NatsConfigError>),
    /// The client could not be set up (the connection itself is retried in the background
    /// and never fails this way).
    #[error("cannot set up the NATS client: {0}")]
    Client(#[source] async_nats::ConnectError),
    /// A core subscription could not be made.
    #[error("cannot subscribe to NATS subject `{subject}`: {source}")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The client gave up on the connection (it does not while reconnects are unlimited).
    #[error("the NATS connection is closed for good")]
    ConnectionClosed,
    /// The bus was closed before the connector was told to stop.
    #[error("the bus is closed; the NATS source has nowhere to publish")]
    BusClosed,
    /// A subject that cannot be written as a NATS subject.
    #[error("`{subject}` cannot be published to NATS: {reason}")]
    InvalidSubject { subject: String, reason: String },
    /// The server did not take a message.
    #[error("publishing to NATS subject `{subject}` failed: {source}")]
    Publish {
        subject: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server did not confirm a message in time (flush, or the stream's ack).
    #[error("publishing to NATS subject `{subject}` timed out after {timeout:?}")]
    PublishTimeout { subject: String, timeout: Duration },
    /// A connector task ended unexpectedly (a bug: it is logged and ends the connector).
    #[error("a NATS connector task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl NatsError {
    /// The `stage` label of `atalaya_connector_errors_total` for this error.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::Config(_) | Self::Client(_) | Self::ConnectionClosed | Self::Task(_) => "connect",
            Self::Subscribe { .. } => "subscribe",
            Self::BusClosed
            | Self::InvalidSubject { .. }
            | Self::Publish { .. }
            | Self::PublishTimeout { .. } => "publish",
        }
    }
}

/// One problem in the NATS configuration.
#[derive(Debug, thiserror::Error)]
pub enum NatsConfigError {
    #[error("no NATS server is configured")]
    NoServers,
    /// `server` is shown with any user info redacted.
    #[error("server address `{server}` is invalid: {reason}")]
    InvalidServer { server: String, reason: String },
    #[error("cannot read {what} `{}`: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} `{}` holds no usable PEM {expected}: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error("tls: `cert_file` and `key_file` go together; set both or neither")]
    ClientCertWithoutKey,
    #[error("auth: {0}")]
    Auth(&'static str),
    #[error("subscription `{pattern}`: {reason}")]
    Subscription { pattern: String, reason: String },
    #[error("jetstream consumer `{stream}/{durable}`: {reason}")]
    JetStream {
        stream: String,
        durable: String,
        reason: String,
    },
    #[error("`max_payload_bytes` must be at least 1")]
    ZeroMaxPayload,
}

/// Shows a list of config errors on one line, separated by `; `.
struct ConfigErrors<'a>(&'a [NatsConfigError]);

impl fmt::Display for ConfigErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A server address fit for a log line or an error: the user info (`user:password@`, or a
/// token) replaced by `[redacted]`.
pub(crate) fn redact_server(server: &str) -> String {
    let (scheme, rest) = match server.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, server),
    };
    let rest = match rest.rsplit_once('@') {
        Some((_, host)) => format!("[redacted]@{host}"),
        None => rest.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_user_info_is_redacted() {
        assert_eq!(
            redact_server("nats://alice:hunter2@nats.lan:4222"),
            "nats://[redacted]@nats.lan:4222"
        );
        assert_eq!(redact_server("s3cr3t@nats.lan"), "[redacted]@nats.lan");
        assert_eq!(redact_server("tls://nats.lan"), "tls://nats.lan");
    }

    #[test]
    fn every_config_error_is_shown() {
        let error = NatsError::Config(vec![
            NatsConfigError::NoServers,
            NatsConfigError::ZeroMaxPayload,
        ]);
        assert_eq!(
            error.to_string(),
            "invalid NATS configuration: no NATS server is configured; \
             `max_payload_bytes` must be at least 1"
        );
    }
}
