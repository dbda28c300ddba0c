//! [`Labels`]: flat string labels (and annotations), sorted by name, as a small sorted vector.
//!
//! Label sets hold a handful of entries. A `BTreeMap<String, String>` allocates a 544-byte
//! node for its first entry, which with labels and annotations was half of what an alert
//! held by the router cost (100 000 alerts after a storm: ~1 KB of ~2 KB each). A sorted
//! vector holds the same entries in 48 bytes each, is searched by bisection, and keeps
//! everything a map gave: sorted iteration (renderings and fingerprints are stable), one
//! value per name, and the JSON shape of an object.

use std::borrow::Borrow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Flat string labels, sorted by name, one value per name.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

/// An alert's annotations (`summary`, `description`, …): the same shape as its labels.
pub type Annotations = Labels;

impl Labels {
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    fn position<Q>(&self, name: &Q) -> Result<usize, usize>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.binary_search_by(|(key, _)| key.borrow().cmp(name))
    }

    pub fn get<Q>(&self, name: &Q) -> Option<&String>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(name).ok().map(|at| &self.0[at].1)
    }

    pub fn get_mut<Q>(&mut self, name: &Q) -> Option<&mut String>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(name).ok().map(|at| &mut self.0[at].1)
    }

    pub fn contains_key<Q>(&self, name: &Q) -> bool
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.position(name.as_str()) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    pub fn remove<Q>(&mut self, name: &Q) -> Option<String>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(name).ok().map(|at| self.0.remove(at).1)
    }

    /// The value of `name`, inserted by `value` first when missing.
    pub fn get_or_insert_with(
        &mut self,
        name: &str,
        value: impl FnOnce() -> String,
    ) -> &mut String {
        let at = match self.position(name) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (name.to_owned(), value()));
                at
            }
        };
        &mut self.0[at].1
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut String) -> bool) {
        self.0.retain_mut(|(name, value)| keep(name, value));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Entries in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(name, _)| name)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.0.iter_mut().map(|(_, value)| value)
    }

    /// Gives back spare capacity: for sets kept long (an alert held by the router).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

/// [`Labels::iter`]: `(name, value)` in name order.
#[derive(Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, value)| (name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(name, value)| (name, value))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Extend<(String, String)> for Labels {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, entries: I) {
        for (name, value) in entries {
            self.insert(name, value);
        }
    }
}

impl FromIterator<(String, String)> for Labels {
    /// As a map collects: the last value given for a name wins.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(entries: I) -> Self {
        let mut entries: Vec<(String, String)> = entries.into_iter().collect();
        // Stable: among equal names the last given stays last, and is the one kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut labels: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match labels.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => labels.push(entry),
            }
        }
        Self(labels)
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<std::collections::BTreeMap<String, String>> for Labels {
    fn from(map: std::collections::BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        Self(map.into_iter().collect())
    }
}

impl<Q> std::ops::Index<&Q> for Labels
where
    String: Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = String;

    fn index(&self, name: &Q) -> &String {
        self.get(name).expect("no label of that name")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
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
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                // Stored label sets are sorted already; anything else is sorted here.
                if entries.is_sorted_by(|a, b| a.0 < b.0) {
                    return Ok(Labels(entries));
                }
                Ok(entries.into_iter().collect())
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
        assert_eq!(
            set.get("b").map(String::as_str),
            Some("3"),
            "the last given wins"
        );
        assert_eq!(set.insert("c".into(), "4".into()), None);
        assert_eq!(set.insert("a".into(), "5".into()).as_deref(), Some("2"));
        let names: Vec<&str> = set.keys().map(String::as_str).collect();
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
}
