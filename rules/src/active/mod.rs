//! Active time windows: the days and hours during which a rule is evaluated ("front door
//! opened at night, 22:00–07:00 Europe/Madrid"; "weekdays 08:00–18:00").
//!
//! ```yaml
//! active:
//!   timezone: Europe/Madrid
//!   weekdays: [mon-fri]
//!   hours: ["22:00-07:00"]
//! ```
//!
//! [`ActiveSpec`] is the field as written; [`ActiveWindow::compile`] checks it, reporting every
//! problem at once, and the compiled window answers two questions for the engine:
//! [`ActiveWindow::contains`] (is the rule active at this instant?) and
//! [`ActiveWindow::next_change`] (when does that answer change next?), so the engine can set a
//! deadline at the window's edge instead of polling.
//!
//! # Semantics
//! - **Days own the ranges that start on them.** A range whose end is not after its start
//!   crosses midnight and belongs to the day it starts on: with `weekdays: [fri]` and
//!   `hours: ["22:00-07:00"]` the rule is active from Friday 22:00 to Saturday 07:00, and not
//!   from Friday 00:00 to 07:00.
//! - **Ends are exclusive**, and a range whose start equals its end lasts 24 hours from its
//!   start (`00:00-00:00` is the whole day; `24:00` may be written as an end, `18:00-24:00`).
//! - **Local wall-clock time.** Edges are read in the window's zone (UTC by default). An edge
//!   happens at the *first instant the wall clock shows that time or later*:
//!   - On a spring-forward day a time inside the skipped hour happens when the clock jumps: in
//!     Europe/Madrid on 2026-03-29 the clock goes from 02:00 to 03:00, so `01:30-02:30` is
//!     active from 01:30 to 03:00 wall time, and `02:30-04:00` from 03:00 to 04:00.
//!     (`02:00-03:00` is empty that day: that hour does not exist.)
//!   - On a fall-back day a repeated time happens the first time the clock shows it (the
//!     summer-time reading, as jiff's `compatible` disambiguation picks): in Europe/Madrid on
//!     2026-10-25 the clock shows 02:00–03:00 twice, and `02:15-02:45` is active once, during
//!     the first pass. A window never reopens while the clock repeats an hour.
//!
//!   For times that exist exactly once this is the plain local time; in a fold it is jiff's
//!   `compatible` choice. In a gap `compatible` would move the time forward by the gap's length
//!   (02:30 → 03:30); we use the moment the gap ends (03:00) instead, so that edges keep their
//!   order (a window edited to end later never ends earlier) and wall-clock times inside the
//!   window stay inside it.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// As written in a rule file under `active:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveSpec {
    /// IANA time zone, e.g. `Europe/Madrid`. Default: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Days the rule is active, e.g. `[mon, tue, wed, thu, fri]`; ranges like `mon-fri` allowed
    /// as items. Default: every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<String>>,
    /// Local time ranges `HH:MM-HH:MM`; a range may cross midnight (`22:00-07:00`). Default:
    /// all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<Vec<String>>,
}

/// One problem in an [`ActiveSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ActiveError {
    /// The key at fault, `timezone`, `weekdays` or `hours`, so the caller can point at it.
    pub field: &'static str,
    /// What is wrong, quoting the value at fault.
    pub message: String,
}

/// A compiled [`ActiveSpec`]: a weekly pattern of local time ranges in one zone.
#[derive(Debug, Clone)]
pub struct ActiveWindow {
    /// The zone whose wall clock the days and hours are read on.
    zone: TimeZone,
    /// Whether ranges starting on each day count, indexed Monday = 0.
    days: [bool; 7],
    /// The ranges, each of which starts on every active day.
    ranges: Vec<LocalRange>,
    /// The ranges cover the whole week: `contains` is always true and `next_change` finds
    /// nothing, which `next_change` could not tell from a bounded search.
    always: bool,
}

const MINUTES_PER_DAY: u16 = 24 * 60;

/// How many days `next_change` looks ahead. A window that is not always active has a gap in
/// every week, and a gap can only vanish inside a skipped DST hour, which no zone has twice in
/// two weeks.
const SEARCH_DAYS: usize = 16;

/// A local time range, in minutes since midnight, starting on the day that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalRange {
    /// 0..1440.
    start: u16,
    /// 0..1440; not after `start` means the range ends the next day.
    end: u16,
}

impl LocalRange {
    /// Length in minutes, 1..=1440.
    fn minutes(self) -> u16 {
        if self.end > self.start {
            self.end - self.start
        } else {
            self.end + MINUTES_PER_DAY - self.start
        }
    }
}

impl ActiveWindow {
    /// Checks `spec` and compiles it, or returns every problem found in it.
    pub fn compile(spec: &ActiveSpec) -> Result<Self, Vec<ActiveError>> {
        let mut errors = Vec::new();
        let zone = match compile_zone(spec.timezone.as_deref()) {
            Ok(zone) => Some(zone),
            Err(message) => {
                errors.push(ActiveError {
                    field: "timezone",
                    message,
                });
                None
            }
        };
        let days = match &spec.weekdays {
            None => [true; 7],
            Some(items) => compile_weekdays(items, &mut errors),
        };
        let ranges = match &spec.hours {
            None => vec![LocalRange { start: 0, end: 0 }],
            Some(items) => compile_hours(items, &mut errors),
        };
        match zone {
            Some(zone) if errors.is_empty() => {
                let always = covers_whole_week(&days, &ranges);
                Ok(ActiveWindow {
                    zone,
                    days,
                    ranges,
                    always,
                })
            }
            _ => Err(errors),
        }
    }

    /// Whether the rule is active at `t`.
    pub fn contains(&self, t: Timestamp) -> bool {
        if self.always {
            return true;
        }
        // Only ranges starting the day before, on, or after `t`'s local date can hold `t`: one
        // from two days earlier has ended by `t`'s local midnight. The day after matters only
        // when a fold crosses midnight.
        let today = self.zone.to_datetime(t).date();
        [today.yesterday().ok(), Some(today), today.tomorrow().ok()]
            .into_iter()
            .flatten()
            .flat_map(|day| self.occurrences(day))
            .any(|(start, end)| start <= t && t < end)
    }

    /// The first instant after `t` at which [`contains`](Self::contains) changes value, or
    /// `None` if it never does (the window covers the whole week). Lets the engine schedule a
    /// deadline at the window's edge.
    pub fn next_change(&self, t: Timestamp) -> Option<Timestamp> {
        if self.always {
            return None;
        }
        let now = self.contains(t);
        // `contains` is constant between consecutive range edges, so the answer is the first
        // edge after `t` at which it differs. Ranges starting before yesterday have ended.
        let mut day = self.zone.to_datetime(t).date().yesterday().ok()?;
        let mut edges = Vec::new();
        for _ in 0..SEARCH_DAYS + 1 {
            edges.extend(self.occurrences(day).flat_map(|(start, end)| [start, end]));
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        edges.retain(|edge| *edge > t);
        edges.sort_unstable();
        edges.dedup();
        edges.into_iter().find(|edge| self.contains(*edge) != now)
    }

    /// The instants `[start, end)` of the ranges starting on `day`, if it is active. A range
    /// is empty, and left out, when it lies inside a skipped DST hour.
    fn occurrences(&self, day: Date) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let active = self.days[weekday_index(day)];
        self.ranges
            .iter()
            .filter(move |_| active)
            .filter_map(move |range| {
                let start = self.edge(day, range.start)?;
                let end_minute = range.start + range.minutes();
                let end_day = if end_minute >= MINUTES_PER_DAY {
                    day.tomorrow().ok()?
                } else {
                    day
                };
                let end = self.edge(end_day, end_minute % MINUTES_PER_DAY)?;
                (start < end).then_some((start, end))
            })
    }

    /// The first instant at which the wall clock shows `minute` on `day` or later; `None` only
    /// at the ends of jiff's supported range of years.
    fn edge(&self, day: Date, minute: u16) -> Option<Timestamp> {
        let wall = local_datetime(day, minute);
        let ambiguous = self.zone.to_ambiguous_timestamp(wall);
        match ambiguous.offset() {
            // `after` places `wall` before the transition that skipped it; the clock first
            // shows `wall` or later when that transition happens.
            AmbiguousOffset::Gap { after, .. } => {
                let before_gap = after.to_timestamp(wall).ok()?;
                self.zone
                    .following(before_gap)
                    .next()
                    .map(|transition| transition.timestamp())
            }
            // Unambiguous, or a fold, where `compatible` takes the first pass.
            _ => ambiguous.compatible().ok(),
        }
    }
}

/// The zone named `name`, UTC if none.
fn compile_zone(name: Option<&str>) -> Result<TimeZone, String> {
    let Some(name) = name else {
        return Ok(TimeZone::UTC);
    };
    // Works even where no time zone database is available.
    if name.eq_ignore_ascii_case("UTC") {
        return Ok(TimeZone::UTC);
    }
    match TimeZone::get(name) {
        // `Etc/Unknown` is jiff's placeholder for an undetected zone, not a place.
        Ok(zone) if !zone.is_unknown() => Ok(zone),
        _ => {
            let db = jiff::tz::db();
            if db.is_definitively_empty() {
                return Err(format!(
                    "unknown time zone `{name}`: no time zone database is available \
                     (only `UTC` can be used)"
                ));
            }
            let names: Vec<String> = db.available().map(|n| n.as_str().to_owned()).collect();
            Err(match suggest_zone(name, &names) {
                Some(close) => format!("unknown time zone `{name}`; did you mean `{close}`?"),
                None => format!(
                    "unknown time zone `{name}`: expected an IANA name such as `Europe/Madrid`"
                ),
            })
        }
    }
}

/// A known zone name close to the unknown `name`: one whose city matches (`Madrid`,
/// `new york`), else the nearest by edit distance if it is near enough to be a typo.
fn suggest_zone<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let normalize = |s: &str| s.trim().to_lowercase().replace(' ', "_");
    let wanted = normalize(name);
    let wanted_city = wanted.rsplit('/').next().unwrap_or(&wanted);
    let by_city = known
        .iter()
        .find(|k| normalize(k).rsplit('/').next() == Some(wanted_city));
    if let Some(zone) = by_city {
        return Some(zone);
    }
    let limit = (wanted.chars().count() / 4).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(&wanted, &normalize(k)), k))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance between `a` and `b`, in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// The active days of `items` (`mon`, `Friday`, `mon-fri`, `fri-mon`), pushing an error for
/// each bad item.
fn compile_weekdays(items: &[String], errors: &mut Vec<ActiveError>) -> [bool; 7] {
    let mut days = [false; 7];
    if items.is_empty() {
        errors.push(ActiveError {
            field: "weekdays",
            message: "the list is empty, so the rule would never be active; leave `weekdays` out \
                      for every day"
                .to_owned(),
        });
    }
    for item in items {
        let parsed = match item.split_once('-') {
            Some((first, last)) => parse_day(first).zip(parse_day(last)),
            None => parse_day(item).map(|day| (day, day)),
        };
        match parsed {
            // A range may wrap around the week: `fri-mon` is Friday to Monday.
            Some((first, last)) => {
                let count = (last + 7 - first) % 7 + 1;
                for offset in 0..count {
                    days[(first + offset) % 7] = true;
                }
            }
            None => errors.push(ActiveError {
                field: "weekdays",
                message: format!(
                    "`{item}` is not a day or a range of days: expected `mon`, `tue`, `wed`, \
                     `thu`, `fri`, `sat`, `sun` (or full names), or a range such as `mon-fri`"
                ),
            }),
        }
    }
    days
}

/// Monday = 0 index of a day name, short or full, any case.
fn parse_day(name: &str) -> Option<usize> {
    let name = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|(short, full)| name == *short || name == *full)
}

fn weekday_index(day: Date) -> usize {
    // `to_monday_zero_offset` is 0..=6.
    usize::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0)
}

/// The ranges of `items` (`HH:MM-HH:MM`), pushing an error for each bad one.
fn compile_hours(items: &[String], errors: &mut Vec<ActiveError>) -> Vec<LocalRange> {
    if items.is_empty() {
        errors.push(ActiveError {
            field: "hours",
            message: "the list is empty, so the rule would never be active; leave `hours` out \
                      for all day"
                .to_owned(),
        });
    }
    let mut ranges = Vec::new();
    for item in items {
        match parse_range(item) {
            Ok(range) => ranges.push(range),
            Err(message) => errors.push(ActiveError {
                field: "hours",
                message,
            }),
        }
    }
    ranges
}

fn parse_range(item: &str) -> Result<LocalRange, String> {
    let Some((start, end)) = item.split_once('-') else {
        return Err(format!(
            "`{item}` is not a range: expected `HH:MM-HH:MM`, e.g. `22:00-07:00`"
        ));
    };
    let (start, end) = (parse_time(start), parse_time(end));
    let start = start.and_then(|minute| {
        if minute == MINUTES_PER_DAY {
            Err("24:00 can only end a range".to_owned())
        } else {
            Ok(minute)
        }
    });
    match (start, end) {
        // 24:00 as an end is the next midnight, which is what an end of 00:00 means too.
        (Ok(start), Ok(end)) => Ok(LocalRange {
            start,
            end: end % MINUTES_PER_DAY,
        }),
        (Err(problem), Ok(_)) => Err(format!("`{item}`: start {problem}")),
        (Ok(_), Err(problem)) => Err(format!("`{item}`: end {problem}")),
        (Err(start), Err(end)) => Err(format!("`{item}`: start {start}; end {end}")),
    }
}

/// Minutes since midnight of `HH:MM` (`H:MM` too), 0..=1440 with `24:00` as 1440.
fn parse_time(text: &str) -> Result<u16, String> {
    let text = text.trim();
    let not_a_time = || format!("`{text}` is not a time: expected `HH:MM`");
    let (hours, minutes) = text.split_once(':').ok_or_else(not_a_time)?;
    let digits = |s: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hours, 1..=2) || !digits(minutes, 2..=2) {
        return Err(not_a_time());
    }
    let hours: u16 = hours.parse().map_err(|_| not_a_time())?;
    let minutes: u16 = minutes.parse().map_err(|_| not_a_time())?;
    if minutes > 59 {
        return Err(format!("`{text}` has minute {minutes}; expected 00 to 59"));
    }
    if hours > 24 || (hours == 24 && minutes != 0) {
        return Err(format!(
            "`{text}` is past the end of the day; expected 00:00 to 24:00"
        ));
    }
    Ok(hours * 60 + minutes)
}

/// The wall-clock datetime `minute` minutes after midnight on `day`.
fn local_datetime(day: Date, minute: u16) -> DateTime {
    // Both fit in an i8 and make a valid time: `minute` < 1440 by construction.
    let (hour, minute) = ((minute / 60) as i8, (minute % 60) as i8);
    day.to_datetime(Time::new(hour, minute, 0, 0).unwrap_or(Time::MIN))
}

/// Whether `ranges`, starting on each of `days`, cover every minute of the week.
fn covers_whole_week(days: &[bool; 7], ranges: &[LocalRange]) -> bool {
    const WEEK: usize = 7 * MINUTES_PER_DAY as usize;
    let mut covered = vec![false; WEEK];
    for day in (0..7).filter(|day| days[*day]) {
        for range in ranges {
            let start = day * usize::from(MINUTES_PER_DAY) + usize::from(range.start);
            for minute in start..start + usize::from(range.minutes()) {
                covered[minute % WEEK] = true;
            }
        }
    }
    covered.into_iter().all(|minute| minute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window(timezone: Option<&str>, weekdays: &[&str], hours: &[&str]) -> ActiveWindow {
        let list = |items: &[&str]| {
            (!items.is_empty()).then(|| items.iter().map(|s| s.to_string()).collect())
        };
        let spec = ActiveSpec {
            timezone: timezone.map(str::to_owned),
            weekdays: list(weekdays),
            hours: list(hours),
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
                ["06:00", "10:00", "11:00", "16:00"]
                    .map(|hm| ts(&format!("2026-06-{day:02}T{hm}Z")))
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
        let spec: ActiveSpec =
            serde_json::from_str(r#"{"hours": ["22:00-07:00"]}"#).expect("valid");
        assert_eq!(
            spec,
            ActiveSpec {
                timezone: None,
                weekdays: None,
                hours: Some(vec!["22:00-07:00".into()])
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
}
