//! Compiling `time_intervals:` (and the older `mute_time_intervals:`, same shape) into
//! [`NamedTimeInterval`]s; names are unique across both keys.

use atalaya_bus::yaml::Decoder;
use std::collections::HashMap;

use super::Compiler;
use super::spec::{NamedTimeIntervalSpec, Text, TimeIntervalSpec};
use crate::routing::time_interval::{
    NamedTimeInterval, TimeInterval, parse_location, parse_time_of_day,
};
use crate::yaml::{Node, Position};

/// How a range field adds one range to an entry.
type AddRange = fn(&mut TimeInterval, &str) -> Result<(), String>;

impl Compiler<'_> {
    /// The named intervals under `key`, added to `out`; `first_seen` holds where each name
    /// was defined, for duplicates.
    pub(super) fn named_time_intervals(
        &mut self,
        key: &str,
        node: &Node,
        out: &mut HashMap<String, NamedTimeInterval>,
        first_seen: &mut HashMap<String, Position>,
    ) {
        for item in self.items(node, key) {
            let Some(spec) = self.decode::<NamedTimeIntervalSpec>(item) else {
                continue;
            };
            let name_position = item.get("name").map_or(item.position, |n| n.position);
            let name = match spec.name.filter(|n| !n.is_empty()) {
                Some(name) => name,
                None => {
                    if Decoder::missing(item, "name") {
                        self.error(
                            name_position,
                            format!("{key}: a time interval needs a `name`"),
                        );
                    }
                    continue;
                }
            };
            let mut entries = Vec::new();
            if let Some(list) = item.get("time_intervals") {
                for entry in self.items(list, "time_intervals") {
                    entries.extend(self.time_interval(&name, entry));
                }
            }
            if let Some(first) = first_seen.get(&name) {
                self.error(
                    name_position,
                    format!("duplicate time interval name `{name}`; first defined at {first}"),
                );
                continue;
            }
            first_seen.insert(name.clone(), name_position);
            out.insert(name.clone(), NamedTimeInterval { name, entries });
        }
    }

    /// One entry of the interval `name`.
    fn time_interval(&mut self, name: &str, node: &Node) -> Option<TimeInterval> {
        let spec = self.decode::<TimeIntervalSpec>(node)?;
        let before = self.errors.len();
        let label = format!("time interval `{name}`");
        let location = match spec.location.as_deref().map(parse_location) {
            None => Some(jiff::tz::TimeZone::UTC),
            Some(Ok(zone)) => Some(zone),
            Some(Err(e)) => {
                let position = node.get("location").map_or(node.position, |n| n.position);
                self.error(position, format!("{label}: {e}"));
                None
            }
        };
        let mut interval = TimeInterval::new(location.unwrap_or(jiff::tz::TimeZone::UTC));

        let times = node
            .get("times")
            .map(|n| self.items(n, "times"))
            .unwrap_or_default();
        for (range, item) in spec.times.iter().flatten().zip(times) {
            let time = |key: &str, text: &Option<String>| {
                let position = item.get(key).map_or(item.position, |n| n.position);
                match text.as_deref().map(parse_time_of_day) {
                    None => Err((
                        item.position,
                        "both `start_time` and `end_time` are needed".to_owned(),
                    )),
                    Some(Ok(minutes)) => Ok(minutes),
                    Some(Err(e)) => Err((position, format!("{key}: {e}"))),
                }
            };
            let start = time("start_time", &range.start_time);
            let end = time("end_time", &range.end_time);
            match (start, end) {
                (Ok(start), Ok(end)) => {
                    if let Err(e) = interval.add_times(start, end) {
                        self.error(item.position, format!("{label}: {e}"));
                    }
                }
                (start, end) => {
                    // Both missing is one mistake, said once.
                    let mut seen = Vec::new();
                    for (position, message) in [start.err(), end.err()].into_iter().flatten() {
                        if !seen.contains(&message) {
                            self.error(position, format!("{label}: {message}"));
                            seen.push(message);
                        }
                    }
                }
            }
        }
        let fields: [(&str, &Option<Vec<Text>>, AddRange); 4] = [
            ("weekdays", &spec.weekdays, TimeInterval::add_weekdays),
            (
                "days_of_month",
                &spec.days_of_month,
                TimeInterval::add_days_of_month,
            ),
            ("months", &spec.months, TimeInterval::add_months),
            ("years", &spec.years, TimeInterval::add_years),
        ];
        for (key, ranges, add) in fields {
            let items = node
                .get(key)
                .map(|n| self.items(n, key))
                .unwrap_or_default();
            for (range, item) in ranges.iter().flatten().zip(items) {
                if let Err(e) = add(&mut interval, range.as_str()) {
                    self.error(item.position, format!("{label}: {key}: {e}"));
                }
            }
        }
        (self.errors.len() == before).then_some(interval)
    }
}
