//! Tests of the YAML tree, its parser and the deserializer over it.

use std::collections::HashMap;

use proptest::prelude::*;
use serde::Deserialize;

use super::de::{edit_distance, unknown};
use super::*;

fn parse_one(text: &str) -> Node {
    let mut documents = parse_documents(text).unwrap();
    assert_eq!(documents.len(), 1, "{text:?}");
    documents.remove(0)
}

fn pos(line: usize, column: usize) -> Position {
    Position { line, column }
}

#[test]
fn plain_scalars_resolve_by_the_core_schema() {
    use NodeKind::{Bool, Float, Int, Null, String};
    let table: &[(&str, NodeKind)] = &[
        ("", Null),
        ("~", Null),
        ("null", Null),
        ("Null", Null),
        ("NULL", Null),
        ("nULL", String("nULL".into())),
        ("true", Bool(true)),
        ("True", Bool(true)),
        ("TRUE", Bool(true)),
        ("false", Bool(false)),
        ("FALSE", Bool(false)),
        ("yes", String("yes".into())),
        ("on", String("on".into())),
        ("0", Int(0)),
        ("42", Int(42)),
        ("-17", Int(-17)),
        ("+17", Int(17)),
        ("012", Int(12)),
        ("0x1F", Int(31)),
        ("0o17", Int(15)),
        ("0x", String("0x".into())),
        ("0x-1", String("0x-1".into())),
        ("0o8", String("0o8".into())),
        ("1_000", String("1_000".into())),
        ("9223372036854775807", Int(i64::MAX)),
        ("9223372036854775808", Float(9_223_372_036_854_775_808.0)),
        ("1.5", Float(1.5)),
        ("-.5", Float(-0.5)),
        ("2.", Float(2.0)),
        ("1e3", Float(1000.0)),
        ("6.02E+23", Float(6.02e23)),
        (".inf", Float(f64::INFINITY)),
        ("-.Inf", Float(f64::NEG_INFINITY)),
        ("+.INF", Float(f64::INFINITY)),
        ("inf", String("inf".into())),
        ("NaN", String("NaN".into())),
        ("infinity", String("infinity".into())),
        (".", String(".".into())),
        ("1e", String("1e".into())),
        ("1.2.3", String("1.2.3".into())),
        ("5m", String("5m".into())),
        ("10.0.0.1", String("10.0.0.1".into())),
    ];
    for (text, expected) in table {
        let node = parse_one(&format!("- {text}\n"));
        let NodeKind::Seq(items) = &node.kind else {
            panic!("{node:?}")
        };
        assert_eq!(&items[0].kind, expected, "{text:?}");
    }
    let nan = parse_one("[.nan, .NaN, .NAN]");
    let NodeKind::Seq(items) = &nan.kind else {
        panic!("{nan:?}")
    };
    assert!(
        items
            .iter()
            .all(|item| matches!(item.kind, Float(f) if f.is_nan()))
    );
}

#[test]
fn quoted_block_and_str_tagged_scalars_are_strings() {
    let node =
        parse_one("a: 'true'\nb: \"42\"\nc: !!str 5\nd: |\n  null\ne: >\n  1.5\nf: !custom 7\n");
    let kinds: Vec<&NodeKind> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|key| &node.get(key).unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        [
            &NodeKind::String("true".into()),
            &NodeKind::String("42".into()),
            &NodeKind::String("5".into()),
            &NodeKind::String("null\n".into()),
            &NodeKind::String("1.5\n".into()),
            &NodeKind::Int(7),
        ]
    );
}

#[test]
fn documents_of_a_stream() {
    assert_eq!(parse_documents(""), Ok(vec![]));
    assert_eq!(parse_documents("# only a comment\n"), Ok(vec![]));
    let documents = parse_documents("---\n---\na: 1\n").unwrap();
    assert_eq!(documents.len(), 2);
    assert_eq!(documents[0].kind, NodeKind::Null);
    assert_eq!(documents[1].get("a").unwrap().kind, NodeKind::Int(1));
    let stream = parse_stream("---\n--- null\n").unwrap();
    assert!(stream[0].empty && !stream[1].empty);
}

#[test]
fn keys_and_values_keep_their_positions() {
    let text = "\
rule: freezer
labels: {room: kitchen, floor: 1}
steps:
  - after: 5m
    notify: [telegram, email]
  - after: 1h
";
    let root = parse_one(text);
    assert_eq!(root.position, pos(1, 1));
    assert_eq!(root.key_position("rule"), Some(pos(1, 1)));
    assert_eq!(root.get("rule").unwrap().position, pos(1, 7));
    let labels = root.get("labels").unwrap();
    assert_eq!(labels.position, pos(2, 9));
    assert_eq!(labels.key_position("floor"), Some(pos(2, 25)));
    assert_eq!(labels.get("floor").unwrap().position, pos(2, 32));
    let steps = root.get("steps").unwrap();
    assert_eq!(steps.position, pos(4, 3));
    let NodeKind::Seq(items) = &steps.kind else {
        panic!("{steps:?}")
    };
    assert_eq!(items[0].position, pos(4, 5));
    assert_eq!(items[0].key_position("notify"), Some(pos(5, 5)));
    let notify = items[0].get("notify").unwrap();
    assert_eq!(notify.position, pos(5, 13));
    let NodeKind::Seq(channels) = &notify.kind else {
        panic!("{notify:?}")
    };
    assert_eq!(channels[1].position, pos(5, 24));
    assert_eq!(items[1].get("after").unwrap().position, pos(6, 12));
    assert_eq!(root.get("missing"), None);

    let root = parse_one("a:\n  b:\n    c: 1\n  empty:\n\n  # later\n  d: &x\n    e: 1\n");
    let a = root.get("a").unwrap();
    assert_eq!(a.position, pos(2, 3));
    assert_eq!(a.get("b").unwrap().position, pos(3, 5));
    assert_eq!(a.get("empty").unwrap().kind, NodeKind::Null);
    assert_eq!(a.get("empty").unwrap().position, pos(4, 3));
    assert_eq!(a.get("d").unwrap().position, pos(8, 5));
    assert_eq!(items[0].get("after").unwrap().get("x"), None);
    assert_eq!(pos(5, 24).to_string(), "5:24");
}

#[test]
fn node_descriptions() {
    let root = parse_one("[~, true, 1, 1.5, x, [], {}]");
    let NodeKind::Seq(items) = &root.kind else {
        panic!("{root:?}")
    };
    let described: Vec<&str> = items.iter().map(Node::describe).collect();
    assert_eq!(
        described,
        [
            "null",
            "a boolean",
            "a number",
            "a number",
            "a string",
            "a list",
            "a mapping"
        ]
    );
}

#[test]
fn a_duplicate_key_is_an_error_at_the_second_key() {
    let error = parse_documents("a: 1\nnested:\n  b: 1\n  b: 2\n").unwrap_err();
    assert_eq!(error.position, pos(4, 3));
    assert_eq!(
        error.to_string(),
        "4:3: duplicate key `b` (first given at 3:3)"
    );
    let error = parse_documents("{x: 1, 'x': 2}").unwrap_err();
    assert_eq!(error.position, pos(1, 8));
    // The same text resolving to different kinds is two keys, as are two lists.
    assert!(parse_documents("{1: a, '1': b, [1]: c, [1]: d}").is_ok());
    // The same key in two mappings is fine.
    assert!(parse_documents("- {a: 1}\n- {a: 2}\n").is_ok());
}

#[test]
fn aliases_copy_the_anchored_node() {
    let root = parse_one("base: &base {for: 5m}\nrule: *base\nname: &n kitchen\nalso: *n\n");
    let rule = root.get("rule").unwrap();
    assert_eq!(rule.position, pos(2, 7));
    assert_eq!(rule.get("for").unwrap().kind, NodeKind::String("5m".into()));
    // Inside the copy, positions are those of the original.
    assert_eq!(rule.key_position("for"), Some(pos(1, 14)));
    assert_eq!(
        root.get("also").unwrap().kind,
        NodeKind::String("kitchen".into())
    );
    assert_eq!(root.get("also").unwrap().position, pos(4, 7));
}

#[test]
fn alias_errors() {
    let error = parse_documents("a: &a 1\n---\nb: *a\n").unwrap_err();
    assert_eq!(error.position, pos(3, 4));
    assert!(error.message.contains("another document"), "{error}");
    let error = parse_documents("a: &a [1, *a]\n").unwrap_err();
    assert!(error.message.contains("contains it"), "{error}");
    let error = parse_documents("b: *nowhere\n").unwrap_err();
    assert!(error.message.contains("unknown anchor"), "{error}");
}

#[test]
fn an_alias_bomb_is_refused() {
    let mut text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
    for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e")] {
        let items = vec![format!("*{previous}"); 10].join(", ");
        text.push_str(&format!("{name}: &{name} [{items}]\n"));
    }
    let error = parse_documents(&text).unwrap_err();
    assert!(error.message.contains("more than 100000 values"), "{error}");
    // `e` holds 111 111 nodes: one of its aliases passes the limit.
    assert_eq!(error.position.line, 5);
    // Four levels (11 111 nodes per copy) are fine.
    let fine: String = text
        .lines()
        .take(4)
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(parse_documents(&fine).is_ok());
}

#[test]
fn aliases_cannot_nest_past_the_depth_limit() {
    // Each anchor nests the previous one 40 levels deeper.
    let open = "[".repeat(40);
    let close = "]".repeat(40);
    let text = format!("a: &a {open}x{close}\nb: &b {open}*a{close}\n");
    let error = parse_documents(&text).unwrap_err();
    assert_eq!(error.position, pos(2, 47));
    assert!(error.message.contains("deeper than 64"), "{error}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    let error = parse_documents(&deep).unwrap_err();
    // yaml_rust2's scanner reads the line ahead and stops at its own limit, 255.
    assert_eq!(error.to_string(), "1:256: nested deeper than 64 levels");
    let error = parse_documents(&"[".repeat(100)).unwrap_err();
    assert_eq!(error.to_string(), "1:65: nested deeper than 64 levels");
    let error = parse_documents(&"- ".repeat(100_000)).unwrap_err();
    assert_eq!(error.to_string(), "1:129: nested deeper than 64 levels");
    let fine = format!(
        "{}x{}",
        "[".repeat(MAX_NESTING_DEPTH),
        "]".repeat(MAX_NESTING_DEPTH)
    );
    assert!(parse_documents(&fine).is_ok());
}

#[test]
fn a_syntax_error_has_the_position_an_editor_shows() {
    let error = parse_documents("name: freezer\nsummary: warm\n  for: 5m\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "3:6: mapping values are not allowed in this context"
    );
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRule {
    name: String,
    condition: String,
    #[serde(default)]
    summary: Option<String>,
    threshold: f64,
    severity: Severity,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    steps: Vec<Step>,
    notify: Vec<Notify>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    after: String,
    #[serde(default)]
    repeat: Option<u32>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Notify {
    Nobody,
    Email(String),
    Telegram { chat: i64 },
    Webhook(String, u16),
}

const RULE: &str = "\
name: freezer-warm
condition: temperature > -10
threshold: 5
severity: critical
labels:
  room: kitchen
  floor: '1'
steps:
  - after: 5m
  - after: 1h
    repeat: 3
notify:
  - nobody
  - email: admin@example.org
  - telegram: {chat: -42}
  - webhook: [https://hooks.example.org, 443]
";

fn rule_error(text: &str) -> DeError {
    from_node::<TestRule>(&parse_one(text)).unwrap_err()
}

#[test]
fn deserializes_a_rule() {
    let rule: TestRule = from_node(&parse_one(RULE)).unwrap();
    assert_eq!(
        rule,
        TestRule {
            name: "freezer-warm".into(),
            condition: "temperature > -10".into(),
            summary: None,
            threshold: 5.0,
            severity: Severity::Critical,
            labels: HashMap::from([
                ("room".into(), "kitchen".into()),
                ("floor".into(), "1".into())
            ]),
            steps: vec![
                Step {
                    after: "5m".into(),
                    repeat: None
                },
                Step {
                    after: "1h".into(),
                    repeat: Some(3)
                },
            ],
            notify: vec![
                Notify::Nobody,
                Notify::Email("admin@example.org".into()),
                Notify::Telegram { chat: -42 },
                Notify::Webhook("https://hooks.example.org".into(), 443),
            ],
        }
    );
    let with_summary = format!("{RULE}summary: ~\n");
    let rule: TestRule = from_node(&parse_one(&with_summary)).unwrap();
    assert_eq!(rule.summary, None);
    let with_summary = format!("{RULE}summary: Too warm\n");
    let rule: TestRule = from_node(&parse_one(&with_summary)).unwrap();
    assert_eq!(rule.summary.as_deref(), Some("Too warm"));
    // Borrowing from the tree works too.
    let node = parse_one("[a, b]");
    let borrowed: Vec<&str> = Deserialize::deserialize(&node).unwrap();
    assert_eq!(borrowed, ["a", "b"]);
}

#[test]
fn an_unknown_key_points_at_the_key_and_suggests_a_near_one() {
    let error = rule_error(&RULE.replace("condition:", "conditon:"));
    assert_eq!(
        error.to_string(),
        "2:1: unknown key `conditon`; did you mean `condition`?"
    );
    let error = rule_error(&RULE.replace("    repeat: 3", "    repaet: 3"));
    assert_eq!(
        error.to_string(),
        "11:5: unknown key `repaet`; did you mean `repeat`?"
    );
    let error = rule_error(&format!("{RULE}colour: blue\n"));
    assert_eq!(
        error.to_string(),
        "17:1: unknown key `colour`; expected one of `name`, `condition`, `summary`, \
         `threshold`, `severity`, `labels`, `steps`, `notify`"
    );
}

#[test]
fn an_unknown_variant_points_at_it_and_suggests_a_near_one() {
    let error = rule_error(&RULE.replace("severity: critical", "severity: critcal"));
    assert_eq!(
        error.to_string(),
        "4:11: unknown variant `critcal`; did you mean `critical`?"
    );
    let error = rule_error(&RULE.replace("  - telegram:", "  - telgram:"));
    assert_eq!(error.position, pos(15, 5));
    assert!(
        error.message.contains("did you mean `telegram`?"),
        "{error}"
    );
}

#[test]
fn a_type_error_points_at_the_value() {
    let error = rule_error(&RULE.replace("threshold: 5", "threshold: '5'"));
    assert_eq!(error.to_string(), "3:12: expected a number, found a string");
    let error = rule_error(&RULE.replace("name: freezer-warm", "name: [a, b]"));
    assert_eq!(error.to_string(), "1:7: expected a string, found a list");
    let error = rule_error(&RULE.replace("  floor: '1'", "  floor: 1"));
    assert_eq!(error.to_string(), "7:10: expected a string, found a number");
    let error = rule_error(&RULE.replace("    repeat: 3", "    repeat: -3"));
    assert_eq!(error.position, pos(11, 13));
    let error = rule_error(&RULE.replace("chat: -42", "chat: 1.5"));
    assert_eq!(
        error.to_string(),
        "15:22: expected an integer, found a number"
    );
    // An absent value is null, reported at its key.
    let error = rule_error(&RULE.replace("threshold: 5", "threshold:"));
    assert_eq!(error.to_string(), "3:1: expected a number, found null");
    let error = from_node::<TestRule>(&parse_one("[]")).unwrap_err();
    assert_eq!(error.to_string(), "1:1: expected a mapping, found a list");
}

#[test]
fn a_missing_key_points_at_the_mapping() {
    let error = rule_error(&RULE.replace("    repeat: 3\n", "    repeat: 3\n  - {}\n"));
    assert_eq!(error.to_string(), "12:5: missing key `after`");
    let error = rule_error(&RULE.replace("  - after: 1h\n    repeat: 3\n", "  - repeat: 2\n"));
    assert_eq!(error.to_string(), "10:5: missing key `after`");
    let error = rule_error(&RULE.replace("name: freezer-warm\n", ""));
    assert_eq!(error.to_string(), "1:1: missing key `name`");
}

#[test]
fn an_error_in_the_third_item_points_inside_it() {
    let text = RULE.replace(
        "  - telegram: {chat: -42}",
        "  - telegram: {chat: -42, topic: x}",
    );
    let error = rule_error(&text);
    assert_eq!(error.position, pos(15, 27));
    assert!(error.message.starts_with("unknown key `topic`"), "{error}");

    let steps = parse_one("- after: 1m\n- after: 2m\n- after: 3m\n  repeat: often\n");
    let error = from_node::<Vec<Step>>(&steps).unwrap_err();
    assert_eq!(
        error.to_string(),
        "4:11: expected an integer, found a string"
    );
}

#[test]
fn enum_shapes_that_do_not_fit_are_errors_at_the_value() {
    let error = rule_error(&RULE.replace("  - nobody", "  - {nobody: 1}"));
    assert_eq!(error.position, pos(13, 14));
    let error = rule_error(&RULE.replace("  - nobody", "  - {nobody: ~, email: x}"));
    assert_eq!(error.position, pos(13, 5));
    assert!(error.message.contains("only key"), "{error}");
    let error = rule_error(&RULE.replace("  - nobody", "  - 7"));
    assert_eq!(
        error.to_string(),
        "13:5: expected enum Notify, found a number"
    );
    let error = rule_error(&RULE.replace(", 443]", ", 443, extra]"));
    assert_eq!(error.position, pos(16, 14));
    let error = rule_error(&RULE.replace("{chat: -42}", "[-42]"));
    assert_eq!(error.to_string(), "15:15: expected a mapping, found a list");
    let error = rule_error(&RULE.replace("  - nobody", "  - 1: x"));
    assert_eq!(error.to_string(), "13:5: expected a name, found a number");
}

#[test]
fn ignored_values_and_newtypes() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Seconds(u32);
    #[derive(Debug, PartialEq, Deserialize)]
    struct Lenient {
        keep: Seconds,
    }
    let node = parse_one("keep: 30\nignored: {deep: [1, 2, {x: y}]}\n");
    assert_eq!(
        from_node::<Lenient>(&node),
        Ok(Lenient { keep: Seconds(30) })
    );
    // No coercion of strings to numbers.
    let node = parse_one("keep: '30'\n");
    assert_eq!(
        from_node::<Lenient>(&node).unwrap_err().to_string(),
        "1:7: expected an integer, found a string"
    );
    // A value out of range keeps serde's precise message.
    let error = from_node::<u8>(&parse_one("[300]")).unwrap_err();
    assert_eq!(error.to_string(), "1:1: expected an integer, found a list");
    let error = from_node::<Vec<u8>>(&parse_one("[300]")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "1:2: invalid value: integer `300`, expected u8"
    );
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("", ""), 0);
    assert_eq!(edit_distance("abc", ""), 3);
    assert_eq!(edit_distance("conditon", "condition"), 1);
    assert_eq!(edit_distance("repaet", "repeat"), 1);
    assert_eq!(edit_distance("ca", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("señal", "senal"), 1);
    // Too far, or too short to be a likely typo.
    assert!(unknown("key", "xyz", &["name"]).contains("expected one of `name`"));
    assert!(unknown("key", "id", &["to"]).contains("expected one of `to`"));
    assert_eq!(
        unknown("key", "a", &[]),
        "unknown key `a`; none is allowed here"
    );
}

proptest! {
    #[test]
    fn parsing_never_panics_and_positions_are_inside_the_text(text in "(?s).{0,200}") {
        if let Err(error) = parse_documents(&text) {
            prop_assert!(error.position.line >= 1 && error.position.column >= 1);
            let breaks = text.matches(['\n', '\r']).count();
            prop_assert!(error.position.line <= breaks + 2, "{error:?}");
        }
    }

    #[test]
    fn yaml_shaped_text_parses_or_fails_and_deserializes_without_panicking(
        text in r#"([-:\[\]{}"'&*!|>#, \t\n?]|[a-z]{1,3}|[0-9]{1,2}){0,60}"#
    ) {
        if let Ok(documents) = parse_documents(&text) {
            for document in &documents {
                let _ = from_node::<TestRule>(document);
                let _ = from_node::<HashMap<String, Vec<Notify>>>(document);
            }
        }
    }

    #[test]
    fn integers_resolve_to_themselves(value: i64) {
        let node = parse_one(&format!("[{value}]"));
        prop_assert_eq!(node.kind, NodeKind::Seq(vec![Node {
            position: pos(1, 2),
            kind: NodeKind::Int(value),
        }]));
    }
}

#[test]
fn a_large_string_aliased_many_times_is_refused_by_its_bytes() {
    // From the issue: one anchored megabyte aliased 3000 times expanded to 3 GB, with only
    // 3001 nodes. Here 100 KB aliased 200 times: 20 MB, past the limit, a few nodes.
    let big = "x".repeat(100 * 1024);
    let aliases = vec!["*big"; 200].join(", ");
    let text = format!("a: &big \"{big}\"\nb: [{aliases}]\n");
    let error = parse_documents(&text).unwrap_err();
    assert!(error.message.contains("MiB of text"), "{error}");
    assert_eq!(error.position.line, 2);
    // A handful of copies is fine.
    let few = format!("a: &big \"{big}\"\nb: [*big, *big]\n");
    assert!(parse_documents(&few).is_ok());
}
