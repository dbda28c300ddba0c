//! Receivers as the routing policy configures them: a name and the integrations that notify
//! it, each with its settings. Plain data: the policy compiler (`atalaya-rules`) builds them,
//! the connectors deliver with them.
//!
//! Integrations keep Alertmanager's `<kind>_configs` keys where Alertmanager has the kind
//! (`webhook_configs`, `telegram_configs`, `email_configs`); atalaya's own kinds follow the
//! same shape (`console_configs`, `mqtt_configs`, `nats_configs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A receiver as compiled from the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    /// In the order written: webhooks first, then console, MQTT, NATS. Each is delivered and
    /// retried on its own; a notification's `integration` is an index into this list.
    pub integrations: Vec<Integration>,
}

/// One way of notifying a receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum Integration {
    Webhook(WebhookConfig),
    Console(ConsoleConfig),
    Mqtt(MqttPublishConfig),
    Nats(NatsPublishConfig),
    Telegram(TelegramConfig),
    Email(EmailConfig),
}

impl Integration {
    /// Whether resolved alerts are notified (Alertmanager's `send_resolved`).
    pub fn send_resolved(&self) -> bool {
        match self {
            Self::Webhook(c) => c.send_resolved,
            Self::Console(c) => c.send_resolved,
            Self::Mqtt(c) => c.send_resolved,
            Self::Nats(c) => c.send_resolved,
            Self::Telegram(c) => c.send_resolved,
            Self::Email(c) => c.send_resolved,
        }
    }

    /// The kind, as in metrics and logs: `webhook`, `console`, `mqtt`, `nats`, `telegram`,
    /// `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Console(_) => "console",
            Self::Mqtt(_) => "mqtt",
            Self::Nats(_) => "nats",
            Self::Telegram(_) => "telegram",
            Self::Email(_) => "email",
        }
    }
}

/// `webhook_configs`: Alertmanager's webhook JSON (version 4), POSTed to a URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL, written in the policy. It may hold a token, so it is never logged.
    pub url: Option<String>,
    /// Or a file holding it (Alertmanager's `url_file`), read when delivering.
    pub url_file: Option<PathBuf>,
    /// Default true, as in Alertmanager.
    pub send_resolved: bool,
    /// At most this many alerts per notification (0: all); the rest are counted in
    /// `truncatedAlerts`.
    pub max_alerts: usize,
    /// A request taking longer fails (and is retried). Default 10 s.
    pub timeout: Duration,
}

/// `console_configs`: one line per notification on standard output.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// Default true.
    pub send_resolved: bool,
}

/// `mqtt_configs`: the notification as JSON to `topic`, and each alert's state retained
/// under `<state_topic_prefix>/<fingerprint>` so Home Assistant can show it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttPublishConfig {
    /// Default `atalaya/notifications`.
    pub topic: String,
    /// Default `atalaya/alerts`; empty: no per-alert state topics.
    pub state_topic_prefix: String,
    /// Default true.
    pub send_resolved: bool,
}

/// `nats_configs`: the notification as JSON to a NATS subject.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsPublishConfig {
    /// Default `atalaya.notifications`.
    pub subject: String,
    /// Default true.
    pub send_resolved: bool,
}

/// Where a secret (a bot token, an SMTP password) is read from, at every send, so a rotated
/// secret is used without a reload. Secrets are never written in the policy itself.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding it (surrounding whitespace trimmed); a relative path is relative to
    /// the policy file.
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The language of the built-in message templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    En,
    Es,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }
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

/// When Telegram messages are sent silently (`disable_notification`): phones show them
/// without a sound. Silent when any rule applies; the router decides (see
/// [`Notification::silent`](super::Notification::silent)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuietConfig {
    pub rules: Vec<QuietRule>,
}

/// One `quiet` rule: it applies when both of what it gives hold (at least one is given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuietRule {
    /// Every alert of the notification has one of these `severity` labels.
    pub severities: Vec<String>,
    /// The notification is sent inside one of these named time intervals.
    pub time_intervals: Vec<String>,
}

/// `telegram_configs`: one message per notification (split when longer than Telegram
/// allows), HTML-formatted, to each chat.
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
    /// Every message silent (Alertmanager's `disable_notifications`).
    pub disable_notifications: bool,
    pub quiet: QuietConfig,
    /// Default true, as in Alertmanager.
    pub send_resolved: bool,
    pub on_resolve: OnResolve,
    /// A minijinja template replacing the built-in message (HTML; values escaped).
    pub message: Option<String>,
    pub locale: Locale,
    /// A request taking longer fails (and is retried). Default 20 s.
    pub timeout: Duration,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS (submission, port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: a relay on the same host or a trusted network only.
    None,
}

/// `email_configs`: one mail per notification, text and HTML, threaded per group.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// Recipients (Alertmanager's `to`, comma-separated addresses).
    pub to: Vec<String>,
    pub from: String,
    /// `smarthost` host, and port.
    pub host: String,
    pub port: u16,
    /// The name given in EHLO; default the `from` address' domain.
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    /// `auth_password_file` or `auth_password_env`; never inline.
    pub auth_password: Option<SecretSource>,
    pub tls: MailTls,
    /// With STARTTLS: refuse a server that does not offer it (Alertmanager's
    /// `require_tls`, default true); false sends in plain text to such a server.
    pub require_tls: bool,
    /// Extra CA certificates (PEM) to trust, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// The name the server certificate must have; default the smarthost's host.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// minijinja templates replacing the built-in subject, text and HTML parts.
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Default false, as in Alertmanager.
    pub send_resolved: bool,
    pub locale: Locale,
    /// A connection or SMTP exchange taking longer fails (and is retried). Default 30 s.
    pub timeout: Duration,
}
