//! Texts that tell the truth when an alert resolves. Every shipped rule that can resolve
//! (all but one-shot ones, whose resolution is not told) has its summary checked both
//! firing and resolved by the example pack's tests, which `atalaya test` runs — the table
//! of expected strings lives there, beside the rules. A template variable no state gives
//! is an error of `atalaya check`, before any text reaches a phone. Through the built-in
//! templates, each of those summaries makes a headline that is checked in both languages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atalaya_bus::Labels;
use atalaya_bus::delivery::notification::{Notification, NotifiedAlert, Status};
use atalaya_connectors::templates::{Locale, MessagePart, MessageTemplates};

use atalaya_rules::compile::compile_files;
use atalaya_rules::files::RuleFile;
use atalaya_rules::yaml::parse_documents;
use yaml_rust2::{Yaml, YamlLoader};

fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The rules of the example pack that can resolve and have a summary.
fn resolvable_rules(dir: &Path) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        for rule in load(&path)["rules"].as_vec().unwrap() {
            let one_shot = rule["one_shot"].as_bool().unwrap_or(false);
            if !one_shot && rule["annotations"]["summary"].as_str().is_some() {
                rules.insert(rule["name"].as_str().unwrap().to_owned());
            }
        }
    }
    rules
}

/// Rules whose summary some test expects, under `key` (`alerts`/`fired` for firing,
/// `resolved`).
fn checked(dir: &Path, keys: &[&str]) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    let tests: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    for path in tests {
        for test in load(&path)["tests"].as_vec().unwrap() {
            for expect in test["expect"].as_vec().into_iter().flatten() {
                for key in keys {
                    for alert in expect[*key].as_vec().into_iter().flatten() {
                        if alert["annotations"]["summary"].as_str().is_some() {
                            rules.insert(alert["rule"].as_str().unwrap().to_owned());
                        }
                    }
                }
            }
        }
    }
    rules
}

#[test]
fn every_shipped_rule_s_summary_is_tested_firing_and_resolved() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rules");
    let rules = resolvable_rules(&dir);
    assert!(rules.len() >= 10, "{rules:?}");
    let firing = checked(&dir, &["alerts", "fired"]);
    let resolved = checked(&dir, &["resolved"]);
    let untested: Vec<_> = rules.difference(&firing).collect();
    assert!(
        untested.is_empty(),
        "no firing summary tested: {untested:?}"
    );
    let untested: Vec<_> = rules.difference(&resolved).collect();
    assert!(
        untested.is_empty(),
        "no resolved summary tested: {untested:?}"
    );
}

#[test]
fn a_variable_no_state_gives_is_an_error_at_its_place() {
    let text = "rules:\n  - name: door\n    subject: home/+door\n    condition: value > 0\n    \
                annotations:\n      summary: \"{% if resolved %}closed after {{ duraton }}{% endif %}\"\n";
    let file = RuleFile {
        path: PathBuf::from("door.yaml"),
        documents: parse_documents(text).unwrap(),
        text: text.to_owned(),
    };
    let errors = compile_files(&[file]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "door.yaml:6:16: annotations.summary: unknown variable `duraton`; did you mean `duration`?"
    );
}

/// The first summary each test file expects of each rule, firing and resolved, with the
/// alert's labels: `(rule, resolved) → (labels, summary)`.
fn expected_summaries(dir: &Path) -> BTreeMap<(String, bool), (Labels, String)> {
    let mut found = BTreeMap::new();
    let mut tests: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    tests.sort();
    for path in tests {
        for test in load(&path)["tests"].as_vec().unwrap() {
            for expect in test["expect"].as_vec().into_iter().flatten() {
                for (key, resolved) in [("alerts", false), ("fired", false), ("resolved", true)] {
                    for alert in expect[key].as_vec().into_iter().flatten() {
                        let Some(summary) = alert["annotations"]["summary"].as_str() else {
                            continue;
                        };
                        let rule = alert["rule"].as_str().unwrap().to_owned();
                        let mut labels = Labels::new();
                        labels.insert("alertname".into(), rule.clone());
                        for (k, v) in alert["labels"].as_hash().into_iter().flatten() {
                            labels.insert(k.as_str().unwrap().into(), v.as_str().unwrap().into());
                        }
                        found
                            .entry((rule, resolved))
                            .or_insert((labels, summary.to_owned()));
                    }
                }
            }
        }
    }
    found
}

/// One alert's notification, as the router hands it to a receiver: firing for 12 minutes,
/// or resolved after 12 minutes.
fn notification(labels: Labels, summary: &str, resolved: bool) -> Notification {
    let starts_at: jiff::Timestamp = "2026-01-10T10:00:00Z".parse().unwrap();
    let twelve = starts_at + jiff::SignedDuration::from_mins(12);
    let status = if resolved {
        Status::Resolved
    } else {
        Status::Firing
    };
    let alert = NotifiedAlert {
        instant: false,
        status,
        fingerprint: "f".into(),
        labels: labels.clone(),
        annotations: Labels::from([("summary".to_owned(), summary.to_owned())]),
        starts_at,
        ends_at: resolved.then_some(twelve),
        value: serde_json::Value::Null,
        generator_url: None,
    };
    Notification {
        id: "n".into(),
        receiver: "family".into(),
        integration: 0,
        group_key: "{}:{}".into(),
        status,
        group_labels: Labels::new(),
        common_labels: labels,
        common_annotations: alert.annotations.clone(),
        alerts: vec![alert],
        created_at: twelve,
        silent: false,
    }
}

/// Each rule's `severity:` in the pack's rule files.
fn severities(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        for rule in load(&path)["rules"].as_vec().unwrap() {
            if let Some(severity) = rule["severity"].as_str() {
                found.insert(
                    rule["name"].as_str().unwrap().to_owned(),
                    severity.to_owned(),
                );
            }
        }
    }
    found
}

/// What a phone shows for each shipped rule firing and resolved, in both languages: the
/// headline (a mail's subject, a push message's title; a Telegram message's first line says
/// the same in bold) is checked against a table, built from the summaries the example tests
/// expect, through the built-in templates. The Telegram message's time line must say how
/// long it has been firing, or that it resolved — never both.
#[test]
fn every_shipped_rule_reads_true_firing_and_resolved_in_both_languages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rules");
    let severities = severities(&dir);
    let templates = MessageTemplates::default();
    let mut got = Vec::new();
    for ((rule, resolved), (mut labels, summary)) in expected_summaries(&dir) {
        if let Some(severity) = severities.get(&rule) {
            labels.insert("severity".into(), severity.clone());
        }
        let n = notification(labels, &summary, resolved);
        for locale in [Locale::En, Locale::Es] {
            let render = |part| {
                let r = templates.render(part, locale, None, &n, "");
                assert_eq!(r.custom_error, None);
                r.text
            };
            let telegram = render(MessagePart::TelegramHtml);
            let (resolved_line, firing_line) = match locale {
                Locale::En => ("✅ resolved after 12m", "🕐 for 12m"),
                Locale::Es => ("✅ resuelta tras 12 min", "🕐 desde hace 12 min"),
            };
            let (said, unsaid) = if resolved {
                (resolved_line, firing_line)
            } else {
                (firing_line, resolved_line)
            };
            assert!(
                telegram.lines().any(|l| l == said) && !telegram.contains(unsaid),
                "{rule}, {}: {telegram}",
                locale.as_str()
            );
            let state = if resolved { "resolved" } else { "firing" };
            let subject = render(MessagePart::MailSubject);
            got.push(format!("{rule} {state} {}: {subject}", locale.as_str()));
        }
    }
    assert_eq!(got.join("\n"), EXPECTED_HEADLINES.trim());
}

/// Rule, state, language: the headline.
const EXPECTED_HEADLINES: &str = "
container_oom_killed firing en: 🟠 home/mosquitto-0: container broker was OOM-killed once in 30 minutes
container_oom_killed firing es: 🟠 home/mosquitto-0: container broker was OOM-killed once in 30 minutes
container_oom_killed resolved en: ✅ home/mosquitto-0: container broker has not been OOM-killed for 30 minutes — resolved
container_oom_killed resolved es: ✅ home/mosquitto-0: container broker has not been OOM-killed for 30 minutes — resuelta
disk_almost_full firing en: 🟠 Disk sda on nas is 91 % full
disk_almost_full firing es: 🟠 Disk sda on nas is 91 % full
disk_almost_full resolved en: ✅ Disk sda on nas is down to 84 % full (it was 91 %) — resolved
disk_almost_full resolved es: ✅ Disk sda on nas is down to 84 % full (it was 91 %) — resuelta
door_left_open firing en: 🟠 door_back has been open for 10 minutes
door_left_open firing es: 🟠 door_back has been open for 10 minutes
door_left_open resolved en: ✅ door_back is closed again, after 12m open — resolved
door_left_open resolved es: ✅ door_back is closed again, after 12m open — resuelta
freezer_warm firing en: 🔴 The freezer is at -6.5 °C
freezer_warm firing es: 🔴 The freezer is at -6.5 °C
freezer_warm resolved en: ✅ The freezer is back to -15 °C — resolved
freezer_warm resolved es: ✅ The freezer is back to -15 °C — resuelta
node_disk_pressure firing en: 🟠 Node nas is short of disk: ephemeral-storage is low
node_disk_pressure firing es: 🟠 Node nas is short of disk: ephemeral-storage is low
node_disk_pressure resolved en: ✅ Node nas has enough disk again — resolved
node_disk_pressure resolved es: ✅ Node nas has enough disk again — resuelta
node_heartbeat_missing firing en: 🔴 Node pi-1 has sent no heartbeat for 40 seconds
node_heartbeat_missing firing es: 🔴 Node pi-1 has sent no heartbeat for 40 seconds
node_heartbeat_missing resolved en: ✅ Node pi-1 is sending heartbeats again — resolved
node_heartbeat_missing resolved es: ✅ Node pi-1 is sending heartbeats again — resuelta
node_lost firing en: 🔴 Node pi-1 is not ready (NodeStatusUnknown)
node_lost firing es: 🔴 Node pi-1 is not ready (NodeStatusUnknown)
node_lost resolved en: ✅ Node pi-1 is ready again after 5m — resolved
node_lost resolved es: ✅ Node pi-1 is ready again after 5m — resuelta
pi_cpu_hot firing en: 🟠 pi-2 CPU at 82 °C for 2 minutes
pi_cpu_hot firing es: 🟠 pi-2 CPU at 82 °C for 2 minutes
pi_cpu_hot resolved en: ✅ pi-2 CPU is down to 70 °C after 3m hot — resolved
pi_cpu_hot resolved es: ✅ pi-2 CPU is down to 70 °C after 3m hot — resuelta
pod_crash_looping firing en: 🟠 media/jellyfin-0: container app is crash-looping
pod_crash_looping firing es: 🟠 media/jellyfin-0: container app is crash-looping
pod_crash_looping resolved en: ✅ media/jellyfin-0: container app has not crashed for 15 minutes — resolved
pod_crash_looping resolved es: ✅ media/jellyfin-0: container app has not crashed for 15 minutes — resuelta
pod_restart_storm firing en: 🟠 media/jellyfin-0 restarted 3 times in 10 minutes
pod_restart_storm firing es: 🟠 media/jellyfin-0 restarted 3 times in 10 minutes
pod_restart_storm resolved en: ✅ media/jellyfin-0 has stopped restarting (it restarted 3 times in 10 minutes) — resolved
pod_restart_storm resolved es: ✅ media/jellyfin-0 has stopped restarting (it restarted 3 times in 10 minutes) — resuelta
sensor_silent firing en: 🟠 motion_hall has been silent for 30 minutes
sensor_silent firing es: 🟠 motion_hall has been silent for 30 minutes
sensor_silent resolved en: ✅ motion_hall is reporting again — resolved
sensor_silent resolved es: ✅ motion_hall is reporting again — resuelta
washing_machine_done firing en: 🔵 The washing machine has finished
washing_machine_done firing es: 🔵 The washing machine has finished
water_leak firing en: 🔴 Water leak at leak_kitchen!
water_leak firing es: 🔴 Water leak at leak_kitchen!
";
