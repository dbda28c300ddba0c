//! The engine on virtual time: every behaviour over time, minutes in microseconds.

use atalaya_bus::{Event, Subject};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::alert::{ActionRequest, AlertState, Output};
use crate::compile::compile_files;
use crate::files::RuleFile;
use crate::metrics::EngineMetrics;
use crate::yaml::parse_documents;

const T0: &str = "2026-01-05T12:00:00Z";

pub(super) fn engine(yaml: &str) -> Engine {
    let file = RuleFile {
        path: "test.yaml".into(),
        text: yaml.to_owned(),
        documents: parse_documents(yaml).unwrap(),
    };
    let set = compile_files(&[file]).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    Engine::new(set, EngineMetrics::unregistered().unwrap())
}

fn at(secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(secs)
}

fn event(subject: &str, data: Value, secs: i64) -> Event {
    Event::new("/test", Subject::parse(subject).unwrap(), data, at(secs))
}

/// Feeds `(seconds, subject, data)` in order, ticking up to each, and returns the transitions
/// as `(seconds, state, rule)`.
fn run(
    engine: &mut Engine,
    events: &[(i64, &str, Value)],
    until: i64,
) -> Vec<(i64, AlertState, String)> {
    let mut out = Vec::new();
    let start = at(0);
    let collect = |outputs: Vec<Output>, out: &mut Vec<(i64, AlertState, String)>| {
        for o in outputs {
            if let Output::Alert(a) = o {
                let when = match a.state {
                    AlertState::Pending => a.active_since,
                    AlertState::Firing => a.fired_at.unwrap(),
                    AlertState::Resolved => a.resolved_at.unwrap(),
                };
                out.push((when.duration_since(start).as_secs(), a.state, a.rule));
            }
        }
    };
    for (secs, subject, data) in events {
        let outputs = engine.on_event(at(*secs), &event(subject, data.clone(), *secs));
        collect(outputs, &mut out);
    }
    collect(engine.on_tick(at(until)), &mut out);
    out
}

use AlertState::{Firing, Pending, Resolved};

fn t(list: &[(i64, AlertState)]) -> Vec<(i64, AlertState, String)> {
    list.iter()
        .map(|(s, st)| (*s, *st, "r".to_owned()))
        .collect()
}

#[test]
fn for_waits_before_firing_and_a_dip_resets_it() {
    let mut e =
        engine("rules:\n  - name: r\n    subject: t/+x\n    condition: value > 80\n    for: 2m\n");
    let got = run(
        &mut e,
        &[
            (0, "t/a", json!(85)),
            (60, "t/a", json!(70)),
            (90, "t/a", json!(90)),
        ],
        600,
    );
    assert_eq!(got, t(&[(0, Pending), (90, Pending), (210, Firing)]));
}

#[test]
fn keep_firing_for_holds_the_alert_after_the_condition_stops() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: t\n    condition: value > 80\n    keep_firing_for: 5m\n",
    );
    let got = run(
        &mut e,
        &[
            (0, "t", json!(90)),
            (60, "t", json!(50)),
            (120, "t", json!(95)),
            (180, "t", json!(10)),
        ],
        3600,
    );
    assert_eq!(got, t(&[(0, Firing), (480, Resolved)]));
}

#[test]
fn hysteresis_clears_only_below_the_clear_condition() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: t\n    condition: value > 90\n    clear_condition: value < 85\n",
    );
    let got = run(
        &mut e,
        &[
            (0, "t", json!(91)),
            (60, "t", json!(87)),
            (120, "t", json!(89)),
            (180, "t", json!(84)),
            (240, "t", json!(88)),
        ],
        600,
    );
    assert_eq!(got, t(&[(0, Firing), (180, Resolved)]));
}

#[test]
fn absence_fires_when_a_series_goes_silent_and_resolves_when_it_speaks() {
    let mut e = engine("rules:\n  - name: r\n    subject: hb/+node\n    absent_for: 40s\n");
    let got = run(
        &mut e,
        &[
            (0, "hb/a", json!(1)),
            (10, "hb/b", json!(1)),
            (30, "hb/b", json!(1)),
            (100, "hb/a", json!(1)),
        ],
        100,
    );
    // a: silent from 0, fires at 40, speaks at 100. b: last at 30, fires at 70.
    assert_eq!(got, t(&[(40, Firing), (70, Firing), (100, Resolved)]));
}

#[test]
fn an_absence_timer_restarted_by_events_fires_after_the_last_one() {
    let mut e = engine("rules:\n  - name: r\n    subject: hb\n    absent_for: 40s\n");
    for secs in [0, 10, 20] {
        assert!(
            e.on_event(at(secs), &event("hb", json!(1), secs))
                .is_empty()
        );
    }
    // The queue still holds the first deadline (40 s): the tick then finds the timer
    // restarted and queues it at 60 s, 40 s after the last event.
    assert_eq!(e.next_deadline(), Some(at(40)));
    assert!(e.on_tick(at(40)).is_empty());
    assert_eq!(e.next_deadline(), Some(at(60)));
    assert!(e.on_tick(at(59)).is_empty());
    let fired = e.on_tick(at(60));
    assert!(
        matches!(&fired[..], [Output::Alert(a)] if a.state == Firing),
        "{fired:?}"
    );
}

#[test]
fn count_window_fires_on_three_in_ten_minutes_and_clears_as_they_age() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: restarts\n    window: {duration: 10m, aggregate: count}\n    condition: value >= 3\n",
    );
    let got = run(
        &mut e,
        &[
            (0, "restarts", json!(1)),
            (180, "restarts", json!(1)),
            (360, "restarts", json!(1)),
        ],
        3600,
    );
    // Firing at the third; the first ages out at 600 → count 2 → resolved.
    assert_eq!(got, t(&[(360, Firing), (600, Resolved)]));
}

#[test]
fn avg_window_over_five_minutes() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: temp\n    window: {duration: 5m, aggregate: avg}\n    condition: value > 25\n",
    );
    let got = run(
        &mut e,
        &[
            (0, "temp", json!(20)),
            (60, "temp", json!(30)),
            (120, "temp", json!(31)),
            (180, "temp", json!(20)),
            (240, "temp", json!(10)),
        ],
        240,
    );
    // avg: 20, 25, 27 (fire), 25.25 (still above), 22.2 (resolve)
    assert_eq!(got, t(&[(120, Firing), (240, Resolved)]));
}

#[test]
fn transition_needs_the_earlier_condition_first() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: power\n    after: value > 100\n    condition: value < 5\n    for: 3m\n    one_shot: true\n",
    );
    let mut events = Vec::new();
    for m in 0..5 {
        events.push((m * 60, "power", json!(2)));
    } // idle: never armed
    for m in 5..30 {
        events.push((m * 60, "power", json!(1500)));
    } // washing
    for m in 30..40 {
        events.push((m * 60, "power", json!(3)));
    } // done
    let got = run(&mut e, &events, 3600);
    assert_eq!(got, t(&[(1800, Pending), (1980, Firing), (1980, Resolved)]));
}

#[test]
fn one_shot_tells_once_until_the_condition_has_been_false() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: leak\n    condition: value == true\n    one_shot: true\n",
    );
    let got = run(
        &mut e,
        &[
            (0, "leak", json!(true)),
            (10, "leak", json!(true)),
            (20, "leak", json!(false)),
            (30, "leak", json!(true)),
        ],
        60,
    );
    assert_eq!(
        got,
        t(&[(0, Firing), (0, Resolved), (30, Firing), (30, Resolved)])
    );
}

#[test]
fn one_shot_with_keep_firing_for_resolves_by_itself_later() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: leak\n    condition: value == true\n    one_shot: true\n    keep_firing_for: 10m\n",
    );
    let got = run(&mut e, &[(0, "leak", json!(true))], 3600);
    assert_eq!(got, t(&[(0, Firing), (600, Resolved)]));
}

#[test]
fn active_hours_gate_the_condition_and_end_pending_alerts_at_their_edge() {
    // 12:00 UTC start; active 12:30–13:00 UTC.
    let mut e = engine(
        "rules:\n  - name: r\n    subject: door\n    condition: value == 1\n    for: 10m\n    active: {hours: [\"12:30-13:00\"]}\n",
    );
    let got = run(
        &mut e,
        &[
            (0, "door", json!(1)),
            (1500, "door", json!(1)),
            (1750, "door", json!(1)),
        ],
        1800,
    );
    // 12:00 ignored; 12:25 ignored; 12:29:10 → pending… the window opens at 12:30 only.
    assert_eq!(
        got,
        Vec::new(),
        "nothing inside the window yet at these times? {got:?}"
    );
    let got = run(&mut e, &[(1900, "door", json!(1))], 7200);
    // 12:31:40 pending, fires 12:41:40 inside the window, resolves at the 13:00 edge.
    assert_eq!(got, t(&[(1900, Pending), (2500, Firing), (3600, Resolved)]));
}

#[test]
fn captures_make_one_series_per_label_set_and_render_templates() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: host/+host/temp\n    condition: value > 80\n    labels: {team: home}\n    annotations:\n      summary: \"{{ labels.host }} at {{ value }}\"\n",
    );
    let out = e.on_event(at(0), &event("host/pi-1/temp", json!(81), 0));
    e.on_event(at(0), &event("host/pi-2/temp", json!(82), 0));
    let Output::Alert(alert) = &out[0] else {
        panic!()
    };
    assert_eq!(&alert.labels["host"], "pi-1");
    assert_eq!(&alert.labels["alertname"], "r");
    assert_eq!(&alert.labels["severity"], "warning");
    assert_eq!(&alert.labels["team"], "home");
    assert_eq!(&alert.annotations["summary"], "pi-1 at 81");
    assert_eq!(e.alerts(at(0)).len(), 2);
}

#[test]
fn subjects_of_any_length_match_and_capture() {
    let mut e = engine(
        "rules:\n  - name: deep\n    subject: \"+first/#\"\n    condition: value > 1\n  - name: last\n    subject: \"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/+last\"\n    condition: value > 1\n",
    );
    // Up to the tokens split on the stack, just past them, and far past them.
    for (n, subject) in [16, 17, 19, 40].into_iter().map(|n| {
        let tokens: Vec<String> = (0..n)
            .map(|i| ((b'a' + (i % 26) as u8) as char).to_string())
            .collect();
        (n, tokens.join("/"))
    }) {
        let fired: Vec<String> = e
            .on_event(at(n), &event(&subject, json!(2), n))
            .into_iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some(format!(
                    "{} {}",
                    a.rule,
                    a.labels.get("last").or(a.labels.get("first")).unwrap_or("")
                )),
                _ => None,
            })
            .collect();
        let mut expected = vec!["deep a".to_owned()];
        if n == 19 {
            expected.push("last s".to_owned());
        }
        assert_eq!(fired, expected, "{n} tokens");
        e.on_event(at(n), &event(&subject, json!(0), n));
    }
}

#[test]
fn group_by_chooses_the_series_labels() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: ups/+ups/+metric\n    group_by: [ups]\n    condition: value < 20\n",
    );
    e.on_event(at(0), &event("ups/a/battery", json!(10), 0));
    e.on_event(at(0), &event("ups/a/load", json!(10), 0));
    let alerts = e.alerts(at(0));
    assert_eq!(alerts.len(), 1);
    assert!(!alerts[0].labels.contains_key("metric"));
}

#[test]
fn source_and_type_filter_events() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: t\n    source: /esp32\n    type: reading\n    condition: \"true\"\n",
    );
    let mut ev = event("t", json!(1), 0);
    assert!(e.on_event(at(0), &ev).is_empty());
    ev.source = "/esp32".into();
    ev.event_type = "reading".into();
    assert_eq!(e.on_event(at(0), &ev).len(), 1);
}

#[test]
fn evaluation_errors_are_counted_and_do_not_stop_other_rules() {
    let mut e = engine(
        "rules:\n  - name: broken\n    subject: t\n    condition: data.missing > 1\n  - name: fine\n    subject: t\n    condition: value > 1\n",
    );
    let out = e.on_event(at(0), &event("t", json!(5), 0));
    assert_eq!(out.len(), 1);
    let metrics = &e.metrics;
    assert_eq!(metrics.evaluation_errors("broken").get(), 1);
    assert_eq!(metrics.evaluation_errors("fine").get(), 0);
}

#[test]
fn series_per_rule_are_bounded() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: t/+x\n    condition: \"true\"\n    max_series: 2\n",
    );
    for (i, s) in ["t/a", "t/b", "t/c", "t/d"].iter().enumerate() {
        e.on_event(at(i as i64), &event(s, json!(1), i as i64));
    }
    assert_eq!(e.alerts(at(10)).len(), 2);
    assert_eq!(e.metrics.series_limit_hits("r").get(), 2);
}

#[test]
fn a_restart_resumes_timers_where_they_stopped() {
    let rules = "rules:\n  - name: r\n    subject: t\n    condition: value > 80\n    for: 10m\n  - name: hb\n    subject: hb\n    absent_for: 30m\n";
    let mut before = engine(rules);
    before.on_event(at(0), &event("t", json!(90), 0));
    before.on_event(at(0), &event("hb", json!(1), 0));
    // Stops after 6 minutes, saving state then.
    before.on_tick(at(360));
    let changes = before.take_all_changes();
    // Back after an hour of downtime.
    let mut after = engine(rules);
    assert!(
        after
            .restore(changes.upserts, Some(at(360)), at(3960))
            .is_empty()
    );
    // 4 more minutes to fire, not 10 (and not at once).
    assert!(after.on_tick(at(3960 + 239)).is_empty());
    let fired = after.on_tick(at(3960 + 240));
    assert!(
        matches!(&fired[..], [Output::Alert(a)] if a.state == Firing && a.rule == "r"),
        "{fired:?}"
    );
    // The absence deadline also resumed: 30 min − 6 min = 24 min after the restart.
    assert!(after.on_tick(at(3960 + 24 * 60 - 1)).is_empty());
    let absent = after.on_tick(at(3960 + 24 * 60));
    assert!(
        matches!(&absent[..], [Output::Alert(a)] if a.rule == "hb" && a.state == Firing),
        "{absent:?}"
    );
}

#[test]
fn minor_changes_are_persisted_within_the_interval_and_nothing_else() {
    let mut e = engine(
        "rules:\n  - name: hot\n    subject: t/+room\n    condition: value > 80\n  - name: hb\n    subject: t/+room\n    absent_for: 30m\n",
    );
    let rules = |changes: Changes| {
        let mut rules: Vec<String> = changes.upserts.into_iter().map(|(r, _, _)| r).collect();
        rules.sort();
        rules
    };
    e.on_event(at(0), &event("t/a", json!(90), 0));
    e.on_event(at(0), &event("t/b", json!(10), 0));
    // New series (and a firing alert) at once.
    assert_eq!(rules(e.take_changes(at(0))), ["hb", "hb", "hot", "hot"]);
    e.on_event(at(10), &event("t/a", json!(95), 10));
    e.on_event(at(10), &event("t/b", json!(10), 10));
    assert!(e.take_changes(at(39)).is_empty());
    // 30 s later: the absence timers' new anchor and the firing alert's new value. The
    // inactive `hot` series of t/b changed nothing a restart reads.
    assert_eq!(rules(e.take_changes(at(40))), ["hb", "hb", "hot"]);
}

#[test]
fn a_series_record_follows_its_subject() {
    let mut e = engine("rules:\n  - name: r\n    subject: t/#\n    absent_for: 30m\n");
    let subjects = |changes: Changes| -> Vec<String> {
        changes
            .upserts
            .iter()
            .map(|(_, _, bytes)| {
                let record: Value = serde_json::from_slice(bytes).unwrap();
                record["series"]["subject"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    e.on_event(at(0), &event("t/a", json!(1), 0));
    assert_eq!(subjects(e.take_changes(at(0))), ["t/a"]);
    // The same series (the pattern captures nothing) from another subject.
    e.on_event(at(10), &event("t/b", json!(1), 10));
    assert_eq!(subjects(e.take_changes(at(40))), ["t/b"]);
}

#[test]
fn a_restart_with_a_changed_rule_resolves_its_old_alerts() {
    let mut before = engine("rules:\n  - name: r\n    subject: t\n    condition: value > 80\n");
    before.on_event(at(0), &event("t", json!(90), 0));
    let changes = before.take_all_changes();
    let mut after = engine("rules:\n  - name: r\n    subject: t\n    condition: value > 70\n");
    let out = after.restore(changes.upserts, Some(at(0)), at(10));
    assert!(
        matches!(&out[..], [Output::Alert(a)] if a.state == Resolved),
        "{out:?}"
    );
    assert_eq!(after.take_all_changes().deletes.len(), 1);
}

#[test]
fn reload_keeps_unchanged_rules_and_resolves_removed_ones() {
    let two = "rules:\n  - name: keep\n    subject: t\n    condition: value > 80\n    for: 10m\n  - name: gone\n    subject: t\n    condition: value > 80\n";
    let mut e = engine(two);
    e.on_event(at(0), &event("t", json!(90), 0));
    let one =
        engine("rules:\n  - name: keep\n    subject: t\n    condition: value > 80\n    for: 10m\n");
    let out = e.reload(one.rules, at(60));
    assert!(
        matches!(&out[..], [Output::Alert(a)] if a.rule == "gone" && a.state == Resolved),
        "{out:?}"
    );
    // `keep` is still pending since 0: fires at 10 min, not 11.
    let fired = e.on_tick(at(600));
    assert!(
        matches!(&fired[..], [Output::Alert(a)] if a.rule == "keep" && a.state == Firing),
        "{fired:?}"
    );
}

#[test]
fn actions_are_rendered_on_firing_and_resolving() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: t/+room\n    condition: value > 1\n    actions:\n      - on: firing\n        publish: \"home/alerts/{{ labels.room }}\"\n        payload: \"on\"\n      - on: resolved\n        publish: home/alerts/clear\n",
    );
    let out = e.on_event(at(0), &event("t/kitchen", json!(5), 0));
    let actions: Vec<&ActionRequest> = out
        .iter()
        .filter_map(|o| match o {
            Output::Action(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].subject, "home/alerts/kitchen");
    assert_eq!(actions[0].payload, "on");
    let out = e.on_event(at(1), &event("t/kitchen", json!(0), 1));
    let resolved = out
        .iter()
        .find_map(|o| match o {
            Output::Action(a) => Some(a),
            _ => None,
        })
        .unwrap();
    assert_eq!(resolved.subject, "home/alerts/clear");
    let payload: Value = serde_json::from_str(&resolved.payload).unwrap();
    assert_eq!(payload["state"], "resolved");
}

#[test]
fn a_sliding_window_keeps_hysteresis_when_samples_age_out() {
    let mut e = engine(
        "rules:\n  - name: r\n    subject: temp\n    window: {duration: 5m, aggregate: avg}\n    condition: value > 30\n    clear_condition: value < 25\n",
    );
    let got = run(
        &mut e,
        &[(0, "temp", json!(40)), (60, "temp", json!(28))],
        3600,
    );
    // avg 40 fires; at 300 the 40 ages out: avg 28 is below 30 but not below 25, so it keeps
    // firing; at 360 the window is empty and it resolves.
    assert_eq!(got, t(&[(0, Firing), (360, Resolved)]));
}

/// A door opened at 22:59 and still open when night hours begin at 23:00 (Madrid): with
/// `evaluate_at_start` it counts from 23:00, across the night the clocks go forward (an
/// hour of wall clock is skipped, so 23:00–07:00 lasts seven hours); without it, nothing
/// happens until the next event.
#[test]
fn hours_that_begin_while_the_condition_holds_count_it_with_evaluate_at_start() {
    let rule = |option: &str| {
        format!(
            "rules:\n  - name: r\n    subject: door\n    condition: value == 1\n    for: 6h\n    \
             active: {{hours: [\"23:00-07:00\"], timezone: Europe/Madrid{option}}}\n"
        )
    };
    let ts = |text: &str| text.parse::<Timestamp>().unwrap();
    // 22:59 CET, the evening before the clocks go forward (2026-03-29, 02:00 → 03:00).
    let opened = ts("2026-03-28T21:59:00Z");
    let door = Event::new("/test", Subject::parse("door").unwrap(), json!(1), opened);
    let transitions = |e: &mut Engine| {
        let mut outputs = e.on_event(opened, &door);
        outputs.extend(e.on_tick(ts("2026-03-30T00:00:00Z")));
        outputs
            .into_iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some(match a.state {
                    AlertState::Pending => (a.active_since, Pending),
                    AlertState::Firing => (a.fired_at.unwrap(), Firing),
                    AlertState::Resolved => (a.resolved_at.unwrap(), Resolved),
                }),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut with = engine(&rule(", evaluate_at_start: true"));
    assert_eq!(
        transitions(&mut with),
        [
            // 23:00 CET: the hours begin, the door is still open.
            (ts("2026-03-28T22:00:00Z"), Pending),
            // Six hours later: 06:00 CEST.
            (ts("2026-03-29T04:00:00Z"), Firing),
            // 07:00 CEST: the hours end.
            (ts("2026-03-29T05:00:00Z"), Resolved),
        ]
    );
    let mut without = engine(&rule(""));
    assert_eq!(transitions(&mut without), []);
}
