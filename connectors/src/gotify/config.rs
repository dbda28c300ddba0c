//! `gotify_configs`: `url` (the server), `token_file` or `token_env` (an application's
//! token), `priority` (0–10; default from the alerts' severity), `title`, `message`,
//! `locale`, `timeout`, `send_resolved`.

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::push::PushSettings;

/// One Gotify application.
#[derive(Debug, Clone, PartialEq)]
pub struct GotifyConfig {
    /// The server, without a trailing slash.
    pub url: String,
    /// The application token.
    pub token: SecretSource,
    /// 0 to 10; `None`: from the alerts' severity.
    pub priority: Option<u8>,
    pub push: PushSettings,
}

/// `gotify_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GotifySpec {
    #[serde(default)]
    url: Option<String>,
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

/// Compiles one `gotify_configs` entry; `send_resolved` defaults to true.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<GotifySpec>(node)?;
    let before = ctx.decoder.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    let inline = ctx
        .decoder
        .refuse_inline_secret(label, node, "token", "token_file", "token_env");
    let url = spec
        .url
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    if !IntegrationContext::is_http_url(&url) {
        ctx.decoder.error(
            at("url"),
            format!("{label}: gotify needs `url`: the server's http:// or https:// URL"),
        );
    }
    let priority = spec.priority.and_then(|p| {
        let valid = u8::try_from(p).ok().filter(|p| *p <= 10);
        if valid.is_none() {
            ctx.decoder.error(
                at("priority"),
                format!("{label}: gotify `priority` must be 0 to 10, not {p}"),
            );
        }
        valid
    });
    let token = ctx.decoder.secret(
        label,
        node,
        ("token_file", spec.token_file.as_deref()),
        ("token_env", spec.token_env.as_deref()),
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
    let config = GotifyConfig {
        url,
        token: ctx.secret_path(token?),
        priority,
        push,
    };
    Some(Integration::new(
        "gotify",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}
