//! [`Labels`]: flat string labels (and annotations), sorted by name, packed in one string.
//!
//! Label sets hold a handful of short entries, and the router keeps one or two per alert
//! for as long as it fires: a storm of 100 000 alerts is 100 000 of them. A
//! `BTreeMap<String, String>` allocated a 544-byte node for its first entry; a vector of
//! `(String, String)` still cost 48 bytes an entry plus an allocation per name and per
//! value (32 bytes at least each, however short). Here every name and value lies back to
//! back in one string, with one offset per name and value beside it: two allocations per
//! set, the size of the text and four bytes a string. What a map gave stays: sorted
//! iteration (renderings and fingerprints are stable), one value per name, bisection by
//! name, and the JSON shape of an object. A change rebuilds the set, which for a handful
//! of entries costs what a vector's shifting did.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Flat string labels, sorted by name, one value per name.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Names and values back to back in name order: `name₀ value₀ name₁ value₁ …`.
    text: Box<str>,
    /// Where each name and value ends in `text`: two per entry.
    ends: Box<[u32]>,
}

/// An alert's annotations (`summary`, `description`, …): the same shape as its labels.
pub type Annotations = Labels;

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packs entries already sorted by name and unique.
    fn pack<K: AsRef<str>, V: AsRef<str>>(entries: &[(K, V)]) -> Self {
        let size = entries
            .iter()
            .map(|(name, value)| name.as_ref().len() + value.as_ref().len())
            .sum();
        let mut text = String::with_capacity(size);
        let mut ends = Vec::with_capacity(2 * entries.len());
        for (name, value) in entries {
            for part in [name.as_ref(), value.as_ref()] {
                text.push_str(part);
                // Label sets come from bounded request bodies, files and payloads.
                ends.push(u32::try_from(text.len()).expect("a label set under 4 GiB"));
            }
        }
        Self {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// Sorts by name (stably: among equal names the last given stays last, and is the one
    /// kept, as when a map collects) and packs.
    fn sort_and_pack<K: AsRef<str>, V: AsRef<str>>(mut entries: Vec<(K, V)>) -> Self {
        if !entries.is_sorted_by(|a, b| a.0.as_ref() < b.0.as_ref()) {
            entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            entries.reverse();
            entries.dedup_by(|later, earlier| later.0.as_ref() == earlier.0.as_ref());
            entries.reverse();
        }
        Self::pack(&entries)
    }

    /// The `index`th string of `text` (names even, values odd).
    fn part(&self, index: usize) -> &str {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.text[start..self.ends[index] as usize]
    }

    fn entry(&self, at: usize) -> (&str, &str) {
        (self.part(2 * at), self.part(2 * at + 1))
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            match self.part(2 * middle).cmp(name) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|at| self.part(2 * at + 1))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let (name, value) = (name.as_str(), value.as_str());
        let mut entries: Vec<(&str, &str)> = self.iter().collect();
        let replaced = match self.position(name) {
            Ok(at) => Some(std::mem::replace(&mut entries[at].1, value).to_owned()),
            Err(at) => {
                entries.insert(at, (name, value));
                None
            }
        };
        *self = Self::pack(&entries);
        replaced
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.position(name).ok()?;
        let mut entries: Vec<(&str, &str)> = self.iter().collect();
        let (_, value) = entries.remove(at);
        let value = value.to_owned();
        *self = Self::pack(&entries);
        Some(value)
    }

    /// Keeps the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let kept: Vec<(&str, &str)> = self.iter().filter(|(n, v)| keep(n, v)).collect();
        if kept.len() < self.len() {
            *self = Self::pack(&kept);
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Entries in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            labels: self,
            front: 0,
            back: self.len(),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(name, _)| name)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(_, value)| value)
    }
}

/// [`Labels::iter`]: `(name, value)` in name order.
#[derive(Clone)]
pub struct Iter<'a> {
    labels: &'a Labels,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.front += 1;
            self.labels.entry(self.front - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.back - self.front;
        (left, Some(left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            self.labels.entry(self.back)
        })
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Labels {
    /// As a map extends: a name given again takes the new value.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        let added: Vec<(K, V)> = entries.into_iter().collect();
        if added.is_empty() {
            return;
        }
        let all: Vec<(&str, &str)> = self
            .iter()
            .chain(added.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
            .collect();
        *self = Self::sort_and_pack(all);
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    /// As a map collects: the last value given for a name wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        Self::sort_and_pack(entries.into_iter().collect())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<std::collections::BTreeMap<String, String>> for Labels {
    fn from(map: std::collections::BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        Self::pack(&map.into_iter().collect::<Vec<_>>())
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name).expect("no label of that name")
    }
}

/// Entry by entry, as the map it replaces compared (not by the packed text).
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A string borrowed from the input when it can be (no escapes in it), else owned: label
/// sets are packed right away, so their parts need not be allocated one by one.
struct Part<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Part<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartVisitor;

        impl<'de> Visitor<'de> for PartVisitor {
            type Value = Part<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Part<'de>, E> {
                Ok(Part(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Part<'de>, E> {
                Ok(Part(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Part<'de>, E> {
                Ok(Part(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(PartVisitor)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;

        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = Labels;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of string labels")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Labels, A::Error> {
                let mut entries: Vec<(Cow<'de, str>, Cow<'de, str>)> =
                    Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some((name, value)) = access.next_entry::<Part<'de>, Part<'de>>()? {
                    entries.push((name.0, value.0));
                }
                Ok(Labels::sort_and_pack(entries))
            }
        }

        deserializer.deserialize_map(LabelsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(entries: &[(&str, &str)]) -> Labels {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn entries_stay_sorted_and_unique_by_name() {
        let mut set = labels(&[("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(set.iter().collect::<Vec<_>>().len(), 2);
        assert_eq!(set.get("b"), Some("3"), "the last given wins");
        assert_eq!(set.insert("c".into(), "4".into()), None);
        assert_eq!(set.insert("a".into(), "5".into()).as_deref(), Some("2"));
        let names: Vec<&str> = set.keys().collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(set.remove("b").as_deref(), Some("3"));
        assert!(!set.contains_key("b"));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn it_is_a_json_object_like_the_map_it_replaces() {
        let set = labels(&[("severity", "page"), ("alertname", "Disk")]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"{"alertname":"Disk","severity":"page"}"#);
        let map: std::collections::BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
        assert_eq!(Labels::from(map), set);
        let unsorted: Labels = serde_json::from_str(r#"{"z":"1","a":"2","z":"3"}"#).unwrap();
        assert_eq!(unsorted, labels(&[("a", "2"), ("z", "3")]));
        assert!(serde_json::from_str::<Labels>(r#"{"a":1}"#).is_err());
    }

    #[test]
    fn order_and_equality_are_the_maps() {
        let a = labels(&[("a", "1"), ("b", "2")]);
        let b = labels(&[("b", "2"), ("a", "1")]);
        assert_eq!(a, b);
        let map = |set: &Labels| -> std::collections::BTreeMap<String, String> {
            set.clone().into_iter().collect()
        };
        let c = labels(&[("a", "1"), ("c", "0")]);
        assert_eq!(a.cmp(&c), map(&a).cmp(&map(&c)));
    }

    #[test]
    fn changes_keep_it_packed_sorted_and_unique() {
        let mut set = labels(&[("m", "1")]);
        set.extend([("z", "2"), ("a", "3"), ("m", "4")]);
        assert_eq!(set, labels(&[("a", "3"), ("m", "4"), ("z", "2")]));
        set.retain(|name, _| name != "m");
        assert_eq!(set.iter().collect::<Vec<_>>(), [("a", "3"), ("z", "2")]);
        assert_eq!(set.iter().next_back(), Some(("z", "2")));
        assert_eq!(set.values().collect::<Vec<_>>(), ["3", "2"]);
        set.insert("".into(), "".into());
        assert_eq!(
            set.get(""),
            Some(""),
            "an empty name and value are entries too"
        );
        assert_eq!(&set["a"], "3");
        set.clear();
        assert!(set.is_empty() && set.get("a").is_none());
    }

    #[test]
    fn names_and_values_that_run_together_stay_apart() {
        // Same text once packed ("abc"), different entries.
        let one = labels(&[("a", "bc")]);
        let other = labels(&[("ab", "c")]);
        assert_ne!(one, other);
        assert_eq!(one.get("a"), Some("bc"));
        assert_eq!(other.get("ab"), Some("c"));
        assert!(one.get("ab").is_none());
        let odd = labels(&[("ñandú", "\u{200f}שלום"), ("k", "<script>\"\\")]);
        let json = serde_json::to_string(&odd).unwrap();
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), odd);
    }

    #[test]
    fn escaped_and_plain_strings_deserialize_alike() {
        let set: Labels = serde_json::from_str(r#"{"b":"x\ny","a":"plain"}"#).unwrap();
        assert_eq!(set.get("b"), Some("x\ny"));
        assert_eq!(set.get("a"), Some("plain"));
        let from_value: Labels =
            serde_json::from_value(serde_json::json!({"b": "x\ny", "a": "plain"})).unwrap();
        assert_eq!(from_value, set);
    }
}
