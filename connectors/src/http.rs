//! What the receivers that talk to an HTTP service share (ntfy, Gotify, Matrix, Discord,
//! Pushover): one client, and one way a request fails — [`HttpError`], which never holds
//! the URL (tokens travel in paths and queries) nor a secret, and maps once to the outbox's
//! [`DeliveryError`].

use std::time::Duration;

use atalaya_bus::delivery::DeliveryError;
use reqwest::header::RETRY_AFTER;

use crate::secret::SecretError;

/// The HTTP client of these receivers: rustls, atalaya's user agent, at most 10 s to
/// connect. Timeouts for a whole request are set per request from each integration.
pub fn client() -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .user_agent(concat!("atalaya/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| HttpError::Request(chain(&e.without_url())))
}

/// Why a request to a service failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    /// A secret (token, user key) could not be read; it may be mounted later.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The settings cannot make a request (a URL that does not parse, say).
    #[error("{0}")]
    Invalid(String),
    #[error("the {service} did not answer within {timeout:?}")]
    Timeout {
        service: &'static str,
        timeout: Duration,
    },
    #[error("cannot connect to the {service}: {message}")]
    Connect {
        service: &'static str,
        message: String,
    },
    #[error("the request failed: {0}")]
    Request(String),
    /// The service answered with a status other than 2xx; `detail` is the start of what it
    /// said (its error message), with any secret taken out.
    #[error("the {service} answered HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        service: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        detail: String,
    },
}

impl HttpError {
    /// Whether sending again may succeed: the network, timeouts, 429, 5xx, a secret not yet
    /// there.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Secret(_) | Self::Timeout { .. } | Self::Connect { .. } | Self::Request(_) => {
                true
            }
            Self::Invalid(_) => false,
            Self::Status { status, .. } => *status == 429 || (500..600).contains(status),
        }
    }

    /// The `reason` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Secret(_) => "secret",
            Self::Invalid(_) => "invalid",
            Self::Timeout { .. } => "timeout",
            Self::Connect { .. } => "connect",
            Self::Request(_) => "request",
            Self::Status { status: 429, .. } => "http_429",
            Self::Status { status, .. } if (400..500).contains(status) => "http_4xx",
            Self::Status { status, .. } if (500..600).contains(status) => "http_5xx",
            Self::Status { .. } => "http_other",
        }
    }
}

impl From<HttpError> for DeliveryError {
    /// The one place these integrations' failures become the outbox's terms.
    fn from(error: HttpError) -> Self {
        let retry_after = match &error {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        Self::new(error.retryable(), error.kind(), error.to_string()).with_retry_after(retry_after)
    }
}

/// Sends `request` to the `service` (named in errors) within `timeout`; the answer when it
/// is 2xx. `secrets` are taken out of whatever the service says back.
pub async fn send(
    service: &'static str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
    secrets: &[&str],
) -> Result<reqwest::Response, HttpError> {
    let response = request.timeout(timeout).send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_timeout() {
            HttpError::Timeout { service, timeout }
        } else if e.is_connect() {
            HttpError::Connect {
                service,
                message: redact(&chain(&e), secrets),
            }
        } else if e.is_builder() {
            HttpError::Invalid(redact(&chain(&e), secrets))
        } else {
            HttpError::Request(redact(&chain(&e), secrets))
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
    let body = response.text().await.unwrap_or_default();
    let mut detail: String = redact(body.trim(), secrets).chars().take(200).collect();
    detail.retain(|c| !c.is_control());
    Err(HttpError::Status {
        service,
        status: status.as_u16(),
        retry_after,
        detail,
    })
}

/// `text` with every non-empty one of `secrets` replaced by `***`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    text
}

/// `Retry-After` as a delay: seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00
/// GMT`, counted from `now`; a date already past is no delay).
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = when.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// An error and its sources, joined by `: ` (reqwest's own message is only the first link).
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
