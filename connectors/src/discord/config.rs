//! `discord_configs`: Alertmanager's keys (`webhook_url_file`, `title`, `message`,
//! `username`, `avatar_url`, `send_resolved`) and atalaya's (`webhook_url_env`, `locale`,
//! `timeout`). A `webhook_url` written in the policy is refused: it holds the webhook's token.

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::push::PushSettings;

/// One Discord webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscordConfig {
    /// The webhook URL (it holds the token).
    pub webhook_url: SecretSource,
    /// The name the posts appear under, instead of the webhook's.
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub push: PushSettings,
}

/// `discord_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscordSpec {
    /// Refused: a secret in the policy file.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    webhook_url: Option<IgnoredAny>,
    #[serde(default)]
    webhook_url_file: Option<String>,
    #[serde(default)]
    webhook_url_env: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
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

/// Compiles one `discord_configs` entry; `send_resolved` defaults to true, as in
/// Alertmanager.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<DiscordSpec>(node)?;
    let before = ctx.decoder.errors.len();
    // The URL holds the webhook's token.
    let inline = ctx.decoder.refuse_inline_secret(
        label,
        node,
        "webhook_url",
        "webhook_url_file",
        "webhook_url_env",
    );
    if let Some(avatar) = &spec.avatar_url
        && !IntegrationContext::is_http_url(avatar)
    {
        ctx.decoder.error(
            node.get("avatar_url").map_or(node.position, |n| n.position),
            format!("{label}: discord `avatar_url` must be an http:// or https:// URL"),
        );
    }
    let webhook_url = ctx.decoder.secret(
        label,
        node,
        ("webhook_url_file", spec.webhook_url_file.as_deref()),
        ("webhook_url_env", spec.webhook_url_env.as_deref()),
        !inline,
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
    let config = DiscordConfig {
        webhook_url: ctx.secret_path(webhook_url?),
        username: spec.username,
        avatar_url: spec.avatar_url,
        push,
    };
    Some(Integration::new(
        "discord",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}
