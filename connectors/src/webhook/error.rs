//! [`WebhookError`]: why a webhook send failed, and what to do about it.

use std::path::PathBuf;

use crate::http::chain;
use std::time::Duration;

/// Why a webhook notification was not delivered. No variant holds the URL.
///
/// [`WebhookError::retryable`] says whether sending again may succeed (the network, a
/// timeout, HTTP 429 and 5xx) or not (no or invalid URL, any other 4xx: the receiver refused
/// the request and will refuse it again); [`WebhookError::kind`] is its metric label.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook has neither `url` nor `url_file`")]
    NoUrl,
    /// The URL file could not be read (it may appear later: a secret not yet mounted).
    #[error("cannot read the webhook URL from `{}`: {source}", path.display())]
    UrlFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `reason` says what is wrong without repeating the URL.
    #[error("the webhook URL is invalid: {reason}")]
    InvalidUrl { reason: String },
    /// The HTTP client could not be set up (TLS roots, say).
    #[error("cannot set up the HTTP client for webhooks: {}", chain(.0))]
    Client(#[source] reqwest::Error),
    /// The request could not be built (a header value that HTTP cannot carry).
    #[error("the webhook request cannot be built: {}", chain(.0))]
    InvalidRequest(#[source] reqwest::Error),
    #[error("the webhook did not answer within {timeout:?}")]
    Timeout { timeout: Duration },
    #[error("cannot connect to the webhook: {}", chain(.0))]
    Connect(#[source] reqwest::Error),
    /// The connection broke during the request.
    #[error("the webhook request failed: {}", chain(.0))]
    Request(#[source] reqwest::Error),
    /// The webhook answered with a status other than 2xx.
    #[error("the webhook answered HTTP {status}{}", reason_phrase(*.status))]
    Status {
        status: u16,
        /// The answer's `Retry-After`, if it had a usable one.
        retry_after: Option<Duration>,
    },
}

impl WebhookError {
    /// Whether sending the same notification again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::NoUrl | Self::InvalidUrl { .. } | Self::Client(_) | Self::InvalidRequest(_) => {
                false
            }
            Self::UrlFile { .. } | Self::Timeout { .. } | Self::Connect(_) | Self::Request(_) => {
                true
            }
            Self::Status { status, .. } => status_is_retryable(*status),
        }
    }

    /// How long the webhook asked us to wait before trying again (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The `reason` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoUrl => "no_url",
            Self::UrlFile { .. } => "url_file",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::Client(_) => "client",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Timeout { .. } => "timeout",
            Self::Connect(_) => "connect",
            Self::Request(_) => "request",
            Self::Status { status: 429, .. } => "http_429",
            Self::Status { status, .. } if (400..500).contains(status) => "http_4xx",
            Self::Status { status, .. } if (500..600).contains(status) => "http_5xx",
            Self::Status { .. } => "http_other",
        }
    }
}

/// Whether an HTTP answer with `status` (not 2xx) is worth another attempt: 429 (too many
/// requests) and 5xx (the server's trouble) are; every other status — a 4xx refusal, or a
/// redirect that was not followed — would get the same answer again.
pub fn status_is_retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// ` Too Many Requests`, with its leading space, or nothing for an unknown status.
fn reason_phrase(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or_else(String::new, |r| format!(" {r}"))
}

impl From<WebhookError> for atalaya_bus::delivery::DeliveryError {
    /// The one place this integration's failures become the outbox's terms.
    fn from(error: WebhookError) -> Self {
        let retry_after = error.retry_after();
        Self::new(error.retryable(), error.kind(), error.to_string()).with_retry_after(retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_alertmanager() {
        for status in [429, 500, 502, 503, 504, 599] {
            assert!(status_is_retryable(status), "{status}");
        }
        for status in [300, 301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!status_is_retryable(status), "{status}");
        }
        let status = |status| WebhookError::Status {
            status,
            retry_after: None,
        };
        assert_eq!(status(429).kind(), "http_429");
        assert_eq!(status(404).kind(), "http_4xx");
        assert_eq!(status(503).kind(), "http_5xx");
        assert_eq!(status(302).kind(), "http_other");
        assert!(status(503).retryable());
        assert!(!status(400).retryable());
        assert_eq!(
            status(429).to_string(),
            "the webhook answered HTTP 429 Too Many Requests"
        );
    }

    #[test]
    fn configuration_problems_are_permanent_and_io_is_not() {
        assert!(!WebhookError::NoUrl.retryable());
        assert!(!WebhookError::InvalidUrl { reason: "x".into() }.retryable());
        assert!(
            WebhookError::Timeout {
                timeout: Duration::from_secs(1)
            }
            .retryable()
        );
        let missing = WebhookError::UrlFile {
            path: "/run/secrets/hook".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(missing.retryable());
        assert_eq!(missing.kind(), "url_file");
    }
}
