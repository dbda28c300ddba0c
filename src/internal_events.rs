//! Internal events: one struct per thing worth telling, whose `emit` writes the log line and
//! the metric together, so logs and metrics never disagree.
//!
//! Events that outsiders can trigger at will (rejected requests) are logged through a
//! [`LogThrottle`], so a flood of bad input is counted in full but logged at most once a
//! second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use atalaya_bus::connector_metrics::ConnectorCounters;
use tracing::{debug, warn};

/// Lets one log line through per second; counts the rest.
#[derive(Default)]
pub struct LogThrottle {
    /// The second (since the epoch) of the last line let through.
    last_second: AtomicU64,
    /// Lines held back since then, reported with the next one.
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// `Some(n)` when a line may be logged now, `n` being how many were held back before it.
    fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_second.load(Ordering::Relaxed);
        if now != last
            && self
                .last_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Where in handling an HTTP request it was rejected; the `stage` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStage {
    /// Missing or wrong bearer token (401).
    Auth,
    /// The body could not be read: too large (413) or broken off.
    Read,
    /// Not JSON, or not valid events (400).
    Decode,
    /// Valid, but the bus had no room in time or is shutting down (503), or the batch is
    /// larger than the bus (413).
    Publish,
    /// Valid, but over a configured bound on posted alerts (413, 429).
    Limit,
    /// As many requests as `http.max_concurrent_requests` are being handled: 503 at once,
    /// not a queue.
    Busy,
    /// The request (its body, say) took longer than `http.request_timeout` (408).
    Timeout,
    /// As many connections as `http.max_connections` are open: 503, then closed.
    Connections,
}

impl RejectStage {
    pub const ALL: [&'static str; 8] = [
        "auth",
        "read",
        "decode",
        "publish",
        "limit",
        "busy",
        "timeout",
        "connections",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Read => "read",
            Self::Decode => "decode",
            Self::Publish => "publish",
            Self::Limit => "limit",
            Self::Busy => "busy",
            Self::Timeout => "timeout",
            Self::Connections => "connections",
        }
    }
}

/// An HTTP ingest request was turned away.
pub struct HttpRequestRejected<'a> {
    pub stage: RejectStage,
    pub status: u16,
    pub reason: &'a str,
}

impl HttpRequestRejected<'_> {
    pub fn emit(&self, counters: &ConnectorCounters, throttle: &LogThrottle) {
        counters.error(self.stage.as_str());
        if let Some(suppressed) = throttle.admit() {
            warn!(
                stage = self.stage.as_str(),
                status = self.status,
                reason = self.reason,
                suppressed,
                "HTTP request rejected."
            );
        }
    }
}

/// Events from an HTTP request were accepted onto the bus.
pub struct HttpEventsAccepted {
    pub count: usize,
}

impl HttpEventsAccepted {
    pub fn emit(&self, counters: &ConnectorCounters) {
        counters.received.inc_by(self.count as u64);
        debug!(count = self.count, "Events accepted.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_admits_one_line_per_second() {
        let throttle = LogThrottle::default();
        assert_eq!(throttle.admit(), Some(0));
        // Same second (the test runs well within it, or the next line is admitted).
        let admitted = (0..100).filter(|_| throttle.admit().is_some()).count();
        assert!(admitted <= 1, "{admitted}");
    }
}
