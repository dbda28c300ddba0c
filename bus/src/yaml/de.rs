//! The serde deserializer over a [`Node`] tree: [`from_node`] and its errors.
//!
//! Types must match as written (a quoted `"5"` is not a number); every error is placed at the
//! innermost key or value it came from, and worded for a YAML author ("expected a list, found
//! a mapping", "unknown key `conditon`; did you mean `condition`?").

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use super::{Node, NodeKind, Position};

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
pub(super) fn unknown(what: &str, name: &str, expected: &[&str]) -> String {
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

/// "; did you mean `x`?" when one of `known` is a likely typo of `name`, else "".
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> String {
    known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.chars().count())
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Damerau-Levenshtein distance (optimal string alignment): the fewest insertions, deletions,
/// substitutions and swaps of two neighbouring characters turning `a` into `b`.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
