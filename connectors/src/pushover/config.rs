//! `pushover_configs`: Alertmanager's keys (`user_key_file`, `token_file`, `title`,
//! `message`, `priority`, `retry`, `expire`, `device`, `sound`, `send_resolved`) and
//! atalaya's (`user_key_env`, `token_env`, `api_url`, `silence_on_ack`,
//! `receipt_poll_interval`, `locale`, `timeout`). Keys written in
//! the policy (`user_key`, `token`) are refused: they are secrets.

use std::time::Duration;

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::push::PushSettings;

const DEFAULT_API_URL: &str = "https://api.pushover.net";
/// Alertmanager's defaults: an emergency message repeats every minute for an hour.
const DEFAULT_RETRY: Duration = Duration::from_secs(60);
const DEFAULT_EXPIRE: Duration = Duration::from_secs(3600);
/// Pushover asks for no more than one receipt poll every 5 seconds; 30 s is plenty.
const DEFAULT_RECEIPT_POLL: Duration = Duration::from_secs(30);

/// One Pushover user or group.
#[derive(Debug, Clone, PartialEq)]
pub struct PushoverConfig {
    /// The API's base URL, without a trailing slash (another only for tests or a proxy).
    pub api_url: String,
    pub user_key: SecretSource,
    pub token: SecretSource,
    /// -2 to 2; `None`: from the alerts' severity (critical → 2, warning → 1, else 0).
    pub priority: Option<i8>,
    /// How often an emergency message repeats (at least 30 s) …
    pub retry: Duration,
    /// … and for how long (at most 3 h).
    pub expire: Duration,
    pub device: Option<String>,
    pub sound: Option<String>,
    /// When an emergency is acknowledged in the app, its alerts are silenced this long
    /// (`silence_on_ack`); `None`: an acknowledgement only stops the phone.
    pub silence_on_ack: Option<Duration>,
    /// How often an emergency's receipt is asked about while waiting for that.
    pub receipt_poll_interval: Duration,
    pub push: PushSettings,
}

/// `pushover_configs` entry, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushoverSpec {
    /// Refused: secrets in the policy file.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    user_key: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    token: Option<IgnoredAny>,
    #[serde(default)]
    user_key_file: Option<String>,
    #[serde(default)]
    user_key_env: Option<String>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    retry: Option<Text>,
    #[serde(default)]
    expire: Option<Text>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    sound: Option<String>,
    #[serde(default)]
    silence_on_ack: Option<Text>,
    #[serde(default)]
    receipt_poll_interval: Option<Text>,
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

/// Compiles one `pushover_configs` entry; `send_resolved` defaults to true, as in
/// Alertmanager.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<PushoverSpec>(node)?;
    let before = ctx.decoder.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    let inline_user =
        ctx.decoder
            .refuse_inline_secret(label, node, "user_key", "user_key_file", "user_key_env");
    let inline_token =
        ctx.decoder
            .refuse_inline_secret(label, node, "token", "token_file", "token_env");
    let api_url = spec
        .api_url
        .as_deref()
        .unwrap_or(DEFAULT_API_URL)
        .trim_end_matches('/')
        .to_owned();
    if !IntegrationContext::is_http_url(&api_url) {
        ctx.decoder.error(
            at("api_url"),
            format!("{label}: pushover `api_url` must be an http:// or https:// URL"),
        );
    }
    let priority = spec.priority.and_then(|p| {
        let valid = i8::try_from(p).ok().filter(|p| (-2..=2).contains(p));
        if valid.is_none() {
            ctx.decoder.error(
                at("priority"),
                format!("{label}: pushover `priority` must be -2 to 2, not {p}"),
            );
        }
        valid
    });
    let retry = ctx
        .decoder
        .duration(node, "retry", spec.retry.as_ref(), true);
    let expire = ctx
        .decoder
        .duration(node, "expire", spec.expire.as_ref(), true);
    let retry = retry.unwrap_or(DEFAULT_RETRY);
    let expire = expire.unwrap_or(DEFAULT_EXPIRE);
    if retry < Duration::from_secs(30) {
        ctx.decoder.error(
            at("retry"),
            format!("{label}: pushover `retry` must be at least 30s (Pushover's minimum)"),
        );
    }
    if expire > Duration::from_secs(10_800) {
        ctx.decoder.error(
            at("expire"),
            format!("{label}: pushover `expire` must be at most 3h (Pushover's maximum)"),
        );
    }
    let silence_on_ack =
        ctx.decoder
            .duration(node, "silence_on_ack", spec.silence_on_ack.as_ref(), true);
    let receipt_poll_interval = ctx
        .decoder
        .duration(
            node,
            "receipt_poll_interval",
            spec.receipt_poll_interval.as_ref(),
            true,
        )
        .unwrap_or(DEFAULT_RECEIPT_POLL);
    let user_key = ctx.decoder.secret(
        label,
        node,
        ("user_key_file", spec.user_key_file.as_deref()),
        ("user_key_env", spec.user_key_env.as_deref()),
        !inline_user,
    );
    let token = ctx.decoder.secret(
        label,
        node,
        ("token_file", spec.token_file.as_deref()),
        ("token_env", spec.token_env.as_deref()),
        !inline_token,
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
    let config = PushoverConfig {
        api_url,
        user_key: ctx.secret_path(user_key?),
        token: ctx.secret_path(token?),
        priority,
        retry,
        expire,
        device: spec.device,
        sound: spec.sound,
        silence_on_ack,
        receipt_poll_interval,
        push,
    };
    Some(Integration::new(
        "pushover",
        spec.send_resolved.unwrap_or(true),
        config,
    ))
}
