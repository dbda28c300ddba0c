//! `ha:` — high availability on NATS JetStream: off unless the section is present.

use std::time::Duration;

use atalaya_connectors::nats::NatsConfig;

/// `ha:` — run as one of several replicas: one leader (elected on a NATS KV bucket) does the
/// work; the others follow its journal and take over when it goes.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// The NATS connection (servers, credentials, TLS), as in `nats:`.
    pub nats: NatsConfig,
    /// Names this deployment: written into the bucket's and stream's descriptions, so a
    /// second deployment pointed at the same names is refused at start.
    pub cluster: String,
    /// This replica's name: `POD_NAME`, else the host name.
    pub replica: String,
    /// The KV bucket holding the leader's lease.
    pub bucket: String,
    /// The JetStream stream holding the journal of the leader's store transactions.
    pub stream: String,
    /// Copies NATS keeps of the bucket and the stream (3 on a NATS cluster, 1 on one server).
    pub nats_replicas: usize,
    /// How long a lease lasts without renewal: the longest a dead leader is waited for.
    pub lease_ttl: Duration,
    /// How often the leader renews its lease.
    pub renew_interval: Duration,
    /// How often a follower looks whether the lease is free (before NATS 2.11 an expired key
    /// sends no watch event, so followers poll).
    pub poll_interval: Duration,
    /// The largest difference between this replica's clock and the NATS server's accepted at
    /// start: `for:` timers and silences are wall-clock times that move between replicas.
    pub max_clock_skew: Duration,
    /// The leader writes a full snapshot into the stream every this many transactions, so
    /// a fresh replica catches up from the last snapshot and the tail after it.
    pub snapshot_every: u64,
    /// Most messages the stream keeps (oldest dropped first); several snapshots' worth.
    pub stream_max_messages: i64,
    /// Where the other replicas reach this one's HTTP API when it leads (followers forward
    /// ingest there). Default: `http://$POD_IP:<port>`, else the listen address.
    pub advertise_url: Option<String>,
}

/// The replica name from the environment: `POD_NAME` (a StatefulSet's `atalaya-0`), else
/// `HOSTNAME`, else the host name file.
pub fn default_replica() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "atalaya".to_owned())
}

impl HaConfig {
    pub fn new(nats: NatsConfig) -> Self {
        Self {
            nats,
            cluster: "atalaya".to_owned(),
            replica: default_replica(),
            bucket: "atalaya-leader".to_owned(),
            stream: "ATALAYA_JOURNAL".to_owned(),
            nats_replicas: 3,
            lease_ttl: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            poll_interval: Duration::from_millis(500),
            max_clock_skew: Duration::from_secs(2),
            snapshot_every: 10_000,
            stream_max_messages: 1_000_000,
            advertise_url: None,
        }
    }

    /// The subject prefix of this deployment's journal: `atalaya.<cluster>.journal`.
    pub fn subject_prefix(&self) -> String {
        format!("atalaya.{}.journal", self.cluster)
    }

    /// What the bucket's and stream's descriptions say, naming the deployment.
    pub fn description(&self) -> String {
        format!("atalaya cluster {}", self.cluster)
    }
}

/// The URL followers forward to when this replica leads: `advertise_url`, else the pod's IP
/// (`POD_IP`) or the listen address, with the listen port.
pub fn advertised(config: &HaConfig, listen: std::net::SocketAddr) -> String {
    if let Some(url) = &config.advertise_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = std::env::var("POD_IP")
        .ok()
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen.ip().to_string()
            }
        });
    format!("http://{host}:{}", listen.port())
}

/// A bucket, stream, cluster or replica name: letters, digits, `-` and `_` (safe in a NATS
/// subject token and a KV key).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
