//! `webhook_configs`: Alertmanager's webhook JSON (version 4), POSTed to a URL — the settings
//! and how a policy entry compiles into them.

use std::path::PathBuf;
use std::time::Duration;

use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// A webhook request taking longer fails, unless `timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL, written in the policy. It may hold a token, so it is never logged.
    pub url: Option<String>,
    /// Or a file holding it (Alertmanager's `url_file`), read when delivering.
    pub url_file: Option<PathBuf>,
    /// At most this many alerts per notification (0: all); the rest are counted in
    /// `truncatedAlerts`.
    pub max_alerts: usize,
    /// A request taking longer fails (and is retried). Default 10 s.
    pub timeout: Duration,
}

/// `webhook_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpec {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_file: Option<String>,
    #[serde(default)]
    send_resolved: Option<bool>,
    #[serde(default)]
    max_alerts: Option<i64>,
    #[serde(default)]
    timeout: Option<Text>,
    /// Refused with a clear message: atalaya's webhook has no HTTP client settings yet.
    #[serde(default)]
    http_config: Option<IgnoredAny>,
}

/// Compiles one `webhook_configs` entry; `send_resolved` defaults to true, as in
/// Alertmanager.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<WebhookSpec>(node)?;
    let d = &mut *ctx.decoder;
    let before = d.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    if spec.http_config.is_some() {
        d.error(
            node.key_position("http_config").unwrap_or(node.position),
            format!(
                "{label}: webhook `http_config` is not supported by atalaya yet (no \
                 authentication, TLS or proxy settings); put a token in the URL, written \
                 in a file named by `url_file`"
            ),
        );
    }
    match (&spec.url, &spec.url_file) {
        (Some(_), Some(_)) => d.error(
            node.key_position("url_file").unwrap_or(node.position),
            format!("{label}: give a webhook `url` or `url_file`, not both"),
        ),
        (None, None) => d.error(
            node.position,
            format!("{label}: a webhook needs `url` (or `url_file`, a file holding it)"),
        ),
        (Some(url), None) if !IntegrationContext::is_http_url(url) => d.error(
            at("url"),
            // The URL may hold a token: never repeated in messages.
            format!("{label}: the webhook `url` must be an http:// or https:// URL with a host"),
        ),
        (None, Some(file)) if file.is_empty() => d.error(
            at("url_file"),
            format!("{label}: the webhook `url_file` is empty"),
        ),
        _ => {}
    }
    let max_alerts = usize::try_from(spec.max_alerts.unwrap_or(0));
    if max_alerts.is_err() {
        d.error(
            at("max_alerts"),
            format!("{label}: webhook `max_alerts` must be 0 (every alert) or more"),
        );
    }
    let timeout = d.duration(node, "timeout", spec.timeout.as_ref(), true);
    if d.errors.len() > before {
        return None;
    }
    let config = WebhookConfig {
        url: spec.url,
        url_file: spec.url_file.as_deref().map(|f| ctx.path(f)),
        max_alerts: max_alerts.unwrap_or(0),
        timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
    };
    Some(Integration::new(
        "webhook",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}
