//! core/v1 Events: Warning ones by default, filtered by type, reason and involved kind.
//!
//! | subject | when | data |
//! |---|---|---|
//! | `k8s/event/<ns>/<kind>/<name>/<reason>` | a new Event, or its count went up (it happened again) | `type`, `reason`, `message`, `count`, `first_timestamp`, `last_timestamp`, `involved`, `component`, `host` |
//!
//! Labels: `namespace`, `kind`, `name`, `reason`, `type`.
//!
//! Events are de-duplicated by uid and count: each is kept (uid → count, last seen) until the
//! API server deletes it (its event TTL, an hour by default) or it is missing from a relist,
//! and at most [`RETENTION`]. An Event last seen longer ago than that is history, never news.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::EventsConfig;
use super::known::{AfterCheck, Before, Kind};
use super::objects::EventView;
use super::report::{Report, from_millis, millis};

/// How long an Event is remembered after it was last seen; older ones are not news.
pub const RETENTION: Duration = Duration::from_secs(2 * 3600);

pub(crate) struct Events {
    pub filter: EventsConfig,
}

/// What is kept of an Event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventSummary {
    /// How many times it happened (`series.count`, else `count`, else 1).
    count: i32,
    /// When it last happened (ms).
    seen: i64,
}

impl Events {
    /// Whether the filter lets `event` through.
    fn wanted(&self, event: &EventView) -> bool {
        let f = &self.filter;
        let type_ = event.type_.as_deref().unwrap_or("Normal");
        let reason = event.reason.as_deref().unwrap_or("");
        let kind = event
            .involved_object
            .as_ref()
            .and_then(|o| o.kind.as_deref())
            .unwrap_or("");
        (f.types.is_empty() || f.types.iter().any(|t| t.eq_ignore_ascii_case(type_)))
            && (f.include_reasons.is_empty() || f.include_reasons.iter().any(|p| glob(p, reason)))
            && !f.exclude_reasons.iter().any(|p| glob(p, reason))
            && (f.involved_kinds.is_empty()
                || f.involved_kinds
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(kind)))
    }

    fn expired(seen: i64, now: Timestamp) -> bool {
        from_millis(seen)
            .is_some_and(|seen| now.duration_since(seen).as_secs() >= RETENTION.as_secs() as i64)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic wildcard matching with one backtrack point: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Kind for Events {
    type Object = EventView;
    type Summary = EventSummary;
    const RESOURCE: &'static str = "events";
    const GROUP: &'static str = "";
    const TABLE: &'static str = "k8s_events";

    fn key(&self, event: &EventView) -> Option<String> {
        let meta = &event.metadata;
        let id = meta.uid.as_deref().or(meta.name.as_deref())?;
        Some(format!("{}/{id}", meta.namespace.as_deref().unwrap_or("")))
    }

    fn summarize(&self, event: &EventView, now: Timestamp) -> Option<EventSummary> {
        if !self.wanted(event) {
            return None;
        }
        let count = event
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(event.count)
            .unwrap_or(1);
        let seen = event
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| {
                event
                    .series
                    .as_ref()?
                    .last_observed_time
                    .as_ref()
                    .map(|t| t.0)
            })
            .or_else(|| event.event_time.as_ref().map(|t| t.0))
            .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        Some(EventSummary {
            count,
            seen: millis(seen),
        })
    }

    fn compare(
        &self,
        _key: &str,
        before: Before<'_, EventSummary>,
        after: &mut EventSummary,
        event: &EventView,
        report: &mut Report<'_>,
    ) {
        let news = match before {
            Before::Baseline => false,
            Before::Unknown => !Self::expired(after.seen, report.now),
            Before::Known(old) => {
                // A count never goes back: keep the highest seen.
                let news = after.count > old.count;
                after.count = after.count.max(old.count);
                news
            }
        };
        if !news {
            return;
        }
        let involved = event.involved_object.as_ref();
        let namespace = event.metadata.namespace.as_deref().unwrap_or("");
        let kind = involved.and_then(|o| o.kind.as_deref()).unwrap_or("");
        let name = involved.and_then(|o| o.name.as_deref()).unwrap_or("");
        let reason = event.reason.as_deref().unwrap_or("");
        let type_ = event.type_.as_deref().unwrap_or("Normal");
        report.tell(
            &["event", namespace, kind, name, reason],
            &[
                ("namespace", namespace),
                ("kind", kind),
                ("name", name),
                ("reason", reason),
                ("type", type_),
            ],
            json!({
                "type": type_,
                "reason": reason,
                "message": event.message,
                "count": after.count,
                "first_timestamp": event.first_timestamp.as_ref().map(|t| t.0.to_string()),
                "last_timestamp": from_millis(after.seen).map(|t| t.to_string()),
                "involved": {
                    "kind": kind,
                    "name": name,
                    "namespace": involved.and_then(|o| o.namespace.as_deref()),
                    "field_path": involved.and_then(|o| o.field_path.as_deref()),
                },
                "component": event
                    .source
                    .as_ref()
                    .and_then(|s| s.component.as_deref())
                    .or(event.reporting_component.as_deref()),
                "host": event.source.as_ref().and_then(|s| s.host.as_deref()),
            }),
            from_millis(after.seen),
        );
    }

    fn removed(&self, _key: &str, _before: &EventSummary, _report: &mut Report<'_>) {}

    fn next_check(&self, summary: &EventSummary) -> Option<Timestamp> {
        from_millis(summary.seen)?
            .checked_add(jiff::SignedDuration::try_from(RETENTION).ok()?)
            .ok()
    }

    fn check(&self, _key: &str, summary: &mut EventSummary, report: &mut Report<'_>) -> AfterCheck {
        if Self::expired(summary.seen, report.now) {
            AfterCheck::Forget
        } else {
            AfterCheck::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_: &str, reason: &str, kind: &str, count: i32, last: &str) -> EventView {
        serde_json::from_value(json!({
            "metadata": {"name": "x.1", "namespace": "media", "uid": "u-1"},
            "involvedObject": {"kind": kind, "name": "jellyfin-0", "namespace": "media"},
            "type": type_, "reason": reason, "message": "Back-off restarting failed container",
            "count": count, "lastTimestamp": last, "firstTimestamp": "2026-01-05T11:00:00Z",
            "source": {"component": "kubelet", "host": "pi-2"}
        }))
        .unwrap()
    }

    fn events(filter: EventsConfig) -> Events {
        Events { filter }
    }

    const NOW: &str = "2026-01-05T12:00:00Z";

    fn tell(
        events: &Events,
        before: Before<'_, EventSummary>,
        view: &EventView,
    ) -> (Option<EventSummary>, usize) {
        let mut report = Report::new("t", NOW.parse().unwrap());
        let Some(mut after) = events.summarize(view, report.now) else {
            return (None, 0);
        };
        events.compare("media/u-1", before, &mut after, view, &mut report);
        (Some(after), report.events.len())
    }

    #[test]
    fn globs() {
        assert!(glob("Failed*", "FailedMount"));
        assert!(glob("*Mount", "FailedMount"));
        assert!(glob("*", ""));
        assert!(glob("Back*Off", "BackOff"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(!glob("BackOff", "BackOffs"));
    }

    #[test]
    fn filters_by_type_reason_and_kind() {
        let warnings = events(EventsConfig::default());
        let last = "2026-01-05T11:59:00Z";
        assert!(
            tell(
                &warnings,
                Before::Unknown,
                &event("Normal", "Pulled", "Pod", 1, last)
            )
            .0
            .is_none()
        );
        assert_eq!(
            tell(
                &warnings,
                Before::Unknown,
                &event("Warning", "BackOff", "Pod", 1, last)
            )
            .1,
            1
        );
        let picky = events(EventsConfig {
            include_reasons: vec!["Failed*".into(), "BackOff".into()],
            exclude_reasons: vec!["FailedMount".into()],
            involved_kinds: vec!["pod".into()],
            ..EventsConfig::default()
        });
        assert!(
            tell(
                &picky,
                Before::Unknown,
                &event("Warning", "FailedMount", "Pod", 1, last)
            )
            .0
            .is_none()
        );
        assert!(
            tell(
                &picky,
                Before::Unknown,
                &event("Warning", "BackOff", "Node", 1, last)
            )
            .0
            .is_none()
        );
        assert_eq!(
            tell(
                &picky,
                Before::Unknown,
                &event("Warning", "FailedScheduling", "Pod", 1, last)
            )
            .1,
            1
        );
    }

    #[test]
    fn deduplicated_by_count_and_old_ones_are_history() {
        let e = events(EventsConfig::default());
        let (first, told) = tell(
            &e,
            Before::Baseline,
            &event("Warning", "BackOff", "Pod", 3, "2026-01-05T11:59:00Z"),
        );
        assert_eq!(told, 0, "a baseline tells no Event");
        let first = first.unwrap();
        assert_eq!(
            tell(
                &e,
                Before::Known(&first),
                &event("Warning", "BackOff", "Pod", 3, "2026-01-05T11:59:00Z")
            )
            .1,
            0
        );
        let (again, told) = tell(
            &e,
            Before::Known(&first),
            &event("Warning", "BackOff", "Pod", 4, "2026-01-05T11:59:30Z"),
        );
        assert_eq!(told, 1);
        assert_eq!(again.unwrap().count, 4);
        assert_eq!(
            tell(
                &e,
                Before::Unknown,
                &event("Warning", "BackOff", "Pod", 1, "2026-01-05T09:00:00Z")
            )
            .1,
            0,
            "last seen three hours ago"
        );
    }

    #[test]
    fn the_event_says_what_and_where() {
        let e = events(EventsConfig::default());
        let view = event("Warning", "BackOff", "Pod", 2, "2026-01-05T11:59:00Z");
        let mut report = Report::new("t", NOW.parse().unwrap());
        let mut after = e.summarize(&view, report.now).unwrap();
        e.compare("media/u-1", Before::Unknown, &mut after, &view, &mut report);
        let told = &report.events[0];
        assert_eq!(
            told.subject.as_str(),
            "k8s/event/media/Pod/jellyfin-0/BackOff"
        );
        assert_eq!(told.labels["kind"], "Pod");
        assert_eq!(told.labels["type"], "Warning");
        assert_eq!(told.data["count"], 2);
        assert_eq!(told.data["component"], "kubelet");
        assert_eq!(
            told.time,
            "2026-01-05T11:59:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            e.next_check(&after),
            Some("2026-01-05T13:59:00Z".parse().unwrap())
        );
    }
}
