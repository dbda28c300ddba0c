//! `ntfy_configs`: `url` (the server, default `https://ntfy.sh`), `topic`, `token_file` or
//! `token_env`, `priority` (1–5; default from the alerts' severity), `tags`, `click`,
//! `title`, `message`, `locale`, `timeout`, `send_resolved`.

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::push::PushSettings;

const DEFAULT_URL: &str = "https://ntfy.sh";

/// One ntfy topic.
#[derive(Debug, Clone, PartialEq)]
pub struct NtfyConfig {
    /// The server, without a trailing slash.
    pub url: String,
    pub topic: String,
    /// An access token, for protected topics.
    pub token: Option<SecretSource>,
    /// 1 (min) to 5 (max); `None`: from the alerts' severity.
    pub priority: Option<u8>,
    /// ntfy tags (emoji short codes show as emoji), besides the status marker.
    pub tags: Vec<String>,
    /// Where tapping the notification goes; default the alert's source, else atalaya.
    pub click: Option<String>,
    pub push: PushSettings,
}

/// `ntfy_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NtfySpec {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    /// Refused: a secret in the policy file.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    token: Option<IgnoredAny>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    click: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    timeout: Option<Text>,
    #[serde(default)]
    send_resolved: Option<bool>,
}

/// Compiles one `ntfy_configs` entry; `send_resolved` defaults to true.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<NtfySpec>(node)?;
    let before = ctx.decoder.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    ctx.decoder
        .refuse_inline_secret(label, node, "token", "token_file", "token_env");
    let url = spec
        .url
        .as_deref()
        .unwrap_or(DEFAULT_URL)
        .trim_end_matches('/')
        .to_owned();
    if !IntegrationContext::is_http_url(&url) {
        ctx.decoder.error(
            at("url"),
            format!("{label}: ntfy `url` must be the server's http:// or https:// URL"),
        );
    }
    let topic = spec.topic.clone().unwrap_or_default();
    let valid_topic = !topic.is_empty()
        && topic.len() <= 64
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_topic {
        ctx.decoder.error(
            at("topic"),
            format!(
                "{label}: ntfy needs a `topic`: 1 to 64 letters, digits, `-` or `_` (as ntfy \
                 allows)"
            ),
        );
    }
    let priority = spec.priority.and_then(|p| {
        let valid = u8::try_from(p).ok().filter(|p| (1..=5).contains(p));
        if valid.is_none() {
            ctx.decoder.error(
                at("priority"),
                format!("{label}: ntfy `priority` must be 1 (min) to 5 (max), not {p}"),
            );
        }
        valid
    });
    if let Some(click) = &spec.click
        && !IntegrationContext::is_http_url(click)
    {
        ctx.decoder.error(
            at("click"),
            format!("{label}: ntfy `click` must be an http:// or https:// URL"),
        );
    }
    let token = ctx.decoder.secret(
        label,
        node,
        ("token_file", spec.token_file.as_deref()),
        ("token_env", spec.token_env.as_deref()),
        false,
    );
    let push = PushSettings::compile(
        ctx,
        node,
        spec.title,
        spec.message,
        spec.locale.as_deref(),
        spec.timeout.as_ref(),
    );
    if ctx.decoder.errors.len() > before {
        return None;
    }
    let config = NtfyConfig {
        url,
        topic,
        token: token.map(|t| ctx.secret_path(t)),
        priority,
        tags: spec.tags.unwrap_or_default(),
        click: spec.click,
        push,
    };
    Some(Integration::new(
        "ntfy",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}
