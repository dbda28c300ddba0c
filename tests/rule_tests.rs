//! `atalaya test` and `atalaya check` on rule test files, end to end: a recorded morning fed
//! through `events_file:`, an error shared by several test files told once, and a test
//! file's own mistakes found by `check` without running it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

fn recorded() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recorded")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    support::std_command(dir).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_recorded_morning_is_checked_against_its_expectations() {
    let dir = recorded();
    let out = run(&dir, &["test", "freezer.test.yaml"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.ends_with("2 passed, 0 failed\n"), "{text}");
    let out = run(&dir, &["check", "freezer.test.yaml"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "ok: test file freezer.test.yaml (2 test(s))\n"
    );
}

const BROKEN: &str =
    "rules:\n  - name: slow\n    subject: a/b\n    condition: value > 1\n    for: 5q\n";

fn test_file(name: &str) -> String {
    format!(
        "rule_files: [rules.yaml]\ntests:\n  - name: {name}\n    events:\n      - subject: a/b\n        values: 2\n    expect:\n      - at: 1m\n        alerts: []\n"
    )
}

#[test]
fn a_rule_error_shared_by_test_files_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), BROKEN).unwrap();
    std::fs::write(dir.path().join("a.test.yaml"), test_file("a")).unwrap();
    std::fs::write(dir.path().join("b.test.yaml"), test_file("b")).unwrap();
    let error = "rules.yaml:5:10: for: `5q` is not a duration";

    let out = run(dir.path(), &["test", "a.test.yaml", "b.test.yaml"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches(error).count(), 1, "{text}");
    assert!(
        text.contains("ERROR a.test.yaml\n  rules.yaml:5:10: for:"),
        "{text}"
    );
    assert!(
        text.contains("ERROR b.test.yaml\n  (1 error(s) reported above)"),
        "{text}"
    );

    let out = run(dir.path(), &["check", "a.test.yaml", "b.test.yaml", "."]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches(error).count(), 1, "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("atalaya check: 1 error(s)"),
        "{text}"
    );
}

#[test]
fn check_finds_a_test_files_own_mistakes_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), BROKEN.replace("5q", "5d9h")).unwrap();
    std::fs::write(
        dir.path().join("nats.test.yaml"),
        test_file("dots").replace("subject: a/b", "subject: cluster.node2.heartbeat"),
    )
    .unwrap();
    let out = run(dir.path(), &["check", "nats.test.yaml"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text,
        "nats.test.yaml: test `dots`: events[0]: subject: `cluster.node2.heartbeat` is written like a NATS subject; subjects are `/`-separated paths, as NATS subjects become when they arrive: write `cluster/node2/heartbeat`\n"
    );
}
