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

#[cfg(test)]
mod tests;

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
    /// When the hours begin while the condition already holds (a door opened at 22:59 and
    /// still open at 23:00), count it from the start of the hours. Default false: outside
    /// the hours the condition counts as false, and only the next event is evaluated again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evaluate_at_start: bool,
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
    /// [`ActiveSpec::evaluate_at_start`].
    pub evaluate_at_start: bool,
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
                    evaluate_at_start: spec.evaluate_at_start,
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
