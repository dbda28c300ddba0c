//! Tests of active windows: days, hours, time zones and DST, and the checks of a spec.

use super::*;
use proptest::prelude::*;

fn window(timezone: Option<&str>, weekdays: &[&str], hours: &[&str]) -> ActiveWindow {
    let list =
        |items: &[&str]| (!items.is_empty()).then(|| items.iter().map(|s| s.to_string()).collect());
    let spec = ActiveSpec {
        timezone: timezone.map(str::to_owned),
        weekdays: list(weekdays),
        hours: list(hours),
        evaluate_at_start: false,
    };
    ActiveWindow::compile(&spec).expect("valid spec")
}

/// An instant written with its offset, e.g. `2026-06-10T23:00+02:00`.
fn ts(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

/// The instants `contains` is true at, out of `times`.
fn active_at(w: &ActiveWindow, times: &[&str]) -> Vec<bool> {
    times.iter().map(|t| w.contains(ts(t))).collect()
}

/// `next_change`, applied `count` times from `from`.
fn changes(w: &ActiveWindow, from: &str, count: usize) -> Vec<Timestamp> {
    std::iter::successors(w.next_change(ts(from)), |t| w.next_change(*t))
        .take(count)
        .collect()
}

#[test]
fn madrid_night_window_on_weekdays_and_weekends() {
    let w = window(Some("Europe/Madrid"), &["mon-fri"], &["22:00-07:00"]);
    // 2026-06-10 is a Wednesday; Madrid is at +02:00 in June.
    let times = [
        "2026-06-10T21:59+02:00", // Wed evening, before the window
        "2026-06-10T22:00+02:00", // Wed night
        "2026-06-11T06:59+02:00", // Thu morning, still Wed's night
        "2026-06-11T07:00+02:00", // Thu 07:00: end is exclusive
        "2026-06-13T01:00+02:00", // Sat early: Fri's night
        "2026-06-13T23:00+02:00", // Sat night: weekend
        "2026-06-15T03:00+02:00", // Mon early: Sun's night, weekend
        "2026-06-15T22:30+02:00", // Mon night
    ];
    assert_eq!(
        active_at(&w, &times),
        [false, true, true, false, true, false, false, true]
    );
}

#[test]
fn a_range_crossing_midnight_belongs_to_the_day_it_starts() {
    let w = window(None, &["fri"], &["22:00-07:00"]);
    let times = [
        "2026-06-12T03:00Z", // Fri early: Thursday's night, not active
        "2026-06-12T22:00Z", // Fri 22:00
        "2026-06-13T06:59Z", // Sat 06:59, still Friday's night
        "2026-06-13T07:00Z", // Sat 07:00
        "2026-06-13T22:00Z", // Sat night
    ];
    assert_eq!(active_at(&w, &times), [false, true, true, false, false]);
}

#[test]
fn timezone_defaults_to_utc() {
    let w = window(None, &[], &["08:00-18:00"]);
    let times = [
        "2026-06-10T07:59:59Z",
        "2026-06-10T08:00Z",
        "2026-06-10T17:59:59Z",
        "2026-06-10T18:00Z",
    ];
    assert_eq!(active_at(&w, &times), [false, true, true, false]);
    assert_eq!(
        changes(&w, "2026-06-10T12:00Z", 2),
        [ts("2026-06-10T18:00Z"), ts("2026-06-11T08:00Z")]
    );
    // Spelled out, in any case.
    let w = window(Some("utc"), &[], &["08:00-18:00"]);
    assert!(w.contains(ts("2026-06-10T08:00Z")));
}

#[test]
fn equal_start_and_end_last_a_whole_day_from_the_start() {
    let w = window(None, &["mon"], &["07:00-07:00"]);
    // 2026-06-08 is a Monday.
    let times = [
        "2026-06-08T06:59Z",
        "2026-06-08T07:00Z",
        "2026-06-09T06:59Z",
        "2026-06-09T07:00Z",
    ];
    assert_eq!(active_at(&w, &times), [false, true, true, false]);
    let midnight = window(None, &["mon"], &["00:00-00:00"]);
    let to_24 = window(None, &["mon"], &["00:00-24:00"]);
    for w in [midnight, to_24] {
        assert_eq!(
            changes(&w, "2026-06-07T12:00Z", 2),
            [ts("2026-06-08T00:00Z"), ts("2026-06-09T00:00Z")]
        );
    }
}

#[test]
fn a_window_covering_the_week_never_changes() {
    for w in [
        window(None, &[], &[]),
        window(Some("Europe/Madrid"), &[], &["22:00-07:00", "07:00-22:00"]),
        window(Some("Europe/Madrid"), &["mon-sun"], &["00:00-00:00"]),
    ] {
        assert!(w.contains(ts("2026-03-29T01:30Z")));
        assert_eq!(w.next_change(ts("2026-03-29T00:00Z")), None);
    }
}

#[test]
fn adjacent_days_and_overlapping_ranges_merge() {
    // Saturday and Sunday all day: one stretch from Saturday 00:00 to Monday 00:00.
    let w = window(None, &["sat", "sun"], &["00:00-00:00"]);
    assert_eq!(
        changes(&w, "2026-06-13T01:00Z", 2),
        [ts("2026-06-15T00:00Z"), ts("2026-06-20T00:00Z")]
    );
    let w = window(None, &[], &["08:00-12:00", "11:00-13:00"]);
    assert_eq!(
        changes(&w, "2026-06-10T00:00Z", 2),
        [ts("2026-06-10T08:00Z"), ts("2026-06-10T13:00Z")]
    );
}

#[test]
fn next_change_walks_a_working_week() {
    let w = window(
        Some("Europe/Madrid"),
        &["mon-fri"],
        &["08:00-12:00", "13:00-18:00"],
    );
    // From Sunday 2026-06-07; Madrid is UTC+2, so 08:00 local is 06:00Z.
    let expected: Vec<Timestamp> = (8..=12)
        .flat_map(|day| {
            ["06:00", "10:00", "11:00", "16:00"].map(|hm| ts(&format!("2026-06-{day:02}T{hm}Z")))
        })
        .chain([ts("2026-06-15T06:00Z")])
        .collect();
    assert_eq!(changes(&w, "2026-06-07T00:00Z", 21), expected);

    let nights = window(Some("Europe/Madrid"), &["mon-fri"], &["22:00-07:00"]);
    let expected: Vec<Timestamp> = (8..=12)
        .flat_map(|day| {
            [
                ts(&format!("2026-06-{day:02}T20:00Z")),
                ts(&format!("2026-06-{:02}T05:00Z", day + 1)),
            ]
        })
        .chain([ts("2026-06-15T20:00Z")])
        .collect();
    assert_eq!(changes(&nights, "2026-06-07T00:00Z", 11), expected);
}

#[test]
fn spring_forward_in_madrid() {
    // 2026-03-29 (Sunday): at 02:00 CET (01:00Z) the clock jumps to 03:00 CEST.
    let w = window(Some("Europe/Madrid"), &[], &["01:30-02:30"]);
    let times = [
        "2026-03-29T01:29+01:00",
        "2026-03-29T01:30+01:00",
        "2026-03-29T01:59:59+01:00",
        "2026-03-29T03:00+02:00",
    ];
    assert_eq!(active_at(&w, &times), [false, true, true, false]);
    assert_eq!(
        changes(&w, "2026-03-29T00:00Z", 3),
        [
            ts("2026-03-29T01:30+01:00"),
            ts("2026-03-29T03:00+02:00"),
            ts("2026-03-30T01:30+02:00")
        ]
    );

    // Starting inside the skipped hour: opens when the clock jumps.
    let w = window(Some("Europe/Madrid"), &[], &["02:30-04:00"]);
    assert_eq!(
        changes(&w, "2026-03-29T00:00Z", 2),
        [ts("2026-03-29T03:00+02:00"), ts("2026-03-29T04:00+02:00")]
    );

    // An hour that does not exist that day.
    let w = window(Some("Europe/Madrid"), &[], &["02:00-03:00"]);
    assert!(!w.contains(ts("2026-03-29T01:00Z")));
    assert_eq!(
        changes(&w, "2026-03-28T03:00+01:00", 1),
        [ts("2026-03-30T02:00+02:00")]
    );

    // The Saturday night window loses an hour of real time.
    let w = window(Some("Europe/Madrid"), &["sat"], &["22:00-07:00"]);
    assert_eq!(
        changes(&w, "2026-03-28T12:00Z", 2),
        [ts("2026-03-28T22:00+01:00"), ts("2026-03-29T07:00+02:00")]
    );
}

#[test]
fn fall_back_in_madrid() {
    // 2026-10-25 (Sunday): at 03:00 CEST (01:00Z) the clock goes back to 02:00 CET.
    let w = window(Some("Europe/Madrid"), &[], &["02:15-02:45"]);
    let times = [
        "2026-10-25T02:15+02:00",
        "2026-10-25T02:45+02:00",
        "2026-10-25T02:30+01:00",
    ];
    assert_eq!(active_at(&w, &times), [true, false, false]);
    assert_eq!(
        changes(&w, "2026-10-25T00:00Z", 3),
        [
            ts("2026-10-25T02:15+02:00"),
            ts("2026-10-25T02:45+02:00"),
            ts("2026-10-26T02:15+01:00")
        ]
    );

    // Once closed, a window does not reopen while the clock repeats the hour.
    let w = window(Some("Europe/Madrid"), &[], &["01:00-02:30"]);
    assert!(!w.contains(ts("2026-10-25T02:10+01:00")));
    assert_eq!(
        changes(&w, "2026-10-25T02:30+02:00", 1),
        [ts("2026-10-26T01:00+01:00")]
    );

    // The Saturday night window gains an hour of real time.
    let w = window(Some("Europe/Madrid"), &["sat"], &["22:00-07:00"]);
    assert_eq!(
        changes(&w, "2026-10-24T12:00Z", 2),
        [ts("2026-10-24T22:00+02:00"), ts("2026-10-25T07:00+01:00")]
    );
    assert!(w.contains(ts("2026-10-25T02:30+01:00")));
}

#[test]
fn weekdays_take_short_and_full_names_in_any_case_and_wrapping_ranges() {
    let w = window(None, &["Friday", "SAT-mon"], &["12:00-13:00"]);
    // 2026-06-08 is a Monday.
    let active: Vec<bool> = (8..=14)
        .map(|day| w.contains(ts(&format!("2026-06-{day:02}T12:30Z"))))
        .collect();
    assert_eq!(active, [true, false, false, false, true, true, true]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let spec = ActiveSpec {
        timezone: Some("Europe/Madird".into()),
        weekdays: Some(vec!["mon".into(), "funday".into(), "mon-xyz".into()]),
        hours: Some(vec![
            "25:00-07:00".into(),
            "7-8".into(),
            "22:00-07:60".into(),
            "24:00-01:00".into(),
        ]),
        evaluate_at_start: false,
    };
    let errors = ActiveWindow::compile(&spec).expect_err("invalid spec");
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "timezone: unknown time zone `Europe/Madird`; did you mean `Europe/Madrid`?",
            "weekdays: `funday` is not a day or a range of days: expected `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun` (or full names), or a range such as `mon-fri`",
            "weekdays: `mon-xyz` is not a day or a range of days: expected `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun` (or full names), or a range such as `mon-fri`",
            "hours: `25:00-07:00`: start `25:00` is past the end of the day; expected 00:00 to 24:00",
            "hours: `7-8`: start `7` is not a time: expected `HH:MM`; end `8` is not a time: expected `HH:MM`",
            "hours: `22:00-07:60`: end `07:60` has minute 60; expected 00 to 59",
            "hours: `24:00-01:00`: start 24:00 can only end a range",
        ]
    );
}

#[test]
fn unknown_zones_get_a_suggestion_when_one_is_close() {
    let zone_error = |name: &str| {
        let spec = ActiveSpec {
            timezone: Some(name.into()),
            weekdays: None,
            hours: None,
            evaluate_at_start: false,
        };
        ActiveWindow::compile(&spec).expect_err("unknown zone")[0]
            .message
            .clone()
    };
    assert!(zone_error("Madrid").ends_with("did you mean `Europe/Madrid`?"));
    assert!(zone_error("New York").ends_with("did you mean `America/New_York`?"));
    assert!(zone_error("Etc/Unknown").starts_with("unknown time zone `Etc/Unknown`"));
    assert_eq!(
        zone_error("Nowhere/Atall"),
        "unknown time zone `Nowhere/Atall`: expected an IANA name such as `Europe/Madrid`"
    );
}

#[test]
fn empty_lists_are_errors() {
    let spec = ActiveSpec {
        timezone: None,
        weekdays: Some(vec![]),
        hours: Some(vec![]),
        evaluate_at_start: false,
    };
    let fields: Vec<&str> = ActiveWindow::compile(&spec)
        .expect_err("empty lists")
        .iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["weekdays", "hours"]);
}

#[test]
fn unknown_keys_are_rejected() {
    let result = serde_json::from_str::<ActiveSpec>(r#"{"timezone": "UTC", "days": ["mon"]}"#);
    assert!(result.is_err());
    let spec: ActiveSpec = serde_json::from_str(r#"{"hours": ["22:00-07:00"]}"#).expect("valid");
    assert_eq!(
        spec,
        ActiveSpec {
            timezone: None,
            weekdays: None,
            hours: Some(vec!["22:00-07:00".into()]),
            evaluate_at_start: false,
        }
    );
}

/// A window from random parts: the zones include a 30-minute DST shift (Lord Howe).
fn any_window() -> impl Strategy<Value = ActiveWindow> {
    let zone = prop::sample::select(vec![
        "UTC",
        "Europe/Madrid",
        "America/New_York",
        "Australia/Lord_Howe",
    ]);
    let days = prop::sample::subsequence(
        DAY_NAMES
            .iter()
            .map(|(short, _)| *short)
            .collect::<Vec<_>>(),
        1..=7,
    );
    let range = (
        0..24u16,
        prop::sample::select(vec![0u16, 15, 30, 59]),
        0..24u16,
        prop::sample::select(vec![0u16, 30, 45]),
    );
    let hours = prop::collection::vec(
        range.prop_map(|(h1, m1, h2, m2)| format!("{h1:02}:{m1:02}-{h2:02}:{m2:02}")),
        1..=3,
    );
    (zone, days, hours).prop_map(|(zone, days, hours)| {
        let spec = ActiveSpec {
            timezone: Some(zone.to_owned()),
            weekdays: Some(days.into_iter().map(str::to_owned).collect()),
            hours: Some(hours),
            evaluate_at_start: false,
        };
        ActiveWindow::compile(&spec).expect("generated specs are valid")
    })
}

/// An instant in 2026, half of the time within three days of a DST change.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let dst_changes = vec![
        ts("2026-03-29T01:00Z"), // Europe
        ts("2026-10-25T01:00Z"),
        ts("2026-03-08T07:00Z"), // New York
        ts("2026-11-01T06:00Z"),
        ts("2026-04-04T15:00Z"), // Lord Howe
        ts("2026-10-03T15:30Z"),
    ];
    let near_dst = (
        prop::sample::select(dst_changes),
        -3 * 86_400..3 * 86_400i64,
    )
        .prop_map(|(change, offset)| {
            Timestamp::from_second(change.as_second() + offset).expect("in range")
        });
    prop_oneof![near_dst, any_instant_in_2026()]
}

fn any_instant_in_2026() -> impl Strategy<Value = Timestamp> {
    (ts("2026-01-01T00:00Z").as_second()..ts("2027-01-01T00:00Z").as_second())
        .prop_map(|second| Timestamp::from_second(second).expect("in range"))
}

proptest! {
    #[test]
    fn away_from_dst_contains_follows_the_weekly_pattern(w in any_window(), t in any_instant_in_2026()) {
        let offset_at = |days: i64| {
            w.zone.to_offset(Timestamp::from_second(t.as_second() + days * 86_400).expect("in range"))
        };
        prop_assume!(offset_at(-2) == offset_at(0) && offset_at(0) == offset_at(1));
        const WEEK: usize = 7 * 1440;
        let local = w.zone.to_datetime(t);
        let minute_of_week = weekday_index(local.date()) * 1440
            + usize::try_from(local.hour()).expect("0..24") * 60
            + usize::try_from(local.minute()).expect("0..60");
        let expected = (0..7).filter(|day| w.days[*day]).any(|day| {
            w.ranges.iter().any(|range| {
                let start = day * 1440 + usize::from(range.start);
                (minute_of_week + WEEK - start) % WEEK < usize::from(range.minutes())
            })
        });
        prop_assert_eq!(w.contains(t), expected, "at {}", local);
    }

    #[test]
    fn contains_flips_exactly_at_next_change(w in any_window(), t in any_instant()) {
        let now = w.contains(t);
        let second = |s: i64| Timestamp::from_second(s).expect("in range");
        match w.next_change(t) {
            Some(change) => {
                prop_assert!(change > t);
                prop_assert_ne!(w.contains(change), now, "no flip at {}", change);
                let (from, to) = (t.as_second(), change.as_second());
                let between = (1..8).map(|k| from + (to - from) * k / 8).chain([to - 1]);
                for s in between.filter(|s| *s > from && *s < to) {
                    prop_assert_eq!(w.contains(second(s)), now, "flip before {} at {}", change, second(s));
                }
            }
            None => {
                for day in 1..=21 {
                    prop_assert_eq!(w.contains(second(t.as_second() + day * 86_400 - 1)), now);
                }
            }
        }
    }
}
