//! Why a rule does or does not fire, series by series (`atalaya explain --rule`): each
//! series' phase with its last value and when it was seen, when a pending one fires, whether
//! it is held outside the rule's active hours; the rule's series limit and its last
//! evaluation error.

use atalaya_bus::Labels;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::series::{Phase, Series};
use crate::compile::Rule;

/// A rule, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleExplanation {
    pub rule: String,
    /// Where it is defined (`file:line:col`).
    pub origin: String,
    pub series_count: usize,
    pub max_series: usize,
    /// When the series limit last turned a new series away, if it did lately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_limit_hit_at: Option<Timestamp>,
    /// The last evaluation error logged: when, and what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether the rule has active hours (`active:`), and whether they hold now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_now: Option<bool>,
    pub series: Vec<SeriesExplanation>,
}

/// One series of a rule, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesExplanation {
    pub labels: Labels,
    /// `inactive` (the condition was false when last evaluated, at `last_seen`), `pending`
    /// or `firing`.
    pub state: String,
    /// Pending or firing since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// A pending series fires then, if the condition still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fires_at: Option<Timestamp>,
    /// The rule's value while the series is active (an inactive series keeps none: that
    /// would cost a copy per event).
    pub value: serde_json::Value,
    pub last_seen: Timestamp,
    /// The condition holds, but outside the rule's active hours: it fires when they begin.
    pub held_out_of_hours: bool,
    /// The next deadline of the series (an absence timer, the end of `for:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
}

impl RuleExplanation {
    pub(super) fn of<'a>(
        rule: &Rule,
        series: impl Iterator<Item = &'a Series>,
        series_limit_hit_at: Option<Timestamp>,
        last_error: Option<(Timestamp, String)>,
    ) -> Self {
        let mut explained: Vec<SeriesExplanation> = series
            .map(|s| {
                let (state, since, fires_at) = match s.phase {
                    Phase::Inactive => ("inactive", None, None),
                    Phase::Pending { since } => {
                        ("pending", Some(since), since.checked_add(rule.for_).ok())
                    }
                    Phase::Firing { fired_at, .. } => ("firing", Some(fired_at), None),
                };
                SeriesExplanation {
                    labels: s.labels.clone(),
                    state: state.to_owned(),
                    since,
                    fires_at,
                    value: s.value.clone(),
                    last_seen: s.last_seen,
                    held_out_of_hours: s.held_out_of_hours,
                    deadline: s.deadline,
                }
            })
            .collect();
        explained.sort_by(|a, b| a.labels.cmp(&b.labels));
        let (last_error_at, last_error) = last_error.unzip();
        Self {
            rule: rule.name.clone(),
            origin: rule.origin.clone(),
            series_count: explained.len(),
            max_series: rule.max_series,
            series_limit_hit_at,
            last_error_at,
            last_error,
            active_now: rule.active.as_ref().map(|a| a.contains(Timestamp::now())),
            series: explained,
        }
    }
}

#[cfg(test)]
mod tests {
    use atalaya_bus::{Event, Subject};

    use crate::engine::tests::engine;

    fn event(subject: &str, value: f64, at: &str) -> (jiff::Timestamp, Event) {
        let at: jiff::Timestamp = at.parse().unwrap();
        (
            at,
            Event::new("/t", Subject::parse(subject).unwrap(), value.into(), at),
        )
    }

    #[test]
    fn each_series_says_where_it_stands() {
        let mut e = engine(
            "rules:\n  - name: hot\n    subject: room/+room/temp\n    condition: value > 30\n    for: 5m\n    max_series: 2\n  - name: broken\n    subject: room/+room/temp\n    condition: value.foo > 1\n",
        );
        for (subject, value) in [
            ("room/a/temp", 20.0),
            ("room/b/temp", 35.0),
            ("room/c/temp", 40.0),
        ] {
            let (at, ev) = event(subject, value, "2026-12-04T10:00:00Z");
            e.on_event(at, &ev);
        }
        let hot = e.explain("hot").unwrap();
        assert_eq!((hot.series_count, hot.max_series), (2, 2));
        assert!(hot.series_limit_hit_at.is_some(), "room c was turned away");
        let states: Vec<(&str, &str)> = hot
            .series
            .iter()
            .map(|s| (&s.labels["room"], s.state.as_str()))
            .collect();
        assert_eq!(states, [("a", "inactive"), ("b", "pending")]);
        assert_eq!(
            hot.series[1].fires_at,
            Some("2026-12-04T10:05:00Z".parse().unwrap())
        );
        // An active series keeps its value; an inactive one only when it was seen.
        assert_eq!(hot.series[1].value, 35.0);
        assert_eq!(
            hot.series[0].last_seen,
            "2026-12-04T10:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let broken = e.explain("broken").unwrap();
        assert!(
            broken
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("condition")),
            "{broken:?}"
        );
        assert!(e.explain("nope").is_none());
    }
}
