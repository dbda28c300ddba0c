//! The router on virtual time.

use atalaya_connectors::notifiers::integration_kinds;
use std::path::Path;
use std::sync::Arc;

use atalaya_bus::Labels;
use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::routing::config::parse_policy;
use crate::routing::silence::SilenceMatcher;

fn policy(yaml: &str) -> Arc<RoutingPolicy> {
    match parse_policy(yaml, Path::new("routing.yaml"), &integration_kinds()) {
        Ok(p) => Arc::new(p),
        Err(errors) => panic!("{errors:?}"),
    }
}

const T0: &str = "2026-06-01T10:00:00Z";

fn t(offset: &str) -> Timestamp {
    let base: Timestamp = T0.parse().unwrap();
    base + offset.parse::<SignedDuration>().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn firing(pairs: &[(&str, &str)], at: Timestamp) -> RoutedAlert {
    let labels = labels(pairs);
    RoutedAlert {
        fingerprint: posted_alert_id(&labels),
        labels,
        annotations: Default::default(),
        starts_at: at,
        ends_at: None,
        value: serde_json::Value::Null,
        generator_url: None,
        updated_at: None,
    }
}

fn resolved(pairs: &[(&str, &str)], started: Timestamp, at: Timestamp) -> RoutedAlert {
    RoutedAlert {
        ends_at: Some(at),
        ..firing(pairs, started)
    }
}

/// Ticks the router at each of its deadlines up to `until`; returns what it sent, with when.
fn run(router: &mut Router, until: Timestamp) -> Vec<(Timestamp, Notification)> {
    let mut out = Vec::new();
    while let Some(deadline) = router.next_deadline() {
        if deadline > until {
            break;
        }
        for n in router.on_tick(deadline) {
            out.push((deadline, n));
        }
    }
    out
}

/// `receiver status alertname…` per notification, for compact assertions.
fn summary(sent: &[(Timestamp, Notification)]) -> Vec<(Timestamp, String)> {
    sent.iter()
        .map(|(at, n)| {
            let names: Vec<String> = n
                .alerts
                .iter()
                .map(|a| {
                    format!(
                        "{}{}",
                        a.labels.get("alertname").unwrap_or("?"),
                        if a.status == Status::Resolved {
                            "(resolved)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            (
                *at,
                format!("{} {} {}", n.receiver, n.status.as_str(), names.join(",")),
            )
        })
        .collect()
}

const GROUPING: &str = r#"
route:
  receiver: home
  group_by: [room]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: home
    console_configs: [{}]
"#;

#[test]
fn a_group_waits_then_notifies_changes_at_each_interval_and_repeats() {
    let mut router = Router::new(policy(GROUPING));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "door"), ("room", "hall")], t("0s")),
    );
    router.on_alert(
        t("10s"),
        firing(&[("alertname", "window"), ("room", "hall")], t("10s")),
    );
    // A different room is a different group.
    router.on_alert(
        t("20s"),
        firing(&[("alertname", "leak"), ("room", "kitchen")], t("20s")),
    );
    let sent = run(&mut router, t("1m"));
    assert_eq!(
        summary(&sent),
        vec![
            (t("30s"), "home firing door,window".to_owned()),
            (t("50s"), "home firing leak".to_owned()),
        ]
    );
    // A third alert in the hall waits for the group interval, not the group wait.
    router.on_alert(
        t("1m"),
        firing(&[("alertname", "smoke"), ("room", "hall")], t("1m")),
    );
    let sent = run(&mut router, t("6m"));
    assert_eq!(
        summary(&sent),
        vec![(t("5m30s"), "home firing door,window,smoke".to_owned())]
    );
    // Nothing new: silence until the repeat interval.
    let sent = run(&mut router, t("4h5m"));
    assert_eq!(
        summary(&sent),
        vec![
            (t("4h0m50s"), "home firing leak".to_owned()),
            (t("4h5m30s"), "home firing door,window,smoke".to_owned()),
        ]
        .into_iter()
        .filter(|(at, _)| *at <= t("4h5m"))
        .collect::<Vec<_>>()
    );
}

#[test]
fn resolved_alerts_are_told_once_and_the_group_ends() {
    let mut router = Router::new(policy(GROUPING));
    let door = [("alertname", "door"), ("room", "hall")];
    router.on_alert(t("0s"), firing(&door, t("0s")));
    run(&mut router, t("1m"));
    router.on_alert(t("2m"), resolved(&door, t("0s"), t("2m")));
    let sent = run(&mut router, t("1h"));
    assert_eq!(
        summary(&sent),
        vec![(t("5m30s"), "home resolved door(resolved)".to_owned())]
    );
    assert_eq!(sent[0].1.alerts[0].ends_at, Some(t("2m")));
    assert_eq!(router.next_deadline(), None, "the group is gone");
    assert!(router.alerts(t("1h")).is_empty());
}

#[test]
fn an_alert_that_came_and_went_between_flushes_is_no_news() {
    let mut router = Router::new(policy(GROUPING));
    let door = [("alertname", "door"), ("room", "hall")];
    router.on_alert(t("0s"), firing(&door, t("0s")));
    router.on_alert(t("10s"), resolved(&door, t("0s"), t("10s")));
    assert!(run(&mut router, t("1h")).is_empty());
    // Resolved and never seen: dropped at once.
    router.on_alert(t("1h"), resolved(&[("alertname", "x")], t("0s"), t("1h")));
    assert_eq!(router.next_deadline(), None);
}

#[test]
fn without_send_resolved_resolutions_are_not_sent() {
    let mut router = Router::new(policy(
        r#"
route: {receiver: home, group_wait: 30s, group_interval: 1m}
receivers:
  - name: home
    console_configs: [{send_resolved: false}]
"#,
    ));
    let door = [("alertname", "door")];
    router.on_alert(t("0s"), firing(&door, t("0s")));
    router.on_alert(t("40s"), resolved(&door, t("0s"), t("40s")));
    let sent = run(&mut router, t("1h"));
    assert_eq!(
        summary(&sent),
        vec![(t("30s"), "home firing door".to_owned())]
    );
}

/// Whether a Telegram message rings is decided here, when the notification is made, and
/// carried on it: receivers and retries only obey it.
#[test]
fn quiet_rules_mark_notifications_silent_for_telegram_only() {
    let mut router = Router::new(policy(
        r#"
route: {receiver: family, group_by: [alertname], group_wait: 0s}
receivers:
  - name: family
    telegram_configs:
      - bot_token_file: /run/secrets/token
        chat_id: 42
        quiet: {severities: [info]}
    console_configs: [{}]
"#,
    ));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "fan"), ("severity", "info")], t("0s")),
    );
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "fire"), ("severity", "critical")], t("0s")),
    );
    let sent = run(&mut router, t("1m"));
    let silent: Vec<(&str, usize, bool)> = sent
        .iter()
        .map(|(_, n)| (&n.group_labels["alertname"], n.integration, n.silent))
        .collect();
    assert_eq!(
        silent,
        [
            ("fan", 0, true),
            ("fan", 1, false),
            ("fire", 0, false),
            ("fire", 1, false)
        ]
    );
}

#[test]
fn continue_reaches_every_matching_route_in_order() {
    let mut router = Router::new(policy(
        r#"
route:
  receiver: mail
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: phone
      continue: true
    - matchers: ['severity=~"critical|warning"']
      receiver: family
receivers:
  - {name: mail, console_configs: [{}]}
  - {name: phone, console_configs: [{}]}
  - {name: family, console_configs: [{}]}
"#,
    ));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "leak"), ("severity", "critical")], t("0s")),
    );
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "disk"), ("severity", "info")], t("0s")),
    );
    let mut got: Vec<String> = summary(&run(&mut router, t("1m")))
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "family firing leak",
            "mail firing disk",
            "phone firing leak"
        ]
    );
}

const INHIBIT: &str = r#"
route: {receiver: home, group_by: ['...'], group_wait: 30s, group_interval: 1m}
receivers: [{name: home, console_configs: [{}]}]
inhibit_rules:
  - source_matchers: ['alertname="node_lost"']
    target_matchers: ['severity="warning"']
    equal: [node]
"#;

#[test]
fn a_firing_source_inhibits_targets_with_equal_labels() {
    let mut router = Router::new(policy(INHIBIT));
    router.on_alert(
        t("0s"),
        firing(
            &[
                ("alertname", "node_lost"),
                ("node", "pi1"),
                ("severity", "critical"),
            ],
            t("0s"),
        ),
    );
    router.on_alert(
        t("0s"),
        firing(
            &[
                ("alertname", "disk"),
                ("node", "pi1"),
                ("severity", "warning"),
            ],
            t("0s"),
        ),
    );
    router.on_alert(
        t("0s"),
        firing(
            &[
                ("alertname", "disk"),
                ("node", "pi2"),
                ("severity", "warning"),
            ],
            t("0s"),
        ),
    );
    let sent = summary(&run(&mut router, t("1m")));
    let mut got: Vec<&str> = sent.iter().map(|(_, s)| s.as_str()).collect();
    got.sort();
    assert_eq!(got, ["home firing disk", "home firing node_lost"]);
    let views = router.alerts(t("1m"));
    let inhibited: Vec<&AlertView> = views
        .iter()
        .filter(|v| !v.inhibited_by.is_empty())
        .collect();
    assert_eq!(inhibited.len(), 1);
    assert_eq!(&inhibited[0].labels["node"], "pi1");
    assert_eq!(inhibited[0].state(), "suppressed");

    // The source resolves: the target is told at its next flush.
    router.on_alert(
        t("2m"),
        resolved(
            &[
                ("alertname", "node_lost"),
                ("node", "pi1"),
                ("severity", "critical"),
            ],
            t("0s"),
            t("2m"),
        ),
    );
    let sent = summary(&run(&mut router, t("3m")));
    let got: Vec<&str> = sent.iter().map(|(_, s)| s.as_str()).collect();
    assert!(got.contains(&"home firing disk"), "{got:?}");
    assert!(
        got.contains(&"home resolved node_lost(resolved)"),
        "{got:?}"
    );
}

#[test]
fn alerts_matching_both_sides_do_not_inhibit_each_other() {
    let mut router = Router::new(policy(
        r#"
route: {receiver: home, group_by: ['...'], group_wait: 1s}
receivers: [{name: home, console_configs: [{}]}]
inhibit_rules:
  - source_matchers: ['severity="warning"']
    target_matchers: ['severity="warning"']
    equal: [node]
"#,
    ));
    router.on_alert(
        t("0s"),
        firing(
            &[("alertname", "a"), ("node", "pi1"), ("severity", "warning")],
            t("0s"),
        ),
    );
    router.on_alert(
        t("0s"),
        firing(
            &[("alertname", "b"), ("node", "pi1"), ("severity", "warning")],
            t("0s"),
        ),
    );
    assert_eq!(run(&mut router, t("1m")).len(), 2);
}

fn silence(id: &str, matchers: &[(&str, &str)], from: Timestamp, to: Timestamp) -> Silence {
    Silence {
        id: id.to_owned(),
        matchers: matchers
            .iter()
            .map(|(n, v)| SilenceMatcher {
                name: (*n).to_owned(),
                value: (*v).to_owned(),
                is_regex: false,
                is_equal: true,
            })
            .collect(),
        starts_at: from,
        ends_at: to,
        created_by: "admin".to_owned(),
        comment: "maintenance".to_owned(),
        updated_at: from,
    }
}

#[test]
fn silenced_alerts_are_not_notified_until_the_silence_ends() {
    let mut router = Router::new(policy(INHIBIT));
    router
        .add_silence(
            t("0s"),
            silence("s1", &[("node", "pi1")], t("0s"), t("1h")),
            MuteAll::Refuse,
        )
        .unwrap();
    router.on_alert(
        t("0s"),
        firing(
            &[
                ("alertname", "disk"),
                ("node", "pi1"),
                ("severity", "warning"),
            ],
            t("0s"),
        ),
    );
    assert!(run(&mut router, t("30m")).is_empty());
    assert_eq!(router.alerts(t("30m"))[0].silenced_by, ["s1"]);
    // Expired early: told at the group's next flush, not at once.
    router.expire_silence(t("30m10s"), "s1").unwrap();
    let sent = run(&mut router, t("40m"));
    assert_eq!(
        summary(&sent),
        vec![(t("30m30s"), "home firing disk".to_owned())]
    );
    assert_eq!(router.silences()[0].ends_at, t("30m10s"));
    assert!(matches!(
        router.expire_silence(t("31m"), "s1"),
        Err(SilenceError::AlreadyExpired(_))
    ));
}

#[test]
fn a_silence_ending_by_itself_lets_alerts_through_at_the_next_interval() {
    let mut router = Router::new(policy(INHIBIT));
    router
        .add_silence(
            t("0s"),
            silence("s1", &[("alertname", "disk")], t("0s"), t("10m15s")),
            MuteAll::Refuse,
        )
        .unwrap();
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "disk"), ("node", "pi1")], t("0s")),
    );
    let sent = run(&mut router, t("20m"));
    assert_eq!(
        summary(&sent),
        vec![(t("10m30s"), "home firing disk".to_owned())]
    );
}

#[test]
fn bad_silences_are_refused() {
    let mut router = Router::new(policy(INHIBIT));
    let everything = silence("s", &[("node", "")], t("0s"), t("1h"));
    assert_eq!(
        router.add_silence(t("0s"), everything, MuteAll::Refuse),
        Err(SilenceError::MatchesEverything)
    );
    let none = silence("s", &[], t("0s"), t("1h"));
    assert_eq!(
        router.add_silence(t("0s"), none, MuteAll::Refuse),
        Err(SilenceError::NoMatchers)
    );
    let backwards = silence("s", &[("a", "b")], t("1h"), t("0s"));
    assert_eq!(
        router.add_silence(t("0s"), backwards, MuteAll::Refuse),
        Err(SilenceError::EndsBeforeStart)
    );
    let past = silence("s", &[("a", "b")], t("0s"), t("1m"));
    assert_eq!(
        router.add_silence(t("2m"), past, MuteAll::Refuse),
        Err(SilenceError::EndsInPast)
    );
    assert!(matches!(
        router.expire_silence(t("0s"), "nope"),
        Err(SilenceError::NotFound(_))
    ));
}

/// Quiet hours in Madrid, with critical alerts let through: the example policy's shape.
const QUIET_HOURS: &str = r#"
route:
  receiver: family
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  routes:
    - matchers: ['severity="critical"']
      receiver: family
    - receiver: family
      mute_time_intervals: [night]
receivers: [{name: family, console_configs: [{}]}]
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}, {start_time: "00:00", end_time: "07:00"}]
        location: Europe/Madrid
"#;

#[test]
fn quiet_hours_hold_back_all_but_critical_alerts_across_a_dst_change() {
    // 2026-03-29: Madrid springs forward at 02:00 local (01:00 UTC) from UTC+1 to UTC+2.
    // 07:00 local that morning is 05:00 UTC; the day before it was 06:00 UTC.
    let mut router = Router::new(policy(QUIET_HOURS));
    let start: Timestamp = "2026-03-28T23:00:00Z".parse().unwrap(); // 00:00 local
    router.on_alert(
        start,
        firing(&[("alertname", "freezer"), ("severity", "warning")], start),
    );
    router.on_alert(
        start,
        firing(&[("alertname", "leak"), ("severity", "critical")], start),
    );
    let sent = run(&mut router, "2026-03-29T06:00:00Z".parse().unwrap());
    let firsts: Vec<(Timestamp, String)> = summary(&sent);
    assert_eq!(
        firsts[0],
        (
            "2026-03-28T23:00:30Z".parse().unwrap(),
            "family firing leak".to_owned()
        ),
        "critical goes through at night"
    );
    // The warning waits for the first flush after 07:00 local = 05:00 UTC on DST day.
    let freezer: Vec<&(Timestamp, String)> = firsts
        .iter()
        .filter(|(_, s)| s.contains("freezer"))
        .collect();
    assert_eq!(freezer.len(), 1, "{firsts:?}");
    assert_eq!(
        freezer[0].0,
        "2026-03-29T05:00:30Z".parse::<Timestamp>().unwrap()
    );
}

#[test]
fn a_reload_with_the_same_policy_repeats_nothing() {
    let mut router = Router::new(policy(GROUPING));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "door"), ("room", "hall")], t("0s")),
    );
    assert_eq!(run(&mut router, t("1m")).len(), 1);
    router.set_policy(policy(GROUPING), t("1m"));
    assert!(run(&mut router, t("1h")).is_empty());
    // A new receiver for the route: a new group, told once.
    router.set_policy(
        policy(
            &GROUPING
                .replace("receiver: home", "receiver: other")
                .replace("name: home", "name: other"),
        ),
        t("1h"),
    );
    let sent = run(&mut router, t("2h"));
    assert_eq!(
        summary(&sent),
        vec![(t("1h"), "other firing door".to_owned())]
    );
}

#[test]
fn state_survives_a_snapshot_and_restore() {
    let p = policy(INHIBIT);
    let mut router = Router::new(p.clone());
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "disk"), ("node", "pi1")], t("0s")),
    );
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "cpu"), ("node", "pi1")], t("0s")),
    );
    router
        .add_silence(
            t("0s"),
            silence("s1", &[("alertname", "cpu")], t("0s"), t("1h")),
            MuteAll::Refuse,
        )
        .unwrap();
    assert_eq!(run(&mut router, t("1m")).len(), 1);
    assert!(router.is_dirty());
    let bytes = serde_json::to_vec(&router.snapshot()).unwrap();
    assert!(!router.is_dirty());

    let mut restored = Router::new(p);
    restored.restore(serde_json::from_slice(&bytes).unwrap(), t("10m"));
    assert!(
        run(&mut restored, t("50m")).is_empty(),
        "nothing told twice"
    );
    assert_eq!(restored.silences().len(), 1);
    let sent = run(&mut restored, t("1h2m"));
    assert_eq!(summary(&sent).len(), 1, "the silence ended: cpu is told");
}

#[test]
fn prometheus_alerts_resolve_when_not_sent_again() {
    let mut router = Router::new(policy(GROUPING));
    let mut alert = firing(&[("alertname", "up"), ("room", "rack")], t("0s"));
    alert.ends_at = Some(t("4m"));
    router.on_alert(t("0s"), alert.clone());
    // Sent again: the end moves, the start stays.
    alert.starts_at = t("1m");
    alert.ends_at = Some(t("5m"));
    router.on_alert(t("1m"), alert);
    let sent = run(&mut router, t("20m"));
    assert_eq!(
        summary(&sent),
        vec![
            (t("30s"), "home firing up".to_owned()),
            (t("5m30s"), "home resolved up(resolved)".to_owned()),
        ]
    );
    assert_eq!(sent[1].1.alerts[0].starts_at, t("0s"));
}

#[test]
fn notification_ids_are_unique_and_alerts_ordered() {
    let mut router = Router::new(policy(GROUPING));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "b"), ("room", "hall")], t("5s")),
    );
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "a"), ("room", "hall")], t("1s")),
    );
    let first = run(&mut router, t("1m"));
    router.on_alert(
        t("1m"),
        firing(&[("alertname", "c"), ("room", "hall")], t("1m")),
    );
    let second = run(&mut router, t("10m"));
    assert_ne!(first[0].1.id, second[0].1.id);
    let names: Vec<&str> = second[0]
        .1
        .alerts
        .iter()
        .map(|a| &a.labels["alertname"])
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(second[0].1.group_key, "{}:{room=\"hall\"}");
    assert_eq!(second[0].1.common_labels, labels(&[("room", "hall")]));
}

#[test]
fn the_example_policy_lets_critical_alerts_through_at_night_and_holds_the_rest() {
    let example = include_str!("../../../../examples/routing.yaml");
    let mut router = Router::new(policy(example));
    // 03:00 in Madrid (winter, UTC+1).
    let night: Timestamp = "2026-01-15T02:00:00Z".parse().unwrap();
    router.on_alert(
        night,
        firing(
            &[("alertname", "water_leak"), ("severity", "critical")],
            night,
        ),
    );
    router.on_alert(
        night,
        firing(
            &[("alertname", "freezer_warm"), ("severity", "warning")],
            night,
        ),
    );
    let sent = summary(&run(&mut router, "2026-01-15T05:59:00Z".parse().unwrap()));
    let receivers: Vec<&str> = sent.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        receivers,
        ["family firing water_leak", "admin firing water_leak"],
        "only the leak at night, to the family at once and to the admin"
    );
    assert_eq!(sent[0].0, night, "critical: no group wait");
    // The freezer is told at the first flush after 07:30 local (06:30 UTC).
    let sent = summary(&run(&mut router, "2026-01-15T07:00:00Z".parse().unwrap()));
    let freezer: Vec<&(Timestamp, String)> =
        sent.iter().filter(|(_, s)| s.contains("freezer")).collect();
    assert_eq!(freezer.len(), 1, "{sent:?}");
    assert_eq!(freezer[0].1, "family firing freezer_warm");
    assert!(freezer[0].0 >= "2026-01-15T06:30:00Z".parse::<Timestamp>().unwrap());
    assert!(freezer[0].0 < "2026-01-15T06:35:30Z".parse::<Timestamp>().unwrap());
}

#[test]
fn a_one_shot_alert_is_told_once_as_firing_and_its_resolution_is_not() {
    let mut router = Router::new(policy(GROUPING));
    let leak = [("alertname", "water_leak"), ("room", "kitchen")];
    // The engine reports a one-shot alert firing and resolved at the same instant.
    router.on_alert(t("0s"), firing(&leak, t("0s")));
    router.on_alert(t("0s"), resolved(&leak, t("0s"), t("0s")));
    let sent = run(&mut router, t("1h"));
    assert_eq!(
        summary(&sent),
        vec![(t("30s"), "home firing water_leak".to_owned())]
    );
    assert_eq!(sent[0].1.alerts[0].ends_at, None);
    assert_eq!(router.next_deadline(), None, "nothing left to tell");
    // Another leak later is news again.
    router.on_alert(t("2h"), firing(&leak, t("2h")));
    router.on_alert(t("2h"), resolved(&leak, t("2h"), t("2h")));
    assert_eq!(run(&mut router, t("3h")).len(), 1);
}

#[test]
fn a_one_shot_alert_during_quiet_hours_is_told_when_they_end() {
    let mut router = Router::new(policy(QUIET_HOURS));
    let night: Timestamp = "2026-01-15T02:00:00Z".parse().unwrap();
    let door = [("alertname", "door_opened"), ("severity", "warning")];
    router.on_alert(night, firing(&door, night));
    router.on_alert(night, resolved(&door, night, night));
    let sent = summary(&run(&mut router, "2026-01-15T08:00:00Z".parse().unwrap()));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1, "family firing door_opened");
    // 07:00 in Madrid is 06:00 UTC in winter.
    assert!(sent[0].0 >= "2026-01-15T06:00:00Z".parse::<Timestamp>().unwrap());
}

#[test]
fn a_silenced_one_shot_alert_is_dropped() {
    let mut router = Router::new(policy(GROUPING));
    router
        .add_silence(
            t("0s"),
            silence("s", &[("alertname", "water_leak")], t("0s"), t("10m")),
            MuteAll::Refuse,
        )
        .unwrap();
    let leak = [("alertname", "water_leak"), ("room", "kitchen")];
    router.on_alert(t("0s"), firing(&leak, t("0s")));
    router.on_alert(t("0s"), resolved(&leak, t("0s"), t("0s")));
    assert!(run(&mut router, t("1h")).is_empty());
}

/// Applies `changes` to a store stand-in, as the runner's transaction does.
fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, changes: RouterChanges) {
    for key in changes.deletes {
        store.remove(&key);
    }
    store.extend(changes.puts);
}

#[test]
fn a_change_writes_only_the_items_it_touched_however_many_are_held() {
    let mut router = Router::new(policy(GROUPING));
    let mut store = BTreeMap::new();
    for n in 0..1000 {
        let name = format!("a{n}");
        router.on_alert(
            t("0s"),
            firing(&[("alertname", &name), ("room", "hall")], t("0s")),
        );
    }
    apply(&mut store, router.take_changes().unwrap());
    assert_eq!(store.len(), 1001, "1000 alerts and their one group");
    assert!(!router.is_dirty());

    // One more alert into the same group: its record alone (the group's timers are as
    // they were, and its membership is not stored).
    router.on_alert(
        t("1s"),
        firing(&[("alertname", "new"), ("room", "hall")], t("1s")),
    );
    let changes = router.take_changes().unwrap();
    assert_eq!(changes.puts.len(), 1, "{:?}", changes.puts.len());
    assert!(changes.puts[0].0.starts_with(ALERT_PREFIX));
    assert!(changes.puts[0].1.len() < 400, "an alert's record is small");
    apply(&mut store, changes);

    // The flush writes the group (its timer and notification log), nothing else.
    assert_eq!(run(&mut router, t("30s")).len(), 1);
    let changes = router.take_changes().unwrap();
    assert_eq!(changes.puts.len(), 1);
    assert!(changes.puts[0].0.starts_with(GROUP_PREFIX));
    apply(&mut store, changes);

    // A resolved alert, once told, is deleted from the store; a silence is one record.
    router.on_alert(
        t("1m"),
        resolved(&[("alertname", "a7"), ("room", "hall")], t("0s"), t("1m")),
    );
    router
        .add_silence(
            t("1m"),
            silence("s1", &[("alertname", "a8")], t("1m"), t("1h")),
            MuteAll::Refuse,
        )
        .unwrap();
    run(&mut router, t("6m"));
    let changes = router.take_changes().unwrap();
    assert_eq!(changes.deletes.len(), 1, "the resolved alert");
    assert!(changes.deletes[0].starts_with(ALERT_PREFIX));
    let silences: Vec<_> = changes
        .puts
        .iter()
        .filter(|(k, _)| k.starts_with(SILENCE_PREFIX))
        .collect();
    assert_eq!(silences.len(), 1);
    apply(&mut store, changes);

    // The records are the whole state: a router restored from them tells nothing twice,
    // and tells the end of the silence.
    let (state, unreadable) = RouterState::from_records(store.into_iter().collect()).unwrap();
    assert!(unreadable.is_empty());
    let mut restored = Router::new(policy(GROUPING));
    assert!(restored.restore(state, t("7m")).is_empty());
    assert_eq!(restored.alert_count(), 1000);
    assert!(run(&mut restored, t("1h")).is_empty(), "nothing told twice");
    let sent = run(&mut restored, t("1h6m"));
    assert_eq!(sent.len(), 1, "the silence ended: a8 is told");
}

#[test]
fn a_legacy_whole_state_record_and_unreadable_items_are_read() {
    let mut router = Router::new(policy(GROUPING));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "door"), ("room", "hall")], t("0s")),
    );
    let legacy = serde_json::to_vec(&router.snapshot()).unwrap();
    let records = vec![
        (LEGACY_KEY.to_vec(), legacy),
        (b"alert\0broken".to_vec(), b"{not json".to_vec()),
    ];
    let (state, unreadable) = RouterState::from_records(records).unwrap();
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].key.as_deref(), Some(&b"alert\0broken"[..]));
    let mut restored = Router::new(policy(GROUPING));
    restored.restore(state, t("1s"));
    assert_eq!(restored.alert_count(), 1);
    restored.mark_all_changed();
    assert_eq!(
        restored.take_changes().unwrap().puts.len(),
        2,
        "the alert and its group"
    );
}

#[test]
fn alert_state_counts_agree_with_the_views() {
    let mut router = Router::new(policy(INHIBIT));
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "disk"), ("node", "pi1")], t("0s")),
    );
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "cpu"), ("node", "pi1")], t("0s")),
    );
    router.on_alert(
        t("0s"),
        firing(&[("alertname", "door"), ("node", "pi2")], t("0s")),
    );
    router.on_alert(
        t("1s"),
        resolved(&[("alertname", "door"), ("node", "pi2")], t("0s"), t("1s")),
    );
    router
        .add_silence(
            t("0s"),
            silence("s1", &[("alertname", "cpu")], t("0s"), t("1h")),
            MuteAll::Refuse,
        )
        .unwrap();
    let now = t("2s");
    let mut from_views = BTreeMap::new();
    for view in router.alerts(now) {
        *from_views.entry(view.state()).or_insert(0) += 1;
    }
    for (state, count) in router.alert_states(now) {
        assert_eq!(
            from_views.get(state).copied().unwrap_or(0),
            count,
            "{state}"
        );
    }
    assert_eq!(router.alert_states(now)[2], ("resolved", 1));
}

#[test]
fn alert_records_are_numbered_in_arrival_order_and_old_keys_move() {
    let mut router = Router::new(policy(GROUPING));
    let mut store = BTreeMap::new();
    for name in ["zebra", "apple", "mango"] {
        router.on_alert(
            t("0s"),
            firing(&[("alertname", name), ("room", "hall")], t("0s")),
        );
    }
    apply(&mut store, router.take_changes().unwrap());
    // Keys in the order the alerts came, whatever their fingerprints: a commit of new
    // alerts adds to the end of the table.
    let names: Vec<String> = store
        .iter()
        .filter(|(k, _)| k.starts_with(ALERT_PREFIX))
        .map(|(_, v)| {
            let alert: RoutedAlert = serde_json::from_slice(v).unwrap();
            alert.labels.get("alertname").unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, ["zebra", "apple", "mango"]);

    // A record written under its fingerprint (as earlier builds did) is read, and moved to a
    // numbered key after the newest at the next write; numbered ones stay where they are.
    let (old_key, old_record) = {
        let mut other = Router::new(policy(GROUPING));
        other.on_alert(
            t("0s"),
            firing(&[("alertname", "old"), ("room", "hall")], t("0s")),
        );
        let alert = other.held().next().unwrap().clone();
        let mut key = ALERT_PREFIX.to_vec();
        key.extend_from_slice(alert.fingerprint.as_bytes());
        (key, serde_json::to_vec(&alert).unwrap())
    };
    store.insert(old_key.clone(), old_record);
    let (state, unreadable) =
        RouterState::from_records(store.clone().into_iter().collect()).unwrap();
    assert!(unreadable.is_empty());
    let mut restored = Router::new(policy(GROUPING));
    restored.restore(state, t("1s"));
    assert_eq!(restored.alert_count(), 4);
    let changes = restored.take_changes().unwrap();
    assert_eq!(changes.deletes, std::slice::from_ref(&old_key));
    let moved: Vec<&Vec<u8>> = changes
        .puts
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(ALERT_PREFIX))
        .collect();
    assert_eq!(moved.len(), 1, "only the old record is written again");
    assert!(
        store
            .keys()
            .filter(|k| k.starts_with(ALERT_PREFIX) && **k != old_key)
            .all(|k| k < moved[0]),
        "after the numbered ones"
    );
    apply(&mut store, changes);
    assert_eq!(
        store.keys().filter(|k| k.starts_with(ALERT_PREFIX)).count(),
        4,
        "every alert once"
    );

    // A new alert after the restore numbers after all of them; a forgotten one's record
    // is deleted under its number.
    restored.on_alert(
        t("2s"),
        firing(&[("alertname", "late"), ("room", "hall")], t("2s")),
    );
    let changes = restored.take_changes().unwrap();
    assert!(
        changes.puts[0].0
            > *store
                .keys()
                .filter(|k| k.starts_with(ALERT_PREFIX))
                .max()
                .unwrap()
    );
    apply(&mut store, changes);
}
