//! The JSON Schema of routing files (`schema/routing.schema.json`), for editors: the
//! structure Alertmanager's configuration gives them, the integration kinds this build
//! delivers, and none of the keys atalaya refuses. The settings inside each integration are
//! checked by `atalaya check` (each kind compiles its own), not described here.

use serde_json::{Value, json};

/// `global:` keys atalaya accepts, as Alertmanager's; `smtp_auth_password` is left out (a
/// secret in the file is refused).
const GLOBAL_KEYS: &[&str] = &[
    "http_config",
    "smtp_from",
    "smtp_hello",
    "smtp_smarthost",
    "smtp_auth_username",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_secret_file",
    "smtp_auth_identity",
    "smtp_require_tls",
    "smtp_tls_config",
    "slack_api_url",
    "slack_api_url_file",
    "pagerduty_url",
    "opsgenie_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "victorops_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "telegram_api_url",
    "webex_api_url",
    "jira_api_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
];

fn text(description: &str) -> Value {
    json!({ "type": ["string", "number", "boolean"], "description": description })
}

fn duration(description: &str) -> Value {
    json!({
        "type": ["string", "integer"],
        "description": format!("{description} A duration such as `30s`, `5m`, `4h`."),
    })
}

fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

fn label_map(description: &str) -> Value {
    json!({
        "type": "object",
        "additionalProperties": { "type": ["string", "number", "boolean"] },
        "description": description,
    })
}

/// The schema, for a build that delivers `kinds` (`webhook`, `telegram`, …).
pub fn routing_schema(kinds: &[&str]) -> Value {
    let mut global = serde_json::Map::new();
    global.insert(
        "resolve_timeout".to_owned(),
        duration("How long an alert posted without `endsAt` stays firing unless posted again. Default 5m."),
    );
    for key in GLOBAL_KEYS {
        global.insert(
            (*key).to_owned(),
            json!({ "description": "As in Alertmanager's `global:`." }),
        );
    }
    let mut receiver = serde_json::Map::new();
    receiver.insert(
        "name".to_owned(),
        json!({ "type": "string", "minLength": 1, "description": "The receiver's name, as routes name it." }),
    );
    for kind in kinds {
        receiver.insert(
            format!("{kind}_configs"),
            json!({
                "type": "array",
                "items": { "type": "object" },
                "description": format!("`{kind}` integrations; their settings are in docs/routing.md and checked by `atalaya check`."),
            }),
        );
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "atalaya routing policy",
        "description": "Routing alerts to receivers, with Alertmanager's configuration keys (docs/routing.md). `atalaya check` checks what a schema cannot: matchers, durations, receivers named by routes, each integration's settings.",
        "type": "object",
        "additionalProperties": false,
        "required": ["route", "receivers"],
        "properties": {
            "global": {
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": global,
            },
            "route": { "$ref": "#/$defs/route" },
            "receivers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name"],
                    "properties": receiver,
                },
            },
            "inhibit_rules": {
                "type": ["array", "null"],
                "items": { "$ref": "#/$defs/inhibit_rule" },
            },
            "time_intervals": {
                "type": ["array", "null"],
                "items": { "$ref": "#/$defs/named_time_interval" },
            },
            "mute_time_intervals": {
                "type": ["array", "null"],
                "description": "The older name of `time_intervals`.",
                "items": { "$ref": "#/$defs/named_time_interval" },
            },
            "templates": strings("Accepted for Alertmanager's files; atalaya's templates are its own."),
        },
        "$defs": {
            "route": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "receiver": { "type": "string", "description": "Where matching alerts go; inherited when unset." },
                    "group_by": strings("Labels that make a group; `['...']` groups by every label."),
                    "continue": { "type": "boolean", "description": "Keep matching the next sibling routes." },
                    "matchers": strings("Matchers such as `severity=\"critical\"`, `room=~\"kitchen|hall\"`."),
                    "match": label_map("Legacy: label name to value."),
                    "match_re": label_map("Legacy: label name to regex."),
                    "group_wait": duration("How long a new group waits for company."),
                    "group_interval": duration("How long before a group's next notification about new alerts."),
                    "repeat_interval": duration("How long before a notification is sent again."),
                    "mute_time_intervals": strings("Named time intervals when the route is muted."),
                    "active_time_intervals": strings("Named time intervals when the route is active."),
                    "routes": { "type": "array", "items": { "$ref": "#/$defs/route" } },
                },
            },
            "inhibit_rule": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "name": { "type": "string" },
                    "source_matchers": strings("Matchers of the alerts that inhibit."),
                    "source_match": label_map("Legacy source matchers."),
                    "source_match_re": label_map("Legacy source regex matchers."),
                    "target_matchers": strings("Matchers of the alerts inhibited."),
                    "target_match": label_map("Legacy target matchers."),
                    "target_match_re": label_map("Legacy target regex matchers."),
                    "equal": strings("Labels whose values must be equal in source and target."),
                },
            },
            "named_time_interval": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": { "type": "string", "minLength": 1 },
                    "time_intervals": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "times": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": false,
                                        "properties": {
                                            "start_time": { "type": "string", "description": "HH:MM" },
                                            "end_time": { "type": "string", "description": "HH:MM" },
                                        },
                                    },
                                },
                                "weekdays": { "type": "array", "items": text("`monday`, `monday:friday`") },
                                "days_of_month": { "type": "array", "items": text("`1`, `1:15`, `-1`") },
                                "months": { "type": "array", "items": text("`january`, `1:3`") },
                                "years": { "type": "array", "items": text("`2026`, `2026:2030`") },
                                "location": { "type": "string", "description": "A time zone such as `Europe/Madrid`." },
                            },
                        },
                    },
                },
            },
        },
    })
}
