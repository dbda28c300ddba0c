//! Texts that tell the truth when an alert resolves. Every shipped rule that can resolve
//! (all but one-shot ones, whose resolution is not told) has its summary checked both
//! firing and resolved by the example pack's tests, which `atalaya test` runs — the table
//! of expected strings lives there, beside the rules. A template variable no state gives
//! is an error of `atalaya check`, before any text reaches a phone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
