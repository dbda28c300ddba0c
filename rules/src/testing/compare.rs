//! Comparing the alerts a case got with those it expected, and saying what differs.

use std::fmt::Write as _;

use jiff::SignedDuration;

use super::ExpectedAlert;
use crate::alert::{Alert, AlertState};

fn matches(expected: &ExpectedAlert, got: &Alert, check_state: bool) -> bool {
    expected.rule == got.rule
        && (!check_state || expected.state.is_none_or(|s| s == got.state))
        && expected
            .labels
            .iter()
            .all(|(k, v)| got.labels.get(k) == Some(v))
        && expected
            .annotations
            .iter()
            .all(|(k, v)| got.annotations.get(k) == Some(v))
}

pub(super) fn compare(
    when: &str,
    what: &str,
    expected: &[ExpectedAlert],
    got: &[Alert],
    check_state: bool,
    failures: &mut Vec<String>,
) {
    let mut unmatched: Vec<&Alert> = got.iter().collect();
    let mut missing = Vec::new();
    for e in expected {
        match unmatched.iter().position(|g| matches(e, g, check_state)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(e),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return;
    }
    let mut message = format!("{when}, {what}:\n    expected:");
    if expected.is_empty() {
        message.push_str(" none");
    }
    for e in expected {
        let _ = write!(
            message,
            "\n      - rule={} state={} labels={:?} annotations={:?}",
            e.rule,
            e.state.map_or("any", AlertState::as_str),
            e.labels,
            e.annotations
        );
    }
    message.push_str("\n    got:");
    if got.is_empty() {
        message.push_str(" none");
    }
    for g in got {
        let _ = write!(
            message,
            "\n      - rule={} state={} labels={:?} annotations={:?}",
            g.rule,
            g.state.as_str(),
            g.labels,
            g.annotations
        );
    }
    failures.push(message);
}

pub(super) fn friendly(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let sign = if secs < 0 { "-" } else { "" };
    let secs = secs.unsigned_abs();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        format!("{sign}{text}")
    }
}
