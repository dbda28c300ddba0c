//! Times at the edges of the calendar, fed to the router and the engine: nothing a user,
//! a device or a stored record can say about time may panic (a silence ending in 9999 once
//! crash-looped the service at every group flush).
//!
//! The property tests run briefly in the suite; raise `PROPTEST_CASES` for a longer run
//! (docs/operations.md, "Fuzzing").

use atalaya_connectors::notifiers::integration_kinds;
use std::path::Path;
use std::sync::Arc;

use atalaya_bus::{Event, Labels, Subject};
use atalaya_rules::compile::compile_files;
use atalaya_rules::engine::Engine;
use atalaya_rules::files::RuleFile;
use atalaya_rules::metrics::EngineMetrics;
use atalaya_rules::routing::config::{RoutingPolicy, parse_policy};
use atalaya_rules::routing::router::{RoutedAlert, Router, RouterState, posted_alert_id};
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceError, SilenceMatcher};
use atalaya_rules::yaml::parse_documents;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::json;

const POLICY: &str = r#"
route:
  receiver: home
  group_by: ['...']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['alertname="a1"']
      receiver: home
      mute_time_intervals: [night]
      continue: true
    - matchers: ['alertname="a2"']
      receiver: home
      active_time_intervals: [weekdays]
receivers:
  - name: home
    webhook_configs:
      - url: http://127.0.0.1:9/hook
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}]
        location: Europe/Madrid
  - name: weekdays
    time_intervals:
      - weekdays: ["monday:friday"]
        days_of_month: ["-3:-1"]
        months: ["december"]
        years: ["2026:9999"]
        location: Pacific/Kiritimati
"#;

fn policy() -> Arc<RoutingPolicy> {
    Arc::new(
        parse_policy(POLICY, Path::new("routing.yaml"), &integration_kinds())
            .expect("the test policy"),
    )
}

fn ts(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

fn alert(name: &str, starts_at: Timestamp, ends_at: Option<Timestamp>) -> RoutedAlert {
    let labels = Labels::from([("alertname".to_owned(), name.to_owned())]);
    RoutedAlert {
        fingerprint: posted_alert_id(&labels),
        labels,
        annotations: Default::default(),
        starts_at,
        ends_at,
        value: serde_json::Value::Null,
        generator_url: None,
        updated_at: None,
    }
}

fn silence(matcher: (&str, &str, bool), starts_at: Timestamp, ends_at: Timestamp) -> Silence {
    Silence {
        id: "s1".to_owned(),
        matchers: vec![SilenceMatcher {
            name: matcher.0.to_owned(),
            value: matcher.1.to_owned(),
            is_regex: matcher.2,
            is_equal: true,
        }],
        starts_at,
        ends_at,
        created_by: "ana".to_owned(),
        comment: "test".to_owned(),
        updated_at: starts_at,
    }
}

/// Ticks the router at each deadline up to `until`; the number of notifications.
fn run(router: &mut Router, until: Timestamp) -> usize {
    let mut sent = 0;
    while let Some(deadline) = router.next_deadline().filter(|d| *d <= until) {
        sent += router.on_tick(deadline).len();
    }
    sent
}

#[test]
fn a_stored_silence_ending_at_the_end_of_time_does_not_crash_the_router() {
    // As an earlier version accepted and stored it.
    let now = ts("2026-12-02T10:00:00Z");
    let stored = json!({
        "alerts": [],
        "groups": [],
        "silences": [silence(("alertname", "disk", false), now, ts("9999-12-30T00:00:00Z"))],
    });
    let (state, unreadable) = RouterState::decode(stored.to_string().as_bytes()).unwrap();
    assert!(unreadable.is_empty());
    let mut router = Router::new(policy());
    assert!(router.restore(state, now).is_empty());
    router.on_alert(now, alert("disk", now, None));
    router.on_alert(now, alert("door", now, None));
    // The flush keeps the silence (its retention would end past the year 9999).
    assert_eq!(run(&mut router, now + SignedDuration::from_hours(1)), 1);
    assert_eq!(router.silences().len(), 1);
}

#[test]
fn new_silences_beyond_a_century_or_muting_everything_are_refused() {
    let now = ts("2026-12-02T10:00:00Z");
    let mut router = Router::new(policy());
    let forever = silence(
        ("alertname", "disk", false),
        now,
        ts("9999-12-30T00:00:00Z"),
    );
    assert!(matches!(
        router.add_silence(now, forever, MuteAll::Allow),
        Err(SilenceError::BeyondHorizon {
            which: "endsAt",
            ..
        })
    ));
    let late_start = silence(
        ("alertname", "disk", false),
        ts("9000-01-01T00:00:00Z"),
        ts("9000-01-02T00:00:00Z"),
    );
    assert!(matches!(
        router.add_silence(now, late_start, MuteAll::Allow),
        Err(SilenceError::BeyondHorizon {
            which: "startsAt",
            ..
        })
    ));
    let decade = silence(
        ("alertname", "disk", false),
        now,
        ts("2036-12-02T10:00:00Z"),
    );
    assert_eq!(router.add_silence(now, decade, MuteAll::Refuse), Ok(()));

    let an_hour = now + SignedDuration::from_hours(1);
    for (name, value, regex) in [
        ("alertname", ".+", true),
        ("alertname", ".*x?", true),
        ("alertname", "", false),
    ] {
        let mut everything = silence((name, value, regex), now, an_hour);
        if !regex && value.is_empty() {
            // `alertname!=""`: every alert has a name.
            everything.matchers[0].is_equal = false;
        }
        let result = router.add_silence(now, everything.clone(), MuteAll::Refuse);
        assert!(
            matches!(
                result,
                Err(SilenceError::MutesEveryAlert | SilenceError::MatchesEverything)
            ),
            "{everything:?}: {result:?}"
        );
    }
    let everything = silence(("alertname", ".+", true), now, an_hour);
    assert_eq!(
        router.add_silence(now, everything.clone(), MuteAll::Refuse),
        Err(SilenceError::MutesEveryAlert)
    );
    assert_eq!(router.add_silence(now, everything, MuteAll::Allow), Ok(()));
    // Narrow regexes are fine.
    let disks = silence(("alertname", "disk.*", true), now, an_hour);
    assert_eq!(router.add_silence(now, disks, MuteAll::Refuse), Ok(()));
}

#[test]
fn one_unreadable_stored_item_costs_only_itself() {
    let now = ts("2026-12-02T10:00:00Z");
    let good = silence(
        ("alertname", "disk", false),
        now,
        now + SignedDuration::from_hours(1),
    );
    let mut bad_regex = good.clone();
    bad_regex.id = "s2".to_owned();
    bad_regex.matchers[0].is_regex = true;
    bad_regex.matchers[0].value = "(".to_owned();
    let stored = json!({
        "alerts": [alert("door", now, None), {"fingerprint": 7}],
        "groups": [],
        "silences": [good, bad_regex, {"id": "s3", "endsAt": "9999-99-99"}],
    });
    let (state, unreadable) = RouterState::decode(stored.to_string().as_bytes()).unwrap();
    let kinds: Vec<&str> = unreadable.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, ["alert", "silence"]);
    let mut router = Router::new(policy());
    let unrestorable = router.restore(state, now);
    assert_eq!(unrestorable.len(), 1);
    assert_eq!(unrestorable[0].record["id"], "s2");
    assert_eq!(router.silences().len(), 1);
    assert_eq!(router.alerts(now).len(), 1);
    assert!(RouterState::decode(b"[1,2]").is_err());
}

/// Any instant jiff can represent, weighted towards the edges and the present.
fn instant() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        (min..=max),
        (max - 1_000_000..=max),
        (min..=min + 1_000_000),
        (1_700_000_000i64..1_900_000_000),
    ]
    .prop_map(|s| Timestamp::from_second(s).expect("within jiff's range"))
}

#[derive(Debug, Clone)]
enum RouterOp {
    Alert(u8, Timestamp, Option<Timestamp>),
    Silence(u8, Timestamp, Timestamp),
    Expire,
    Tick(Timestamp),
    Restart(Timestamp),
}

fn router_op() -> impl Strategy<Value = RouterOp> {
    prop_oneof![
        (0u8..4, instant(), proptest::option::of(instant()))
            .prop_map(|(n, s, e)| RouterOp::Alert(n, s, e)),
        (0u8..4, instant(), instant()).prop_map(|(n, s, e)| RouterOp::Silence(n, s, e)),
        Just(RouterOp::Expire),
        instant().prop_map(RouterOp::Tick),
        instant().prop_map(RouterOp::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Alerts, silences, ticks and restarts at any instant, in any order: no panic, and
    /// the state survives a round trip through the store.
    #[test]
    fn the_router_takes_any_time(ops in proptest::collection::vec(router_op(), 1..40)) {
        let mut router = Router::new(policy());
        let mut now = ts("2026-12-02T10:00:00Z");
        for op in ops {
            match op {
                RouterOp::Alert(n, starts, ends) => {
                    router.on_alert(now, alert(&format!("a{n}"), starts, ends));
                }
                RouterOp::Silence(n, starts, ends) => {
                    let _ = router.add_silence(
                        now,
                        silence(("alertname", &format!("a{n}"), false), starts, ends),
                        MuteAll::Allow,
                    );
                }
                RouterOp::Expire => {
                    let _ = router.expire_silence(now, "s1");
                }
                RouterOp::Tick(at) => {
                    now = at;
                    router.on_tick(now);
                    let _ = router.alerts(now);
                }
                RouterOp::Restart(at) => {
                    now = at;
                    let bytes = serde_json::to_vec(&router.snapshot()).unwrap();
                    let (state, unreadable) = RouterState::decode(&bytes).unwrap();
                    prop_assert!(unreadable.is_empty());
                    router = Router::new(policy());
                    router.restore(state, now);
                }
            }
        }
    }
}

/// Rules of every kind that keeps time.
const RULES: &str = r#"
rules:
  - name: hot
    subject: home/+room/temperature
    condition: value > 30
    clear_condition: value < 25
    for: 20s
    keep_firing_for: 10s
  - name: silent
    subject: home/+room/temperature
    absent_for: 1m
  - name: busy
    subject: home/+room/temperature
    window:
      duration: 5m
      aggregate: avg
    condition: value >= 3
  - name: done
    subject: home/+room/temperature
    after: value > 100
    condition: value < 5
    for: 3m
    one_shot: true
  - name: night
    subject: home/+room/temperature
    condition: value > 50 && time_unix > 0.0
    active:
      timezone: Europe/Madrid
      hours: ["22:00-07:00"]
    annotations:
      summary: "{{ labels.room }} at {{ value }} ({{ time }})"
"#;

fn engine() -> Engine {
    let file = RuleFile {
        path: "extreme.yaml".into(),
        text: RULES.to_owned(),
        documents: parse_documents(RULES).expect("the test rules parse"),
    };
    let set = compile_files(&[file]).expect("the test rules compile");
    Engine::new(set, EngineMetrics::unregistered().expect("metrics"))
}

#[derive(Debug, Clone)]
enum EngineOp {
    /// An event at `now`, claiming the event time given, with a value.
    Event(Timestamp, Timestamp, f64),
    Tick(Timestamp),
    /// Everything persisted, then restored into a fresh engine at `now`, saved at `saved`.
    Restart(Timestamp, Timestamp),
}

fn engine_op() -> impl Strategy<Value = EngineOp> {
    let value = prop_oneof![
        Just(0.0),
        Just(120.0),
        Just(40.0),
        Just(f64::MAX),
        Just(f64::NAN),
        -1e6..1e6f64
    ];
    prop_oneof![
        (instant(), instant(), value).prop_map(|(n, t, v)| EngineOp::Event(n, t, v)),
        instant().prop_map(EngineOp::Tick),
        (instant(), instant()).prop_map(|(n, s)| EngineOp::Restart(n, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Events, ticks and restores at any instant (the clock may even go back): no panic.
    #[test]
    fn the_engine_takes_any_time(ops in proptest::collection::vec(engine_op(), 1..40)) {
        let mut engine = engine();
        // The store: (rule, fingerprint) → record.
        let mut store = std::collections::BTreeMap::new();
        for op in ops {
            match op {
                EngineOp::Event(now, time, value) => {
                    let subject = Subject::parse("home/kitchen/temperature").unwrap();
                    let mut event = Event::new("/test", subject, json!(value), time);
                    event.time = time;
                    engine.on_event(now, &event);
                }
                EngineOp::Tick(now) => {
                    engine.on_tick(now);
                }
                EngineOp::Restart(now, saved) => {
                    let changes = engine.take_all_changes();
                    for (rule, fingerprint, record) in changes.upserts {
                        store.insert((rule, fingerprint), record);
                    }
                    for key in changes.deletes {
                        store.remove(&key);
                    }
                    let records = store.iter().map(|((r, f), b)| (r.clone(), f.clone(), b.clone()));
                    let mut fresh = self::engine();
                    fresh.restore(records, Some(saved), now);
                    engine = fresh;
                }
            }
            let _ = engine.next_deadline();
        }
    }
}
