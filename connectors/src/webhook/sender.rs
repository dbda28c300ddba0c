//! [`WebhookSender`]: one POST per notification.

use super::WebhookConfig;
use atalaya_bus::delivery::notification::Notification;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use super::error::WebhookError;
use crate::http::parse_retry_after;

/// The HTTP client webhooks are sent with: rustls, atalaya's user agent. Redirects are
/// followed as Alertmanager does (up to 10); timeouts are set per request from the webhook's
/// `timeout`.
pub fn default_client() -> Result<reqwest::Client, WebhookError> {
    reqwest::Client::builder()
        .user_agent(concat!("atalaya/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WebhookError::Client(e.without_url()))
}

/// Sends notifications to webhooks. Cheap to clone (the client is shared, with its
/// connection pool).
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// POSTs `notification` as Alertmanager's webhook JSON (version 4, at most
    /// `config.max_alerts` alerts, `externalURL` set to `external_url`) to the webhook's URL,
    /// within `config.timeout`. Any 2xx answer is success.
    pub async fn send(
        &self,
        config: &WebhookConfig,
        notification: &Notification,
        external_url: &str,
    ) -> Result<(), WebhookError> {
        let url = resolve_url(config).await?;
        let payload = notification.webhook_payload(external_url, config.max_alerts);
        // A `Value` always serializes (its map keys are strings).
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let response = self
            .client
            .post(url)
            .timeout(config.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", notification.id.as_str())
            .header("X-Atalaya-Notification-Id", notification.id.as_str())
            .body(body)
            .send()
            .await
            .map_err(|e| request_error(e, config))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        Err(WebhookError::Status {
            status: status.as_u16(),
            retry_after,
        })
    }
}

/// The webhook's URL: `url`, or the trimmed content of `url_file`; checked to be an http(s)
/// URL.
async fn resolve_url(config: &WebhookConfig) -> Result<reqwest::Url, WebhookError> {
    let text = match (&config.url, &config.url_file) {
        (Some(url), _) => url.trim().to_owned(),
        (None, Some(path)) => tokio::fs::read_to_string(path)
            .await
            .map_err(|source| WebhookError::UrlFile {
                path: path.clone(),
                source,
            })?
            .trim()
            .to_owned(),
        (None, None) => return Err(WebhookError::NoUrl),
    };
    if text.is_empty() {
        return Err(match &config.url_file {
            Some(path) if config.url.is_none() => WebhookError::InvalidUrl {
                reason: format!("`{}` is empty", path.display()),
            },
            _ => WebhookError::NoUrl,
        });
    }
    // `url`'s parse errors name the problem, never the input.
    let url = reqwest::Url::parse(&text).map_err(|e| WebhookError::InvalidUrl {
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(WebhookError::InvalidUrl {
            reason: format!("scheme `{other}` is not http or https"),
        }),
    }
}

/// A failed request as a [`WebhookError`], without the URL reqwest put in it.
fn request_error(error: reqwest::Error, config: &WebhookConfig) -> WebhookError {
    let error = error.without_url();
    if error.is_timeout() {
        WebhookError::Timeout {
            timeout: config.timeout,
        }
    } else if error.is_builder() {
        WebhookError::InvalidRequest(error)
    } else if error.is_connect() {
        WebhookError::Connect(error)
    } else {
        WebhookError::Request(error)
    }
}
