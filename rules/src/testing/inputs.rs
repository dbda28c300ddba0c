//! A test case's input events: the series written in `events:` (expanded up front: the YAML
//! bounds them) and the recording named by `events_file:` (read as a stream while the case
//! runs), merged by time.

use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use atalaya_bus::{Event, Labels, Subject};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::{EventSeriesSpec, TestCaseSpec, offset};
use crate::notation::{Step, expand};
use crate::recorded::{
    RecordedError, RecordedEvents, looks_like_nats, nats_subject_hint, open_reader,
};

/// The placeholder a `data_template` puts each value of `values` in.
pub const VALUE_PLACEHOLDER: &str = "$value";

/// How many bad lines of an `events_file` are told one by one; the rest are counted.
const BAD_LINES_TOLD: usize = 10;

/// A case's events, checked: the written series expanded and sorted, and where the recording
/// is.
pub(super) struct CaseInputs {
    /// (time, index of the series, event), in time order.
    series: Vec<(Timestamp, usize, Event)>,
    events_file: Option<PathBuf>,
}

impl CaseInputs {
    /// Expands the written series and checks that the recording can be opened; every
    /// problem as one message.
    pub(super) fn prepare(
        case: &TestCaseSpec,
        start: Timestamp,
        base: &Path,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut series = Vec::new();
        for (n, spec) in case.events.iter().enumerate() {
            if let Err(e) = expand_series(spec, start, n, &mut series) {
                errors.push(format!("events[{n}]: {e}"));
            }
        }
        series.sort_by_key(|(time, n, _)| (*time, *n));
        let events_file = case.events_file.as_ref().map(|name| base.join(name));
        if let Some(path) = &events_file
            && let Err(e) = File::open(path)
        {
            errors.push(format!("events_file: cannot read {}: {e}", path.display()));
        }
        if errors.is_empty() {
            Ok(Self {
                series,
                events_file,
            })
        } else {
            Err(errors)
        }
    }

    /// The events in time order, the recording read as they are taken.
    pub(super) fn into_stream(self) -> Result<EventStream, String> {
        let recorded = match &self.events_file {
            None => None,
            Some(path) => {
                let reader = File::open(path)
                    .and_then(open_reader)
                    .map_err(|e| format!("events_file: cannot read {}: {e}", path.display()))?;
                Some((path.display().to_string(), RecordedEvents::new(reader)))
            }
        };
        Ok(EventStream {
            series: self.series.into_iter().map(|(t, _, e)| (t, e)).collect(),
            recorded,
            next_recorded: None,
            last: None,
            bad_lines: Vec::new(),
            bad_line_count: 0,
        })
    }
}

/// The written series and the recording, merged by time. An event of the recording older
/// than the one before it is taken at that one's time, as `atalaya replay` does.
pub(super) struct EventStream {
    series: std::collections::VecDeque<(Timestamp, Event)>,
    recorded: Option<(String, RecordedEvents<Box<dyn BufRead>>)>,
    /// The recording's next event, read ahead to compare times.
    next_recorded: Option<(Timestamp, Event)>,
    /// The time of the last recorded event taken.
    last: Option<Timestamp>,
    /// The recording's lines that are not events (`file:line: message`), the first few.
    bad_lines: Vec<String>,
    bad_line_count: usize,
}

impl EventStream {
    /// The next event at or before `until`, with the time to take it at.
    pub(super) fn next_until(&mut self, until: Timestamp) -> Option<(Timestamp, Event)> {
        self.fill();
        let series = self.series.front().map(|(t, _)| *t);
        let recorded = self.next_recorded.as_ref().map(|(t, _)| *t);
        let take_series = match (series, recorded) {
            (Some(s), Some(r)) => s <= r,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let time = if take_series { series } else { recorded }?;
        if time > until {
            return None;
        }
        if take_series {
            self.series.pop_front()
        } else {
            self.next_recorded.take()
        }
    }

    /// Reads the recording's next event ahead, noting bad lines on the way.
    fn fill(&mut self) {
        if self.next_recorded.is_some() {
            return;
        }
        let Some((name, events)) = &mut self.recorded else {
            return;
        };
        for read in events.by_ref() {
            match read {
                Ok(recorded) => {
                    let time = self
                        .last
                        .map_or(recorded.event.time, |last| last.max(recorded.event.time));
                    self.last = Some(time);
                    self.next_recorded = Some((time, recorded.event));
                    return;
                }
                Err(error) => {
                    self.bad_line_count += 1;
                    if self.bad_lines.len() < BAD_LINES_TOLD {
                        let message = match &error {
                            RecordedError::Line { message, .. } => message.clone(),
                            RecordedError::Io { source, .. } => {
                                format!("cannot read on: {source}")
                            }
                        };
                        self.bad_lines
                            .push(format!("{name}:{}: {message}", error.line()));
                    }
                }
            }
        }
    }

    /// The recording's bad lines met so far, as failures.
    pub(super) fn bad_lines(&self) -> Vec<String> {
        let mut lines = self.bad_lines.clone();
        if self.bad_line_count > self.bad_lines.len() {
            lines.push(format!(
                "… and {} more bad lines in the events_file",
                self.bad_line_count - self.bad_lines.len()
            ));
        }
        lines
    }
}

fn expand_series(
    spec: &EventSeriesSpec,
    start: Timestamp,
    n: usize,
    events: &mut Vec<(Timestamp, usize, Event)>,
) -> Result<(), String> {
    if looks_like_nats(&spec.subject) {
        return Err(format!("subject: {}", nats_subject_hint(&spec.subject)));
    }
    let subject = Subject::parse(&spec.subject).map_err(|e| format!("subject: {e}"))?;
    let first = start + offset(spec.at.as_deref(), SignedDuration::ZERO, "at")?;
    let every = offset(spec.every.as_deref(), SignedDuration::from_mins(1), "every")?;
    let shape = Shape::of(spec)?;
    let data: Vec<Option<Value>> = match (&spec.values, &spec.data) {
        (Some(_), Some(_)) => return Err("give `values` or `data`, not both".to_owned()),
        (Some(values), None) => expand(values)
            .map_err(|e| format!("values: {e}"))?
            .into_iter()
            .map(|step| match step {
                Step::Value(v) => Some(shape.payload(number(v))),
                Step::Skip => None,
            })
            .collect(),
        (None, Some(data)) => vec![Some(data.clone())],
        (None, None) => vec![Some(Value::Null)],
    };
    let labels: Labels = spec.labels.clone().into_iter().collect();
    for (i, data) in data.into_iter().enumerate() {
        let Some(data) = data else { continue };
        let step = i32::try_from(i).map_err(|_| "too many steps".to_owned())?;
        let time = first + every * step;
        let mut event = Event::new(
            spec.source.as_deref().unwrap_or("/atalaya/test"),
            subject.clone(),
            data,
            time,
        );
        event.labels = labels.clone();
        if let Some(t) = &spec.event_type {
            event.event_type = t.as_str().into();
        }
        events.push((time, n, event));
    }
    Ok(())
}

/// A value of the notation as JSON: whole numbers as integers, as a sensor would send them.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        serde_json::json!(v as i64)
    } else {
        serde_json::json!(v)
    }
}

/// How each value of `values` becomes an event's data.
enum Shape {
    /// The bare number.
    Bare,
    /// A copy of the template with the value in it: at `field` (a dotted path) and in place
    /// of every `$value` string.
    Template {
        template: Value,
        field: Option<Vec<String>>,
    },
}

impl Shape {
    fn of(spec: &EventSeriesSpec) -> Result<Self, String> {
        if spec.values.is_none() && (spec.values_field.is_some() || spec.data_template.is_some()) {
            return Err(
                "`values_field` and `data_template` shape the values of `values`, which is missing"
                    .to_owned(),
            );
        }
        let field = match &spec.values_field {
            None => None,
            Some(path) => {
                let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
                if parts.iter().any(String::is_empty) {
                    return Err(format!(
                        "values_field: `{path}` is not a field name or a dotted path such as `sensor.temperature`"
                    ));
                }
                Some(parts)
            }
        };
        match (&spec.data_template, field) {
            (None, None) => Ok(Self::Bare),
            (Some(template), field) => {
                if field.is_some() && !template.is_object() {
                    return Err(
                        "data_template: with `values_field`, the template must be a mapping"
                            .to_owned(),
                    );
                }
                if field.is_none() && !mentions_placeholder(template) {
                    return Err(format!(
                        "data_template: put `{VALUE_PLACEHOLDER}` where each value goes (`{{temperature: \"{VALUE_PLACEHOLDER}\"}}`), or name the field with `values_field`"
                    ));
                }
                Ok(Self::Template {
                    template: template.clone(),
                    field,
                })
            }
            (None, field) => Ok(Self::Template {
                template: Value::Object(Map::new()),
                field,
            }),
        }
    }

    fn payload(&self, value: Value) -> Value {
        match self {
            Self::Bare => value,
            Self::Template { template, field } => {
                let mut data = substitute(template, &value);
                if let Some(path) = field {
                    set_path(&mut data, path, value);
                }
                data
            }
        }
    }
}

fn mentions_placeholder(template: &Value) -> bool {
    match template {
        Value::String(s) => s == VALUE_PLACEHOLDER,
        Value::Array(items) => items.iter().any(mentions_placeholder),
        Value::Object(map) => map.values().any(mentions_placeholder),
        _ => false,
    }
}

/// `template` with every `$value` string replaced by `value`.
fn substitute(template: &Value, value: &Value) -> Value {
    match template {
        Value::String(s) if s == VALUE_PLACEHOLDER => value.clone(),
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, value)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sets `data.<path>` to `value`, making objects on the way (replacing what is not one).
fn set_path(data: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = data;
    for part in parents {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else { return };
        at = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    if let Value::Object(map) = at {
        map.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(yaml: &str) -> EventSeriesSpec {
        let docs = crate::yaml::parse_documents(yaml).unwrap();
        crate::yaml::from_node(&docs[0]).unwrap()
    }

    fn payloads(yaml: &str) -> Result<Vec<Value>, String> {
        let start: Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
        let mut events = Vec::new();
        expand_series(&spec(yaml), start, 0, &mut events)?;
        Ok(events.into_iter().map(|(_, _, e)| e.data).collect())
    }

    #[test]
    fn values_are_bare_numbers_unless_shaped() {
        assert_eq!(
            payloads("subject: a/b\nvalues: 1 2.5"),
            Ok(vec![json!(1), json!(2.5)])
        );
        assert_eq!(
            payloads("subject: a/b\nvalues: -18 _ -9.5\nvalues_field: temperature"),
            Ok(vec![
                json!({"temperature": -18}),
                json!({"temperature": -9.5})
            ])
        );
        assert_eq!(
            payloads("subject: a/b\nvalues: '1'\nvalues_field: sensor.temperature"),
            Ok(vec![json!({"sensor": {"temperature": 1}})])
        );
        assert_eq!(
            payloads(
                "subject: a/b\nvalues: 3\nvalues_field: temperature\ndata_template: {battery: 90, temperature: 0}"
            ),
            Ok(vec![json!({"battery": 90, "temperature": 3})])
        );
        assert_eq!(
            payloads(
                "subject: a/b\nvalues: 3 4\ndata_template: {readings: [{t: $value}], unit: C}"
            ),
            Ok(vec![
                json!({"readings": [{"t": 3}], "unit": "C"}),
                json!({"readings": [{"t": 4}], "unit": "C"})
            ])
        );
    }

    #[test]
    fn shaping_mistakes_say_what_to_write() {
        let error = payloads("subject: a/b\ndata: {t: 1}\nvalues_field: t").unwrap_err();
        assert!(error.contains("which is missing"), "{error}");
        let error = payloads("subject: a/b\nvalues: 1\ndata_template: {t: 1}").unwrap_err();
        assert!(
            error.contains("put `$value` where each value goes"),
            "{error}"
        );
        let error = payloads("subject: a/b\nvalues: 1\nvalues_field: a..b").unwrap_err();
        assert!(error.contains("not a field name"), "{error}");
        let error =
            payloads("subject: a/b\nvalues: 1\nvalues_field: t\ndata_template: [1]").unwrap_err();
        assert!(error.contains("must be a mapping"), "{error}");
    }

    #[test]
    fn nats_style_subjects_are_refused_with_the_way_to_write_them() {
        let error = payloads("subject: cluster.node2.heartbeat\nvalues: 1").unwrap_err();
        assert!(error.contains("write `cluster/node2/heartbeat`"), "{error}");
        // Dots inside a `/` path are part of a token.
        assert!(payloads("subject: home/192.168.1.5/status\nvalues: 1").is_ok());
    }
}
