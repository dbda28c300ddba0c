//! Rule test files end to end through the runner: recordings, failures, limits.

use std::io::Write as _;

use super::*;

/// Writes `files` (name, text) into a fresh directory.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const FREEZER: &str = "rules:\n  - name: freezer_warm\n    subject: zigbee2mqtt/freezer\n    value: data.temperature\n    condition: value > -10\n    for: 15m\n";

/// A recorded hour from 10:00: the freezer every minute, warm from 10:10 to 10:40.
fn recording() -> String {
    let start: Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
    (0..60)
        .map(|m| {
            let t = start + SignedDuration::from_mins(m);
            let temperature = if (10..40).contains(&m) { -8 } else { -18 };
            format!(r#"{{"time":"{t}","subject":"zigbee2mqtt/freezer","data":{{"temperature":{temperature}}}}}"#)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const RECORDED_TEST: &str = r#"rule_files: [freezer.yaml]
start: "2026-01-05T10:00:00Z"
tests:
  - name: the recorded incident fires and resolves
    events_file: FILE
    expect:
      - at: 24m
        alerts: [{rule: freezer_warm, state: pending}]
      - at: 25m
        alerts: [{rule: freezer_warm, state: firing}]
        fired: [{rule: freezer_warm}]
      - at: 41m
        alerts: []
        resolved: [{rule: freezer_warm}]
"#;

fn run(dir: &tempfile::TempDir, test: &str) -> Vec<CaseResult> {
    let path = dir.path().join("t.test.yaml");
    std::fs::write(&path, test).unwrap();
    run_test_file(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

/// After changing the test file format:
/// `cargo run -- schema tests > schema/rule-tests.schema.json`.
#[test]
fn the_committed_schema_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/rule-tests.schema.json"
    );
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        committed == test_file_schema(),
        "schema/rule-tests.schema.json is stale: run `cargo run -- schema tests > schema/rule-tests.schema.json`"
    );
}

#[test]
fn test_files_are_told_apart_from_rule_files() {
    assert!(is_test_file(Path::new("rules/nodes.test.yaml")));
    assert!(is_test_file(Path::new("nodes_test.yml")));
    assert!(!is_test_file(Path::new("nodes.yaml")));
    assert!(!is_test_file(Path::new("latest.yaml")));
}

#[test]
fn an_events_file_feeds_a_case_plain_or_gzipped() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(recording().as_bytes()).unwrap();
    let dir = dir_with(&[("freezer.yaml", FREEZER), ("hour.jsonl", &recording())]);
    std::fs::write(dir.path().join("hour.jsonl.gz"), gz.finish().unwrap()).unwrap();
    for file in ["hour.jsonl", "hour.jsonl.gz"] {
        let results = run(&dir, &RECORDED_TEST.replace("FILE", file));
        assert_eq!(results.len(), 1);
        assert!(
            results[0].failures.is_empty(),
            "{file}: {:?}",
            results[0].failures
        );
    }
}

#[test]
fn an_events_file_merges_with_written_events_by_time() {
    // The recording stops at 10:30 (still warm); written events say -20 from 10:35.
    let half: String = recording().lines().take(31).collect::<Vec<_>>().join("\n");
    let dir = dir_with(&[("freezer.yaml", FREEZER), ("half.jsonl", &half)]);
    let test = RECORDED_TEST.replace("FILE", "half.jsonl").replace(
        "    expect:",
        "    events:\n      - subject: zigbee2mqtt/freezer\n        at: 35m\n        values: -20\n        values_field: temperature\n    expect:",
    );
    let test = test.replace("at: 41m", "at: 36m");
    let results = run(&dir, &test);
    assert!(results[0].failures.is_empty(), "{:?}", results[0].failures);
}

#[test]
fn bad_lines_of_an_events_file_fail_the_case_with_their_line() {
    let mut lines: Vec<String> = recording().lines().map(str::to_owned).collect();
    lines.insert(2, "garbage".to_owned());
    // Out of order: taken when it comes, not a failure.
    lines.insert(5, r#"{"time":"2026-01-05T09:00:00Z","subject":"zigbee2mqtt/freezer","data":{"temperature":-18}}"#.to_owned());
    let dir = dir_with(&[("freezer.yaml", FREEZER), ("bad.jsonl", &lines.join("\n"))]);
    let results = run(&dir, &RECORDED_TEST.replace("FILE", "bad.jsonl"));
    let failures = &results[0].failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].ends_with("bad.jsonl:3: not JSON: expected value (column 1)"),
        "{failures:?}"
    );
}

#[test]
fn a_missing_events_file_is_an_error_before_running() {
    let dir = dir_with(&[("freezer.yaml", FREEZER)]);
    let path = dir.path().join("t.test.yaml");
    std::fs::write(&path, RECORDED_TEST.replace("FILE", "nowhere.jsonl")).unwrap();
    let errors = load_test_file(&path).err().expect("an error");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .contains("test `the recorded incident fires and resolves`: events_file: cannot read")
            && errors[0].contains("nowhere.jsonl"),
        "{errors:?}"
    );
}

#[test]
fn a_failure_tells_when_alerts_changed() {
    let dir = dir_with(&[("freezer.yaml", FREEZER), ("hour.jsonl", &recording())]);
    let test = RECORDED_TEST.replace("FILE", "hour.jsonl").replace(
        "      - at: 24m\n        alerts: [{rule: freezer_warm, state: pending}]\n",
        "      - at: 24m\n        alerts: []\n",
    );
    let results = run(&dir, &test);
    let failures = &results[0].failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("at 24m, alerts:"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0]
            .ends_with("transitions so far:\n      - at 10m pending freezer_warm {} value=-8"),
        "{}",
        failures[0]
    );
}

#[test]
fn case_mistakes_are_errors_of_the_file_naming_the_case() {
    let dir = dir_with(&[("freezer.yaml", FREEZER)]);
    let path = dir.path().join("t.test.yaml");
    std::fs::write(
        &path,
        "rule_files: [freezer.yaml]\ntests:\n  - name: dotted\n    events:\n      - subject: zigbee2mqtt.freezer\n        values: 1\n        every: 5q\n    expect:\n      - at: 1m\n        alerts: []\n      - at: soon\n",
    )
    .unwrap();
    let errors = load_test_file(&path).err().expect("errors");
    let shown = path.display();
    assert_eq!(
        errors,
        [
            format!(
                "{shown}: test `dotted`: events[0]: subject: `zigbee2mqtt.freezer` is written like a NATS subject; subjects are `/`-separated paths, as NATS subjects become when they arrive: write `zigbee2mqtt/freezer`"
            ),
            format!(
                "{shown}: test `dotted`: expect[1]: at: `soon` is not a duration such as `90s`, `5m` or `5d9h`"
            ),
        ]
    );
}

#[test]
fn the_yaml_size_limit_points_at_events_file() {
    let dir = dir_with(&[("freezer.yaml", FREEZER)]);
    let path = dir.path().join("t.test.yaml");
    let mut text =
        String::from("rule_files: [freezer.yaml]\ntests:\n  - name: long\n    events:\n");
    for m in 0..20_000 {
        text.push_str(&format!("      - {{subject: a/b, at: {m}m}}\n"));
    }
    text.push_str("    expect: []\n");
    std::fs::write(&path, text).unwrap();
    let errors = load_test_file(&path).err().expect("too big");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("more than 100000 values"), "{errors:?}");
    assert!(errors[0].contains("`events_file:`"), "{errors:?}");
}
