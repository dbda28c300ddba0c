//! Compiling `telegram_configs`: Alertmanager's keys (`bot_token_file`, `chat_id`,
//! `message_thread_id`, `api_url`, `parse_mode`, `disable_notifications`, `send_resolved`,
//! `message`) and atalaya's (`bot_token_env`, `chat_ids`, `on_resolve`, `quiet`, `locale`,
//! `timeout`). A token written in the policy is refused: secrets come from files or the
//! environment.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Compiler;
use super::spec::Text;
use crate::yaml::{Node, NodeKind};
use atalaya_bus::delivery::integration::{
    OnResolve, QuietConfig, QuietRule, TelegramChat, TelegramConfig,
};

/// The Bot API everyone uses, unless `api_url` (or the global `telegram_api_url`) says
/// otherwise.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
const DEFAULT_TELEGRAM_TIMEOUT: Duration = Duration::from_secs(20);

/// `telegram_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TelegramSpec {
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

impl Compiler<'_> {
    pub(super) fn telegram(
        &mut self,
        label: &str,
        node: &Node,
        global_api_url: Option<&str>,
        intervals: &HashSet<String>,
    ) -> Option<TelegramConfig> {
        let spec = self.decode::<TelegramSpec>(node)?;
        let before = self.errors.len();
        let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
        if let Some(position) = node.key_position("bot_token") {
            self.error(
                position,
                format!(
                    "{label}: `bot_token` would put a secret in the policy file; write the \
                     token in a file named by `bot_token_file` (or name an environment \
                     variable holding it with `bot_token_env`)"
                ),
            );
        }
        if let Some(position) = node.key_position("http_config") {
            self.error(
                position,
                format!(
                    "{label}: telegram `http_config` is not supported by atalaya yet; use \
                     `api_url` to reach the Bot API through another address"
                ),
            );
        }
        let bot_token = self.secret(
            label,
            node,
            ("bot_token_file", spec.bot_token_file.as_deref()),
            ("bot_token_env", spec.bot_token_env.as_deref()),
            node.key_position("bot_token").is_none(),
        );

        let mut chats = Vec::new();
        match (&spec.chat_id, &spec.chat_ids) {
            (Some(_), Some(_)) => self.error(
                node.key_position("chat_ids").unwrap_or(node.position),
                format!("{label}: give telegram `chat_id` or `chat_ids`, not both"),
            ),
            (None, None) => self.error(
                node.position,
                format!(
                    "{label}: a telegram integration needs `chat_id` (a chat's number or \
                     `@channel`) or `chat_ids`"
                ),
            ),
            (Some(chat), None) => chats.extend(self.chat(label, at("chat_id"), chat)),
            (None, Some(list)) => {
                let items = node
                    .get("chat_ids")
                    .map(|n| self.items(n, "chat_ids"))
                    .unwrap_or_default();
                if list.is_empty() {
                    self.error(at("chat_ids"), format!("{label}: `chat_ids` is empty"));
                }
                for (chat, item) in list.iter().zip(items) {
                    if let Some(chat) = self.chat(label, item.position, chat) {
                        if chats.contains(&chat) {
                            self.error(
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
                self.error(
                    at("message_thread_id"),
                    format!("{label}: `message_thread_id` must be a topic's number, above 0"),
                );
            }
            id
        });
        let api_url = spec
            .api_url
            .as_deref()
            .or(global_api_url)
            .unwrap_or(DEFAULT_TELEGRAM_API_URL)
            .trim_end_matches('/')
            .to_owned();
        if !super::receivers::is_http_url(&api_url) {
            self.error(
                at("api_url"),
                format!("{label}: telegram `api_url` must be an http:// or https:// URL"),
            );
        }
        if let Some(mode) = &spec.parse_mode
            && !mode.eq_ignore_ascii_case("html")
        {
            self.error(
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
                self.error(
                    at("on_resolve"),
                    format!(
                        "{label}: `on_resolve` must be `edit`, `reply` or `new`, not `{other}`"
                    ),
                );
                OnResolve::Edit
            }
        };
        let quiet = match node.get("quiet") {
            Some(quiet) => self.quiet(label, quiet, intervals),
            None => QuietConfig::default(),
        };
        let message = self.message_template(label, node, "message", spec.message);
        let locale = self.locale(label, node, spec.locale.as_deref());
        let timeout = self.duration(node, "timeout", spec.timeout.as_ref(), true);
        if self.errors.len() > before {
            return None;
        }
        Some(TelegramConfig {
            bot_token: bot_token?,
            chats,
            message_thread_id,
            api_url,
            disable_notifications: spec.disable_notifications.unwrap_or(false),
            quiet,
            send_resolved: spec.send_resolved.unwrap_or(true),
            on_resolve,
            message,
            locale,
            timeout: timeout.unwrap_or(DEFAULT_TELEGRAM_TIMEOUT),
        })
    }

    /// A chat: a number, or a channel's `@username`.
    fn chat(
        &mut self,
        label: &str,
        position: crate::yaml::Position,
        text: &Text,
    ) -> Option<TelegramChat> {
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
        self.error(
            position,
            format!(
                "{label}: `{text}` is not a Telegram chat: write the chat's number (negative \
                 for groups, e.g. -1001234567890) or a public channel's `@name`"
            ),
        );
        None
    }

    /// `quiet:`: one rule (a mapping) or a list of them.
    fn quiet(&mut self, label: &str, node: &Node, intervals: &HashSet<String>) -> QuietConfig {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut rules = Vec::new();
        for item in items {
            let Some(spec) = self.decode::<QuietSpec>(item) else {
                continue;
            };
            let names = spec.time_intervals.unwrap_or_default();
            let positions: Vec<crate::yaml::Position> = match item.get("time_intervals") {
                Some(Node {
                    kind: NodeKind::Seq(list),
                    ..
                }) => list.iter().map(|n| n.position).collect(),
                _ => Vec::new(),
            };
            for (name, position) in names.iter().zip(positions) {
                if !intervals.contains(name) {
                    self.error(
                        position,
                        format!(
                            "{label}: quiet: unknown time interval `{name}`; define it under \
                             `time_intervals:`{}",
                            super::did_you_mean(name, intervals)
                        ),
                    );
                }
            }
            let rule = QuietRule {
                severities: spec.severities.unwrap_or_default(),
                time_intervals: names,
            };
            if rule.severities.is_empty() && rule.time_intervals.is_empty() {
                self.error(
                    item.position,
                    format!("{label}: a quiet rule needs `severities`, `time_intervals`, or both"),
                );
            }
            rules.push(rule);
        }
        QuietConfig { rules }
    }
}
