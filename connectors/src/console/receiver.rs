//! The line format and the loop that writes it.

use std::borrow::Cow;
use std::io;

use atalaya_bus::Event;
use atalaya_bus::bus::Consumer;
use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use super::ConsoleReceiverConfig;

/// Longest rendering of an event's data, in bytes, before it is cut and `…` appended.
pub const MAX_DATA_BYTES: usize = 200;

/// Renders `event` as one readable line, without the trailing newline:
///
/// ```text
/// 2026-11-22T10:00:00Z home/kitchen/temperature 21.5 room=kitchen floor=1 (/atalaya/http atalaya.event)
/// ```
///
/// That is: the time (RFC 3339, UTC, at most millisecond precision), the subject, the data,
/// the labels in name order, then source and type in parentheses. Numbers, booleans, null,
/// objects and arrays are compact JSON; a string, like a label value, is printed as is when it
/// is a single plain word and JSON-quoted otherwise. The data is cut at [`MAX_DATA_BYTES`].
///
/// Whatever the event holds, the line holds no newline, control character or bidirectional
/// override: those are written as JSON escapes, so one event is always one honest line.
pub fn render_event(event: &Event) -> String {
    let mut line = String::with_capacity(128);
    line.push_str(&render_time(event.time));
    line.push(' ');
    line.push_str(&text(event.subject.as_str()));
    line.push(' ');
    line.push_str(&render_data(&event.data));
    for (name, value) in &event.labels {
        line.push(' ');
        line.push_str(&text(name));
        line.push('=');
        line.push_str(&text(value));
    }
    line.push_str(" (");
    line.push_str(&text(&event.source));
    line.push(' ');
    line.push_str(&text(&event.event_type));
    line.push(')');
    line
}

/// RFC 3339 in UTC, cut (not rounded) to milliseconds; no fraction when it is zero.
pub(super) fn render_time(time: Timestamp) -> String {
    let to_millis = TimestampRound::new()
        .smallest(Unit::Millisecond)
        .mode(RoundMode::Floor);
    // Flooring only fails at the very edge of jiff's range; the unrounded time is then fine.
    time.round(to_millis).unwrap_or(time).to_string()
}

/// The data as described on [`render_event`], cut at [`MAX_DATA_BYTES`].
fn render_data(data: &Value) -> String {
    let mut rendered = match data {
        Value::String(string) => text(string).into_owned(),
        // `Value`'s Display is compact JSON. serde_json escapes C0 controls but leaves DEL,
        // C1 controls and line separators raw inside strings.
        other => escape_invisible(&other.to_string()).into_owned(),
    };
    if rendered.len() > MAX_DATA_BYTES {
        let mut end = MAX_DATA_BYTES;
        while !rendered.is_char_boundary(end) {
            end -= 1;
        }
        rendered.truncate(end);
        rendered.push('…');
    }
    rendered
}

/// `string` as is when it is one plain word, JSON-quoted otherwise.
pub(super) fn text(string: &str) -> Cow<'_, str> {
    let plain = !string.is_empty()
        && !string
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '=') || is_invisible(c));
    if plain {
        Cow::Borrowed(string)
    } else {
        Cow::Owned(quote(string))
    }
}

/// `string` as a JSON string literal that shows no invisible character raw.
fn quote(string: &str) -> String {
    let mut quoted = String::with_capacity(string.len() + 2);
    quoted.push('"');
    for c in string.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if is_invisible(c) => push_unicode_escape(&mut quoted, c),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Replaces invisible characters in already-serialized JSON with `\uXXXX` escapes. Outside
/// string literals JSON is plain ASCII, so they can only sit inside one, where the escape
/// means the same character.
fn escape_invisible(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_invisible) {
        return Cow::Borrowed(json);
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_invisible(c) {
            push_unicode_escape(&mut escaped, c);
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Characters that would break the line or make it lie about its contents: control
/// characters (C0, DEL, C1), line and paragraph separators, and bidirectional marks and
/// overrides. All are in the Basic Multilingual Plane, so one `\uXXXX` escape holds each.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn push_unicode_escape(out: &mut String, c: char) {
    out.push_str(&format!("\\u{:04x}", u32::from(c)));
}

/// Prints every event of its bus consumer on a writer (standard output in the service).
#[derive(Debug, Clone, Default)]
pub struct ConsoleReceiver {
    /// What to print. The binary does not start a receiver whose `enabled` is false; if it
    /// does anyway, the receiver prints nothing, as with `events: false`.
    config: ConsoleReceiverConfig,
}

impl ConsoleReceiver {
    pub fn new(config: ConsoleReceiverConfig) -> Self {
        Self { config }
    }

    /// Writes one line per event from `consumer` to `out`; returns how many lines it wrote
    /// once the consumer is drained (every publisher gone).
    ///
    /// Lines are buffered while more input is already waiting and flushed as soon as nothing
    /// is, so a burst costs one write but no line waits for the next one. With event printing
    /// turned off the consumer is still drained, so this consumer never holds the bus back.
    ///
    /// A write error (stdout closed: `EPIPE`) ends the loop and is returned. That drops the
    /// consumer, and the bus refuses publishes to a bus with a consumer gone: the caller should
    /// treat the error as fatal to the service, or restart the receiver on a new consumer.
    pub async fn run(
        self,
        mut consumer: Consumer,
        out: impl AsyncWrite + Unpin,
    ) -> io::Result<u64> {
        let print_events = self.config.enabled && self.config.events;
        let mut out = BufWriter::new(out);
        let mut lines = 0_u64;
        // Events printed into the buffer but not yet flushed: held, since dropping an event
        // is what lets its source acknowledge it (a kill before the flush must not lose a
        // line whose message the broker already forgot).
        let mut unflushed = Vec::new();
        // Deliberately no cancellation branch: shutdown stops the sources, the last publisher
        // is dropped, and `recv` returns `None` once everything already published has been
        // printed. Stopping here on a cancellation token would lose that tail.
        while let Some(event) = consumer.recv().await {
            if print_events {
                let mut line = render_event(&event);
                line.push('\n');
                out.write_all(line.as_bytes()).await?;
                lines += 1;
                unflushed.push(event);
            }
            if unflushed.len() >= MAX_UNFLUSHED || consumer.is_empty() {
                out.flush().await?;
                unflushed.clear();
            }
        }
        out.flush().await?;
        tracing::debug!(lines, "Console receiver drained its inputs.");
        Ok(lines)
    }
}

/// Most events held between flushes: under a steady stream the queues never empty, and the
/// events' sources wait for them to be dropped before acknowledging.
const MAX_UNFLUSHED: usize = 256;

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use atalaya_bus::Subject;
    use atalaya_bus::bus::BusBuilder;
    use proptest::prelude::*;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    fn event(subject: &str, data: Value) -> Event {
        Event::new(
            "/atalaya/http",
            Subject::parse(subject).unwrap(),
            data,
            "2026-11-22T10:00:00Z".parse().unwrap(),
        )
    }

    fn data_of(data: Value) -> String {
        render_data(&data)
    }

    #[test]
    fn renders_the_example_line() {
        let mut e = event("home/kitchen/temperature", json!(21.5));
        e.labels.insert("room".into(), "kitchen".into());
        e.labels.insert("floor".into(), "1".into());
        assert_eq!(
            render_event(&e),
            "2026-11-22T10:00:00Z home/kitchen/temperature 21.5 floor=1 room=kitchen \
             (/atalaya/http atalaya.event)"
        );
    }

    #[test]
    fn time_is_utc_cut_to_milliseconds() {
        let at = |s: &str| render_time(s.parse().unwrap());
        assert_eq!(at("2026-11-22T11:00:00+01:00"), "2026-11-22T10:00:00Z");
        assert_eq!(
            at("2026-11-22T10:00:00.123456789Z"),
            "2026-11-22T10:00:00.123Z"
        );
        assert_eq!(
            at("2026-11-22T10:00:00.999999Z"),
            "2026-11-22T10:00:00.999Z"
        );
        assert_eq!(at("2026-11-22T10:00:00.000999Z"), "2026-11-22T10:00:00Z");
        assert_eq!(at("2026-11-22T10:00:00.5Z"), "2026-11-22T10:00:00.5Z");
        assert_eq!(at("1969-12-31T23:59:59.9999Z"), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn scalars_are_json() {
        assert_eq!(data_of(json!(21.5)), "21.5");
        assert_eq!(data_of(json!(-3)), "-3");
        assert_eq!(data_of(json!(true)), "true");
        assert_eq!(data_of(Value::Null), "null");
    }

    #[test]
    fn strings_are_plain_only_when_unambiguous() {
        assert_eq!(data_of(json!("ON")), "ON");
        assert_eq!(data_of(json!("café")), "café");
        assert_eq!(data_of(json!("")), r#""""#);
        assert_eq!(data_of(json!("two words")), r#""two words""#);
        assert_eq!(data_of(json!("a=b")), r#""a=b""#);
        assert_eq!(data_of(json!(r#"say "hi""#)), r#""say \"hi\"""#);
        assert_eq!(data_of(json!("it's")), r#""it's""#);
        assert_eq!(data_of(json!("line\nbreak")), r#""line\nbreak""#);
        assert_eq!(data_of(json!("tab\there")), r#""tab\there""#);
        assert_eq!(data_of(json!("bell\u{7}")), r#""bell\u0007""#);
        assert_eq!(data_of(json!("del\u{7f}")), r#""del\u007f""#);
        assert_eq!(data_of(json!("nel\u{85}")), r#""nel\u0085""#);
        assert_eq!(data_of(json!("evil\u{202e}txt")), r#""evil\u202etxt""#);
        assert_eq!(data_of(json!("sep\u{2028}x")), r#""sep\u2028x""#);
    }

    #[test]
    fn objects_and_arrays_are_compact_json_without_raw_controls() {
        assert_eq!(
            data_of(json!({"temperature": 21.5, "battery": 97, "tags": ["a", "b c"]})),
            r#"{"battery":97,"tags":["a","b c"],"temperature":21.5}"#
        );
        assert_eq!(
            data_of(json!({"k\u{85}": "v\u{7f}\n"})),
            r#"{"k\u0085":"v\u007f\n"}"#
        );
        assert_eq!(data_of(json!([])), "[]");
    }

    #[test]
    fn long_data_is_cut_on_a_character_boundary() {
        // 199 ASCII bytes, then `é` (2 bytes) straddles byte 200: it must go whole.
        let text = format!("{}é{}", "x".repeat(199), "y".repeat(50));
        let rendered = data_of(json!(text));
        assert_eq!(rendered, format!("{}…", "x".repeat(199)));

        let exact = "z".repeat(MAX_DATA_BYTES);
        assert_eq!(data_of(json!(exact)), exact);

        let array = json!(vec![12345; 100]);
        let rendered = data_of(array);
        assert!(rendered.starts_with("[12345,12345"));
        assert!(rendered.ends_with('…'));
        assert_eq!(rendered.len(), MAX_DATA_BYTES + '…'.len_utf8());
    }

    #[test]
    fn labels_are_sorted_and_quoted_like_strings() {
        let mut e = event("home/door", json!("open"));
        e.labels.insert("where".into(), "front door".into());
        e.labels.insert("alpha".into(), "".into());
        e.labels.insert("note".into(), "x=1".into());
        e.labels.insert("odd name".into(), "v".into());
        assert_eq!(
            render_event(&e),
            r#"2026-11-22T10:00:00Z home/door open alpha="" note="x=1" "odd name"=v where="front door" (/atalaya/http atalaya.event)"#
        );
    }

    #[test]
    fn subject_source_and_type_are_quoted_when_needed() {
        let mut e = event("home/living room", json!(1));
        e.source = "my source".into();
        e.event_type = "t\u{9b}".into();
        assert_eq!(
            render_event(&e),
            r#"2026-11-22T10:00:00Z "home/living room" 1 ("my source" "t\u009b")"#
        );
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ -~\u{0}-\u{1f}\u{7f}-\u{9f}\u{2028}\u{2029}\u{202a}-\u{202e}é]{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn a_line_never_holds_a_control_character(
            subject in "[a-z \u{80}-\u{9f}]{1,8}(/[a-z\u{85}]{1,8}){0,3}",
            data in any_text(),
            key in any_text(),
            labels in proptest::collection::btree_map(any_text(), any_text(), 0..4),
            source in any_text(),
            event_type in any_text(),
        ) {
            let Ok(subject) = Subject::parse(&subject) else {
                return Ok(());
            };
            let datas = [json!(data.clone()), json!({ key: [data.clone(), 1] })];
            for data in datas {
                let mut e = Event::new(&source, subject.clone(), data, Timestamp::UNIX_EPOCH);
                e.event_type = event_type.as_str().into();
                e.labels = labels.clone().into();
                let line = render_event(&e);
                prop_assert!(
                    !line.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
                    "{line:?}"
                );
            }
        }

        #[test]
        fn a_quoted_string_is_json_for_the_same_text(s in any_text()) {
            let quoted = quote(&s);
            prop_assert_eq!(serde_json::from_str::<String>(&quoted).ok(), Some(s));
        }
    }

    /// A publisher with three events published and dropped, and the bus consumer.
    async fn drained_bus_of_three() -> Consumer {
        let registry = prometheus::Registry::new();
        let mut builder = BusBuilder::new(16, &registry).unwrap();
        let consumer = builder.consumer("console");
        let publisher = builder.build();
        for n in 1..=3 {
            publisher.publish(event("test/n", json!(n))).await.unwrap();
        }
        drop(publisher);
        consumer
    }

    #[tokio::test]
    async fn prints_every_event_in_order_then_ends_when_the_bus_is_drained() {
        let consumer = drained_bus_of_three().await;
        let mut out = Vec::new();
        let lines = ConsoleReceiver::default()
            .run(consumer, &mut out)
            .await
            .unwrap();
        assert_eq!(lines, 3);
        let text = String::from_utf8(out).unwrap();
        let data: Vec<&str> = text
            .lines()
            .map(|line| line.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(data, ["1", "2", "3"]);
        assert!(text.ends_with(")\n"));
    }

    #[tokio::test]
    async fn with_events_off_it_drains_but_prints_nothing() {
        let consumer = drained_bus_of_three().await;
        let mut out = Vec::new();
        let config = ConsoleReceiverConfig {
            events: false,
            ..ConsoleReceiverConfig::default()
        };
        let lines = ConsoleReceiver::new(config)
            .run(consumer, &mut out)
            .await
            .unwrap();
        assert_eq!(lines, 0);
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_line_is_flushed_while_the_bus_is_idle() {
        let registry = prometheus::Registry::new();
        let mut builder = BusBuilder::new(16, &registry).unwrap();
        let consumer = builder.consumer("console");
        let publisher = builder.build();
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let receiver = tokio::spawn(ConsoleReceiver::default().run(consumer, writer));

        publisher
            .publish(event("home/door", json!("open")))
            .await
            .unwrap();
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        // The publisher is still alive: the line must come out without waiting for more.
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("the line was not flushed")
            .unwrap();
        assert!(line.starts_with("2026-11-22T10:00:00Z home/door open "));

        drop(publisher);
        assert_eq!(receiver.await.unwrap().unwrap(), 1);
    }

    /// A writer whose reader has gone, like stdout piped into a closed `head`.
    struct ClosedPipe;

    impl AsyncWrite for ClosedPipe {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_closed_stdout_is_an_error() {
        let consumer = drained_bus_of_three().await;
        let error = ConsoleReceiver::default()
            .run(consumer, ClosedPipe)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
