//! A YAML tree that remembers where every node was written, and a serde deserializer over it.
//!
//! Rule files are read in two steps: [`parse_documents`] turns the text into [`Node`]s, each
//! with its 1-based [`Position`]; [`from_node`] then deserializes a node into the rule types
//! (`#[derive(Deserialize)]`, usually with `deny_unknown_fields`). Every error of either step
//! carries the position of the key or value at fault, so `atalaya check` can print
//! `file:line:column: message` and an editor can jump there.
//!
//! Scalars resolve by the YAML 1.2 core schema, the one Kubernetes users expect: `yes` and
//! `on` are strings, `null`/`~`/nothing is null, `0x1F` is a number. Quoted and block scalars
//! are always strings, and so is any scalar tagged `!!str`; other tags are ignored.
//!
//! # Layout
//! - this file: the tree ([`Node`], [`Position`]) and the parser that builds it from
//!   yaml_rust2's events, with its limits and the core-schema scalar resolution.
//! - `de`: the serde deserializer over a [`Node`] ([`from_node`]) and its errors, worded for
//!   YAML authors and placed at the key or value at fault.
//! - `text`: [`Text`], a scalar read as text whatever it looks like.
//! - `decoder`: [`Decoder`], decoding a configuration while collecting every error.

mod de;
mod decoder;
#[cfg(test)]
mod tests;
mod text;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

pub use self::de::{DeError, NodeDeError, did_you_mean, from_node};
pub use self::decoder::{DecodeError, Decoder};
pub use self::text::Text;

/// Deepest nesting of mappings and sequences a document may use.
///
/// Rules need a handful of levels. The limit keeps a malformed or hostile file (`- - - - …`)
/// from exhausting the stack of the code that walks the tree (serde recurses once per level,
/// and so do `Drop`, `Clone` and `Debug` of a [`Node`]).
pub const MAX_NESTING_DEPTH: usize = 64;

/// Most nodes one YAML stream may expand to, counting every copy an alias makes.
///
/// Aliases copy the anchored node, so ten anchors each listing the previous one ten times
/// (the "billion laughs") would expand a few lines into billions of nodes.
pub const MAX_NODES: usize = 100_000;

/// Most bytes of scalar text one YAML stream may expand to, counting every copy an alias
/// makes: one anchored megabyte aliased 3000 times is 3 GB, yet only 3001 nodes.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// Where a node starts in the text. Both numbers are 1-based; the column counts characters.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Position {
    /// The line, counted from 1; `\n`, `\r\n` and a lone `\r` each end one.
    pub line: usize,
    /// The column, counted from 1 in characters (not bytes), as editors show it.
    pub column: usize,
}

impl Position {
    fn from_marker(mark: &Marker) -> Self {
        // yaml_rust2 counts lines from 1 but columns from 0 (its own error Display adds 1).
        Self {
            line: mark.line().max(1),
            column: mark.col() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts: the first character of a scalar, the `[`/`{` of a flow
    /// collection, the first key or `-` of a block collection. An absent value (`key:` and
    /// nothing more) is placed at its key. A node reached through an alias is positioned at
    /// the alias, its children at the anchored original.
    pub position: Position,
    pub kind: NodeKind,
}

/// What a [`Node`] holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// The entries in the order written; keys are unique.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value under the string key `key`, if this is a mapping holding it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, value)| value)
    }

    /// Where the key `key` is written, if this is a mapping holding it.
    pub fn key_position(&self, key: &str) -> Option<Position> {
        self.entry(key).map(|(key, _)| key.position)
    }

    /// What kind of value this is, for messages: "a string", "a mapping", "a list",
    /// "a number", "a boolean" or "null".
    pub fn describe(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::Float(_) => "a number",
            NodeKind::String(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, NodeKind::String(s) if s == key)),
            _ => None,
        }
    }
}

/// Why a text is not a YAML stream this module accepts: a syntax error, nesting deeper than
/// [`MAX_NESTING_DEPTH`], a key given twice in one mapping, or aliases expanding past
/// [`MAX_NODES`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct YamlError {
    pub position: Position,
    pub message: String,
}

impl YamlError {
    fn at(position: Position, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// Every document of the YAML stream `text`, in order.
///
/// A text without documents (empty, or only comments) gives none; an empty document (`---`
/// alone) gives a [`NodeKind::Null`] node.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    Ok(parse_stream(text)?
        .into_iter()
        .map(|document| document.root)
        .collect())
}

/// One document of a stream, as [`parse_stream`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
    /// Whether the document has no content at all (`---` alone), which a null root cannot
    /// tell apart from a written `null`.
    pub empty: bool,
}

/// Like [`parse_documents`], and tells which documents are empty.
///
/// Uses yaml_rust2's event parser directly rather than `Parser::load`: `load` recurses once
/// per nesting level, so a deeply nested text would overflow the stack before any receiver
/// could stop it. Pulling events lets the depth limit end the parse first.
pub fn parse_stream(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = TreeBuilder::default();
    loop {
        let (event, mark) = parser.next_token().map_err(|error| {
            let position = Position::from_marker(error.marker());
            // The scanner reads ahead, so 256 `[` or `{` on one line (its own limit) can
            // stop it before the parser sees the 65th.
            if error.info() == "recursion limit exceeded" {
                YamlError::at(position, too_deep())
            } else {
                YamlError::at(position, error.info())
            }
        })?;
        let position = Position::from_marker(&mark);
        match event {
            Event::StreamEnd => return Ok(builder.documents),
            // Anchors belong to their document.
            Event::DocumentStart => builder.anchors.clear(),
            Event::Scalar(value, style, anchor, tag) => {
                let empty = style == TScalarStyle::Plain && value.is_empty() && tag.is_none();
                builder.count(1, value.len(), position)?;
                let bytes = value.len();
                let kind = resolve_scalar(value, style, tag.as_ref());
                builder.add(Node { position, kind }, anchor, 0, empty, bytes)?;
            }
            Event::Alias(anchor) => builder.add_alias(anchor, position)?,
            Event::SequenceStart(anchor, _) => {
                builder.open(position, anchor, OpenKind::Seq(Vec::new()))?;
            }
            Event::MappingStart(anchor, _) => {
                let kind = OpenKind::Map {
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                };
                builder.open(position, anchor, kind)?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

fn too_deep() -> String {
    format!("nested deeper than {MAX_NESTING_DEPTH} levels")
}

/// Builds [`Node`] trees from parser events, with an explicit stack instead of recursion.
#[derive(Default)]
struct TreeBuilder {
    documents: Vec<Document>,
    /// The collections started but not yet ended, outermost first.
    open: Vec<OpenCollection>,
    /// The anchored nodes of the current document, by yaml_rust2's anchor id.
    anchors: HashMap<usize, Anchored>,
    /// Nodes made so far in the whole stream, alias copies included.
    nodes: usize,
    /// Bytes of scalar text made so far in the whole stream, alias copies included.
    bytes: usize,
}

struct OpenCollection {
    position: Position,
    /// yaml_rust2's anchor id, 0 for none.
    anchor: usize,
    /// [`TreeBuilder::nodes`] and [`TreeBuilder::bytes`] before this collection started, to
    /// count what it holds at the end.
    nodes_before: usize,
    bytes_before: usize,
    /// How many levels of collections the children nest, at most.
    child_height: usize,
    kind: OpenKind,
}

enum OpenKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        /// The key read, waiting for its value.
        key: Option<Node>,
        /// Where each scalar key was written, to report duplicates.
        seen: HashMap<ScalarKey, Position>,
    },
}

/// An anchored node, kept to copy for its aliases.
struct Anchored {
    node: Node,
    /// How many levels of collections it nests (0 for a scalar).
    height: usize,
    /// How many nodes it holds, itself included.
    nodes: usize,
    /// How many bytes of scalar text it holds.
    bytes: usize,
}

/// A scalar key, comparable and hashable (`f64` is neither).
#[derive(PartialEq, Eq, Hash)]
enum ScalarKey {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    String(String),
}

impl ScalarKey {
    fn of(kind: &NodeKind) -> Option<Self> {
        Some(match kind {
            NodeKind::Null => Self::Null,
            NodeKind::Bool(b) => Self::Bool(*b),
            NodeKind::Int(i) => Self::Int(*i),
            NodeKind::Float(f) => Self::Float(f.to_bits()),
            NodeKind::String(s) => Self::String(s.clone()),
            NodeKind::Seq(_) | NodeKind::Map(_) => return None,
        })
    }
}

impl fmt::Display for ScalarKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
            Self::String(s) => f.write_str(s),
        }
    }
}

impl TreeBuilder {
    /// Counts `nodes` more nodes holding `bytes` of text, refusing to pass [`MAX_NODES`]
    /// or [`MAX_EXPANDED_BYTES`].
    fn count(&mut self, nodes: usize, bytes: usize, position: Position) -> Result<(), YamlError> {
        self.nodes += nodes;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > MAX_NODES {
            return Err(YamlError::at(
                position,
                format!("more than {MAX_NODES} values, counting each copy an alias makes"),
            ));
        }
        if self.bytes > MAX_EXPANDED_BYTES {
            return Err(YamlError::at(
                position,
                format!(
                    "more than {} MiB of text, counting each copy an alias makes",
                    MAX_EXPANDED_BYTES / (1024 * 1024)
                ),
            ));
        }
        Ok(())
    }

    fn open(&mut self, position: Position, anchor: usize, kind: OpenKind) -> Result<(), YamlError> {
        if self.open.len() >= MAX_NESTING_DEPTH {
            return Err(YamlError::at(position, too_deep()));
        }
        let (nodes_before, bytes_before) = (self.nodes, self.bytes);
        self.count(1, 0, position)?;
        self.open.push(OpenCollection {
            position,
            anchor,
            nodes_before,
            bytes_before,
            child_height: 0,
            kind,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        // The parser ends only collections it started, so `open` is not empty; an empty stack
        // here would be a yaml_rust2 bug, ignored rather than panicking on.
        let Some(collection) = self.open.pop() else {
            return Ok(());
        };
        let kind = match collection.kind {
            OpenKind::Seq(items) => NodeKind::Seq(items),
            OpenKind::Map { entries, .. } => NodeKind::Map(entries),
        };
        let node = Node {
            position: collection.position,
            kind,
        };
        let nodes = self.nodes - collection.nodes_before;
        let bytes = self.bytes - collection.bytes_before;
        if collection.anchor != 0 {
            self.anchors.insert(
                collection.anchor,
                Anchored {
                    node: node.clone(),
                    height: collection.child_height + 1,
                    nodes,
                    bytes,
                },
            );
        }
        self.attach(node, collection.child_height + 1, false)
    }

    fn add_alias(&mut self, anchor: usize, position: Position) -> Result<(), YamlError> {
        let Some(anchored) = self.anchors.get(&anchor) else {
            let message = if self.open.iter().any(|open| open.anchor == anchor) {
                "this alias refers to a value that contains it"
            } else {
                "this alias refers to an anchor of another document"
            };
            return Err(YamlError::at(position, message));
        };
        if self.open.len() + anchored.height > MAX_NESTING_DEPTH {
            return Err(YamlError::at(
                position,
                format!("this alias nests the document deeper than {MAX_NESTING_DEPTH} levels"),
            ));
        }
        let (height, nodes, bytes) = (anchored.height, anchored.nodes, anchored.bytes);
        // Counted before the copy is made: the copy is what must not happen past the limit.
        self.count(nodes, bytes, position)?;
        let Some(anchored) = self.anchors.get(&anchor) else {
            return Ok(());
        };
        let node = Node {
            position,
            kind: anchored.node.kind.clone(),
        };
        self.attach(node, height, false)
    }

    /// Adds a finished node, remembering it under `anchor` (unless 0). `empty` says the node
    /// is a null with no text at all.
    fn add(
        &mut self,
        node: Node,
        anchor: usize,
        height: usize,
        empty: bool,
        bytes: usize,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            let anchored = Anchored {
                node: node.clone(),
                height,
                nodes: 1,
                bytes,
            };
            self.anchors.insert(anchor, anchored);
        }
        self.attach(node, height, empty)
    }

    /// Puts a finished node into the innermost open collection, or ends a document with it.
    /// `empty` says the node is a null with no text at all.
    fn attach(&mut self, mut node: Node, height: usize, empty: bool) -> Result<(), YamlError> {
        let Some(parent) = self.open.last_mut() else {
            self.documents.push(Document { root: node, empty });
            return Ok(());
        };
        parent.child_height = parent.child_height.max(height);
        // yaml_rust2 starts a block mapping at the `:` of its first key: move it to the key.
        if let OpenKind::Map { entries, key, .. } = &parent.kind
            && entries.is_empty()
            && key.is_none()
        {
            parent.position = parent.position.min(node.position);
        }
        match &mut parent.kind {
            OpenKind::Seq(items) => items.push(node),
            OpenKind::Map { entries, key, seen } => match key.take() {
                Some(key) => {
                    // yaml_rust2 places an absent value (`key:` and nothing) at whatever comes
                    // next, maybe lines below; its key is where a reader should look.
                    if empty {
                        node.position = key.position;
                    }
                    entries.push((key, node));
                }
                None => {
                    if let Some(scalar) = ScalarKey::of(&node.kind) {
                        match seen.entry(scalar) {
                            Entry::Occupied(first) => {
                                return Err(YamlError::at(
                                    node.position,
                                    format!(
                                        "duplicate key `{}` (first given at {})",
                                        first.key(),
                                        first.get()
                                    ),
                                ));
                            }
                            Entry::Vacant(vacant) => {
                                vacant.insert(node.position);
                            }
                        }
                    }
                    *key = Some(node);
                }
            },
        }
        Ok(())
    }
}

/// Resolves a scalar by its style and tag, and by the YAML 1.2 core schema if plain.
fn resolve_scalar(value: String, style: TScalarStyle, tag: Option<&Tag>) -> NodeKind {
    let forced_string =
        tag.is_some_and(|tag| format!("{}{}", tag.handle, tag.suffix) == "tag:yaml.org,2002:str");
    if style != TScalarStyle::Plain || forced_string {
        return NodeKind::String(value);
    }
    match value.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => NodeKind::Null,
        "true" | "True" | "TRUE" => NodeKind::Bool(true),
        "false" | "False" | "FALSE" => NodeKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => NodeKind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => NodeKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => NodeKind::Float(f64::NAN),
        text => {
            if let Some(int) = parse_core_int(text) {
                NodeKind::Int(int)
            } else if let Some(float) = parse_core_float(text) {
                NodeKind::Float(float)
            } else {
                NodeKind::String(value)
            }
        }
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`, if it fits an `i64`.
fn parse_core_int(text: &str) -> Option<i64> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = text.strip_prefix("0o") {
        (octal, 8)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return text.parse().ok();
    };
    // `from_str_radix` would also take a sign, which the schema does not allow here.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i64::from_str_radix(digits, radix).ok()
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`; Rust's own parser alone would also
/// take `inf`, `NaN` and `infinity`.
fn parse_core_float(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let digits_from = |start: usize| {
        bytes[start.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    let whole = digits_from(at);
    at += whole;
    let mut fraction = 0;
    if bytes.get(at) == Some(&b'.') {
        fraction = digits_from(at + 1);
        at += 1 + fraction;
    }
    if whole == 0 && fraction == 0 {
        return None;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        at += usize::from(matches!(bytes.get(at), Some(b'-' | b'+')));
        let exponent = digits_from(at);
        if exponent == 0 {
            return None;
        }
        at += exponent;
    }
    if at != bytes.len() {
        return None;
    }
    text.parse().ok()
}
