//! `matrix_configs`: `homeserver` (its URL), `room_id` (`!id:server`), `access_token_file` or
//! `access_token_env`, `message` (an HTML template), `title`, `locale`, `timeout`,
//! `send_resolved`.

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::push::PushSettings;

/// One Matrix room.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    /// The homeserver's base URL, without a trailing slash.
    pub homeserver: String,
    /// `!opaque:server.example`.
    pub room_id: String,
    pub access_token: SecretSource,
    /// `title` and `locale` as every push receiver; `message` replaces the built-in HTML.
    pub push: PushSettings,
}

/// `matrix_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixSpec {
    #[serde(default)]
    homeserver: Option<String>,
    #[serde(default)]
    room_id: Option<String>,
    /// Refused: a secret in the policy file.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    access_token: Option<IgnoredAny>,
    #[serde(default)]
    access_token_file: Option<String>,
    #[serde(default)]
    access_token_env: Option<String>,
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

/// Compiles one `matrix_configs` entry; `send_resolved` defaults to true.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<MatrixSpec>(node)?;
    let before = ctx.decoder.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    let inline = ctx.decoder.refuse_inline_secret(
        label,
        node,
        "access_token",
        "access_token_file",
        "access_token_env",
    );
    let homeserver = spec
        .homeserver
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    if !IntegrationContext::is_http_url(&homeserver) {
        ctx.decoder.error(
            at("homeserver"),
            format!("{label}: matrix needs `homeserver`: its http:// or https:// URL"),
        );
    }
    let room_id = spec.room_id.clone().unwrap_or_default();
    let valid_room = room_id
        .strip_prefix('!')
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(id, server)| {
            !id.is_empty() && !server.is_empty() && !room_id.contains(char::is_whitespace)
        });
    if !valid_room {
        let hint = if room_id.starts_with('#') {
            " (an alias such as `#home:example.org` is not an id: the room's settings show its \
             internal id)"
        } else {
            ""
        };
        ctx.decoder.error(
            at("room_id"),
            format!("{label}: matrix needs `room_id` as `!id:server`{hint}"),
        );
    }
    let access_token = ctx.decoder.secret(
        label,
        node,
        ("access_token_file", spec.access_token_file.as_deref()),
        ("access_token_env", spec.access_token_env.as_deref()),
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
    let config = MatrixConfig {
        homeserver,
        room_id,
        access_token: ctx.secret_path(access_token?),
        push,
    };
    Some(Integration::new(
        "matrix",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}
