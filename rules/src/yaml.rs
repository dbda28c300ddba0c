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

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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
pub(crate) struct Document {
    pub(crate) root: Node,
    /// Whether the document has no content at all (`---` alone), which a null root cannot
    /// tell apart from a written `null`.
    pub(crate) empty: bool,
}

/// Like [`parse_documents`], and tells which documents are empty.
///
/// Uses yaml_rust2's event parser directly rather than `Parser::load`: `load` recurses once
/// per nesting level, so a deeply nested text would overflow the stack before any receiver
/// could stop it. Pulling events lets the depth limit end the parse first.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Document>, YamlError> {
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
                let kind = resolve_scalar(value, style, tag.as_ref());
                builder.count_nodes(1, position)?;
                builder.add(Node { position, kind }, anchor, 0, empty)?;
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
}

struct OpenCollection {
    position: Position,
    /// yaml_rust2's anchor id, 0 for none.
    anchor: usize,
    /// [`TreeBuilder::nodes`] before this collection started, to count its nodes at the end.
    nodes_before: usize,
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
    /// Counts `nodes` more nodes, refusing to pass [`MAX_NODES`].
    fn count_nodes(&mut self, nodes: usize, position: Position) -> Result<(), YamlError> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            return Err(YamlError::at(
                position,
                format!("more than {MAX_NODES} values, counting each copy an alias makes"),
            ));
        }
        Ok(())
    }

    fn open(&mut self, position: Position, anchor: usize, kind: OpenKind) -> Result<(), YamlError> {
        if self.open.len() >= MAX_NESTING_DEPTH {
            return Err(YamlError::at(position, too_deep()));
        }
        let nodes_before = self.nodes;
        self.count_nodes(1, position)?;
        self.open.push(OpenCollection {
            position,
            anchor,
            nodes_before,
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
        if collection.anchor != 0 {
            self.anchors.insert(
                collection.anchor,
                Anchored {
                    node: node.clone(),
                    height: collection.child_height + 1,
                    nodes,
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
        let (height, nodes) = (anchored.height, anchored.nodes);
        let node = Node {
            position,
            kind: anchored.node.kind.clone(),
        };
        self.count_nodes(nodes, position)?;
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
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            let anchored = Anchored {
                node: node.clone(),
                height,
                nodes: 1,
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

/// Why a [`Node`] could not be deserialized, with the position of the key or value at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct DeError {
    pub position: Position,
    pub message: String,
}

/// Deserializes `node` into a `T`.
///
/// Types must match: a quoted `"5"` is not a number, nor `5` a string. The one conversion is
/// an integer where a float is asked for (`threshold: 5` into an `f64`).
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(node).map_err(|error| DeError {
        position: error.position.unwrap_or(node.position),
        message: error.message,
    })
}

/// The error of the [`Node`] deserializer, positioned once it is known.
///
/// serde's generated code makes errors without knowing where it is; each node being
/// deserialized gives its own position to an error that has none yet, so an error ends up at
/// the innermost node it came from. [`from_node`] turns it into a [`DeError`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct NodeDeError {
    pub position: Option<Position>,
    pub message: String,
}

impl NodeDeError {
    fn new(message: String) -> Self {
        Self {
            position: None,
            message,
        }
    }

    /// Sets the position, unless an inner node already did.
    fn at(mut self, position: Position) -> Self {
        self.position.get_or_insert(position);
        self
    }
}

impl de::Error for NodeDeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        let found = match unexpected {
            Unexpected::Bool(_) => "a boolean",
            Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
            Unexpected::Char(_) | Unexpected::Str(_) => "a string",
            Unexpected::Unit | Unexpected::Option => "null",
            Unexpected::Seq => "a list",
            Unexpected::Map => "a mapping",
            other => return Self::new(format!("expected {expected}, found {other}")),
        };
        Self::new(format!(
            "expected {}, found {found}",
            plain_expected(expected)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::new(unknown("key", field, expected))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::new(unknown("variant", variant, expected))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(format!("missing key `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::new(format!("duplicate key `{field}`"))
    }
}

/// What serde expected, in the words of a YAML author rather than of Rust.
fn plain_expected(expected: &dyn Expected) -> String {
    let expected = expected.to_string();
    let plain = match expected.as_str() {
        "a sequence" => "a list",
        "a map" => "a mapping",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => "an integer",
        "f32" | "f64" => "a number",
        "field identifier" | "variant identifier" => "a name",
        text if text.starts_with("struct ") => "a mapping",
        _ => return expected,
    };
    plain.to_owned()
}

/// "unknown key `conditon`; did you mean `condition`?", or the keys there are.
fn unknown(what: &str, name: &str, expected: &[&str]) -> String {
    let suggestion = expected
        .iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, candidate)| distance <= 2 && distance < candidate.chars().count())
        .min_by_key(|&(distance, _)| distance);
    if let Some((_, candidate)) = suggestion {
        return format!("unknown {what} `{name}`; did you mean `{candidate}`?");
    }
    if expected.is_empty() {
        return format!("unknown {what} `{name}`; none is allowed here");
    }
    let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    format!(
        "unknown {what} `{name}`; expected one of {}",
        list.join(", ")
    )
}

/// Damerau-Levenshtein distance (optimal string alignment): the fewest insertions, deletions,
/// substitutions and swaps of two neighbouring characters turning `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the usual table: two rows back (for swaps), the previous, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

impl<'de> de::Deserializer<'de> for &'de Node {
    type Error = NodeDeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeDeError> {
        let result = match &self.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::String(s) => visitor.visit_borrowed_str(s),
            NodeKind::Seq(items) => visit_seq(items, visitor),
            NodeKind::Map(entries) => visitor.visit_map(MapNodes {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|error| error.at(self.position))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeDeError> {
        match self.kind {
            // An integer past 2^53 rounds, as it would written with a decimal point.
            NodeKind::Int(i) => visitor
                .visit_f64::<NodeDeError>(i as f64)
                .map_err(|error| error.at(self.position)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeDeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeDeError> {
        match self.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|error| error.at(self.position))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeDeError> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|error| error.at(self.position))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeDeError> {
        match &self.kind {
            NodeKind::String(name) => {
                visitor.visit_enum(BorrowedStrDeserializer::<NodeDeError>::new(name))
            }
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(VariantNode { key, value })
            }
            NodeKind::Map(_) => Err(NodeDeError::new(format!(
                "expected {}: its name, or a mapping with its name as the only key",
                visitor_expecting(&visitor)
            ))),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
        .map_err(|error| error.at(self.position))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeDeError> {
        match &self.kind {
            NodeKind::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(NodeDeError::new(format!(
                "expected a name, found {}",
                self.describe()
            ))),
        }
        .map_err(|error| error.at(self.position))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeDeError> {
        // serde's derived structs also take a list of their fields in order, which no
        // YAML author means.
        match self.kind {
            NodeKind::Seq(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor))
                .map_err(|error: NodeDeError| error.at(self.position)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeDeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map
    }
}

impl Node {
    /// The node as serde's [`Unexpected`], for `invalid_type` errors.
    fn unexpected(&self) -> Unexpected<'_> {
        match &self.kind {
            NodeKind::Null => Unexpected::Unit,
            NodeKind::Bool(b) => Unexpected::Bool(*b),
            NodeKind::Int(i) => Unexpected::Signed(*i),
            NodeKind::Float(f) => Unexpected::Float(*f),
            NodeKind::String(s) => Unexpected::Str(s),
            NodeKind::Seq(_) => Unexpected::Seq,
            NodeKind::Map(_) => Unexpected::Map,
        }
    }
}

/// What a visitor expects ("enum Severity"), as its `expecting` says.
fn visitor_expecting<'de, V: Visitor<'de>>(visitor: &V) -> String {
    struct Expecting<'a, V>(&'a V);
    impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }
    }
    Expecting(visitor).to_string()
}

/// Visits `items` as a sequence, and refuses items the visitor left unread (a tuple of two
/// given three).
fn visit_seq<'de, V: Visitor<'de>>(
    items: &'de [Node],
    visitor: V,
) -> Result<V::Value, NodeDeError> {
    let mut access = SeqNodes {
        items: items.iter(),
        read: 0,
    };
    let value = visitor.visit_seq(&mut access)?;
    if access.items.len() == 0 {
        Ok(value)
    } else {
        Err(NodeDeError::new(format!(
            "expected a list of {} items, found {}",
            access.read,
            items.len()
        )))
    }
}

struct SeqNodes<'de> {
    items: std::slice::Iter<'de, Node>,
    /// How many items the visitor took.
    read: usize,
}

impl<'de> SeqAccess<'de> for SeqNodes<'de> {
    type Error = NodeDeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeDeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        self.read += 1;
        seed.deserialize(item)
            .map(Some)
            .map_err(|error| error.at(item.position))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapNodes<'de> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    /// The value of the key just read.
    value: Option<&'de Node>,
}

impl<'de> MapAccess<'de> for MapNodes<'de> {
    type Error = NodeDeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeDeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        // An unknown key is reported here, at the key.
        seed.deserialize(key)
            .map(Some)
            .map_err(|error| error.at(key.position))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, NodeDeError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| NodeDeError::new("a value was asked for before its key".to_owned()))?;
        seed.deserialize(value)
            .map_err(|error| error.at(value.position))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a one-key mapping: `{telegram: {chat: 42}}`.
struct VariantNode<'de> {
    key: &'de Node,
    value: &'de Node,
}

impl<'de> EnumAccess<'de> for VariantNode<'de> {
    type Error = NodeDeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), NodeDeError> {
        let variant = seed
            .deserialize(self.key)
            .map_err(|error| error.at(self.key.position))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for VariantNode<'de> {
    type Error = NodeDeError;

    fn unit_variant(self) -> Result<(), NodeDeError> {
        match self.value.kind {
            NodeKind::Null => Ok(()),
            _ => Err(NodeDeError::new(format!(
                "expected nothing after a variant without content, found {}",
                self.value.describe()
            ))
            .at(self.value.position)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, NodeDeError> {
        seed.deserialize(self.value)
            .map_err(|error| error.at(self.value.position))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, NodeDeError> {
        de::Deserializer::deserialize_seq(self.value, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeDeError> {
        de::Deserializer::deserialize_struct(self.value, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    fn parse_one(text: &str) -> Node {
        let mut documents = parse_documents(text).unwrap();
        assert_eq!(documents.len(), 1, "{text:?}");
        documents.remove(0)
    }

    fn pos(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn plain_scalars_resolve_by_the_core_schema() {
        use NodeKind::{Bool, Float, Int, Null, String};
        let table: &[(&str, NodeKind)] = &[
            ("", Null),
            ("~", Null),
            ("null", Null),
            ("Null", Null),
            ("NULL", Null),
            ("nULL", String("nULL".into())),
            ("true", Bool(true)),
            ("True", Bool(true)),
            ("TRUE", Bool(true)),
            ("false", Bool(false)),
            ("FALSE", Bool(false)),
            ("yes", String("yes".into())),
            ("on", String("on".into())),
            ("0", Int(0)),
            ("42", Int(42)),
            ("-17", Int(-17)),
            ("+17", Int(17)),
            ("012", Int(12)),
            ("0x1F", Int(31)),
            ("0o17", Int(15)),
            ("0x", String("0x".into())),
            ("0x-1", String("0x-1".into())),
            ("0o8", String("0o8".into())),
            ("1_000", String("1_000".into())),
            ("9223372036854775807", Int(i64::MAX)),
            ("9223372036854775808", Float(9_223_372_036_854_775_808.0)),
            ("1.5", Float(1.5)),
            ("-.5", Float(-0.5)),
            ("2.", Float(2.0)),
            ("1e3", Float(1000.0)),
            ("6.02E+23", Float(6.02e23)),
            (".inf", Float(f64::INFINITY)),
            ("-.Inf", Float(f64::NEG_INFINITY)),
            ("+.INF", Float(f64::INFINITY)),
            ("inf", String("inf".into())),
            ("NaN", String("NaN".into())),
            ("infinity", String("infinity".into())),
            (".", String(".".into())),
            ("1e", String("1e".into())),
            ("1.2.3", String("1.2.3".into())),
            ("5m", String("5m".into())),
            ("10.0.0.1", String("10.0.0.1".into())),
        ];
        for (text, expected) in table {
            let node = parse_one(&format!("- {text}\n"));
            let NodeKind::Seq(items) = &node.kind else {
                panic!("{node:?}")
            };
            assert_eq!(&items[0].kind, expected, "{text:?}");
        }
        let nan = parse_one("[.nan, .NaN, .NAN]");
        let NodeKind::Seq(items) = &nan.kind else {
            panic!("{nan:?}")
        };
        assert!(
            items
                .iter()
                .all(|item| matches!(item.kind, Float(f) if f.is_nan()))
        );
    }

    #[test]
    fn quoted_block_and_str_tagged_scalars_are_strings() {
        let node = parse_one(
            "a: 'true'\nb: \"42\"\nc: !!str 5\nd: |\n  null\ne: >\n  1.5\nf: !custom 7\n",
        );
        let kinds: Vec<&NodeKind> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|key| &node.get(key).unwrap().kind)
            .collect();
        assert_eq!(
            kinds,
            [
                &NodeKind::String("true".into()),
                &NodeKind::String("42".into()),
                &NodeKind::String("5".into()),
                &NodeKind::String("null\n".into()),
                &NodeKind::String("1.5\n".into()),
                &NodeKind::Int(7),
            ]
        );
    }

    #[test]
    fn documents_of_a_stream() {
        assert_eq!(parse_documents(""), Ok(vec![]));
        assert_eq!(parse_documents("# only a comment\n"), Ok(vec![]));
        let documents = parse_documents("---\n---\na: 1\n").unwrap();
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].kind, NodeKind::Null);
        assert_eq!(documents[1].get("a").unwrap().kind, NodeKind::Int(1));
        let stream = parse_stream("---\n--- null\n").unwrap();
        assert!(stream[0].empty && !stream[1].empty);
    }

    #[test]
    fn keys_and_values_keep_their_positions() {
        let text = "\
rule: freezer
labels: {room: kitchen, floor: 1}
steps:
  - after: 5m
    notify: [telegram, email]
  - after: 1h
";
        let root = parse_one(text);
        assert_eq!(root.position, pos(1, 1));
        assert_eq!(root.key_position("rule"), Some(pos(1, 1)));
        assert_eq!(root.get("rule").unwrap().position, pos(1, 7));
        let labels = root.get("labels").unwrap();
        assert_eq!(labels.position, pos(2, 9));
        assert_eq!(labels.key_position("floor"), Some(pos(2, 25)));
        assert_eq!(labels.get("floor").unwrap().position, pos(2, 32));
        let steps = root.get("steps").unwrap();
        assert_eq!(steps.position, pos(4, 3));
        let NodeKind::Seq(items) = &steps.kind else {
            panic!("{steps:?}")
        };
        assert_eq!(items[0].position, pos(4, 5));
        assert_eq!(items[0].key_position("notify"), Some(pos(5, 5)));
        let notify = items[0].get("notify").unwrap();
        assert_eq!(notify.position, pos(5, 13));
        let NodeKind::Seq(channels) = &notify.kind else {
            panic!("{notify:?}")
        };
        assert_eq!(channels[1].position, pos(5, 24));
        assert_eq!(items[1].get("after").unwrap().position, pos(6, 12));
        assert_eq!(root.get("missing"), None);

        let root = parse_one("a:\n  b:\n    c: 1\n  empty:\n\n  # later\n  d: &x\n    e: 1\n");
        let a = root.get("a").unwrap();
        assert_eq!(a.position, pos(2, 3));
        assert_eq!(a.get("b").unwrap().position, pos(3, 5));
        assert_eq!(a.get("empty").unwrap().kind, NodeKind::Null);
        assert_eq!(a.get("empty").unwrap().position, pos(4, 3));
        assert_eq!(a.get("d").unwrap().position, pos(8, 5));
        assert_eq!(items[0].get("after").unwrap().get("x"), None);
        assert_eq!(pos(5, 24).to_string(), "5:24");
    }

    #[test]
    fn node_descriptions() {
        let root = parse_one("[~, true, 1, 1.5, x, [], {}]");
        let NodeKind::Seq(items) = &root.kind else {
            panic!("{root:?}")
        };
        let described: Vec<&str> = items.iter().map(Node::describe).collect();
        assert_eq!(
            described,
            [
                "null",
                "a boolean",
                "a number",
                "a number",
                "a string",
                "a list",
                "a mapping"
            ]
        );
    }

    #[test]
    fn a_duplicate_key_is_an_error_at_the_second_key() {
        let error = parse_documents("a: 1\nnested:\n  b: 1\n  b: 2\n").unwrap_err();
        assert_eq!(error.position, pos(4, 3));
        assert_eq!(
            error.to_string(),
            "4:3: duplicate key `b` (first given at 3:3)"
        );
        let error = parse_documents("{x: 1, 'x': 2}").unwrap_err();
        assert_eq!(error.position, pos(1, 8));
        // The same text resolving to different kinds is two keys, as are two lists.
        assert!(parse_documents("{1: a, '1': b, [1]: c, [1]: d}").is_ok());
        // The same key in two mappings is fine.
        assert!(parse_documents("- {a: 1}\n- {a: 2}\n").is_ok());
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let root = parse_one("base: &base {for: 5m}\nrule: *base\nname: &n kitchen\nalso: *n\n");
        let rule = root.get("rule").unwrap();
        assert_eq!(rule.position, pos(2, 7));
        assert_eq!(rule.get("for").unwrap().kind, NodeKind::String("5m".into()));
        // Inside the copy, positions are those of the original.
        assert_eq!(rule.key_position("for"), Some(pos(1, 14)));
        assert_eq!(
            root.get("also").unwrap().kind,
            NodeKind::String("kitchen".into())
        );
        assert_eq!(root.get("also").unwrap().position, pos(4, 7));
    }

    #[test]
    fn alias_errors() {
        let error = parse_documents("a: &a 1\n---\nb: *a\n").unwrap_err();
        assert_eq!(error.position, pos(3, 4));
        assert!(error.message.contains("another document"), "{error}");
        let error = parse_documents("a: &a [1, *a]\n").unwrap_err();
        assert!(error.message.contains("contains it"), "{error}");
        let error = parse_documents("b: *nowhere\n").unwrap_err();
        assert!(error.message.contains("unknown anchor"), "{error}");
    }

    #[test]
    fn an_alias_bomb_is_refused() {
        let mut text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
        for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e")] {
            let items = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{items}]\n"));
        }
        let error = parse_documents(&text).unwrap_err();
        assert!(error.message.contains("more than 100000 values"), "{error}");
        // `e` holds 111 111 nodes: one of its aliases passes the limit.
        assert_eq!(error.position.line, 5);
        // Four levels (11 111 nodes per copy) are fine.
        let fine: String = text
            .lines()
            .take(4)
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(parse_documents(&fine).is_ok());
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        // Each anchor nests the previous one 40 levels deeper.
        let open = "[".repeat(40);
        let close = "]".repeat(40);
        let text = format!("a: &a {open}x{close}\nb: &b {open}*a{close}\n");
        let error = parse_documents(&text).unwrap_err();
        assert_eq!(error.position, pos(2, 47));
        assert!(error.message.contains("deeper than 64"), "{error}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        let error = parse_documents(&deep).unwrap_err();
        // yaml_rust2's scanner reads the line ahead and stops at its own limit, 255.
        assert_eq!(error.to_string(), "1:256: nested deeper than 64 levels");
        let error = parse_documents(&"[".repeat(100)).unwrap_err();
        assert_eq!(error.to_string(), "1:65: nested deeper than 64 levels");
        let error = parse_documents(&"- ".repeat(100_000)).unwrap_err();
        assert_eq!(error.to_string(), "1:129: nested deeper than 64 levels");
        let fine = format!(
            "{}x{}",
            "[".repeat(MAX_NESTING_DEPTH),
            "]".repeat(MAX_NESTING_DEPTH)
        );
        assert!(parse_documents(&fine).is_ok());
    }

    #[test]
    fn a_syntax_error_has_the_position_an_editor_shows() {
        let error = parse_documents("name: freezer\nsummary: warm\n  for: 5m\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "3:6: mapping values are not allowed in this context"
        );
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TestRule {
        name: String,
        condition: String,
        #[serde(default)]
        summary: Option<String>,
        threshold: f64,
        severity: Severity,
        #[serde(default)]
        labels: HashMap<String, String>,
        #[serde(default)]
        steps: Vec<Step>,
        notify: Vec<Notify>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Step {
        after: String,
        #[serde(default)]
        repeat: Option<u32>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Severity {
        Info,
        Warning,
        Critical,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Notify {
        Nobody,
        Email(String),
        Telegram { chat: i64 },
        Webhook(String, u16),
    }

    const RULE: &str = "\
name: freezer-warm
condition: temperature > -10
threshold: 5
severity: critical
labels:
  room: kitchen
  floor: '1'
steps:
  - after: 5m
  - after: 1h
    repeat: 3
notify:
  - nobody
  - email: admin@example.org
  - telegram: {chat: -42}
  - webhook: [https://hooks.example.org, 443]
";

    fn rule_error(text: &str) -> DeError {
        from_node::<TestRule>(&parse_one(text)).unwrap_err()
    }

    #[test]
    fn deserializes_a_rule() {
        let rule: TestRule = from_node(&parse_one(RULE)).unwrap();
        assert_eq!(
            rule,
            TestRule {
                name: "freezer-warm".into(),
                condition: "temperature > -10".into(),
                summary: None,
                threshold: 5.0,
                severity: Severity::Critical,
                labels: HashMap::from([
                    ("room".into(), "kitchen".into()),
                    ("floor".into(), "1".into())
                ]),
                steps: vec![
                    Step {
                        after: "5m".into(),
                        repeat: None
                    },
                    Step {
                        after: "1h".into(),
                        repeat: Some(3)
                    },
                ],
                notify: vec![
                    Notify::Nobody,
                    Notify::Email("admin@example.org".into()),
                    Notify::Telegram { chat: -42 },
                    Notify::Webhook("https://hooks.example.org".into(), 443),
                ],
            }
        );
        let with_summary = format!("{RULE}summary: ~\n");
        let rule: TestRule = from_node(&parse_one(&with_summary)).unwrap();
        assert_eq!(rule.summary, None);
        let with_summary = format!("{RULE}summary: Too warm\n");
        let rule: TestRule = from_node(&parse_one(&with_summary)).unwrap();
        assert_eq!(rule.summary.as_deref(), Some("Too warm"));
        // Borrowing from the tree works too.
        let node = parse_one("[a, b]");
        let borrowed: Vec<&str> = Deserialize::deserialize(&node).unwrap();
        assert_eq!(borrowed, ["a", "b"]);
    }

    #[test]
    fn an_unknown_key_points_at_the_key_and_suggests_a_near_one() {
        let error = rule_error(&RULE.replace("condition:", "conditon:"));
        assert_eq!(
            error.to_string(),
            "2:1: unknown key `conditon`; did you mean `condition`?"
        );
        let error = rule_error(&RULE.replace("    repeat: 3", "    repaet: 3"));
        assert_eq!(
            error.to_string(),
            "11:5: unknown key `repaet`; did you mean `repeat`?"
        );
        let error = rule_error(&format!("{RULE}colour: blue\n"));
        assert_eq!(
            error.to_string(),
            "17:1: unknown key `colour`; expected one of `name`, `condition`, `summary`, \
             `threshold`, `severity`, `labels`, `steps`, `notify`"
        );
    }

    #[test]
    fn an_unknown_variant_points_at_it_and_suggests_a_near_one() {
        let error = rule_error(&RULE.replace("severity: critical", "severity: critcal"));
        assert_eq!(
            error.to_string(),
            "4:11: unknown variant `critcal`; did you mean `critical`?"
        );
        let error = rule_error(&RULE.replace("  - telegram:", "  - telgram:"));
        assert_eq!(error.position, pos(15, 5));
        assert!(
            error.message.contains("did you mean `telegram`?"),
            "{error}"
        );
    }

    #[test]
    fn a_type_error_points_at_the_value() {
        let error = rule_error(&RULE.replace("threshold: 5", "threshold: '5'"));
        assert_eq!(error.to_string(), "3:12: expected a number, found a string");
        let error = rule_error(&RULE.replace("name: freezer-warm", "name: [a, b]"));
        assert_eq!(error.to_string(), "1:7: expected a string, found a list");
        let error = rule_error(&RULE.replace("  floor: '1'", "  floor: 1"));
        assert_eq!(error.to_string(), "7:10: expected a string, found a number");
        let error = rule_error(&RULE.replace("    repeat: 3", "    repeat: -3"));
        assert_eq!(error.position, pos(11, 13));
        let error = rule_error(&RULE.replace("chat: -42", "chat: 1.5"));
        assert_eq!(
            error.to_string(),
            "15:22: expected an integer, found a number"
        );
        // An absent value is null, reported at its key.
        let error = rule_error(&RULE.replace("threshold: 5", "threshold:"));
        assert_eq!(error.to_string(), "3:1: expected a number, found null");
        let error = from_node::<TestRule>(&parse_one("[]")).unwrap_err();
        assert_eq!(error.to_string(), "1:1: expected a mapping, found a list");
    }

    #[test]
    fn a_missing_key_points_at_the_mapping() {
        let error = rule_error(&RULE.replace("    repeat: 3\n", "    repeat: 3\n  - {}\n"));
        assert_eq!(error.to_string(), "12:5: missing key `after`");
        let error = rule_error(&RULE.replace("  - after: 1h\n    repeat: 3\n", "  - repeat: 2\n"));
        assert_eq!(error.to_string(), "10:5: missing key `after`");
        let error = rule_error(&RULE.replace("name: freezer-warm\n", ""));
        assert_eq!(error.to_string(), "1:1: missing key `name`");
    }

    #[test]
    fn an_error_in_the_third_item_points_inside_it() {
        let text = RULE.replace(
            "  - telegram: {chat: -42}",
            "  - telegram: {chat: -42, topic: x}",
        );
        let error = rule_error(&text);
        assert_eq!(error.position, pos(15, 27));
        assert!(error.message.starts_with("unknown key `topic`"), "{error}");

        let steps = parse_one("- after: 1m\n- after: 2m\n- after: 3m\n  repeat: often\n");
        let error = from_node::<Vec<Step>>(&steps).unwrap_err();
        assert_eq!(
            error.to_string(),
            "4:11: expected an integer, found a string"
        );
    }

    #[test]
    fn enum_shapes_that_do_not_fit_are_errors_at_the_value() {
        let error = rule_error(&RULE.replace("  - nobody", "  - {nobody: 1}"));
        assert_eq!(error.position, pos(13, 14));
        let error = rule_error(&RULE.replace("  - nobody", "  - {nobody: ~, email: x}"));
        assert_eq!(error.position, pos(13, 5));
        assert!(error.message.contains("only key"), "{error}");
        let error = rule_error(&RULE.replace("  - nobody", "  - 7"));
        assert_eq!(
            error.to_string(),
            "13:5: expected enum Notify, found a number"
        );
        let error = rule_error(&RULE.replace(", 443]", ", 443, extra]"));
        assert_eq!(error.position, pos(16, 14));
        let error = rule_error(&RULE.replace("{chat: -42}", "[-42]"));
        assert_eq!(error.to_string(), "15:15: expected a mapping, found a list");
        let error = rule_error(&RULE.replace("  - nobody", "  - 1: x"));
        assert_eq!(error.to_string(), "13:5: expected a name, found a number");
    }

    #[test]
    fn ignored_values_and_newtypes() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Seconds(u32);
        #[derive(Debug, PartialEq, Deserialize)]
        struct Lenient {
            keep: Seconds,
        }
        let node = parse_one("keep: 30\nignored: {deep: [1, 2, {x: y}]}\n");
        assert_eq!(
            from_node::<Lenient>(&node),
            Ok(Lenient { keep: Seconds(30) })
        );
        // No coercion of strings to numbers.
        let node = parse_one("keep: '30'\n");
        assert_eq!(
            from_node::<Lenient>(&node).unwrap_err().to_string(),
            "1:7: expected an integer, found a string"
        );
        // A value out of range keeps serde's precise message.
        let error = from_node::<u8>(&parse_one("[300]")).unwrap_err();
        assert_eq!(error.to_string(), "1:1: expected an integer, found a list");
        let error = from_node::<Vec<u8>>(&parse_one("[300]")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1:2: invalid value: integer `300`, expected u8"
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("conditon", "condition"), 1);
        assert_eq!(edit_distance("repaet", "repeat"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("señal", "senal"), 1);
        // Too far, or too short to be a likely typo.
        assert!(unknown("key", "xyz", &["name"]).contains("expected one of `name`"));
        assert!(unknown("key", "id", &["to"]).contains("expected one of `to`"));
        assert_eq!(
            unknown("key", "a", &[]),
            "unknown key `a`; none is allowed here"
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_positions_are_inside_the_text(text in "(?s).{0,200}") {
            if let Err(error) = parse_documents(&text) {
                prop_assert!(error.position.line >= 1 && error.position.column >= 1);
                let breaks = text.matches(['\n', '\r']).count();
                prop_assert!(error.position.line <= breaks + 2, "{error:?}");
            }
        }

        #[test]
        fn yaml_shaped_text_parses_or_fails_and_deserializes_without_panicking(
            text in r#"([-:\[\]{}"'&*!|>#, \t\n?]|[a-z]{1,3}|[0-9]{1,2}){0,60}"#
        ) {
            if let Ok(documents) = parse_documents(&text) {
                for document in &documents {
                    let _ = from_node::<TestRule>(document);
                    let _ = from_node::<HashMap<String, Vec<Notify>>>(document);
                }
            }
        }

        #[test]
        fn integers_resolve_to_themselves(value: i64) {
            let node = parse_one(&format!("[{value}]"));
            prop_assert_eq!(node.kind, NodeKind::Seq(vec![Node {
                position: pos(1, 2),
                kind: NodeKind::Int(value),
            }]));
        }
    }
}
