//! Time intervals (Alertmanager's `time_intervals`): times of day, weekdays, days of the
//! month, months and years, in a location; an instant is inside when every given field
//! holds (and inside any of a named interval's entries).
//!
//! Each field is a list of ranges written as in Alertmanager: `HH:MM` times with an
//! exclusive end (`24:00` allowed), and inclusive `begin:end` ranges or single values for
//! weekdays (`monday:friday`), days of the month (`1:5`, `-3:-1` counting from the end),
//! months (`january:march`, `12`) and years (`2020:2022`). A field with no ranges means any.
//! The checks and the day-of-month clamping follow Alertmanager's `timeinterval` package.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// An inclusive range of integers: weekdays (0 = Sunday), days of the month, months, years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InclusiveRange {
    begin: i32,
    end: i32,
}

impl InclusiveRange {
    fn contains(self, n: i32) -> bool {
        self.begin <= n && n <= self.end
    }
}

/// Minutes of the day `[start, end)`, `0 ≤ start < end ≤ 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MinuteRange {
    start: u16,
    end: u16,
}

/// One entry of a named time interval.
///
/// Built with [`TimeInterval::new`] (any instant) and narrowed with the `add_*` methods,
/// each adding one range to its field.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeInterval {
    times: Vec<MinuteRange>,
    weekdays: Vec<InclusiveRange>,
    /// Negative days count from the month's end (-1 is the last day).
    days_of_month: Vec<InclusiveRange>,
    months: Vec<InclusiveRange>,
    years: Vec<InclusiveRange>,
    /// Where the fields are read (Alertmanager's `location`, UTC by default).
    location: TimeZone,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Minutes in a day: the end of `24:00`.
const DAY_MINUTES: u16 = 24 * 60;

impl TimeInterval {
    /// An entry holding every instant, read in `location`; narrow it with the `add_*`
    /// methods.
    pub fn new(location: TimeZone) -> Self {
        Self {
            times: Vec::new(),
            weekdays: Vec::new(),
            days_of_month: Vec::new(),
            months: Vec::new(),
            years: Vec::new(),
            location,
        }
    }

    /// Adds the times of day `[start, end)`, in minutes (see [`parse_time_of_day`]).
    pub fn add_times(&mut self, start: u16, end: u16) -> Result<(), String> {
        if end > DAY_MINUTES {
            return Err(format!("end time {} is past 24:00", format_minutes(end)));
        }
        if start >= end {
            return Err(format!(
                "start time {} must be before end time {}",
                format_minutes(start),
                format_minutes(end)
            ));
        }
        self.times.push(MinuteRange { start, end });
        Ok(())
    }

    /// Adds weekdays: `monday`, `monday:friday` (any case; the week starts on Sunday, so
    /// `saturday:sunday` is refused: write `saturday` and `sunday`).
    pub fn add_weekdays(&mut self, text: &str) -> Result<(), String> {
        let range = parse_range(text, |s| {
            WEEKDAYS
                .iter()
                .position(|d| *d == s)
                .map(|i| i as i32)
                .ok_or_else(|| format!("`{s}` is not a weekday; write `monday`, … `sunday`"))
        })?;
        if range.begin > range.end {
            return Err(format!(
                "`{text}`: the week starts on Sunday, so {} comes after {}; list the days \
                 separately",
                WEEKDAYS[range.begin as usize], WEEKDAYS[range.end as usize]
            ));
        }
        self.weekdays.push(range);
        Ok(())
    }

    /// Adds days of the month: `1`, `1:5`, `-3:-1` (-1 is the last day of the month).
    pub fn add_days_of_month(&mut self, text: &str) -> Result<(), String> {
        let range = parse_range(text, |s| parse_int(s, "day of the month"))?;
        for day in [range.begin, range.end] {
            if day == 0 || !(-31..=31).contains(&day) {
                return Err(format!(
                    "`{text}`: {day} is not a day of the month; use 1 to 31, or -1 (the last \
                     day) to -31"
                ));
            }
        }
        if range.begin < 0 && range.end > 0 {
            return Err(format!(
                "`{text}`: the end day must be negative when the start day is"
            ));
        }
        // Months have at least 28 days: refuse ranges that are empty in every month.
        let at_least = |d: i32| if d < 0 { 28 + d } else { d };
        if at_least(range.begin) > at_least(range.end) {
            return Err(format!(
                "`{text}`: the end day {} is always before the start day {}",
                range.end, range.begin
            ));
        }
        self.days_of_month.push(range);
        Ok(())
    }

    /// Adds months: `january`, `january:march`, `1:3`, `12`.
    pub fn add_months(&mut self, text: &str) -> Result<(), String> {
        let range = parse_range(text, |s| {
            if let Some(i) = MONTHS.iter().position(|m| *m == s) {
                return Ok(i as i32 + 1);
            }
            match s.parse::<i32>() {
                Ok(n) if (1..=12).contains(&n) => Ok(n),
                _ => Err(format!(
                    "`{s}` is not a month; write `january`, … `december` or 1 to 12"
                )),
            }
        })?;
        if range.begin > range.end {
            return Err(format!(
                "`{text}`: the end month comes before the start month"
            ));
        }
        self.months.push(range);
        Ok(())
    }

    /// Adds years: `2026`, `2020:2022`.
    pub fn add_years(&mut self, text: &str) -> Result<(), String> {
        let range = parse_range(text, |s| match parse_int(s, "year")? {
            n if (1..=9999).contains(&n) => Ok(n),
            n => Err(format!("{n} is not a year; use 1 to 9999")),
        })?;
        if range.begin > range.end {
            return Err(format!(
                "`{text}`: the end year {} is before the start year {}",
                range.end, range.begin
            ));
        }
        self.years.push(range);
        Ok(())
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        let local = self.location.to_datetime(at);
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        let in_times = self.times.is_empty()
            || self
                .times
                .iter()
                .any(|r| i32::from(r.start) <= minute && minute < i32::from(r.end));
        let day = i32::from(local.day());
        let days_in_month = i32::from(local.days_in_month());
        let in_days = self.days_of_month.is_empty()
            || self
                .days_of_month
                .iter()
                .any(|r| day_range_contains(*r, day, days_in_month));
        let any_or = |ranges: &[InclusiveRange], n: i32| {
            ranges.is_empty() || ranges.iter().any(|r| r.contains(n))
        };
        in_times
            && in_days
            && any_or(&self.months, i32::from(local.month()))
            && any_or(
                &self.weekdays,
                i32::from(local.weekday().to_sunday_zero_offset()),
            )
            && any_or(&self.years, i32::from(local.year()))
    }
}

/// Alertmanager's reading of a day-of-month range in a month of `days_in_month` days:
/// negative days count from the end, a range starting after the month's end holds no day,
/// and the ends are clamped to the month.
fn day_range_contains(range: InclusiveRange, day: i32, days_in_month: i32) -> bool {
    let resolve = |d: i32| if d < 0 { days_in_month + d + 1 } else { d };
    let begin = resolve(range.begin);
    if begin > days_in_month {
        return false;
    }
    let begin = begin.clamp(-days_in_month, days_in_month);
    let end = resolve(range.end).clamp(-days_in_month, days_in_month);
    begin <= day && day <= end
}

/// A named interval: inside when any of its entries contains the instant.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTimeInterval {
    pub name: String,
    pub entries: Vec<TimeInterval>,
}

impl NamedTimeInterval {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.entries.iter().any(|e| e.contains(at))
    }
}

/// `HH:MM` (`00:00` to `23:59`, or `24:00` for the end of the day) in minutes since
/// midnight.
pub fn parse_time_of_day(text: &str) -> Result<u16, String> {
    let invalid = || format!("`{text}` is not a time of day; write it as `HH:MM`, 00:00 to 24:00");
    let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return Err(invalid());
    }
    let hours: u16 = hours.parse().map_err(|_| invalid())?;
    let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
    if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
        return Err(invalid());
    }
    Ok(hours * 60 + minutes)
}

/// The zone of a `location`: an IANA name (`Europe/Madrid`), `UTC`, or `Local` (the
/// system's zone), looked up in jiff's bundled database.
pub fn parse_location(name: &str) -> Result<TimeZone, String> {
    if name.eq_ignore_ascii_case("UTC") || name.is_empty() {
        return Ok(TimeZone::UTC);
    }
    if name == "Local" {
        return Ok(TimeZone::system());
    }
    match TimeZone::get(name) {
        Ok(zone) if !zone.is_unknown() => Ok(zone),
        _ => Err(format!(
            "unknown location `{name}`: expected an IANA time zone name such as \
             `Europe/Madrid`, or `UTC`"
        )),
    }
}

/// `begin:end` or a single value, each read (lowercased) by `member`.
fn parse_range(
    text: &str,
    member: impl Fn(&str) -> Result<i32, String>,
) -> Result<InclusiveRange, String> {
    let lower = text.to_lowercase();
    match lower.split_once(':') {
        Some((begin, end)) if !end.contains(':') => Ok(InclusiveRange {
            begin: member(begin)?,
            end: member(end)?,
        }),
        Some(_) => Err(format!("`{text}` is not a range; write `begin:end`")),
        None => {
            let n = member(&lower)?;
            Ok(InclusiveRange { begin: n, end: n })
        }
    }
}

fn parse_int(text: &str, what: &str) -> Result<i32, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a {what}: expected a whole number"))
}

fn format_minutes(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        parse_location(name).unwrap()
    }

    fn night_in_madrid() -> TimeInterval {
        let mut interval = TimeInterval::new(zone("Europe/Madrid"));
        interval
            .add_times(
                parse_time_of_day("00:00").unwrap(),
                parse_time_of_day("08:00").unwrap(),
            )
            .unwrap();
        interval
    }

    #[test]
    fn an_empty_entry_holds_every_instant() {
        let interval = TimeInterval::new(TimeZone::UTC);
        assert!(interval.contains(at("2026-01-01T00:00:00Z")));
        assert!(interval.contains(at("1999-12-31T23:59:59Z")));
    }

    #[test]
    fn times_of_day_have_an_exclusive_end() {
        let mut interval = TimeInterval::new(TimeZone::UTC);
        interval.add_times(9 * 60, 17 * 60).unwrap();
        interval.add_times(22 * 60, 24 * 60).unwrap();
        assert!(!interval.contains(at("2026-05-04T08:59:59Z")));
        assert!(interval.contains(at("2026-05-04T09:00:00Z")));
        assert!(interval.contains(at("2026-05-04T16:59:59Z")));
        assert!(!interval.contains(at("2026-05-04T17:00:00Z")));
        assert!(interval.contains(at("2026-05-04T23:59:59Z")));
        assert!(!interval.contains(at("2026-05-05T00:00:00Z")));
    }

    #[test]
    fn night_in_madrid_across_the_spring_change() {
        // 2026-03-29: at 01:00 UTC, 02:00 CET becomes 03:00 CEST.
        let night = night_in_madrid();
        assert!(!night.contains(at("2026-03-28T22:59:59Z"))); // 23:59 CET, the 28th
        assert!(night.contains(at("2026-03-28T23:00:00Z"))); // 00:00 CET
        assert!(night.contains(at("2026-03-29T00:59:59Z"))); // 01:59:59 CET
        assert!(night.contains(at("2026-03-29T01:00:00Z"))); // 03:00 CEST
        assert!(night.contains(at("2026-03-29T05:59:59Z"))); // 07:59:59 CEST
        assert!(!night.contains(at("2026-03-29T06:00:00Z"))); // 08:00 CEST
        assert!(!night.contains(at("2026-03-29T06:30:00Z")));
    }

    #[test]
    fn night_in_madrid_across_the_autumn_change() {
        // 2026-10-25: at 01:00 UTC, 03:00 CEST becomes 02:00 CET (02:00-03:00 twice).
        let night = night_in_madrid();
        assert!(!night.contains(at("2026-10-24T21:59:59Z"))); // 23:59 CEST, the 24th
        assert!(night.contains(at("2026-10-24T22:00:00Z"))); // 00:00 CEST
        assert!(night.contains(at("2026-10-25T00:30:00Z"))); // 02:30 CEST
        assert!(night.contains(at("2026-10-25T01:30:00Z"))); // 02:30 CET
        assert!(night.contains(at("2026-10-25T06:59:59Z"))); // 07:59:59 CET
        assert!(!night.contains(at("2026-10-25T07:00:00Z"))); // 08:00 CET
        // The same night in UTC would have ended an hour earlier.
        let mut utc = TimeInterval::new(TimeZone::UTC);
        utc.add_times(0, 8 * 60).unwrap();
        assert!(!utc.contains(at("2026-10-25T08:00:00Z")));
        assert!(utc.contains(at("2026-10-25T07:00:00Z")));
    }

    #[test]
    fn inclusive_ranges_of_weekdays_months_and_years() {
        let mut interval = TimeInterval::new(TimeZone::UTC);
        interval.add_weekdays("Monday:friday").unwrap();
        interval.add_months("january:march").unwrap();
        interval.add_months("12").unwrap();
        interval.add_years("2020:2026").unwrap();
        assert!(interval.contains(at("2026-01-05T12:00:00Z"))); // Monday
        assert!(interval.contains(at("2026-01-09T12:00:00Z"))); // Friday
        assert!(!interval.contains(at("2026-01-10T12:00:00Z"))); // Saturday
        assert!(interval.contains(at("2026-03-31T23:59:59Z")));
        assert!(!interval.contains(at("2026-04-01T00:00:00Z")));
        assert!(interval.contains(at("2025-12-01T00:00:00Z"))); // Monday, December
        assert!(interval.contains(at("2020-01-01T00:00:00Z"))); // Wednesday
        assert!(!interval.contains(at("2027-01-04T00:00:00Z")));
        assert!(!interval.contains(at("2019-12-31T00:00:00Z")));
    }

    #[test]
    fn fields_are_read_in_the_location() {
        // 2026-01-04 23:30 UTC is Monday 00:30 in Madrid.
        let mut madrid = TimeInterval::new(zone("Europe/Madrid"));
        madrid.add_weekdays("monday").unwrap();
        assert!(madrid.contains(at("2026-01-04T23:30:00Z")));
        let mut utc = TimeInterval::new(TimeZone::UTC);
        utc.add_weekdays("monday").unwrap();
        assert!(!utc.contains(at("2026-01-04T23:30:00Z")));
    }

    #[test]
    fn negative_days_count_from_the_end_of_the_month() {
        let mut last_three = TimeInterval::new(TimeZone::UTC);
        last_three.add_days_of_month("-3:-1").unwrap();
        // February 2028 has 29 days.
        assert!(!last_three.contains(at("2028-02-26T12:00:00Z")));
        assert!(last_three.contains(at("2028-02-27T12:00:00Z")));
        assert!(last_three.contains(at("2028-02-29T12:00:00Z")));
        // February 2026 has 28.
        assert!(last_three.contains(at("2026-02-26T12:00:00Z")));
        assert!(!last_three.contains(at("2026-02-25T12:00:00Z")));
        assert!(last_three.contains(at("2026-01-29T00:00:00Z")));
        assert!(!last_three.contains(at("2026-01-28T23:59:59Z")));

        let mut first_to_last = TimeInterval::new(TimeZone::UTC);
        first_to_last.add_days_of_month("1:5").unwrap();
        first_to_last.add_days_of_month("30:31").unwrap();
        assert!(first_to_last.contains(at("2028-02-05T00:00:00Z")));
        assert!(!first_to_last.contains(at("2028-02-06T00:00:00Z")));
        // A range starting after the month's end holds no day of it.
        assert!(!first_to_last.contains(at("2028-02-29T00:00:00Z")));
        assert!(first_to_last.contains(at("2028-01-31T00:00:00Z")));

        let mut up_to_last = TimeInterval::new(TimeZone::UTC);
        up_to_last.add_days_of_month("25:-1").unwrap();
        assert!(up_to_last.contains(at("2028-02-29T00:00:00Z")));
        assert!(!up_to_last.contains(at("2028-02-24T00:00:00Z")));
    }

    #[test]
    fn refuses_what_alertmanager_refuses() {
        let mut i = TimeInterval::new(TimeZone::UTC);
        assert!(i.add_weekdays("saturday:sunday").is_err());
        assert!(i.add_weekdays("funday").is_err());
        assert!(i.add_weekdays("monday:tuesday:friday").is_err());
        assert!(i.add_days_of_month("0").is_err());
        assert!(i.add_days_of_month("32").is_err());
        assert!(i.add_days_of_month("-1:5").is_err());
        assert!(i.add_days_of_month("10:5").is_err());
        assert!(i.add_days_of_month("-1:-3").is_err());
        assert!(i.add_months("march:january").is_err());
        assert!(i.add_months("13").is_err());
        assert!(i.add_years("2022:2020").is_err());
        assert!(i.add_years("twenty").is_err());
        assert!(i.add_times(8 * 60, 8 * 60).is_err());
        assert!(i.add_times(9 * 60, 8 * 60).is_err());
        for text in ["24:01", "25:00", "8:00", "08:60", "0800", "08:00:00", ""] {
            assert!(parse_time_of_day(text).is_err(), "{text}");
        }
        assert_eq!(parse_time_of_day("24:00"), Ok(1440));
        assert_eq!(parse_time_of_day("07:30"), Ok(450));
        assert!(parse_location("Europe/Madird").is_err());
        assert!(parse_location("Mars/Olympus").is_err());
    }

    #[test]
    fn a_named_interval_holds_what_any_entry_holds() {
        let mut weekend = TimeInterval::new(TimeZone::UTC);
        weekend.add_weekdays("saturday").unwrap();
        weekend.add_weekdays("sunday").unwrap();
        let named = NamedTimeInterval {
            name: "off".to_owned(),
            entries: vec![weekend, night_in_madrid()],
        };
        assert!(named.contains(at("2026-01-10T12:00:00Z"))); // Saturday noon
        assert!(named.contains(at("2026-01-12T05:00:00Z"))); // Monday 06:00 in Madrid
        assert!(!named.contains(at("2026-01-12T12:00:00Z")));
    }

    proptest! {
        #[test]
        fn times_of_day_round_trip(minutes in 0u16..=DAY_MINUTES) {
            prop_assert_eq!(parse_time_of_day(&format_minutes(minutes)), Ok(minutes));
        }

        #[test]
        fn range_parsers_never_panic(text in "[a-z0-9:-]{0,12}") {
            let mut interval = TimeInterval::new(TimeZone::UTC);
            let _ = parse_time_of_day(&text);
            let _ = interval.add_weekdays(&text);
            let _ = interval.add_days_of_month(&text);
            let _ = interval.add_months(&text);
            let _ = interval.add_years(&text);
            interval.contains(Timestamp::UNIX_EPOCH);
        }
    }
}
