//! Finds where a key sits in a YAML file, so config errors can say `file:line:col`.
//!
//! The `config` crate merges sources into one tree and forgets positions. This walks the
//! same YAML text with yaml-rust2's event parser and records, for every dotted key path
//! (`http.listen`, `list[0]`), where its key and its value start.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based and columns 0-based.
        Self {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Key and value positions of one YAML document.
#[derive(Debug, Default)]
pub struct Locator {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

impl Locator {
    /// Parses `text`; a syntax error comes back with its position.
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut walker = Walker::default();
        Parser::new_from_str(text)
            .load(&mut walker, false)
            .map_err(|e| SyntaxError {
                position: (*e.marker()).into(),
                message: e.info().to_owned(),
            })?;
        Ok(walker.locator)
    }

    /// Where the key `path` is written.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// Where the value of `path` starts (falls back to its key).
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied().or_else(|| self.key(path))
    }
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    locator: Locator,
}

impl Walker {
    /// The path of the node starting now, or `None` when it is a mapping key.
    fn next_node_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { key: None, .. }) => None,
            Some(Frame::Mapping { path, key }) => {
                let key = key.take().unwrap_or_default();
                Some(join(path, &key))
            }
            Some(Frame::Sequence { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                Some(p)
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => match self.next_node_path() {
                Some(path) => {
                    self.locator.values.insert(path, mark.into());
                }
                None => {
                    if let Some(Frame::Mapping { path, key }) = self.stack.last_mut() {
                        self.locator.keys.insert(join(path, &text), mark.into());
                        *key = Some(text);
                    }
                }
            },
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex mapping key is not a config key: give it an unusable path.
                let path = self.next_node_path().unwrap_or_else(|| "?".to_owned());
                self.locator.values.insert(path.clone(), mark.into());
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Mapping { path, key: None },
                    _ => Frame::Sequence { path, index: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.next_node_path();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values() {
        let text =
            "http:\n  listen: 127.0.0.1:9470\n  token_file: /run/token\nlist:\n  - a\n  - b: 1\n";
        let l = Locator::parse(text).unwrap();
        assert_eq!(l.key("http"), Some(Position { line: 1, column: 1 }));
        assert_eq!(l.key("http.listen"), Some(Position { line: 2, column: 3 }));
        assert_eq!(
            l.value("http.listen"),
            Some(Position {
                line: 2,
                column: 11
            })
        );
        assert_eq!(
            l.key("http.token_file"),
            Some(Position { line: 3, column: 3 })
        );
        assert_eq!(l.value("list[0]"), Some(Position { line: 5, column: 5 }));
        assert_eq!(l.key("list[1].b"), Some(Position { line: 6, column: 5 }));
        assert_eq!(l.key("missing"), None);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Locator::parse("http:\n  listen: [1, 2\n").unwrap_err();
        assert_eq!(err.position.line, 3);
        assert!(!err.message.is_empty());
    }
}
