//! The JSON Schemas in `schema/` are what editors check files against
//! (`# yaml-language-server: $schema=…`): every shipped config, routing, rule and rule test
//! file passes its schema, and the typos a person makes are caught. Validated with Python's
//! `jsonschema` (Debian's python3-jsonschema, which scripts/test installs), as an editor's
//! YAML plugin would.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Validates each file against `schema`; the problems, one line per file with any.
fn validate(schema: &str, files: &[PathBuf]) -> Vec<String> {
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    for document in yaml.safe_load_all(open(path)):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        if errors:
            print(path + ": " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors))
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(root().join("schema").join(schema))
        .args(files)
        .output()
        .expect("python3 with jsonschema and PyYAML (scripts/test installs them)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn files_in(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| keep(&n.to_string_lossy())))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_file_passes_its_schema() {
    let configs = [
        root().join("examples/atalaya.yaml"),
        root().join("deploy/kustomize/base/config/atalaya.yaml"),
        root().join("deploy/kustomize/overlays/homelab/config/atalaya.yaml"),
    ];
    assert_eq!(
        validate("config.schema.json", &configs),
        Vec::<String>::new()
    );
    let routing = [
        root().join("examples/routing.yaml"),
        root().join("deploy/kustomize/base/routing/routing.yaml"),
        root().join("deploy/kustomize/overlays/homelab/routing/routing.yaml"),
    ];
    assert_eq!(
        validate("routing.schema.json", &routing),
        Vec::<String>::new()
    );
    for dir in ["examples/rules", "deploy/kustomize/base/rules"] {
        let rules = files_in(dir, |n| n.ends_with(".yaml") && !n.ends_with(".test.yaml"));
        let tests = files_in(dir, |n| n.ends_with(".test.yaml"));
        assert!(!rules.is_empty() && !tests.is_empty(), "{dir}");
        assert_eq!(validate("rules.schema.json", &rules), Vec::<String>::new());
        assert_eq!(
            validate("rule-tests.schema.json", &tests),
            Vec::<String>::new()
        );
    }
}

#[test]
fn typos_are_caught_by_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let configs = [
        write("a.yaml", "htpp:\n  listen: 0.0.0.0:9470\n"),
        write(
            "b.yaml",
            "mqtt:\n  host: broker\n  subscriptions: [{topic: a/b, qso: 1}]\n",
        ),
        write("c.yaml", "log:\n  format: xml\n"),
        write("d.yaml", "http:\n  token: inline-secret\n"),
        write(
            "e.yaml",
            "nats:\n  servers: [nats://a:4222]\n  jetstream: [{stream: S}]\n",
        ),
    ];
    let problems = validate("config.schema.json", &configs);
    assert_eq!(problems.len(), configs.len(), "{problems:#?}");
    let routing = [
        write("r1.yaml", "route: {receiver: a}\nrecievers: [{name: a}]\n"),
        write(
            "r2.yaml",
            "route: {receiver: a, group_wiat: 30s}\nreceivers: [{name: a}]\n",
        ),
        write(
            "r3.yaml",
            "route: {receiver: a}\nreceivers: [{name: a, telegarm_configs: [{}]}]\n",
        ),
        write(
            "r4.yaml",
            "route: {receiver: a, routes: [{reciever: b}]}\nreceivers: [{name: a}]\n",
        ),
        write(
            "r5.yaml",
            "route: {receiver: a}\nreceivers: [{name: a, slack_configs: [{}]}]\n",
        ),
    ];
    let problems = validate("routing.schema.json", &routing);
    assert_eq!(problems.len(), routing.len(), "{problems:#?}");
}
