//! Recorded events: a file of JSON lines, one event a line, as `atalaya replay` and a rule
//! test's `events_file:` read it.
//!
//! A line is a CloudEvents structured event (`{"specversion": "1.0", "subject": …, "time":
//! …, "data": …}`, what the HTTP API takes) or the short form `{"time": …, "subject": …,
//! "data": …, "labels": {…}}`, where `at` may stand for `time`. Every event needs its time
//! (RFC 3339): virtual time follows it. Blank lines are skipped. A file starting with gzip's
//! magic bytes is read through gzip (several members, as `cat a.gz b.gz` makes, are one
//! stream).
//!
//! Reading streams: one line at a time, each at most [`MAX_LINE_BYTES`], so a file of any
//! length costs the memory of one line. A line that is not an event is an error naming its
//! line number; reading goes on with the next line (the caller decides whether to stop).

use std::io::{self, BufRead, BufReader, Cursor, Read};

use atalaya_bus::cloudevents::{EventDefaults, decode_object, kind};
use atalaya_bus::event::DEFAULT_EVENT_TYPE;
use atalaya_bus::{Event, Subject};
use jiff::Timestamp;
use serde_json::Value;

/// The longest line read, in bytes (without its line break). Longer lines are errors,
/// skipped without being held.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The `source` of a recorded event that names none.
pub const RECORDED_SOURCE: &str = "/atalaya/recorded";

/// The buffer between the file (or gzip) and the line reader.
const BUFFER_BYTES: usize = 64 * 1024;

/// One event read, with the line it was on (1-based).
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub line: u64,
    pub event: Event,
}

/// Why reading stopped, or why a line was skipped.
#[derive(Debug, thiserror::Error)]
pub enum RecordedError {
    /// The line is not an event; reading may go on.
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
    /// The file (or its gzip stream) cannot be read past `line`: reading is over.
    #[error("line {line}: cannot read on: {source}")]
    Io {
        line: u64,
        #[source]
        source: io::Error,
    },
}

impl RecordedError {
    /// The line it is about.
    pub fn line(&self) -> u64 {
        match self {
            Self::Line { line, .. } | Self::Io { line, .. } => *line,
        }
    }
}

/// `input`, buffered, and decompressed when it starts with gzip's magic bytes.
pub fn open_reader<'a>(mut input: impl Read + 'a) -> io::Result<Box<dyn BufRead + 'a>> {
    // The first two bytes decide; a pipe may hand them over one at a time.
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = Cursor::new(head[..got].to_vec()).chain(input);
    Ok(if head[..got] == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            BUFFER_BYTES,
            flate2::read::MultiGzDecoder::new(whole),
        ))
    } else {
        Box::new(BufReader::with_capacity(BUFFER_BYTES, whole))
    })
}

/// The events of a recording, read line by line from `reader` (see [`open_reader`]).
pub struct RecordedEvents<R> {
    reader: R,
    buffer: Vec<u8>,
    /// The number of the line last read.
    line: u64,
    /// An I/O error ended reading.
    done: bool,
}

impl<R: BufRead> RecordedEvents<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buffer: Vec::new(),
            line: 0,
            done: false,
        }
    }

    /// The number of the last line read (the count of lines so far).
    pub fn lines_read(&self) -> u64 {
        self.line
    }

    /// Reads the next line into `buffer`, without its line break. `Ok(false)` at the end;
    /// a line over [`MAX_LINE_BYTES`] is consumed to its end and reported.
    fn next_line(&mut self) -> io::Result<Option<Result<(), String>>> {
        self.buffer.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buffer)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
            if self.buffer.last() == Some(&b'\r') {
                self.buffer.pop();
            }
        } else if self.buffer.len() > MAX_LINE_BYTES {
            self.skip_rest_of_line()?;
            return Ok(Some(Err(format!(
                "longer than {MAX_LINE_BYTES} bytes; skipped"
            ))));
        }
        Ok(Some(Ok(())))
    }

    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|b| *b == b'\n') {
                Some(at) => {
                    self.reader.consume(at + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for RecordedEvents<R> {
    type Item = Result<RecordedEvent, RecordedError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let read = match self.next_line() {
                Ok(None) => return None,
                Ok(Some(read)) => read,
                Err(source) => {
                    self.done = true;
                    return Some(Err(RecordedError::Io {
                        line: self.line + 1,
                        source,
                    }));
                }
            };
            let line = self.line;
            if let Err(message) = read {
                return Some(Err(RecordedError::Line { line, message }));
            }
            if self.buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(
                parse_line(&self.buffer)
                    .map(|event| RecordedEvent { line, event })
                    .map_err(|message| RecordedError::Line { line, message }),
            );
        }
        None
    }
}

/// Parses one line: a CloudEvents structured event, or `{"time"|"at", "subject", "data",
/// "labels"}`. The message says what is wrong, without the line number.
pub fn parse_line(line: &[u8]) -> Result<Event, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        // serde_json's message ends with "at line 1 column N"; the line is ours to tell.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        format!("not JSON: {message} (column {})", e.column())
    })?;
    let Value::Object(mut map) = value else {
        return Err(format!(
            "expected a JSON object (one event), found {}",
            kind(&value)
        ));
    };
    match (map.contains_key("time"), map.remove("at")) {
        (true, Some(_)) => return Err("give `time` or `at`, not both".to_owned()),
        (false, Some(at)) => {
            map.insert("time".to_owned(), at);
        }
        (true, None) => {}
        (false, None) => {
            return Err(
                "no `time` (or `at`): a recorded event needs the RFC 3339 time it happened at"
                    .to_owned(),
            );
        }
    }
    let defaults = EventDefaults {
        source: RECORDED_SOURCE,
        event_type: DEFAULT_EVENT_TYPE,
        // Unused: `time` is present.
        now: Timestamp::UNIX_EPOCH,
    };
    decode_object(map, "", defaults).map_err(|e| {
        let message = e.to_string();
        message.strip_prefix('/').map_or(message.clone(), |m| {
            format!("`{}", m.replacen(':', "`:", 1))
        })
    })
}

/// Whether `subject` looks like a NATS subject (`cluster.node2.heartbeat`): dots and no
/// `/`. As a subject it would be one token, which no pattern of several tokens matches.
pub fn looks_like_nats(subject: &str) -> bool {
    subject.contains('.') && !subject.contains('/')
}

/// The error for a subject written NATS-style, saying how to write it.
pub fn nats_subject_hint(subject: &str) -> String {
    let written = Subject::from_nats(subject)
        .map_or_else(|_| subject.replace('.', "/"), |s| s.as_str().to_owned());
    format!(
        "`{subject}` is written like a NATS subject; subjects are `/`-separated paths, as \
         NATS subjects become when they arrive: write `{written}`"
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read(bytes: &[u8]) -> Vec<Result<(u64, String, f64), String>> {
        let reader = open_reader(bytes).expect("in memory");
        RecordedEvents::new(reader)
            .map(|r| {
                r.map(|e| {
                    (
                        e.line,
                        e.event.subject.to_string(),
                        e.event.data.as_f64().unwrap_or(f64::NAN),
                    )
                })
                .map_err(|e| e.to_string())
            })
            .collect()
    }

    const LINES: &str = concat!(
        r#"{"time":"2026-01-05T10:00:00Z","subject":"home/freezer","data":-18}"#,
        "\n",
        "\n",
        r#"{"specversion":"1.0","id":"1","source":"/x","type":"t","time":"2026-01-05T10:01:00Z","subject":"home/freezer","data":-17.5}"#,
        "\r\n",
        r#"{"at":"2026-01-05T10:02:00+01:00","subject":"home/freezer","data":-9,"labels":{"room":"kitchen"}}"#,
    );

    #[test]
    fn reads_both_shapes_and_skips_blank_lines() {
        assert_eq!(
            read(LINES.as_bytes()),
            [
                Ok((1, "home/freezer".to_owned(), -18.0)),
                Ok((3, "home/freezer".to_owned(), -17.5)),
                Ok((4, "home/freezer".to_owned(), -9.0)),
            ]
        );
        let reader = open_reader(LINES.as_bytes()).expect("in memory");
        let last = RecordedEvents::new(reader).last().unwrap().unwrap();
        assert_eq!(last.event.time.to_string(), "2026-01-05T09:02:00Z");
        assert_eq!(&last.event.labels["room"], "kitchen");
        assert_eq!(last.event.source, RECORDED_SOURCE);
    }

    #[test]
    fn garbage_lines_are_errors_with_their_number_and_reading_goes_on() {
        let text = concat!(
            "not json at all\n",
            r#"{"time":"2026-01-05T10:00:00Z","subject":"a/b","data":1}"#,
            "\n",
            "[1,2]\n",
            r#"{"subject":"a/b","data":1}"#,
            "\n",
            r#"{"time":"yesterday","subject":"a/b"}"#,
            "\n",
            r#"{"time":"2026-01-05T10:00:00Z","at":"2026-01-05T10:00:00Z","subject":"a/b"}"#,
            "\n",
            r#"{"time":"2026-01-05T10:00:00Z","subject":"a//b"}"#,
            "\n",
            r#"{"time":"2026-01-05T10:00:00Z","data":1"#,
            "\n",
            "\u{1}\u{2}\n",
            r#"{"time":"2026-01-05T10:00:01Z","subject":"a/b","data":2}"#,
        );
        let got = read(text.as_bytes());
        assert_eq!(got.len(), 10);
        assert_eq!(
            got[0],
            Err("line 1: not JSON: expected ident (column 2)".to_owned())
        );
        assert_eq!(got[1], Ok((2, "a/b".to_owned(), 1.0)));
        assert_eq!(
            got[2],
            Err("line 3: expected a JSON object (one event), found an array".to_owned())
        );
        assert!(
            got[3]
                .as_ref()
                .unwrap_err()
                .starts_with("line 4: no `time` (or `at`)"),
            "{:?}",
            got[3]
        );
        assert!(
            got[4]
                .as_ref()
                .unwrap_err()
                .starts_with("line 5: `time`: `yesterday` is not an RFC 3339 time"),
            "{:?}",
            got[4]
        );
        assert_eq!(
            got[5],
            Err("line 6: give `time` or `at`, not both".to_owned())
        );
        assert!(
            got[6]
                .as_ref()
                .unwrap_err()
                .starts_with("line 7: `subject`: subject `a//b` has an empty token"),
            "{:?}",
            got[6]
        );
        assert!(got[7].as_ref().unwrap_err().starts_with("line 8: not JSON"));
        assert!(got[8].as_ref().unwrap_err().starts_with("line 9: not JSON"));
        assert_eq!(got[9], Ok((10, "a/b".to_owned(), 2.0)));
    }

    #[test]
    fn an_overlong_line_is_skipped_without_being_held() {
        let mut text = Vec::new();
        text.extend_from_slice(
            b"{\"time\":\"2026-01-05T10:00:00Z\",\"subject\":\"a/b\",\"data\":\"",
        );
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES * 2));
        text.extend_from_slice(b"\"}\n");
        text.extend_from_slice(br#"{"time":"2026-01-05T10:00:00Z","subject":"a/b","data":3}"#);
        let got = read(&text);
        assert_eq!(
            got,
            [
                Err(format!(
                    "line 1: longer than {MAX_LINE_BYTES} bytes; skipped"
                )),
                Ok((2, "a/b".to_owned(), 3.0)),
            ]
        );
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_bytes_also_in_several_members() {
        let gzip = |text: &str| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text.as_bytes()).unwrap();
            encoder.finish().unwrap()
        };
        let mut bytes = gzip(&format!("{LINES}\n"));
        bytes.extend(gzip(
            r#"{"time":"2026-01-05T11:00:00Z","subject":"home/freezer","data":-20}"#,
        ));
        let got = read(&bytes);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], Ok((5, "home/freezer".to_owned(), -20.0)));

        // A truncated stream ends reading with an error.
        let truncated = &bytes[..bytes.len() / 3];
        let got = read(truncated);
        assert!(
            got.last()
                .unwrap()
                .as_ref()
                .unwrap_err()
                .contains("cannot read on")
        );
    }

    #[test]
    fn short_and_empty_inputs_read() {
        assert_eq!(read(b""), []);
        assert_eq!(read(b"\n"), []);
        assert_eq!(
            read(b"x"),
            [Err("line 1: not JSON: expected value (column 1)".to_owned())]
        );
    }

    #[test]
    fn nats_style_subjects_are_told_how_to_write() {
        assert!(looks_like_nats("cluster.node2.heartbeat"));
        assert!(!looks_like_nats("home/192.168.1.5/status"));
        assert!(!looks_like_nats("home/kitchen"));
        assert_eq!(
            nats_subject_hint("cluster.node2.heartbeat"),
            "`cluster.node2.heartbeat` is written like a NATS subject; subjects are \
             `/`-separated paths, as NATS subjects become when they arrive: write \
             `cluster/node2/heartbeat`"
        );
    }
}
