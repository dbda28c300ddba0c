//! The policy file as written: serde types with Alertmanager's keys.
//!
//! Every field is optional here, required ones are checked when compiling: that lets each
//! key of a mapping be decoded on its own after a failure, so one mistake does not hide the
//! next (see `Compiler::decode`). Scalars read as text ([`Text`]) also take numbers and
//! booleans, as Alertmanager's YAML library does (`days_of_month: [1, 15]`, `group_wait: 0`).

use std::collections::BTreeMap;

pub(super) use atalaya_bus::yaml::Text;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The top-level keys, each decoded on its own later; this only refuses unknown ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "only the keys matter; each value is decoded on its own"
)]
pub(super) struct PolicySpec {
    #[serde(default)]
    global: Option<IgnoredAny>,
    #[serde(default)]
    route: Option<IgnoredAny>,
    #[serde(default)]
    receivers: Option<IgnoredAny>,
    #[serde(default)]
    inhibit_rules: Option<IgnoredAny>,
    #[serde(default)]
    time_intervals: Option<IgnoredAny>,
    #[serde(default)]
    mute_time_intervals: Option<IgnoredAny>,
    #[serde(default)]
    templates: Option<IgnoredAny>,
}

/// `global:`. atalaya accepts Alertmanager's globals, so an Alertmanager configuration loads
/// as it is; it reads the `smtp_*` defaults of email integrations and `telegram_api_url`,
/// and checks `resolve_timeout`. `smtp_auth_password` is refused (a secret in the file).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "accepted for compatibility with Alertmanager; atalaya reads few"
)]
pub(super) struct GlobalSpec {
    #[serde(default)]
    pub(super) resolve_timeout: Option<Text>,
    #[serde(default)]
    http_config: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) smtp_from: Option<String>,
    #[serde(default)]
    pub(super) smtp_hello: Option<String>,
    #[serde(default)]
    pub(super) smtp_smarthost: Option<String>,
    #[serde(default)]
    pub(super) smtp_auth_username: Option<String>,
    #[serde(default)]
    smtp_auth_password: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) smtp_auth_password_file: Option<String>,
    #[serde(default)]
    smtp_auth_secret: Option<IgnoredAny>,
    #[serde(default)]
    smtp_auth_secret_file: Option<IgnoredAny>,
    #[serde(default)]
    smtp_auth_identity: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) smtp_require_tls: Option<bool>,
    #[serde(default)]
    smtp_tls_config: Option<IgnoredAny>,
    #[serde(default)]
    slack_api_url: Option<IgnoredAny>,
    #[serde(default)]
    slack_api_url_file: Option<IgnoredAny>,
    #[serde(default)]
    pagerduty_url: Option<IgnoredAny>,
    #[serde(default)]
    opsgenie_api_url: Option<IgnoredAny>,
    #[serde(default)]
    opsgenie_api_key: Option<IgnoredAny>,
    #[serde(default)]
    opsgenie_api_key_file: Option<IgnoredAny>,
    #[serde(default)]
    wechat_api_url: Option<IgnoredAny>,
    #[serde(default)]
    wechat_api_secret: Option<IgnoredAny>,
    #[serde(default)]
    wechat_api_corp_id: Option<IgnoredAny>,
    #[serde(default)]
    victorops_api_url: Option<IgnoredAny>,
    #[serde(default)]
    victorops_api_key: Option<IgnoredAny>,
    #[serde(default)]
    victorops_api_key_file: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) telegram_api_url: Option<String>,
    #[serde(default)]
    webex_api_url: Option<IgnoredAny>,
    #[serde(default)]
    jira_api_url: Option<IgnoredAny>,
    #[serde(default)]
    rocketchat_api_url: Option<IgnoredAny>,
    #[serde(default)]
    rocketchat_token: Option<IgnoredAny>,
    #[serde(default)]
    rocketchat_token_file: Option<IgnoredAny>,
    #[serde(default)]
    rocketchat_token_id: Option<IgnoredAny>,
    #[serde(default)]
    rocketchat_token_id_file: Option<IgnoredAny>,
}

/// One route of the tree (`route:` and each of its `routes:`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteSpec {
    /// Required at the root; inherited when unset.
    #[serde(default)]
    pub(super) receiver: Option<String>,
    /// Label names, or `['...']` for every label; unset or empty: inherited.
    #[serde(default)]
    pub(super) group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    pub(super) continue_matching: Option<bool>,
    /// Matcher strings; each may hold a comma-separated list.
    #[serde(default)]
    pub(super) matchers: Option<Vec<String>>,
    /// Legacy: label name to value, each an `=` matcher.
    #[serde(default, rename = "match")]
    pub(super) match_equal: Option<BTreeMap<String, Text>>,
    /// Legacy: label name to regex, each an `=~` matcher.
    #[serde(default)]
    pub(super) match_re: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub(super) group_wait: Option<Text>,
    #[serde(default)]
    pub(super) group_interval: Option<Text>,
    #[serde(default)]
    pub(super) repeat_interval: Option<Text>,
    #[serde(default)]
    pub(super) mute_time_intervals: Option<Vec<String>>,
    #[serde(default)]
    pub(super) active_time_intervals: Option<Vec<String>>,
    /// Read from the node, route by route, so each child's errors are its own.
    #[serde(default)]
    #[allow(dead_code, reason = "read from the node")]
    pub(super) routes: Option<IgnoredAny>,
}

/// Alertmanager's integration kinds atalaya does not deliver.
pub(super) const UNSUPPORTED_KINDS: &[&str] = &[
    "slack_configs",
    "pagerduty_configs",
    "opsgenie_configs",
    "victorops_configs",
    "wechat_configs",
    "sns_configs",
    "webex_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "jira_configs",
    "rocketchat_configs",
    "mattermost_configs",
    "incidentio_configs",
    "pushover_configs",
    "discord_configs",
];

/// One `inhibit_rules` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InhibitRuleSpec {
    /// Alertmanager's optional name, for people reading the file.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for compatibility; atalaya does not show it"
    )]
    name: Option<String>,
    #[serde(default)]
    pub(super) source_matchers: Option<Vec<String>>,
    #[serde(default)]
    pub(super) source_match: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub(super) source_match_re: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub(super) target_matchers: Option<Vec<String>>,
    #[serde(default)]
    pub(super) target_match: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub(super) target_match_re: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    pub(super) equal: Option<Vec<String>>,
}

/// One `time_intervals` (or legacy `mute_time_intervals`) entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamedTimeIntervalSpec {
    #[serde(default)]
    pub(super) name: Option<String>,
    /// Read from the node, entry by entry.
    #[serde(default)]
    #[allow(dead_code, reason = "read from the node")]
    pub(super) time_intervals: Option<IgnoredAny>,
}

/// One entry of a named time interval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimeIntervalSpec {
    #[serde(default)]
    pub(super) times: Option<Vec<TimeRangeSpec>>,
    #[serde(default)]
    pub(super) weekdays: Option<Vec<Text>>,
    #[serde(default)]
    pub(super) days_of_month: Option<Vec<Text>>,
    #[serde(default)]
    pub(super) months: Option<Vec<Text>>,
    #[serde(default)]
    pub(super) years: Option<Vec<Text>>,
    #[serde(default)]
    pub(super) location: Option<String>,
}

/// `{start_time: "HH:MM", end_time: "HH:MM"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimeRangeSpec {
    #[serde(default)]
    pub(super) start_time: Option<String>,
    #[serde(default)]
    pub(super) end_time: Option<String>,
}
