//! Prometheus-style durations, as Alertmanager writes them: `30s`, `5m`, `1h30m`, `1d`,
//! `1w`, `500ms`, `1y` (365 days); and [`parse_any_duration`], the one grammar every file
//! atalaya reads (rules, routing, config, rule tests) takes: Prometheus's, or jiff's friendly
//! form (`90s`, `1h 30m`, `2 hours`).
//!
//! The grammar is Prometheus' `model.ParseDuration`: one or more `<integer><unit>` with the
//! units in decreasing order and none repeated (`1h30m`, not `30m1h`); a bare `0` is allowed.
//! Formatting follows `model.Duration.String()`: years and weeks only when they divide the
//! duration exactly (`8d` rather than `1w1d`), then days down to milliseconds.

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 60 * 60 * 1000),
    ("w", 7 * 24 * 60 * 60 * 1000),
    ("d", 24 * 60 * 60 * 1000),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// The longest duration Prometheus (a Go `time.Duration`, in nanoseconds) can hold.
const MAX_MILLIS: u64 = i64::MAX as u64 / 1_000_000;

/// Parses a Prometheus duration; the error says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let accepted = "write it like `30s`, `5m`, `1h30m` or `1d`: whole numbers with units \
                    y, w, d, h, m, s, ms, largest first";
    match text {
        "" => return Err(format!("empty duration; {accepted}")),
        "0" => return Ok(Duration::ZERO),
        _ => {}
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed: each must be smaller than the previous.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration; {accepted}"));
        }
        let (number, after) = rest.split_at(digits);
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(letters);
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("`{text}`: `{number}` has no unit; {accepted}")
            } else {
                format!("`{text}`: unknown unit `{unit}`; {accepted}")
            });
        };
        if index < next_unit {
            return Err(format!(
                "`{text}`: unit `{unit}` repeated or out of order; {accepted}"
            ));
        }
        next_unit = index + 1;
        let millis = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .and_then(|ms| ms.checked_add(total))
            .filter(|ms| *ms <= MAX_MILLIS)
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        total = millis;
        rest = after;
    }
    Ok(Duration::from_millis(total))
}

/// Parses a duration in either form atalaya reads everywhere: Prometheus's (`5d9h`, `1w`,
/// `500ms`; a day is 24 hours) or jiff's friendly form (`90s`, `1h 30m`, `5 minutes`).
/// Negative durations are refused; the error says what is accepted.
pub fn parse_any_duration(text: &str) -> Result<Duration, String> {
    let prometheus = match parse_duration(text) {
        Ok(duration) => return Ok(duration),
        Err(e) => e,
    };
    match text.parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_negative() => Err(format!("`{text}` is negative; a duration is not")),
        Ok(d) => Duration::try_from(d).map_err(|_| format!("`{text}` is too long a duration")),
        Err(_) => Err(prometheus),
    }
}

/// Formats as Prometheus does (`1h30m`, `0s`).
///
/// Below a millisecond is dropped, as Prometheus durations count milliseconds.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (i, (unit, length)) in UNITS.iter().enumerate() {
        // Years and weeks only when exact: `90d` reads better than `12w6d`.
        let exact_only = i < 2;
        if exact_only && millis % length != 0 {
            continue;
        }
        let count = millis / length;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
            millis -= count * length;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn one_grammar_takes_both_forms() {
        for (text, expected) in [
            ("5d9h", secs(5 * 86_400 + 9 * 3600)),
            ("1w", secs(7 * 86_400)),
            ("1h30m", secs(5400)),
            ("1h 30m", secs(5400)),
            ("5 minutes", secs(300)),
            ("90s", secs(90)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_any_duration(text), Ok(expected), "{text}");
        }
        assert!(parse_any_duration("-5m").unwrap_err().contains("negative"));
        assert!(
            parse_any_duration("5q")
                .unwrap_err()
                .contains("write it like `30s`")
        );
    }

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("1w"), Ok(secs(7 * 86_400)));
        assert_eq!(parse_duration("1y"), Ok(secs(365 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("00h"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_prometheus_refuses() {
        for text in [
            "", "-1s", "1", "s", "1h 30m", "30m1h", "1h1h", "1.5h", "1H", "1sec", "1mss", " 1s",
            "1s ", "+1s", "1msx", "1d1y",
        ] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("30s"), "{text}: {error}");
        }
        assert!(parse_duration("300y").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(secs(86_400)), "1d");
        assert_eq!(format_duration(secs(8 * 86_400)), "8d");
        assert_eq!(format_duration(secs(14 * 86_400)), "2w");
        assert_eq!(format_duration(secs(365 * 86_400)), "1y");
        assert_eq!(format_duration(secs(366 * 86_400)), "366d");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(90_250)), "1m30s250ms");
        assert_eq!(format_duration(secs(4 * 3600)), "4h");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(millis in 0u64..MAX_MILLIS) {
            let duration = Duration::from_millis(millis);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn parsing_never_panics(text in "[0-9a-z ]{0,12}") {
            let _ = parse_duration(&text);
        }
    }
}
