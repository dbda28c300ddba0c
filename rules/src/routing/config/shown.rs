//! The policy as `GET /api/v2/status` shows it (`config.original`): an Alertmanager
//! configuration that Alertmanager's own loader (amtool `config routes show`, Grafana)
//! accepts, made from the file with what must not or cannot be shown left out.
//!
//! Kept as written: `route`, `inhibit_rules`, `time_intervals`, `mute_time_intervals`
//! (none can hold a secret) and `global.resolve_timeout`. Receivers are shown by name only:
//! their integrations may carry secrets (a webhook URL with a token), and atalaya's own
//! kinds (console, MQTT, push) are not in Alertmanager's format.

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// The top-level keys shown as written.
const SHOWN_AS_WRITTEN: [&str; 4] = [
    "route",
    "inhibit_rules",
    "time_intervals",
    "mute_time_intervals",
];

/// The shown configuration of a policy file's text (one that compiled).
pub(super) fn alertmanager_config(text: &str) -> String {
    let document = YamlLoader::load_from_str(text)
        .ok()
        .and_then(|mut docs| (!docs.is_empty()).then(|| docs.swap_remove(0)))
        .unwrap_or(Yaml::Null);
    let mut shown = Hash::new();
    if let Some(timeout) = document["global"]["resolve_timeout"].as_str() {
        let mut global = Hash::new();
        global.insert(key("resolve_timeout"), Yaml::String(timeout.to_owned()));
        shown.insert(key("global"), Yaml::Hash(global));
    }
    for name in SHOWN_AS_WRITTEN {
        let value = &document[name];
        if !value.is_badvalue() && !value.is_null() {
            shown.insert(key(name), value.clone());
        }
    }
    let receivers: Vec<Yaml> = document["receivers"]
        .as_vec()
        .map(|receivers| {
            receivers
                .iter()
                .map(|receiver| {
                    let mut named = Hash::new();
                    named.insert(key("name"), receiver["name"].clone());
                    Yaml::Hash(named)
                })
                .collect()
        })
        .unwrap_or_default();
    shown.insert(key("receivers"), Yaml::Array(receivers));
    emit(&Yaml::Hash(shown))
}

/// The built-in policy's shown configuration.
pub(super) fn console_default() -> String {
    alertmanager_config(
        "route:\n  receiver: console\n  group_by: [alertname]\nreceivers:\n  - name: console\n",
    )
}

fn key(name: &str) -> Yaml {
    Yaml::String(name.to_owned())
}

fn emit(document: &Yaml) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail, and every value came from a parsed document.
    let _ = YamlEmitter::new(&mut out).dump(document);
    let body = out.strip_prefix("---\n").unwrap_or(&out).to_owned();
    body + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_by_name_routes_as_written_secrets_left_out() {
        let text = r#"
global:
  resolve_timeout: 2m
  slack_api_url: https://hooks.example/secret
route:
  receiver: phone
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: mail
receivers:
  - name: phone
    webhook_configs: [{url: "http://127.0.0.1:1/hook?token=s3cret"}]
  - name: mail
"#;
        let shown = alertmanager_config(text);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("hooks.example"), "{shown}");
        let parsed = &YamlLoader::load_from_str(&shown).unwrap()[0];
        assert_eq!(parsed["global"]["resolve_timeout"].as_str(), Some("2m"));
        assert_eq!(
            parsed["route"]["routes"][0]["receiver"].as_str(),
            Some("mail")
        );
        assert_eq!(parsed["receivers"][0]["name"].as_str(), Some("phone"));
        assert!(parsed["receivers"][0]["webhook_configs"].is_badvalue());
    }
}
