//! `telegram_configs`: the settings of a Telegram integration and how a policy entry
//! compiles into them — Alertmanager's keys (`bot_token_file`, `chat_id`,
//! `message_thread_id`, `api_url`, `parse_mode`, `disable_notifications`, `send_resolved`,
//! `message`) and atalaya's (`bot_token_env`, `chat_ids`, `on_resolve`, `quiet`, `locale`,
//! `timeout`, and for the two-way bot `allowed_users` and `button_max_age`). A token written in the policy is refused: secrets come from files or the
//! environment.

use std::fmt;
use std::time::Duration;

use atalaya_bus::delivery::integration::{QuietConfig, QuietRule, SecretSource};
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, NodeKind, Position, Text, did_you_mean};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::templates::{Locale, locale, message_template};

/// The Bot API everyone uses, unless `api_url` (or the global `telegram_api_url`) says
/// otherwise.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
const DEFAULT_TELEGRAM_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the buttons of a message act, unless `button_max_age` says otherwise.
pub const DEFAULT_BUTTON_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// `telegram_configs`: one message per notification (split when longer than Telegram
/// allows), HTML-formatted, to each chat. Whether it rings is the router's decision
/// (`disable_notifications` and `quiet` become the integration's
/// [`QuietConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramConfig {
    /// `bot_token_file` or `bot_token_env`; never inline.
    pub bot_token: SecretSource,
    /// One or more chats, each sent the same messages.
    pub chats: Vec<TelegramChat>,
    /// A forum topic of the chats (`message_thread_id`).
    pub message_thread_id: Option<i32>,
    /// The Bot API base URL. Default `https://api.telegram.org`.
    pub api_url: String,
    pub on_resolve: OnResolve,
    /// A minijinja template replacing the built-in message (HTML; values escaped).
    pub message: Option<String>,
    pub locale: Locale,
    /// A request taking longer fails (and is retried). Default 20 s.
    pub timeout: Duration,
    /// Telegram users who may use the bot for this receiver, each with a role. Empty (the
    /// default): messages only, no buttons, and the bot does not read its updates.
    pub allowed_users: Vec<AllowedUser>,
    /// Buttons older than this answer "expired". Default 7 days.
    pub button_max_age: Duration,
}

impl TelegramConfig {
    /// Whether firing messages carry silence buttons: someone may press them.
    pub fn has_buttons(&self) -> bool {
        self.allowed_users.iter().any(|u| u.role == Role::Silence)
    }

    /// The role of Telegram user `id`, if they are allowed at all.
    pub fn role_of(&self, id: u64) -> Option<Role> {
        self.allowed_users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.role)
    }
}

/// A Telegram user allowed to use the bot (`allowed_users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedUser {
    /// The user's numeric id (`from.id` in what Telegram sends; not the @username, which
    /// its owner can change or give away).
    pub id: u64,
    pub role: Role,
}

/// What an allowed user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `/alerts`, `/silences`, `/status`, `/help`.
    Read,
    /// That, and silence: the buttons, `/silence`, `/unsilence`.
    Silence,
}

/// A Telegram chat: its numeric id (negative for groups and channels) or a public
/// channel's `@username`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TelegramChat {
    Id(i64),
    Username(String),
}

impl TelegramChat {
    /// Whether Telegram's group limit (20 messages a minute) applies: groups, supergroups
    /// and channels, whose ids are negative, and channels named by `@username`.
    pub fn is_group(&self) -> bool {
        match self {
            Self::Id(id) => *id < 0,
            Self::Username(_) => true,
        }
    }
}

impl fmt::Display for TelegramChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Username(name) => f.write_str(name),
        }
    }
}

/// What a Telegram integration does with a notification that resolves alerts of a message
/// it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnResolve {
    /// Edit the group's message in place (marking its alerts resolved): no new message.
    #[default]
    Edit,
    /// Send the resolved message as a reply to the group's message.
    Reply,
    /// Send it as a new message.
    New,
}

/// `telegram_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelegramSpec {
    /// Refused: a secret in the policy file.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    bot_token: Option<IgnoredAny>,
    #[serde(default)]
    bot_token_file: Option<String>,
    #[serde(default)]
    bot_token_env: Option<String>,
    /// Read from the node (a number or `@channel`), so each is placed on its own.
    #[serde(default)]
    chat_id: Option<Text>,
    #[serde(default)]
    chat_ids: Option<Vec<Text>>,
    #[serde(default)]
    message_thread_id: Option<i64>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    parse_mode: Option<String>,
    #[serde(default)]
    disable_notifications: Option<bool>,
    #[serde(default)]
    send_resolved: Option<bool>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    on_resolve: Option<String>,
    /// A rule or a list of rules, read from the node.
    #[serde(default)]
    #[allow(dead_code, reason = "read from the node, rule by rule")]
    quiet: Option<IgnoredAny>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    timeout: Option<Text>,
    /// Refused: no proxy or client settings yet.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    http_config: Option<IgnoredAny>,
    #[serde(default)]
    allowed_users: Option<Vec<AllowedUserSpec>>,
    #[serde(default)]
    button_max_age: Option<Text>,
}

/// One `allowed_users` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedUserSpec {
    id: i64,
    #[serde(default)]
    role: Option<String>,
}

/// One `quiet:` rule of a Telegram integration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietSpec {
    #[serde(default)]
    severities: Option<Vec<String>>,
    #[serde(default)]
    time_intervals: Option<Vec<String>>,
}

/// Compiles one `telegram_configs` entry; `send_resolved` defaults to true, as in
/// Alertmanager; `api_url` falls back to `global: telegram_api_url`.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<TelegramSpec>(node)?;
    let global_api_url = ctx
        .global
        .and_then(|g| g.get("telegram_api_url"))
        .and_then(|n| match &n.kind {
            NodeKind::String(url) => Some(url.clone()),
            _ => None,
        });
    let before = ctx.decoder.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    if let Some(position) = node.key_position("bot_token") {
        ctx.decoder.error(
            position,
            format!(
                "{label}: `bot_token` would put a secret in the policy file; write the \
                 token in a file named by `bot_token_file` (or name an environment \
                 variable holding it with `bot_token_env`)"
            ),
        );
    }
    if let Some(position) = node.key_position("http_config") {
        ctx.decoder.error(
            position,
            format!(
                "{label}: telegram `http_config` is not supported by atalaya yet; use \
                 `api_url` to reach the Bot API through another address"
            ),
        );
    }
    let bot_token = ctx.decoder.secret(
        label,
        node,
        ("bot_token_file", spec.bot_token_file.as_deref()),
        ("bot_token_env", spec.bot_token_env.as_deref()),
        node.key_position("bot_token").is_none(),
    );

    let mut chats = Vec::new();
    match (&spec.chat_id, &spec.chat_ids) {
        (Some(_), Some(_)) => ctx.decoder.error(
            node.key_position("chat_ids").unwrap_or(node.position),
            format!("{label}: give telegram `chat_id` or `chat_ids`, not both"),
        ),
        (None, None) => ctx.decoder.error(
            node.position,
            format!(
                "{label}: a telegram integration needs `chat_id` (a chat's number or \
                 `@channel`) or `chat_ids`"
            ),
        ),
        (Some(chat), None) => chats.extend(parse_chat(ctx, at("chat_id"), chat)),
        (None, Some(list)) => {
            let items = node
                .get("chat_ids")
                .map(|n| ctx.decoder.items(n, "chat_ids"))
                .unwrap_or_default();
            if list.is_empty() {
                ctx.decoder
                    .error(at("chat_ids"), format!("{label}: `chat_ids` is empty"));
            }
            for (chat, item) in list.iter().zip(items) {
                if let Some(chat) = parse_chat(ctx, item.position, chat) {
                    if chats.contains(&chat) {
                        ctx.decoder.error(
                            item.position,
                            format!("{label}: chat `{chat}` is listed twice"),
                        );
                    }
                    chats.push(chat);
                }
            }
        }
    }

    let message_thread_id = spec.message_thread_id.and_then(|id| {
        let id = i32::try_from(id).ok().filter(|id| *id > 0);
        if id.is_none() {
            ctx.decoder.error(
                at("message_thread_id"),
                format!("{label}: `message_thread_id` must be a topic's number, above 0"),
            );
        }
        id
    });
    let api_url = spec
        .api_url
        .as_deref()
        .or(global_api_url.as_deref())
        .unwrap_or(DEFAULT_TELEGRAM_API_URL)
        .trim_end_matches('/')
        .to_owned();
    if !IntegrationContext::is_http_url(&api_url) {
        ctx.decoder.error(
            at("api_url"),
            format!("{label}: telegram `api_url` must be an http:// or https:// URL"),
        );
    }
    if let Some(mode) = &spec.parse_mode
        && !mode.eq_ignore_ascii_case("html")
    {
        ctx.decoder.error(
            at("parse_mode"),
            format!(
                "{label}: atalaya writes Telegram messages as HTML; `parse_mode` can only \
                 be `HTML`, not `{mode}`"
            ),
        );
    }
    let on_resolve = match spec.on_resolve.as_deref() {
        None | Some("edit") => OnResolve::Edit,
        Some("reply") => OnResolve::Reply,
        Some("new") => OnResolve::New,
        Some(other) => {
            ctx.decoder.error(
                at("on_resolve"),
                format!("{label}: `on_resolve` must be `edit`, `reply` or `new`, not `{other}`"),
            );
            OnResolve::Edit
        }
    };
    let mut quiet = match node.get("quiet") {
        Some(quiet) => self::quiet(ctx, quiet),
        None => QuietConfig::default(),
    };
    quiet.always = spec.disable_notifications.unwrap_or(false);
    let message = message_template(ctx, node, "message", spec.message);
    let locale = locale(ctx, node, spec.locale.as_deref());
    let timeout = ctx
        .decoder
        .duration(node, "timeout", spec.timeout.as_ref(), true);
    let button_max_age =
        ctx.decoder
            .duration(node, "button_max_age", spec.button_max_age.as_ref(), true);
    let allowed_users = allowed_users(ctx, node, spec.allowed_users.unwrap_or_default());
    if ctx.decoder.errors.len() > before {
        return None;
    }
    let bot_token = ctx.secret_path(bot_token?);
    let config = TelegramConfig {
        bot_token,
        chats,
        message_thread_id,
        api_url,
        on_resolve,
        message,
        locale,
        timeout: timeout.unwrap_or(DEFAULT_TELEGRAM_TIMEOUT),
        allowed_users,
        button_max_age: button_max_age.unwrap_or(DEFAULT_BUTTON_MAX_AGE),
    };
    Some(Integration::new("telegram", spec.send_resolved.unwrap_or(true), config).with_quiet(quiet))
}

/// `allowed_users`: user ids (positive: a person, not a group) each listed once, with
/// `role: read` (the default) or `silence`.
fn allowed_users(
    ctx: &mut IntegrationContext<'_>,
    node: &Node,
    specs: Vec<AllowedUserSpec>,
) -> Vec<AllowedUser> {
    let label = ctx.label;
    let items = node
        .get("allowed_users")
        .map(|n| ctx.decoder.items(n, "allowed_users"))
        .unwrap_or_default();
    let mut users: Vec<AllowedUser> = Vec::new();
    for (spec, item) in specs.into_iter().zip(items) {
        let at = |key: &str| item.get(key).map_or(item.position, |n| n.position);
        let role = match spec.role.as_deref() {
            None | Some("read") => Role::Read,
            Some("silence") => Role::Silence,
            Some(other) => {
                ctx.decoder.error(
                    at("role"),
                    format!("{label}: a user's `role` is `read` or `silence`, not `{other}`"),
                );
                continue;
            }
        };
        let Some(id) = u64::try_from(spec.id).ok().filter(|id| *id > 0) else {
            ctx.decoder.error(
                at("id"),
                format!(
                    "{label}: `{}` is not a Telegram user id: a person's id is a positive \
                     number (the bot's /help shows yours)",
                    spec.id
                ),
            );
            continue;
        };
        if users.iter().any(|u| u.id == id) {
            ctx.decoder
                .error(at("id"), format!("{label}: user {id} is listed twice"));
            continue;
        }
        users.push(AllowedUser { id, role });
    }
    users
}

/// A chat: a number, or a channel's `@username`.
fn parse_chat(
    ctx: &mut IntegrationContext<'_>,
    position: Position,
    text: &Text,
) -> Option<TelegramChat> {
    let label = ctx.label;
    let text = text.as_str().trim();
    if let Ok(id) = text.parse::<i64>()
        && id != 0
    {
        return Some(TelegramChat::Id(id));
    }
    let valid_username = text.strip_prefix('@').is_some_and(|name| {
        (4..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if valid_username {
        return Some(TelegramChat::Username(text.to_owned()));
    }
    ctx.decoder.error(
        position,
        format!(
            "{label}: `{text}` is not a Telegram chat: write the chat's number (negative \
             for groups, e.g. -1001234567890) or a public channel's `@name`"
        ),
    );
    None
}

/// `quiet:`: one rule (a mapping) or a list of them, naming the policy's time intervals.
fn quiet(ctx: &mut IntegrationContext<'_>, node: &Node) -> QuietConfig {
    let label = ctx.label;
    let intervals = ctx.time_intervals;
    let items: Vec<&Node> = match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut rules = Vec::new();
    for item in items {
        let Some(spec) = ctx.decoder.decode::<QuietSpec>(item) else {
            continue;
        };
        let names = spec.time_intervals.unwrap_or_default();
        let positions: Vec<Position> = match item.get("time_intervals") {
            Some(Node {
                kind: NodeKind::Seq(list),
                ..
            }) => list.iter().map(|n| n.position).collect(),
            _ => Vec::new(),
        };
        for (name, position) in names.iter().zip(positions) {
            if !intervals.contains(name) {
                ctx.decoder.error(
                    position,
                    format!(
                        "{label}: quiet: unknown time interval `{name}`; define it under \
                         `time_intervals:`{}",
                        did_you_mean(name, intervals)
                    ),
                );
            }
        }
        let rule = QuietRule {
            severities: spec.severities.unwrap_or_default(),
            time_intervals: names,
        };
        if rule.severities.is_empty() && rule.time_intervals.is_empty() {
            ctx.decoder.error(
                item.position,
                format!("{label}: a quiet rule needs `severities`, `time_intervals`, or both"),
            );
        }
        rules.push(rule);
    }
    QuietConfig {
        always: false,
        rules,
    }
}
