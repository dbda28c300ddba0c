//! Internal events of the NATS connector: one struct per thing worth telling, whose `emit`
//! writes the log line and counts the metric together, so logs and metrics never disagree.
//!
//! What outsiders can cause at will (bad messages) and what repeats while a server is away
//! (failed acks, failed fetches) is logged through a [`LogThrottle`]: counted in full, logged at
//! most once a second, with the number of lines held back.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atalaya_bus::connector_metrics::ConnectorCounters;
use tracing::{debug, warn};

/// Lets one log line through per second; counts the rest.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    /// When the last line was let through.
    last: Option<Instant>,
    /// Lines held back since then, reported with the next one.
    suppressed: u64,
}

impl LogThrottle {
    /// `Some(n)` when a line may be logged now, `n` being how many were held back before it.
    pub fn admit(&self) -> Option<u64> {
        // Two plain fields: a panic elsewhere cannot leave them half-written.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match state.last {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

/// A message was skipped: not a valid subject, a payload the policy refuses, too large.
pub(crate) struct MessageSkipped<'a> {
    pub subject: &'a str,
    pub stage: &'static str,
    pub reason: &'a str,
}

impl MessageSkipped<'_> {
    pub fn emit(&self, counters: &ConnectorCounters, throttle: &LogThrottle) {
        counters.error(self.stage);
        if let Some(suppressed) = throttle.admit() {
            warn!(
                subject = %self.subject,
                stage = self.stage,
                reason = %self.reason,
                suppressed,
                "NATS message skipped."
            );
        }
    }
}

/// A message arrived whose subject the pattern does not match (NATS delivered more than the
/// pattern means). Not an error: dropped quietly.
pub(crate) struct MessageNotMatching<'a> {
    pub subject: &'a str,
    pub pattern: &'a str,
}

impl MessageNotMatching<'_> {
    pub fn emit(&self) {
        debug!(subject = %self.subject, pattern = %self.pattern, "NATS message does not match the pattern; dropped.");
    }
}

/// A JetStream ack (or nak) did not reach the server; the message will be redelivered.
pub(crate) struct AckFailed<'a> {
    pub consumer: &'a str,
    pub error: &'a dyn Display,
}

impl AckFailed<'_> {
    pub fn emit(&self, counters: &ConnectorCounters, throttle: &LogThrottle) {
        counters.error("ack");
        if let Some(suppressed) = throttle.admit() {
            warn!(consumer = %self.consumer, error = %self.error, suppressed, "JetStream ack failed; the message will be redelivered.");
        }
    }
}

/// Getting the stream, or creating or binding the consumer, failed; it is retried. Logged
/// when the reason changes, so a long outage writes one line, not one per attempt.
pub(crate) struct ConsumerSetupFailed<'a> {
    pub consumer: &'a str,
    pub error: &'a str,
    pub retry_in: Duration,
    pub log: bool,
}

impl ConsumerSetupFailed<'_> {
    pub fn emit(&self, counters: &ConnectorCounters) {
        counters.error("subscribe");
        if self.log {
            warn!(consumer = %self.consumer, error = %self.error, retry_in = ?self.retry_in, "Cannot set up the JetStream consumer; retrying.");
        }
    }
}

/// A pull request for messages failed; the consumer is set up again.
pub(crate) struct FetchFailed<'a> {
    pub consumer: &'a str,
    pub error: &'a dyn Display,
}

impl FetchFailed<'_> {
    pub fn emit(&self, counters: &ConnectorCounters, throttle: &LogThrottle) {
        counters.error("subscribe");
        if let Some(suppressed) = throttle.admit() {
            warn!(consumer = %self.consumer, error = %self.error, suppressed, "JetStream fetch failed; setting the consumer up again.");
        }
    }
}

/// The bus refused an event: it is closed, so the source stops.
pub(crate) struct BusPublishFailed<'a> {
    pub subject: &'a str,
    pub error: &'a dyn Display,
}

impl BusPublishFailed<'_> {
    pub fn emit(&self, counters: &ConnectorCounters) {
        counters.error("publish");
        warn!(subject = %self.subject, error = %self.error, "Bus refused a NATS message; the source stops.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_line_through_per_second() {
        let throttle = LogThrottle::default();
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        throttle
            .state
            .lock()
            .unwrap()
            .last
            .replace(Instant::now() - Duration::from_secs(2));
        assert_eq!(throttle.admit(), Some(2));
    }
}
