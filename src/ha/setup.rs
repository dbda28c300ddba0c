//! The NATS side checked at start: the lease bucket and the journal stream (created when
//! missing, refused when their settings would break the guarantees or they belong to another
//! deployment) and this replica's clock against the server's.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::config::HaConfig;

/// Why high availability cannot start. Every variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum HaSetupError {
    #[error("ha: invalid NATS connection settings: {0}")]
    Connection(String),
    #[error("ha: cannot reach NATS at {servers}: {reason}")]
    Unreachable { servers: String, reason: String },
    #[error("ha: cannot create the KV bucket `{bucket}`: {reason}")]
    CreateBucket { bucket: String, reason: String },
    #[error("ha: cannot create the stream `{stream}`: {reason}")]
    CreateStream { stream: String, reason: String },
    #[error("ha: {0}")]
    Misconfigured(String),
    #[error(
        "ha: this replica's clock is {skew_ms} ms off the NATS server's (at most {max_ms} ms allowed): timers and silences are wall-clock times shared between replicas; run NTP (chrony, systemd-timesyncd) on every node"
    )]
    ClockSkew { skew_ms: i128, max_ms: u128 },
    #[error("ha: NATS request failed: {0}")]
    Request(String),
}

/// Opens the lease bucket: created with history 1 and `max_age` = the lease TTL; an existing
/// one is checked.
pub async fn lease_bucket(
    js: &jetstream::Context,
    config: &HaConfig,
) -> Result<kv::Store, HaSetupError> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => {
            let status = store
                .status()
                .await
                .map_err(|e| HaSetupError::Request(e.to_string()))?;
            let info = &status.info.config;
            let problems = bucket_problems(
                config,
                status.history(),
                status.max_age(),
                &info.description,
            );
            if problems.is_empty() {
                Ok(store)
            } else {
                Err(HaSetupError::Misconfigured(format!(
                    "the KV bucket `{}` {}; delete it (`nats kv del {}`) to have it created right, or name another with ha.bucket",
                    config.bucket,
                    problems.join("; "),
                    config.bucket
                )))
            }
        }
        Err(_) => {
            // The bucket's stream, as async-nats's `create_key_value` makes it; made here
            // because that call first asks for the account's limits in a form nats-server
            // 2.9 (Debian 12's) does not answer.
            js.create_stream(bucket_stream_config(config))
                .await
                .map_err(|e| HaSetupError::CreateBucket {
                    bucket: config.bucket.clone(),
                    reason: e.to_string(),
                })?;
            js.get_key_value(&config.bucket)
                .await
                .map_err(|e| HaSetupError::CreateBucket {
                    bucket: config.bucket.clone(),
                    reason: e.to_string(),
                })
        }
    }
}

/// The lease bucket's stream: a KV bucket keeping one value per key for the lease TTL.
pub fn bucket_stream_config(config: &HaConfig) -> stream::Config {
    stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: 1,
        max_age: config.lease_ttl,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: config.nats_replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// What is wrong with an existing lease bucket (nothing: empty).
pub fn bucket_problems(
    config: &HaConfig,
    history: i64,
    max_age: Duration,
    description: &Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if description.as_deref() != Some(config.description().as_str()) {
        problems.push(format!(
            "belongs to {}, not to `{}` (ha.cluster; the bucket's description names its owner): two deployments sharing one lease would take turns leading each other's work",
            description
                .as_deref()
                .filter(|d| !d.is_empty())
                .map_or_else(|| "something else".to_owned(), |d| format!("`{d}`")),
            config.description()
        ));
    }
    if history != 1 {
        problems.push(format!("keeps {history} values per key, not 1"));
    }
    if max_age != config.lease_ttl {
        problems.push(format!(
            "expires keys after {:?}, not after the lease TTL {:?} (ha.lease_ttl)",
            max_age, config.lease_ttl
        ));
    }
    problems
}

/// Opens the journal stream: created when missing; an existing one is checked.
pub async fn journal_stream(
    js: &jetstream::Context,
    config: &HaConfig,
) -> Result<stream::Stream, HaSetupError> {
    match js.get_stream(&config.stream).await {
        Ok(mut stream) => {
            let info = stream
                .info()
                .await
                .map_err(|e| HaSetupError::Request(e.to_string()))?;
            let problems = stream_problems(config, &info.config);
            if problems.is_empty() {
                Ok(stream)
            } else {
                Err(HaSetupError::Misconfigured(format!(
                    "the stream `{}` {}; fix or delete it, or name another with ha.stream",
                    config.stream,
                    problems.join("; ")
                )))
            }
        }
        Err(_) => {
            js.create_stream(stream_config(config))
                .await
                .map_err(|e| HaSetupError::CreateStream {
                    stream: config.stream.clone(),
                    reason: e.to_string(),
                })
        }
    }
}

/// The journal stream as created.
pub fn stream_config(config: &HaConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some(config.description()),
        subjects: vec![format!("{}.>", config.subject_prefix())],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_messages: config.stream_max_messages,
        num_replicas: config.nats_replicas,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// What is wrong with an existing journal stream (nothing: empty).
pub fn stream_problems(config: &HaConfig, found: &stream::Config) -> Vec<String> {
    let mut problems = Vec::new();
    if found.description.as_deref() != Some(config.description().as_str()) {
        problems.push(format!(
            "belongs to {}, not to `{}` (ha.cluster)",
            found
                .description
                .as_deref()
                .filter(|d| !d.is_empty())
                .map_or_else(|| "something else".to_owned(), |d| format!("`{d}`")),
            config.description()
        ));
    }
    if found.retention != stream::RetentionPolicy::Limits {
        problems.push(format!(
            "has retention {:?}: a journal must keep what it was given (limits)",
            found.retention
        ));
    }
    if found.discard != stream::DiscardPolicy::Old {
        problems.push(
            "refuses new entries when full (discard: new): it must drop the oldest".to_owned(),
        );
    }
    if found.max_messages_per_subject > 0 {
        problems.push(format!(
            "keeps only {} message(s) per subject: the journal's entries would be lost",
            found.max_messages_per_subject
        ));
    }
    if !found.max_age.is_zero() {
        problems.push(format!(
            "drops entries older than {:?}: a replica down longer could not catch up",
            found.max_age
        ));
    }
    let wanted = format!("{}.>", config.subject_prefix());
    if !found.subjects.contains(&wanted) {
        problems.push(format!(
            "does not take the subjects `{wanted}` (it takes {:?})",
            found.subjects
        ));
    }
    problems
}

/// Compares this replica's wall clock with the NATS server's: a key written and read back
/// carries the server's time of the write, which lies between the local times before the
/// write and after the read.
pub async fn check_clock(kv: &kv::Store, config: &HaConfig) -> Result<(), HaSetupError> {
    let key = format!("clock-{}", config.replica);
    let before = jiff::Timestamp::now();
    let started = std::time::Instant::now();
    kv.put(&key, bytes::Bytes::from_static(b"clock probe"))
        .await
        .map_err(|e| HaSetupError::Request(e.to_string()))?;
    let entry = kv
        .entry(&key)
        .await
        .map_err(|e| HaSetupError::Request(e.to_string()))?;
    let rtt = started.elapsed();
    let Some(entry) = entry else {
        return Ok(());
    };
    let server_ns = entry.created.unix_timestamp_nanos();
    skew_check(
        before.as_nanosecond(),
        rtt,
        server_ns,
        config.max_clock_skew,
    )
}

/// The skew check itself: the server's time must lie within the local interval
/// [`before`, `before + rtt`], widened by `max`.
pub fn skew_check(
    before_ns: i128,
    rtt: Duration,
    server_ns: i128,
    max: Duration,
) -> Result<(), HaSetupError> {
    let after_ns = before_ns + rtt.as_nanos() as i128;
    let skew = if server_ns < before_ns {
        server_ns - before_ns
    } else if server_ns > after_ns {
        server_ns - after_ns
    } else {
        0
    };
    if skew.unsigned_abs() > max.as_nanos() {
        return Err(HaSetupError::ClockSkew {
            skew_ms: skew / 1_000_000,
            max_ms: max.as_millis(),
        });
    }
    Ok(())
}

/// Whether a nats-server of this version may accept two writes that expect the same last
/// revision of a key at once in a cluster (nats-io/nats-server#4320: the check ran before the
/// write was replicated, not as part of it; fixed after 2.9.20). Two followers taking over a
/// stale lease in the same few milliseconds can then both win it: the journal's fencing
/// refuses the later one's appends and it exits, but the earlier one's lease is gone too.
pub fn racy_compare_and_swap(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) => {
            (major, minor, patch) < (2, 9, 21)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HaConfig {
        let mut c = HaConfig::new(atalaya_connectors::nats::NatsConfig::new(String::new()));
        c.cluster = "home".into();
        c
    }

    #[test]
    fn a_bucket_of_another_cluster_or_with_wrong_limits_is_refused() {
        let c = config();
        let ours = Some("atalaya cluster home".to_owned());
        assert!(bucket_problems(&c, 1, Duration::from_secs(15), &ours).is_empty());
        let theirs = Some("atalaya cluster garage".to_owned());
        let problems = bucket_problems(&c, 5, Duration::from_secs(60), &theirs);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("`atalaya cluster garage`"),
            "{problems:?}"
        );
        assert!(problems[1].contains("5 values per key"));
        assert!(problems[2].contains("60s"));
    }

    #[test]
    fn a_stream_that_would_lose_entries_is_refused() {
        let c = config();
        assert!(stream_problems(&c, &stream_config(&c)).is_empty());
        let mut bad = stream_config(&c);
        bad.retention = stream::RetentionPolicy::WorkQueue;
        bad.max_messages_per_subject = 1;
        bad.max_age = Duration::from_secs(3600);
        bad.discard = stream::DiscardPolicy::New;
        let problems = stream_problems(&c, &bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn clock_skew_beyond_the_bound_is_an_error() {
        let max = Duration::from_secs(2);
        let rtt = Duration::from_millis(4);
        let before = 1_000_000_000_000i128;
        assert!(skew_check(before, rtt, before + 2_000_000, max).is_ok());
        assert!(skew_check(before, rtt, before - 1_500_000_000, max).is_ok());
        let err = skew_check(before, rtt, before + 5_004_000_000, max).unwrap_err();
        assert!(err.to_string().contains("5000 ms off"), "{err}");
    }

    #[test]
    fn servers_before_2_9_21_are_known_for_racy_compare_and_swap() {
        for racy in ["2.9.10", "v2.9.20", "2.8.4", "2.9.15-beta"] {
            assert!(racy_compare_and_swap(racy), "{racy}");
        }
        for fixed in ["2.9.21", "2.10.0", "v2.11.4", "3.0.0", "", "unknown"] {
            assert!(!racy_compare_and_swap(fixed), "{fixed}");
        }
    }
}
