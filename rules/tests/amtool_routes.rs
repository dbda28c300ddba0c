//! Differential test of route matching against Alertmanager's own `amtool`.
//!
//! Generates route trees (deterministically, from fixed seeds) with every kind of matcher,
//! legacy `match`/`match_re`, `continue`, inherited receivers and nesting, writes each as an
//! Alertmanager configuration, and requires `RouteTree::receivers_line` to print exactly what
//! `amtool config routes test` prints for many label sets. Needs `amtool` (Debian package
//! `prometheus-alertmanager`, which `scripts/test` installs); without it the test fails.

use atalaya_connectors::notifiers::integration_kinds;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use atalaya_bus::Labels;
use atalaya_rules::routing::config::{RoutingPolicy, parse_policy};

const TREES: u64 = 40;
const LABEL_SETS_PER_TREE: usize = 25;

/// The label vocabulary: names and the values routes and alerts use.
const VOCABULARY: [(&str, [&str; 3]); 4] = [
    ("severity", ["critical", "warning", "info"]),
    ("team", ["ops", "dev", "home"]),
    ("room", ["kitchen", "hall", "garage"]),
    ("alertname", ["Fire", "Leak", "Hot"]),
];

const RECEIVERS: usize = 5;

/// SplitMix64: small, deterministic, good enough to vary trees.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A matcher's value for label `name`: a vocabulary value, empty, or a regex over them.
fn value(rng: &mut Rng, values: &[&str; 3], regex: bool) -> String {
    let a = *rng.pick(values);
    let b = *rng.pick(values);
    if !regex {
        return if rng.chance(15) {
            String::new()
        } else {
            a.to_owned()
        };
    }
    match rng.below(6) {
        0 => a.to_owned(),
        1 => format!("{a}|{b}"),
        2 => ".*".to_owned(),
        3 => ".+".to_owned(),
        4 => format!("{}.*", &a[..2]),
        _ => String::new(),
    }
}

/// One matcher in the text form both parsers read, with varied quoting and spacing.
fn matcher(rng: &mut Rng) -> String {
    let (name, values) = rng.pick(&VOCABULARY);
    let op = *rng.pick(&["=", "!=", "=~", "!~"]);
    let value = value(rng, values, op.ends_with('~'));
    let space = if rng.chance(20) { " " } else { "" };
    let simple = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric());
    if simple && rng.chance(30) {
        format!("{name}{space}{op}{space}{value}")
    } else {
        format!("{name}{space}{op}{space}\"{value}\"")
    }
}

/// Writes the keys of one non-root route (after its `- `), then its children.
fn route(rng: &mut Rng, depth: usize, indent: usize, yaml: &mut String) {
    let pad = " ".repeat(indent);
    let mut lines: Vec<String> = Vec::new();
    if rng.chance(60) {
        lines.push(format!("receiver: r{}", rng.below(RECEIVERS)));
    }
    if rng.chance(35) {
        lines.push("continue: true".to_owned());
    }
    if rng.chance(70) {
        let mut entries = Vec::new();
        for _ in 0..1 + rng.below(2) {
            // Sometimes several matchers in one entry, comma-separated, maybe in braces.
            let entry = if rng.chance(25) {
                let list = format!("{}, {}", matcher(rng), matcher(rng));
                if rng.chance(50) {
                    format!("{{{list}}}")
                } else {
                    list
                }
            } else {
                matcher(rng)
            };
            entries.push(format!("'{entry}'"));
        }
        lines.push(format!("matchers: [{}]", entries.join(", ")));
    }
    // Legacy maps, each label at most once per map.
    for (key, regex) in [("match", false), ("match_re", true)] {
        if rng.chance(25) {
            let (name, values) = rng.pick(&VOCABULARY);
            let value = value(rng, values, regex);
            lines.push(format!("{key}: {{{name}: \"{value}\"}}"));
        }
    }
    let children = match depth {
        1 => rng.below(4),
        2 => rng.below(3),
        _ => 0,
    };
    if lines.is_empty() && children == 0 {
        lines.push("receiver: r0".to_owned());
    }
    for (i, line) in lines.iter().enumerate() {
        let lead = if i == 0 { "- " } else { "  " };
        writeln!(yaml, "{pad}{lead}{line}").unwrap();
    }
    if children > 0 {
        let lead = if lines.is_empty() { "- " } else { "  " };
        writeln!(yaml, "{pad}{lead}routes:").unwrap();
        for _ in 0..children {
            route(rng, depth + 1, indent + 4, yaml);
        }
    }
}

/// An Alertmanager configuration with a random route tree of depth up to 3.
fn config(rng: &mut Rng) -> String {
    let mut yaml = String::from("route:\n  receiver: r0\n");
    if rng.chance(30) {
        yaml.push_str("  group_by: ['...']\n");
    }
    yaml.push_str("  routes:\n");
    for _ in 0..1 + rng.below(4) {
        route(rng, 1, 4, &mut yaml);
    }
    yaml.push_str("receivers:\n");
    for i in 0..RECEIVERS {
        if i % 2 == 0 {
            writeln!(yaml, "  - name: r{i}").unwrap();
        } else {
            writeln!(
                yaml,
                "  - name: r{i}\n    webhook_configs:\n      - url: http://127.0.0.1:9/"
            )
            .unwrap();
        }
    }
    yaml
}

/// An alert's labels: each vocabulary label present or not, sometimes with an unknown or
/// empty value.
fn labels(rng: &mut Rng) -> Labels {
    let mut labels = Labels::new();
    for (name, values) in VOCABULARY {
        if rng.chance(65) {
            let value = match rng.below(20) {
                0 => "other",
                1 => "",
                _ => *rng.pick(&values),
            };
            labels.insert(name.to_owned(), value.to_owned());
        }
    }
    labels
}

/// Fails, saying how to install amtool, when it is not on PATH.
fn require_amtool() {
    let found = Command::new("amtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "amtool is not on PATH: this test compares route matching with Alertmanager's. \
         Install it with `apt-get install -y prometheus-alertmanager` (scripts/test does)."
    );
}

/// What `amtool config routes test` prints for each label set, run concurrently (each call
/// mostly waits on process start-up).
fn amtool_lines(config: &Path, label_sets: &[Labels]) -> Vec<String> {
    let children: Vec<_> = label_sets
        .iter()
        .map(|labels| {
            Command::new("amtool")
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", config.display()))
                .args(labels.iter().map(|(k, v)| format!("{k}={v}")))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                // "Warning: --config.file flag overrides…", and errors, shown on failure.
                .stderr(Stdio::piped())
                .spawn()
                .expect("amtool runs")
        })
        .collect();
    children
        .into_iter()
        .zip(label_sets)
        .map(|(child, labels)| {
            let output = child.wait_with_output().expect("amtool finishes");
            assert!(
                output.status.success(),
                "amtool failed for {labels:?}: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(config).unwrap_or_default()
            );
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        })
        .collect()
}

fn compile(yaml: &str) -> RoutingPolicy {
    parse_policy(yaml, Path::new("generated.yaml"), &integration_kinds()).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("atalaya refused:\n{}\n{yaml}", errors.join("\n"))
    })
}

#[test]
fn route_matching_agrees_with_amtool() {
    require_amtool();
    let dir = tempfile::tempdir().unwrap();
    let mut mismatches = Vec::new();
    let (mut compared, mut several_receivers) = (0, 0);
    for seed in 0..TREES {
        let mut rng = Rng(seed);
        let yaml = config(&mut rng);
        let policy = compile(&yaml);
        let label_sets: Vec<Labels> = (0..LABEL_SETS_PER_TREE).map(|_| labels(&mut rng)).collect();
        let path = dir.path().join(format!("tree-{seed}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        for (labels, expected) in label_sets.iter().zip(amtool_lines(&path, &label_sets)) {
            let ours = policy.tree.receivers_line(labels);
            compared += 1;
            several_receivers += usize::from(expected.contains(','));
            if ours != expected {
                mismatches.push(format!(
                    "seed {seed}, labels {labels:?}: amtool `{expected}`, atalaya `{ours}`\n{yaml}"
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} differ; the first:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(3)].join("\n")
    );
    // The trees exercise `continue`: some alerts reach several routes.
    assert!(
        several_receivers * 20 > compared,
        "only {several_receivers} of {compared} alerts reached several routes"
    );
}

/// Alertmanager's example routing tree (`doc/examples/simple.yml`), with receivers atalaya
/// delivers to.
const EXAMPLE: &str = r#"
route:
  group_by: ['alertname', 'cluster', 'service']
  receiver: team-X-mails
  routes:
    - matchers:
        - service=~"foo1|foo2|baz"
      receiver: team-X-mails
      routes:
        - matchers:
            - severity="critical"
          receiver: team-X-pager
    - matchers:
        - service="files"
      receiver: team-Y-mails
      routes:
        - matchers:
            - severity="critical"
          receiver: team-Y-pager
    - matchers:
        - service="database"
      receiver: team-DB-pager
      group_by: [alertname, cluster, database]
      routes:
        - matchers:
            - owner="team-X"
          receiver: team-X-pager
          continue: true
        - matchers:
            - owner="team-Y"
          receiver: team-Y-pager
receivers:
  - name: team-X-mails
  - name: team-X-pager
  - name: team-Y-mails
  - name: team-Y-pager
  - name: team-DB-pager
"#;

#[test]
fn alertmanagers_example_routes_as_amtool_says() {
    require_amtool();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[], "team-X-mails"),
        (&[("service", "foo2")], "team-X-mails"),
        (
            &[("service", "baz"), ("severity", "critical")],
            "team-X-pager",
        ),
        (
            &[("service", "files"), ("severity", "critical")],
            "team-Y-pager",
        ),
        (&[("service", "database")], "team-DB-pager"),
        (
            &[("service", "database"), ("owner", "team-X")],
            "team-X-pager",
        ),
        (
            &[("service", "database"), ("owner", "team-Y"), ("x", "y")],
            "team-Y-pager",
        ),
    ];
    let policy = compile(EXAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.yaml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let label_sets: Vec<Labels> = cases
        .iter()
        .map(|(pairs, _)| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .collect();
    let amtool = amtool_lines(&path, &label_sets);
    for ((labels, (_, expected)), amtool) in label_sets.iter().zip(cases).zip(amtool) {
        assert_eq!(amtool, expected, "amtool, {labels:?}");
        assert_eq!(policy.tree.receivers_line(labels), expected, "{labels:?}");
    }
}

#[test]
fn continue_and_inheritance_keep_repeated_receivers() {
    require_amtool();
    // The first two routes continue and have no receiver of their own: both inherit the
    // root's, so amtool prints it three times.
    let yaml = r#"
route:
  receiver: default
  routes:
    - matchers: [team="ops"]
      continue: true
    - match_re: {severity: "critical|warning"}
      continue: true
      routes:
        - matchers: ['room!=""']
          receiver: house
          continue: true
        - matchers: ['room=~"kit.*"']
          receiver: kitchen
    - matchers: ['alertname!~"Watchdog|Heartbeat"']
receivers: [{name: default}, {name: house}, {name: kitchen}]
"#;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("team", "ops")], "default,default"),
        (
            &[
                ("team", "ops"),
                ("severity", "critical"),
                ("room", "kitchen"),
            ],
            "default,house,kitchen,default",
        ),
        (
            &[("severity", "warning"), ("alertname", "Watchdog")],
            "default",
        ),
        (&[("alertname", "Watchdog")], "default"),
    ];
    let policy = compile(yaml);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("continue.yaml");
    std::fs::write(&path, yaml).unwrap();
    let label_sets: Vec<Labels> = cases
        .iter()
        .map(|(pairs, _)| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .collect();
    let amtool = amtool_lines(&path, &label_sets);
    for ((labels, (_, expected)), amtool) in label_sets.iter().zip(cases).zip(amtool) {
        assert_eq!(amtool, expected, "amtool, {labels:?}");
        assert_eq!(policy.tree.receivers_line(labels), expected, "{labels:?}");
    }
}
