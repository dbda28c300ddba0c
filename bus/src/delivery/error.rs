//! [`DeliveryError`]: why one delivery attempt failed, in the terms the outbox decides on.

use std::fmt;
use std::time::Duration;

/// Why one delivery attempt failed. Every receiver maps its own errors into this once; the
/// outbox decides from it whether, and when, to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryError {
    /// Whether another attempt may succeed (the network, a timeout, HTTP 429/5xx) or not
    /// (the receiver refused it, or it cannot be sent at all).
    pub retryable: bool,
    /// How long the receiver asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The `reason` metric label: `connect`, `timeout`, `http_5xx`, `no_broker`, …
    pub reason: &'static str,
    /// For people: what went wrong. Never holds a secret (a token, a URL that may hold one).
    pub message: String,
}

impl DeliveryError {
    /// A failure another attempt may (`retryable`) or will not get past.
    pub fn new(retryable: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retryable,
            retry_after: None,
            reason,
            message: message.into(),
        }
    }

    /// A failure that another attempt would only repeat.
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(false, reason, message)
    }

    /// A failure another attempt may not meet.
    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(true, reason, message)
    }

    /// This failure, asking to wait at least `retry_after` before the next attempt.
    pub fn with_retry_after(self, retry_after: Option<Duration>) -> Self {
        Self {
            retry_after,
            ..self
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeliveryError {}
