//! Events: Warning ones by default, filtered by type, reason and involved kind, from core/v1
//! and events.k8s.io/v1 (`events.apis`).
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
//! A repeat is told with its count: `series.count` (events.k8s.io's way of counting repeats,
//! also served by core/v1), else `count`.
//!
//! The API server keeps one object per Event and serves it under both APIs (renaming fields:
//! `involvedObject` is `regarding`, `message` is `note`). Each API has its own watch and
//! known state; what both see is told once, by whichever sees it first: the watches share a
//! [`Told`] record of the highest count told per Event.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::EventsConfig;
use super::known::{AfterCheck, Before, Kind};
use super::objects::{EventV1View, EventView};
use super::report::{Report, from_millis, millis};

/// How long an Event is remembered after it was last seen; older ones are not news.
pub const RETENTION: Duration = Duration::from_secs(2 * 3600);

/// One API serving Events.
pub(crate) trait EventApi:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The API group (`""` for core).
    const GROUP: &'static str;
    /// The store table of this API's summaries.
    const TABLE: &'static str;
    /// The name of this API's list marker.
    const SYNC_NAME: &'static str;

    fn view(&self) -> &EventView;
}

impl EventApi for EventView {
    const GROUP: &'static str = "";
    const TABLE: &'static str = "k8s_events";
    const SYNC_NAME: &'static str = "events";

    fn view(&self) -> &EventView {
        self
    }
}

impl EventApi for EventV1View {
    const GROUP: &'static str = "events.k8s.io";
    const TABLE: &'static str = "k8s_events_v1";
    const SYNC_NAME: &'static str = "events.events.k8s.io";

    fn view(&self) -> &EventView {
        &self.0
    }
}

/// The Events watch of one API (`O`: [`EventView`] or [`EventV1View`]).
pub(crate) struct Events<O> {
    pub filter: EventsConfig,
    /// Shared by the watches of both APIs.
    pub told: Arc<Told>,
    api: PhantomData<fn() -> O>,
}

impl<O> Events<O> {
    pub fn new(filter: EventsConfig, told: Arc<Told>) -> Self {
        Self {
            filter,
            told,
            api: PhantomData,
        }
    }
}

/// The highest count told per Event (`namespace/uid` → count, last seen in ms), across the
/// watches of both APIs. In memory: after a restart each watch's known state (in the store)
/// keeps it from telling again what it knew; this only keeps two watches from telling the
/// same news. Entries older than [`RETENTION`] are swept as it grows.
#[derive(Debug)]
pub(crate) struct Told {
    inner: Mutex<ToldInner>,
}

#[derive(Debug)]
struct ToldInner {
    counts: HashMap<String, (i32, i64)>,
    /// Sweep expired entries when this many are held.
    sweep_at: usize,
}

/// Entries held before the first sweep of [`Told`].
const TOLD_SWEEP_FLOOR: usize = 1024;

impl Default for Told {
    fn default() -> Self {
        Self {
            inner: Mutex::new(ToldInner {
                counts: HashMap::new(),
                sweep_at: TOLD_SWEEP_FLOOR,
            }),
        }
    }
}

impl Told {
    /// Records that `key` is to be told at `count`; false when it was already told at that
    /// count or higher (by the other API's watch).
    fn first(&self, key: &str, count: i32, seen: i64, now: Timestamp) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner
            .counts
            .get(key)
            .is_some_and(|(told, _)| *told >= count)
        {
            return false;
        }
        inner.counts.insert(key.to_owned(), (count, seen));
        if inner.counts.len() >= inner.sweep_at {
            inner.counts.retain(|_, (_, seen)| !expired(*seen, now));
            inner.sweep_at = (inner.counts.len() * 2).max(TOLD_SWEEP_FLOOR);
        }
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().counts.len()
    }
}

/// What is kept of an Event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventSummary {
    /// How many times it happened (`series.count`, else `count`, else 1).
    count: i32,
    /// When it last happened (ms).
    seen: i64,
}

impl<O> Events<O> {
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
}

/// Whether an Event last seen at `seen` (ms) is history at `now`.
fn expired(seen: i64, now: Timestamp) -> bool {
    from_millis(seen)
        .is_some_and(|seen| now.duration_since(seen).as_secs() >= RETENTION.as_secs() as i64)
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

impl<O: EventApi> Kind for Events<O> {
    type Object = O;
    type Summary = EventSummary;
    const RESOURCE: &'static str = "events";
    const GROUP: &'static str = O::GROUP;
    const TABLE: &'static str = O::TABLE;
    const SYNC_NAME: &'static str = O::SYNC_NAME;

    fn key(&self, event: &O) -> Option<String> {
        let meta = &event.view().metadata;
        let id = meta.uid.as_deref().or(meta.name.as_deref())?;
        Some(format!("{}/{id}", meta.namespace.as_deref().unwrap_or("")))
    }

    fn summarize(&self, event: &O, now: Timestamp) -> Option<EventSummary> {
        let event = event.view();
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
        key: &str,
        before: Before<'_, EventSummary>,
        after: &mut EventSummary,
        event: &O,
        report: &mut Report<'_>,
    ) {
        let news = match before {
            Before::Baseline => false,
            Before::Unknown => !expired(after.seen, report.now),
            Before::Known(old) => {
                // A count never goes back: keep the highest seen.
                let news = after.count > old.count;
                after.count = after.count.max(old.count);
                news
            }
        };
        if !news || !self.told.first(key, after.count, after.seen, report.now) {
            return;
        }
        let event = event.view();
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
        if expired(summary.seen, report.now) {
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

    fn events(filter: EventsConfig) -> Events<EventView> {
        Events::new(filter, Arc::default())
    }

    const NOW: &str = "2026-01-05T12:00:00Z";

    fn tell<O: EventApi>(
        events: &Events<O>,
        before: Before<'_, EventSummary>,
        view: &O,
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
        assert_eq!(&told.labels["kind"], "Pod");
        assert_eq!(&told.labels["type"], "Warning");
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

    /// The same Event as events.k8s.io/v1 serves it: repeats counted in `series`.
    fn event_v1(count: i32, last: &str) -> EventV1View {
        serde_json::from_value(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "x.1", "namespace": "media", "uid": "u-1"},
            "regarding": {"kind": "Pod", "name": "jellyfin-0", "namespace": "media"},
            "type": "Warning", "reason": "BackOff", "note": "Back-off restarting failed container",
            "eventTime": "2026-01-05T11:00:00.000000Z", "reportingController": "kubelet",
            "reportingInstance": "pi-2", "action": "Restarting",
            "series": {"count": count, "lastObservedTime": last},
        }))
        .unwrap()
    }

    #[test]
    fn events_k8s_io_reads_into_the_same_fields_and_counts_repeats_from_its_series() {
        let e: Events<EventV1View> = Events::new(EventsConfig::default(), Arc::default());
        let view = event_v1(5, "2026-01-05T11:59:00.123456Z");
        let mut report = Report::new("t", NOW.parse().unwrap());
        let mut after = e.summarize(&view, report.now).unwrap();
        assert_eq!(after.count, 5);
        e.compare("media/u-1", Before::Unknown, &mut after, &view, &mut report);
        let told = &report.events[0];
        assert_eq!(
            told.subject.as_str(),
            "k8s/event/media/Pod/jellyfin-0/BackOff"
        );
        assert_eq!(told.data["message"], "Back-off restarting failed container");
        assert_eq!(told.data["count"], 5);
        assert_eq!(told.data["component"], "kubelet");
        assert_eq!(
            told.time,
            "2026-01-05T11:59:00.123Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn what_both_apis_see_is_told_once_by_whichever_sees_it_first() {
        let told = Arc::new(Told::default());
        let core: Events<EventView> = Events::new(EventsConfig::default(), Arc::clone(&told));
        let v1: Events<EventV1View> = Events::new(EventsConfig::default(), Arc::clone(&told));
        let last = "2026-01-05T11:59:00Z";
        let mut core_event = event("Warning", "BackOff", "Pod", 1, last);
        core_event.series = None;
        // New: core/v1 tells it, events.k8s.io/v1 then sees it as new too and stays quiet.
        let (core_known, n) = tell(&core, Before::Unknown, &core_event);
        assert_eq!(n, 1);
        let (v1_known, n) = tell(&v1, Before::Unknown, &event_v1(1, last));
        assert_eq!(n, 0);
        // It happens again: events.k8s.io/v1 sees the repeat first this time.
        let (_, n) = tell(&v1, Before::Known(&v1_known.unwrap()), &event_v1(2, last));
        assert_eq!(n, 1);
        let mut repeat = event("Warning", "BackOff", "Pod", 1, last);
        repeat.series = event_v1(2, last).0.series;
        let (_, n) = tell(&core, Before::Known(&core_known.unwrap()), &repeat);
        assert_eq!(n, 0);
        assert_eq!(told.len(), 1);
    }

    #[test]
    fn told_forgets_what_is_history_as_it_grows() {
        let told = Told::default();
        let now: Timestamp = NOW.parse().unwrap();
        let old = millis("2026-01-05T09:00:00Z".parse().unwrap());
        let recent = millis("2026-01-05T11:59:00Z".parse().unwrap());
        for i in 0..TOLD_SWEEP_FLOOR - 1 {
            assert!(told.first(&format!("media/old-{i}"), 1, old, now));
        }
        assert!(told.first("media/recent", 1, recent, now));
        assert_eq!(told.len(), 1, "the sweep kept only what is not history");
        assert!(!told.first("media/recent", 1, recent, now));
    }
}
