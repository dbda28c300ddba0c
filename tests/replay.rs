//! `atalaya replay` end to end: the real binary on a recorded day of a household (a freezer
//! reporting every minute, two nodes' heartbeats), with a freezer incident and a lost node at
//! known times and a few garbage lines; plain, gzipped and on stdin; `--strict`; JSON lines.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use jiff::{SignedDuration, Timestamp};

const START: &str = "2026-01-05T00:00:00Z";

const RULES: &str = r#"rules:
  - name: freezer_warm
    subject: zigbee2mqtt/freezer
    value: data.temperature
    condition: value > -10
    for: 15m
    severity: critical
  - name: node_lost
    subject: cluster/+node/heartbeat
    absent_for: 5m
    severity: warning
"#;

const ROUTING: &str = r#"route:
  receiver: family
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: family
      group_wait: 0s
      continue: true
    - matchers: ['severity="critical"']
      receiver: admin
receivers:
  - name: family
    webhook_configs:
      - url: http://127.0.0.1:9/family
  - name: admin
    webhook_configs:
      - url: http://127.0.0.1:9/admin
        send_resolved: false
"#;

/// The lines (1-based) that are garbage.
const GARBAGE: [usize; 3] = [5, 1500, 4000];

/// A day, one minute a step: the freezer warm (−8.5 °C) from 10:00 to 10:40, node pi-2 silent
/// from 14:00 to 14:30. Returns the text and the number of events.
fn recording() -> (String, usize) {
    let start: Timestamp = START.parse().unwrap();
    let mut lines: Vec<String> = Vec::new();
    for minute in 0..24 * 60 {
        let t = start + SignedDuration::from_mins(minute);
        let temperature = if (600..640).contains(&minute) {
            -8.5
        } else {
            -18.0
        };
        lines.push(format!(
            r#"{{"time":"{t}","subject":"zigbee2mqtt/freezer","data":{{"temperature":{temperature}}}}}"#
        ));
        for node in ["pi-1", "pi-2"] {
            if node == "pi-2" && (840..870).contains(&minute) {
                continue;
            }
            // The CloudEvents shape, as the HTTP API takes it.
            lines.push(format!(
                r#"{{"specversion":"1.0","id":"{node}-{minute}","source":"/k","type":"heartbeat","at":"{t}","subject":"cluster/{node}/heartbeat","data":null}}"#
            ));
        }
    }
    let events = lines.len();
    for (i, line) in GARBAGE.iter().enumerate() {
        let garbage = ["not json", r#"{"subject":"a/b"}"#, "{\"time\": "][i];
        lines.insert(line - 1, garbage.to_owned());
    }
    (lines.join("\n") + "\n", events)
}

fn setup() -> (tempfile::TempDir, usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/home.yaml"), RULES).unwrap();
    std::fs::write(dir.path().join("routing.yaml"), ROUTING).unwrap();
    let (text, events) = recording();
    std::fs::write(dir.path().join("day.jsonl"), &text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(dir.path().join("day.jsonl.gz"), gz.finish().unwrap()).unwrap();
    (dir, events)
}

fn replay(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = support::std_command(dir);
    cmd.arg("replay")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout without the summary's wall-time line, which differs run to run.
fn stable(out: &Output) -> String {
    text(&out.stdout)
        .lines()
        .filter(|l| !l.contains("wall time"))
        .collect::<Vec<_>>()
        .join("\n")
}

const TRANSITIONS: [&str; 5] = [
    "2026-01-05T10:00:00Z pending  freezer_warm {severity=\"critical\"} value=-8.5",
    "2026-01-05T10:15:00Z firing   freezer_warm {severity=\"critical\"} value=-8.5",
    "2026-01-05T10:40:00Z resolved freezer_warm {severity=\"critical\"} value=-18",
    // pi-2 last spoke at 13:59; five minutes of silence later it is lost.
    "2026-01-05T14:04:00Z firing   node_lost {node=\"pi-2\", severity=\"warning\"} value=null",
    "2026-01-05T14:30:00Z resolved node_lost {node=\"pi-2\", severity=\"warning\"} value=null",
];

#[test]
fn a_recorded_day_replays_with_its_transitions_and_notifications() {
    let (dir, events) = setup();
    let out = replay(
        dir.path(),
        &["day.jsonl", "--rules", "rules", "--routing", "routing.yaml"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let transitions: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            [" pending ", " firing ", " resolved "]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect();
    assert_eq!(transitions, TRANSITIONS, "{stdout}");
    let notifications: Vec<&str> = stdout.lines().filter(|l| l.contains(" notify ")).collect();
    assert_eq!(
        notifications,
        [
            // Critical: at once to the family (group_wait 0), 30 s later to the admin.
            "2026-01-05T10:15:00Z notify   webhook/family [firing] freezer_warm (1 alert) group={alertname=\"freezer_warm\"}",
            "2026-01-05T10:15:30Z notify   webhook/admin [firing] freezer_warm (1 alert) group={alertname=\"freezer_warm\"}",
            // The family's group flushes every 5 minutes from 10:15; the admin is not told
            // of resolutions.
            "2026-01-05T10:45:00Z notify   webhook/family [resolved] freezer_warm (1 alert) group={alertname=\"freezer_warm\"}",
            "2026-01-05T14:04:30Z notify   webhook/family [firing] node_lost (1 alert) group={alertname=\"node_lost\"}",
            "2026-01-05T14:34:30Z notify   webhook/family [resolved] node_lost (1 alert) group={alertname=\"node_lost\"}",
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "-- {} lines, {events} events, 3 bad lines skipped",
            events + 3
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("-- 5 transitions, 5 notifications, 0 actions"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "virtual time 2026-01-05T00:00:00Z to 2026-01-05T23:59:00Z (23h 59m); wall time"
        ),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    for line in GARBAGE {
        assert!(
            stderr.contains(&format!("day.jsonl:{line}: ")),
            "line {line} not reported: {stderr}"
        );
    }
    assert!(stderr.contains("day.jsonl:5: not JSON"), "{stderr}");
    assert!(stderr.contains("day.jsonl:1500: no `time`"), "{stderr}");

    // The same from the gzipped copy, and from stdin.
    let gz = replay(
        dir.path(),
        &[
            "day.jsonl.gz",
            "--rules",
            "rules",
            "--routing",
            "routing.yaml",
        ],
        None,
    );
    assert!(gz.status.success(), "{}", text(&gz.stderr));
    assert_eq!(stable(&gz), stable(&out));
    let bytes = std::fs::read(dir.path().join("day.jsonl.gz")).unwrap();
    let piped = replay(
        dir.path(),
        &["-", "--rules", "rules", "--routing", "routing.yaml"],
        Some(&bytes),
    );
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(stable(&piped), stable(&out));
    assert!(text(&piped.stderr).contains("<stdin>:1500: "));
}

#[test]
fn strict_stops_at_the_first_bad_line_with_its_number() {
    let (dir, _) = setup();
    let out = replay(
        dir.path(),
        &["day.jsonl", "--rules", "rules", "--strict"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("day.jsonl:5: not JSON"), "{stderr}");
    assert!(stderr.contains("--strict"), "{stderr}");
    assert!(!stderr.contains("day.jsonl:1500"), "{stderr}");
    // Nothing after line 5 was read: no transition.
    assert!(!text(&out.stdout).contains("freezer_warm"));
}

#[test]
fn a_truncated_gzip_file_replays_what_it_holds_then_fails() {
    let (dir, _) = setup();
    let bytes = std::fs::read(dir.path().join("day.jsonl.gz")).unwrap();
    std::fs::write(dir.path().join("cut.jsonl.gz"), &bytes[..bytes.len() / 2]).unwrap();
    let out = replay(dir.path(), &["cut.jsonl.gz", "--rules", "rules"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("cannot read on").count(), 1, "{stderr}");
    assert!(
        stderr.contains("atalaya replay: cut.jsonl.gz could not be read to its end"),
        "{stderr}"
    );
    // The morning's freezer incident lies in the first half.
    assert!(
        text(&out.stdout).contains(TRANSITIONS[1]),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn json_output_is_one_object_a_line() {
    let (dir, events) = setup();
    let out = replay(
        dir.path(),
        &[
            "day.jsonl",
            "--rules",
            "rules",
            "--output",
            "json",
            "--from",
            "2026-01-05T09:00:00Z",
            "--to",
            "2026-01-05T12:00:00Z",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    // Only the freezer incident lies between 9:00 and 12:00; without --routing, the console
    // tells each change at once.
    assert_eq!(
        kinds,
        [
            "transition",
            "transition",
            "notification",
            "transition",
            "notification",
            "summary"
        ]
    );
    assert_eq!(lines[1]["state"], "firing");
    assert_eq!(lines[1]["at"], "2026-01-05T10:15:00Z");
    assert_eq!(lines[1]["labels"]["alertname"], "freezer_warm");
    assert!(lines[1]["line"].as_u64().is_some());
    assert_eq!(lines[2]["integration_kind"], "console");
    assert_eq!(lines[2]["receiver"], "console");
    assert_eq!(lines[2]["status"], "firing");
    let summary = &lines[5];
    // 9:00 to 12:00 inclusive: 181 minutes, three events each.
    assert_eq!(summary["events"], 181 * 3);
    assert_eq!(
        summary["out_of_range"].as_u64().unwrap() as usize,
        events - 181 * 3
    );
    assert_eq!(summary["bad_lines"], 3);
    assert_eq!(summary["from"], "2026-01-05T09:00:00Z");
    assert_eq!(summary["to"], "2026-01-05T12:00:00Z");
}

/// The recording the rule tests use (`tests/data/recorded`), replayed: the same instants the
/// test expects.
#[test]
fn the_rule_tests_recording_replays_to_the_instants_its_test_expects() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recorded");
    let out = replay(
        &dir,
        &["freezer-morning.jsonl", "--rules", "freezer.yaml"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let transitions: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.contains(" notify ") && !l.starts_with("--"))
        .collect();
    assert_eq!(
        transitions,
        [
            "2026-01-05T10:00:00Z pending  freezer_warm {severity=\"critical\"} value=-7.5",
            "2026-01-05T10:15:00Z firing   freezer_warm {severity=\"critical\"} value=-7.5",
            "2026-01-05T11:00:00Z resolved freezer_warm {severity=\"critical\"} value=-18.5",
        ],
        "{stdout}"
    );
}

const WEEK_RULES: &str = r#"rules:
  - name: freezer_warm
    subject: zigbee2mqtt/freezer
    value: data.temperature
    condition: value > -10
    for: 15m
  - name: room_hot
    subject: home/+room/temperature
    window: {duration: 15m, aggregate: avg}
    condition: value > 26
  - name: node_lost
    subject: cluster/+node/heartbeat
    absent_for: 2m
  - name: washer_done
    subject: home/washer/power
    after: value > 100
    condition: value < 5
    for: 3m
    one_shot: true
"#;

/// A week of one household, about 134 000 events in time order: three nodes' heartbeats
/// every 30 s, the washer's power every 10 s (a load at 09:00 each day), the freezer every
/// 2 minutes (warm on day 3 from 10:00 to 10:40), four rooms every 5 minutes (the kitchen
/// hot on day 5 from 14:00 to 15:00), pi-2 silent on day 4 from 03:00 to 03:20.
fn write_week(path: &Path) -> usize {
    let start: Timestamp = START.parse().unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::new(file);
    let mut count = 0;
    for tick in 0..7 * 24 * 360 {
        // 10 s steps.
        let secs = tick * 10;
        let t = start + SignedDuration::from_secs(secs);
        let (day, minute_of_day) = (secs / 86_400, secs % 86_400 / 60);
        let mut line = |subject: &str, data: String| {
            writeln!(
                out,
                r#"{{"time":"{t}","subject":"{subject}","data":{data}}}"#
            )
            .unwrap();
            count += 1;
        };
        let washing = (540..600).contains(&minute_of_day);
        line(
            "home/washer/power",
            if washing { "500".into() } else { "1".into() },
        );
        if secs % 30 == 0 {
            for node in ["pi-1", "pi-2", "pi-3"] {
                let silent = node == "pi-2" && day == 3 && (180..200).contains(&minute_of_day);
                if !silent {
                    line(&format!("cluster/{node}/heartbeat"), "null".into());
                }
            }
        }
        if secs % 120 == 0 {
            let warm = day == 2 && (600..640).contains(&minute_of_day);
            let celsius = if warm { -8.5 } else { -18.0 };
            line(
                "zigbee2mqtt/freezer",
                format!(r#"{{"temperature":{celsius}}}"#),
            );
        }
        if secs % 300 == 0 {
            for room in ["kitchen", "hall", "bedroom", "office"] {
                let hot = room == "kitchen" && day == 4 && (840..900).contains(&minute_of_day);
                let celsius = if hot { 28.5 } else { 21.0 };
                line(&format!("home/{room}/temperature"), format!("{celsius}"));
            }
        }
    }
    out.flush().unwrap();
    count
}

/// How fast a week replays: `cargo test --release --test replay -- --ignored --nocapture`
/// (a debug build is some ten times slower). Prints the summary.
#[test]
#[ignore = "a measurement; run in release"]
fn a_week_of_events_replays_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("week.yaml"), WEEK_RULES).unwrap();
    let events = write_week(&dir.path().join("week.jsonl"));
    let out = replay(
        dir.path(),
        &["week.jsonl", "--rules", "week.yaml", "--output", "json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["events"].as_u64().unwrap() as usize, events);
    println!(
        "{events} events in {:.2} s: {:.0} events/s; {} transitions, {} notifications",
        summary["wall_seconds"].as_f64().unwrap(),
        summary["events_per_second"].as_f64().unwrap(),
        summary["transitions"],
        summary["notifications"]
    );
}

#[test]
fn the_week_holds_its_incidents() {
    // The measurement's input, checked quickly: its alerts fire when written.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("week.yaml"), WEEK_RULES).unwrap();
    let events = write_week(&dir.path().join("week.jsonl"));
    assert!((130_000..140_000).contains(&events), "{events}");
    let out = replay(
        dir.path(),
        &[
            "week.jsonl",
            "--rules",
            "week.yaml",
            "--from",
            "2026-01-07T00:00:00Z",
            "--to",
            "2026-01-09T23:59:59Z",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let firing: Vec<&str> = stdout.lines().filter(|l| l.contains(" firing ")).collect();
    assert_eq!(
        firing,
        [
            // The load ends at 09:59:50; 1 W from 10:00 for 3 minutes.
            "2026-01-07T10:03:00Z firing   washer_done {severity=\"warning\"} value=1",
            "2026-01-07T10:15:00Z firing   freezer_warm {severity=\"warning\"} value=-8.5",
            // pi-2's last heartbeat at 02:59:30, two minutes before.
            "2026-01-08T03:01:30Z firing   node_lost {node=\"pi-2\", severity=\"warning\"} value=null",
            "2026-01-08T10:03:00Z firing   washer_done {severity=\"warning\"} value=1",
            "2026-01-09T10:03:00Z firing   washer_done {severity=\"warning\"} value=1",
            // The 15-minute average passes 26 °C once the 21 °C reading has left it.
            "2026-01-09T14:10:00Z firing   room_hot {room=\"kitchen\", severity=\"warning\"} value=28.5",
        ],
        "{stdout}"
    );
}
