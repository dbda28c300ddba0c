//! `nats:` — the NATS connection, core subscriptions and JetStream consumers (the source),
//! and publishing (rule actions). Parsed from the service config by the binary.

use std::path::PathBuf;
use std::time::Duration;

use atalaya_bus::Pattern;
use atalaya_bus::secret::Secret;

use crate::tls::TlsConfig;

/// One NATS connection.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` (or `tls://…`); several for a cluster.
    pub servers: Vec<String>,
    /// Connection name shown by the server. Default `atalaya`.
    pub name: String,
    pub auth: NatsAuth,
    pub tls: Option<TlsConfig>,
    /// Core NATS subscriptions (at most once).
    pub subscriptions: Vec<NatsSubscription>,
    /// JetStream durable pull consumers (at least once).
    pub jetstream: Vec<JetStreamConsumer>,
    /// Larger payloads are counted, logged and skipped. Default 256 KiB.
    pub max_payload_bytes: usize,
    /// Messages the client holds per core subscription while the bus is full; past that it
    /// drops them, counted under `errors{stage="overflow"}` (core NATS has no flow control).
    /// Default 65 536.
    pub max_pending: usize,
    /// Whether `/readyz` waits for (and follows) the connection. Default false (see
    /// `MqttConfig::required_for_ready`).
    pub required_for_ready: bool,
    /// Publish rule actions through JetStream (waiting for the stream's ack) rather than
    /// core NATS. Default false.
    pub publish_jetstream: bool,
    /// Longest wait for one publish: the server's flush (core) or the stream's ack
    /// (JetStream), so a publish during an outage fails instead of hanging. Default 10 s.
    pub publish_timeout: Duration,
}

/// How to authenticate. Secrets come from `*_file` keys or the environment.
#[derive(Debug, Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    Token(Secret),
    UserPassword {
        user: String,
        password: Secret,
    },
    /// An nkey seed (`SU…`).
    NKey(Secret),
    /// A `.creds` file (JWT and nkey seed).
    CredentialsFile(PathBuf),
}

/// A core subscription: a subject pattern (`sensors/+room/temp`, `jobs/>`) — subscribed as
/// the NATS subject with `*` and `>`, captures becoming labels — with an optional queue group.
#[derive(Debug, Clone)]
pub struct NatsSubscription {
    pub pattern: Pattern,
    pub queue_group: Option<String>,
}

/// A JetStream durable pull consumer.
#[derive(Debug, Clone)]
pub struct JetStreamConsumer {
    pub stream: String,
    /// The durable consumer name.
    pub durable: String,
    /// Only messages whose subject matches (and captures labels). Default: the whole stream.
    pub filter: Option<Pattern>,
    /// Create the consumer when missing (else bind to an existing one). Default true.
    pub create: bool,
    /// Redelivery after this long without an ack. Default 30 s.
    pub ack_wait: Duration,
    /// Most messages delivered and not yet acked. Default 256.
    pub max_ack_pending: i64,
    /// Delay before a failed message is redelivered (nak with delay). Default 5 s.
    pub nak_delay: Duration,
}

impl NatsConfig {
    /// Defaults for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            name: "atalaya".to_owned(),
            auth: NatsAuth::None,
            tls: None,
            subscriptions: Vec::new(),
            jetstream: Vec::new(),
            max_payload_bytes: 256 * 1024,
            max_pending: 65_536,
            required_for_ready: false,
            publish_jetstream: false,
            publish_timeout: Duration::from_secs(10),
        }
    }
}

impl JetStreamConsumer {
    pub fn new(stream: impl Into<String>, durable: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            durable: durable.into(),
            filter: None,
            create: true,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 256,
            nak_delay: Duration::from_secs(5),
        }
    }
}
