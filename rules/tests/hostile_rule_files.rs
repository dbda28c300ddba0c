//! Rule files assembled at random from lines people (and attackers) write: each compiles or
//! fails with positioned errors, quickly, and never panics. The suite runs a few hundred
//! cases; `PROPTEST_CASES=20000 cargo nextest run -p atalaya-rules --test hostile_rule_files`
//! runs more (docs/operations.md, "Fuzzing").

use atalaya_rules::compile::compile_files;
use atalaya_rules::files::RuleFile;
use atalaya_rules::yaml::parse_documents;
use proptest::prelude::*;

/// Lines of rule files, shuffled and indented at random.
const LINES: &[&str] = &[
    "rules:",
    "- name: r",
    "- name: r2",
    "subject: home/+room/#",
    "subject: a//b",
    "subject: '+'",
    "condition: value > 80",
    "condition: data.items.all(a, data.items.all(b, data.items.all(c, c > 0)))",
    "condition: '[1,2,3].map(a, [1,2].map(b, a + b)).size() > 0'",
    "condition: ((((((((value))))))))",
    "condition: 'size(\"x\") > '",
    "clear_condition: value < 40",
    "value: data.temperature",
    "for: 30s",
    "for: 5d9h",
    "for: -1s",
    "keep_firing_for: 1h",
    "absent_for: 1m",
    "one_shot: true",
    "after: value > 100",
    "window: {duration: 5m, aggregate: count}",
    "window: {duration: 0s, aggregate: rate}",
    "active: {hours: ['22:00-07:00'], timezone: Europe/Madrid}",
    "active: {hours: ['25:00-07:00'], timezone: Nowhere/Land}",
    "group_by: [room]",
    "max_series: 0",
    "annotations: {summary: '{{ labels.room }} {{ value'}",
    "labels: {severity: critical}",
    "actions: [{on: firing, publish: x/y, payload: '{{ value }}'}]",
    "&a [*a]",
    "- ~",
    "[1, 2]",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Well-formed YAML: rules made of random keys, so that compiling is what is tried.
    #[test]
    fn any_rule_compiles_or_fails_in_place(
        rules in proptest::collection::vec(proptest::collection::vec(6..LINES.len() - 3, 1..6), 1..4)
    ) {
        let mut text = "rules:\n".to_owned();
        for (n, keys) in rules.iter().enumerate() {
            text.push_str(&format!("  - name: r{n}\n    subject: home/+room/#\n"));
            for key in keys {
                text.push_str(&format!("    {}\n", LINES[*key]));
            }
        }
        let Ok(documents) = parse_documents(&text) else {
            return Ok(());
        };
        let file = RuleFile { path: "r.yaml".into(), text: text.clone(), documents };
        if let Err(errors) = compile_files(&[file]) {
            for error in &errors {
                prop_assert!(error.to_string().starts_with("r.yaml:"), "{error}");
            }
        }
    }

    #[test]
    fn any_arrangement_compiles_or_fails_in_place(
        lines in proptest::collection::vec((0..LINES.len(), 0usize..4), 0..20)
    ) {
        let text: String = lines
            .iter()
            .map(|(line, indent)| format!("{}{}\n", "  ".repeat(*indent), LINES[*line]))
            .collect();
        let Ok(documents) = parse_documents(&text) else {
            return Ok(());
        };
        let file = RuleFile { path: "r.yaml".into(), text: text.clone(), documents };
        if let Err(errors) = compile_files(&[file]) {
            prop_assert!(!errors.is_empty());
            for error in &errors {
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
}
