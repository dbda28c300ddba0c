//! [`Report`]: what one change of one object tells, as events for the bus — subject tokens
//! made safe, labels, JSON data.

use atalaya_bus::event::{Event, Labels, Name};
use atalaya_bus::subject::Subject;
use jiff::Timestamp;
use serde_json::Value;

use super::EVENT_TYPE;

/// Longest subject token taken from an object (names are at most 253 bytes; reasons are free
/// text), so a subject stays under the subject length limit.
const MAX_TOKEN_BYTES: usize = 160;

/// The events one change produces, in order.
pub(crate) struct Report<'a> {
    source: &'a str,
    pub now: Timestamp,
    pub events: Vec<Event>,
}

impl<'a> Report<'a> {
    pub fn new(source: &'a str, now: Timestamp) -> Self {
        Self {
            source,
            now,
            events: Vec::new(),
        }
    }

    /// Adds an event on `k8s/<tokens…>` with `labels` and `data`, which happened at `time`
    /// (now when unknown).
    pub fn tell(
        &mut self,
        tokens: &[&str],
        labels: &[(&str, &str)],
        data: Value,
        time: Option<Timestamp>,
    ) {
        let mut path = String::from("k8s");
        for token in tokens {
            path.push('/');
            path.push_str(&safe_token(token));
        }
        // Safe tokens of bounded length always make a valid subject.
        let Ok(subject) = Subject::parse(&path) else {
            tracing::debug!(subject = %path, "Kubernetes change with an impossible subject skipped.");
            return;
        };
        let mut event = Event::new(self.source, subject, data, time.unwrap_or(self.now));
        event.event_type = Name::from_static(EVENT_TYPE);
        event.labels = labels
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| ((*name).to_owned(), truncate(value, 1024).to_owned()))
            .collect::<Labels>();
        self.events.push(event);
    }
}

/// A subject token from a name or reason: `/` and control characters become `_`, a leading
/// wildcard character is replaced, nothing is empty, and length is bounded.
pub(crate) fn safe_token(text: &str) -> String {
    let text = truncate(text, MAX_TOKEN_BYTES);
    let mut token: String = text
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if token.is_empty() || matches!(token.as_str(), "#" | ">" | "*") {
        return "_".to_owned();
    }
    if token.starts_with('+') {
        token.replace_range(..1, "_");
    }
    token
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Milliseconds since 1970, the form timestamps are kept in.
pub(crate) fn millis(time: Timestamp) -> i64 {
    time.as_millisecond()
}

/// The instant of `ms` milliseconds since 1970.
pub(crate) fn from_millis(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// Whole seconds from `since` to `until`, never negative.
pub(crate) fn seconds_between(since: Timestamp, until: Timestamp) -> i64 {
    until.duration_since(since).as_secs().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_always_valid_subject_tokens() {
        assert_eq!(safe_token("pi-1"), "pi-1");
        assert_eq!(safe_token("a/b"), "a_b");
        assert_eq!(safe_token(""), "_");
        assert_eq!(safe_token("#"), "_");
        assert_eq!(safe_token("+x"), "_x");
        assert_eq!(safe_token("a\nb"), "a_b");
        assert_eq!(safe_token(&"ñ".repeat(200)).len(), MAX_TOKEN_BYTES);
    }

    #[test]
    fn events_carry_subject_labels_and_type() {
        let now: Timestamp = "2026-01-05T12:00:00Z".parse().unwrap();
        let mut report = Report::new("https://k8s:6443", now);
        report.tell(
            &["node", "pi/1", "ready"],
            &[("node", "pi/1"), ("reason", "")],
            serde_json::json!({"ready": false}),
            None,
        );
        let event = &report.events[0];
        assert_eq!(event.subject.as_str(), "k8s/node/pi_1/ready");
        assert_eq!(&event.labels["node"], "pi/1");
        assert!(
            !event.labels.contains_key("reason"),
            "empty labels are left out"
        );
        assert_eq!(event.event_type, EVENT_TYPE);
        assert_eq!(event.time, now);
    }
}
