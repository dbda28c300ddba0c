//! An action's trigger is `when:`; `on:`, its older name, is still read. YAML 1.1 tools
//! (PyYAML, yamllint, editor plugins) read a bare `on` key as the boolean `true`, which is
//! why the name changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use atalaya_rules::compile::{RuleError, RuleSet, compile_files};
use atalaya_rules::files::RuleFile;
use atalaya_rules::model::ActionTrigger;
use atalaya_rules::yaml::parse_documents;

fn compile(action: &str) -> Result<RuleSet, Vec<RuleError>> {
    let text = format!(
        "rules:\n  - name: door\n    subject: home/door\n    condition: value > 0\n    actions:\n      - {action}\n        publish: home/notify\n"
    );
    let file = RuleFile {
        path: PathBuf::from("door.yaml"),
        documents: parse_documents(&text).expect("YAML"),
        text,
    };
    compile_files(&[file])
}

#[test]
fn when_and_its_older_name_on_compile_alike_and_not_together() {
    for spelling in ["when: resolved", "on: resolved"] {
        let set = compile(spelling).unwrap_or_else(|e| panic!("{spelling}: {e:?}"));
        assert_eq!(
            set.rules[0].actions[0].on,
            ActionTrigger::Resolved,
            "{spelling}"
        );
    }
    let both = compile("when: firing\n        on: firing").unwrap_err();
    assert!(
        both[0].message.contains("`when` and `on` are one setting"),
        "{both:?}"
    );
    let neither = compile("retain: true").unwrap_err();
    assert!(
        neither[0].message.contains("`when` is required"),
        "{neither:?}"
    );
}

/// PyYAML, a YAML 1.1 reader, reads every key of the shipped rule files as text (a bare
/// `on:` would come out as `True`).
#[test]
fn yaml_1_1_tools_read_the_shipped_rule_files_keys_as_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = r#"
import sys, yaml
def keys(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                sys.exit(f"{where}: key {key!r} is not text")
            keys(value, where)
    elif isinstance(node, list):
        for item in node:
            keys(item, where)
for path in sys.argv[1:]:
    for document in yaml.safe_load_all(open(path)):
        keys(document, path)
"#;
    let mut files = Vec::new();
    for dir in ["examples/rules", "deploy/kustomize/base/rules"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("a rules folder") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .args(&files)
        .output()
        .expect("python3 with PyYAML (python3-yaml)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
