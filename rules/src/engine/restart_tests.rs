//! Restarts do not change what fires: random events, ticks, graceful restarts and crashes
//! give the same fires and resolves as one run without restarts, shifted by the downtime.
//!
//! Model. Both runs see the same operations at the same offsets; the restarted run's clock
//! jumps at each restart by the downtime, during which timers pause. After every operation
//! the runner commits (`take_all_changes` plus `saved_at` = now, as `RulesRunner::persist`
//! does, into an in-memory store). A graceful restart restores from the commit just made. A
//! crash restores from an earlier commit; the operations after it are run again, as a broker
//! redelivers messages that were never acknowledged, and what the lost stretch had emitted is
//! forgotten (it is emitted again). Commits take *all* changes: the runner leaves minor
//! changes (last seen, window samples) unwritten for up to `SOFT_PERSIST_INTERVAL`, a
//! documented bound on what a crash loses, which exact equality cannot express.
//!
//! Active hours follow the wall clock, which a downtime does not pause: the rule set with
//! them runs with whole-day downtimes, the other with any.
//!
//! The suite runs a few hundred cases; `PROPTEST_CASES=20000 cargo nextest run -p
//! atalaya-rules -E 'test(restart)'` runs more.

use std::collections::BTreeMap;

use atalaya_bus::{Event, Subject};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::json;

use super::tests::engine;
use super::{Changes, Engine};
use crate::alert::{AlertState, Output};

const TIMERS: &str = r#"
rules:
  - name: for
    subject: t/+x
    condition: value > 80
    for: 30s
  - name: keep
    subject: t/+x
    condition: value > 80
    keep_firing_for: 40s
  - name: hysteresis
    subject: t/+x
    condition: value > 80
    clear_condition: value < 40
  - name: absent
    subject: t/+x
    absent_for: 50s
  - name: window
    subject: t/+x
    window:
      duration: 2m
      aggregate: count
    condition: value >= 3
  - name: transition
    subject: t/+x
    after: value > 100
    condition: value < 5
    for: 20s
  - name: oneshot
    subject: t/+x
    condition: value > 100
    one_shot: true
    keep_firing_for: 45s
"#;

const ACTIVE_HOURS: &str = r#"
rules:
  - name: daytime
    subject: t/+x
    condition: value > 80
    for: 10s
    active:
      hours: ["08:00-08:03", "08:05-20:00"]
"#;

const T0: &str = "2026-01-05T07:58:00Z";

#[derive(Debug, Clone)]
enum Op {
    /// After `gap` seconds, an event of series `x` with `value`.
    Event { gap: i64, x: u8, value: i64 },
    /// After `gap` seconds, nothing but time.
    Tick { gap: i64 },
    /// Stop gracefully now; back after `down` seconds.
    Restart { down: i64 },
    /// Crash now, restoring from `back` commits ago; back after `down` seconds.
    Crash { back: usize, down: i64 },
}

fn ops(whole_days: bool) -> impl Strategy<Value = Vec<Op>> {
    let down = if whole_days {
        (1i64..3).prop_map(|d| d * 86_400).boxed()
    } else {
        (1i64..400).boxed()
    };
    let op = prop_oneof![
        6 => (1i64..40, 0u8..2, prop::sample::select(vec![0i64, 3, 50, 90, 120]))
            .prop_map(|(gap, x, value)| Op::Event { gap, x, value }),
        2 => (1i64..90).prop_map(|gap| Op::Tick { gap }),
        1 => down.clone().prop_map(|down| Op::Restart { down }),
        1 => (0usize..4, down).prop_map(|(back, down)| Op::Crash { back, down }),
    ];
    proptest::collection::vec(op, 1..40)
}

/// A fire or resolve: (rule, fingerprint, state, seconds on the run's own time line).
type Transition = (String, String, AlertState, i64);

fn at(secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(secs)
}

/// Fires and resolves among `outputs`, at their time less `shift` (the downtime so far).
fn transitions(outputs: Vec<Output>, shift: i64) -> impl Iterator<Item = Transition> {
    outputs.into_iter().filter_map(move |output| {
        let Output::Alert(alert) = output else {
            return None;
        };
        let when = match alert.state {
            AlertState::Firing => alert.fired_at?,
            AlertState::Resolved => alert.resolved_at?,
            AlertState::Pending => return None,
        };
        let secs = when.duration_since(at(0)).as_secs() - shift;
        Some((alert.rule, alert.fingerprint, alert.state, secs))
    })
}

fn event(x: u8, value: i64, now: Timestamp) -> Event {
    let subject = Subject::parse(&format!("t/s{x}")).unwrap();
    Event::new("/test", subject, json!(value), now)
}

/// The store: `(rule, fingerprint)` → record, and `saved_at`.
#[derive(Clone, Default)]
struct Store {
    series: BTreeMap<(String, String), Vec<u8>>,
    saved_at: Option<Timestamp>,
}

impl Store {
    fn commit(&mut self, changes: Changes, now: Timestamp) {
        for (rule, fingerprint, record) in changes.upserts {
            self.series.insert((rule, fingerprint), record);
        }
        for key in changes.deletes {
            self.series.remove(&key);
        }
        self.saved_at = Some(now);
    }

    fn restore(&self, rules: &str, now: Timestamp) -> (Engine, Vec<Output>) {
        let mut engine = engine(rules);
        let records = self
            .series
            .iter()
            .map(|((r, f), b)| (r.clone(), f.clone(), b.clone()));
        let out = engine.restore(records, self.saved_at, now);
        (engine, out)
    }
}

/// One run without restarts: every transition, at its time.
fn reference(rules: &str, ops: &[Op]) -> Vec<Transition> {
    let mut engine = engine(rules);
    let mut now = 0;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Event { gap, x, value } => {
                now += gap;
                out.extend(transitions(
                    engine.on_event(at(now), &event(x, value, at(now))),
                    0,
                ));
            }
            Op::Tick { gap } => {
                now += gap;
                out.extend(transitions(engine.on_tick(at(now)), 0));
            }
            Op::Restart { .. } | Op::Crash { .. } => {}
        }
    }
    out.extend(transitions(engine.on_tick(at(now + 3600)), 0));
    out
}

/// The same operations with their restarts and crashes.
fn restarted(rules: &str, ops: &[Op]) -> Vec<Transition> {
    let mut engine = engine(rules);
    // Where the run is: the operation next, the offset on the reference line, the downtime
    // so far.
    let (mut next, mut offset, mut shift) = (0usize, 0i64, 0i64);
    let mut store = Store::default();
    // Per commit (one after each operation): the operation after it, the offset, the
    // shift, the store, and how many transitions had been emitted.
    let mut commits: Vec<(usize, i64, i64, Store, usize)> = Vec::new();
    let mut out: Vec<Transition> = Vec::new();
    let mut crashes_left = 8;
    while next < ops.len() {
        let op = ops[next].clone();
        next += 1;
        match op {
            Op::Event { gap, x, value } => {
                offset += gap;
                let now = at(offset + shift);
                out.extend(transitions(
                    engine.on_event(now, &event(x, value, now)),
                    shift,
                ));
            }
            Op::Tick { gap } => {
                offset += gap;
                out.extend(transitions(engine.on_tick(at(offset + shift)), shift));
            }
            Op::Restart { down } => {
                store.commit(engine.take_all_changes(), at(offset + shift));
                shift += down;
                let (restored, outputs) = store.restore(rules, at(offset + shift));
                assert!(outputs.is_empty(), "{outputs:?}");
                engine = restored;
            }
            Op::Crash { back, down } => {
                if crashes_left == 0 || commits.is_empty() {
                    continue;
                }
                crashes_left -= 1;
                let crash_at = offset + shift;
                let index = commits.len().saturating_sub(back + 1);
                let (resume, c_offset, c_shift, c_store, emitted) = commits[index].clone();
                commits.truncate(index + 1);
                out.truncate(emitted);
                store = c_store;
                // Down from the commit's instant until back: the lost stretch counts as
                // downtime, its operations run again. (Whole-day downtimes round the lost
                // stretch up to whole days, so the shift stays whole days.)
                let lost = crash_at - (c_offset + c_shift);
                shift = if down % 86_400 == 0 {
                    c_shift + down + (lost + 86_399) / 86_400 * 86_400
                } else {
                    c_shift + lost + down
                };
                assert!(c_offset + shift >= crash_at, "back before the crash");
                offset = c_offset;
                next = resume;
                let (restored, outputs) = store.restore(rules, at(offset + shift));
                assert!(outputs.is_empty(), "{outputs:?}");
                engine = restored;
                continue;
            }
        }
        store.commit(engine.take_all_changes(), at(offset + shift));
        commits.push((next, offset, shift, store.clone(), out.len()));
    }
    out.extend(transitions(
        engine.on_tick(at(offset + shift + 3600)),
        shift,
    ));
    out
}

fn sorted(mut list: Vec<Transition>) -> Vec<Transition> {
    // Several series can change at one instant; their order among themselves is free.
    list.sort();
    list
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn restarts_and_crashes_do_not_change_what_fires(ops in ops(false)) {
        prop_assert_eq!(sorted(restarted(TIMERS, &ops)), sorted(reference(TIMERS, &ops)));
    }

    #[test]
    fn restarts_keep_active_hours_on_the_wall_clock(ops in ops(true)) {
        prop_assert_eq!(
            sorted(restarted(ACTIVE_HOURS, &ops)),
            sorted(reference(ACTIVE_HOURS, &ops))
        );
    }
}

/// The reproduction from the issue: `for: 20s`, an event at t0, stopped at t0+5 s, down
/// 15 s, started, stopped 7 s later, started: the alert must fire (it stayed pending
/// forever), and likewise a `keep_firing_for` alert must resolve and an absence fire.
#[test]
fn two_restarts_within_a_timer_keep_it() {
    let rules = "rules:\n  - name: door\n    subject: door\n    condition: value > 0\n    for: 20s\n  - name: keep\n    subject: keep\n    condition: value > 0\n    keep_firing_for: 20s\n  - name: heartbeat\n    subject: hb\n    absent_for: 20s\n";
    let mut engine = engine(rules);
    let mut store = Store::default();
    for (subject, value, secs) in [("door", 1, 0), ("keep", 1, 0), ("hb", 1, 0), ("keep", 0, 1)] {
        let event = Event::new(
            "/t",
            Subject::parse(subject).unwrap(),
            json!(value),
            at(secs),
        );
        engine.on_event(at(secs), &event);
    }
    store.commit(engine.take_all_changes(), at(5));
    let (mut engine, _) = store.restore(rules, at(20));
    // A heartbeat of the runner: `saved_at` moves on, nothing else changed.
    store.commit(engine.take_changes(at(20)), at(20));
    store.commit(engine.take_changes(at(27)), at(27));
    let (mut engine, _) = store.restore(rules, at(27));
    let got: Vec<(String, AlertState, i64)> = transitions(engine.on_tick(at(100)), 0)
        .map(|(rule, _, state, secs)| (rule, state, secs))
        .collect();
    // Down 15 s in all: each timer runs out 15 s late.
    assert_eq!(
        got.into_iter().collect::<std::collections::BTreeSet<_>>(),
        [
            ("keep".to_owned(), AlertState::Resolved, 36),
            ("door".to_owned(), AlertState::Firing, 35),
            ("heartbeat".to_owned(), AlertState::Firing, 35),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
    );
}

/// An MQTT message; `retained` as the broker flags its replay of a topic's last message.
fn mqtt(subject: &str, data: serde_json::Value, retained: bool, now: Timestamp) -> Event {
    let mut event = Event::new("mqtt://broker", Subject::parse(subject).unwrap(), data, now);
    event.event_type = atalaya_bus::event::Name::from_static(atalaya_bus::event::MQTT_EVENT_TYPE);
    if retained {
        event.labels.insert(
            atalaya_bus::event::MQTT_RETAINED_LABEL.to_owned(),
            "true".to_owned(),
        );
    }
    event
}

/// A retained message repeating what the series last saw — the broker's replay at each
/// restart — is not a sample: it counts in no window, restarts no absence timer and re-arms
/// no transition, across restarts (the payload's fingerprint is stored). A retained message
/// with another payload is a sample.
#[test]
fn retained_replays_of_the_last_payload_are_not_samples_across_restarts() {
    let rules = r#"
rules:
  - name: flapping_door
    subject: z2m/+door
    value: data.battery
    window: {duration: 1h, aggregate: count}
    condition: value >= 3
  - name: sensor_silent
    subject: z2m/+door
    absent_for: 10m
  - name: opened
    subject: z2m/+door
    after: "!data.contact"
    condition: data.contact
"#;
    let mut engine = engine(rules);
    let mut store = Store::default();
    let open = json!({"contact": true, "battery": 97});
    let mut fired: Vec<(String, AlertState)> = Vec::new();
    let keep = |outputs: Vec<Output>, fired: &mut Vec<(String, AlertState)>| {
        for o in outputs {
            if let Output::Alert(a) = o
                && a.state != AlertState::Pending
            {
                fired.push((a.rule, a.state));
            }
        }
    };
    // One real message: closed, then opened (the transition fires once).
    let closed = json!({"contact": false, "battery": 97});
    keep(
        engine.on_event(at(0), &mqtt("z2m/door", closed, false, at(0))),
        &mut fired,
    );
    keep(
        engine.on_event(at(60), &mqtt("z2m/door", open.clone(), false, at(60))),
        &mut fired,
    );
    assert_eq!(fired, [("opened".to_owned(), AlertState::Firing)]);
    fired.clear();
    // Two restarts, each replaying the retained message, four minutes apart.
    for secs in [300, 540] {
        store.commit(engine.take_all_changes(), at(secs));
        let (restored, out) = store.restore(rules, at(secs));
        engine = restored;
        keep(out, &mut fired);
        keep(
            engine.on_event(at(secs), &mqtt("z2m/door", open.clone(), true, at(secs))),
            &mut fired,
        );
    }
    // Nothing counted thrice, the transition not re-armed; and the absence timer still
    // runs from the last real message (60 s): silent at 660 s, not 1140 s.
    keep(engine.on_tick(at(659)), &mut fired);
    assert!(fired.is_empty(), "{fired:?}");
    keep(engine.on_tick(at(660)), &mut fired);
    assert_eq!(fired, [("sensor_silent".to_owned(), AlertState::Firing)]);
    fired.clear();

    // A retained message with another payload (the battery reported while atalaya was down)
    // is a sample: it counts (the third in the hour) and it speaks (the absence resolves).
    let battery = json!({"contact": true, "battery": 96});
    keep(
        engine.on_event(at(700), &mqtt("z2m/door", battery, true, at(700))),
        &mut fired,
    );
    assert_eq!(
        fired,
        [
            ("flapping_door".to_owned(), AlertState::Firing),
            ("sensor_silent".to_owned(), AlertState::Resolved)
        ]
    );
}

#[test]
fn the_payload_fingerprint_is_the_same_for_the_same_json() {
    use super::series::payload_fingerprint;
    let a = payload_fingerprint(&json!({"a": 1, "b": [true, null, "x"]}));
    assert_eq!(
        a,
        payload_fingerprint(&json!({"b": [true, null, "x"], "a": 1}))
    );
    assert_ne!(
        a,
        payload_fingerprint(&json!({"a": 1, "b": [true, null, "y"]}))
    );
    assert_ne!(
        payload_fingerprint(&json!("ab")),
        payload_fingerprint(&json!(["a", "b"]))
    );
    // Stable across runs and versions: it is stored.
    assert_eq!(payload_fingerprint(&json!(1)), 0x7a324a84d31af0c5);
}
