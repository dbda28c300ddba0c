//! A rule's series by fingerprint: the series side by side in one vector, and a hash map
//! from fingerprint to position.
//!
//! Not a `HashMap<u64, Series>`: with thousands of series per rule, reaching an event's
//! series is a cache and TLB miss, and a hash table's buckets, a third of them empty and
//! each the size of a series, spread the series over twice the memory. Here the series are
//! dense, and the index (16 bytes an entry) stays close to the cache. Series are never
//! removed one by one: a rule's series go together, with its state.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{KeyHash, Series};

#[derive(Default)]
pub(super) struct SeriesMap {
    /// Position in `series` by fingerprint hash.
    positions: HashMap<u64, usize, KeyHash>,
    series: Vec<(u64, Series)>,
}

impl SeriesMap {
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut Series> {
        let position = *self.positions.get(&key)?;
        self.series.get_mut(position).map(|(_, series)| series)
    }

    /// The series `key`; when there is none, the one `new` makes, if it makes one.
    pub fn get_or_insert_with(
        &mut self,
        key: u64,
        new: impl FnOnce() -> Option<Series>,
    ) -> Option<&mut Series> {
        let position = match self.positions.entry(key) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                self.series.push((key, new()?));
                *entry.insert(self.series.len() - 1)
            }
        };
        self.series.get_mut(position).map(|(_, series)| series)
    }

    /// Stores `series` as `key`, replacing the series there was.
    pub fn insert(&mut self, key: u64, series: Series) {
        match self.positions.entry(key) {
            Entry::Occupied(entry) => {
                if let Some(slot) = self.series.get_mut(*entry.get()) {
                    slot.1 = series;
                }
            }
            Entry::Vacant(entry) => {
                self.series.push((key, series));
                entry.insert(self.series.len() - 1);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Series)> {
        self.series.iter().map(|(key, series)| (*key, series))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut Series)> {
        self.series.iter_mut().map(|(key, series)| (*key, series))
    }
}

impl IntoIterator for SeriesMap {
    type Item = (u64, Series);
    type IntoIter = std::vec::IntoIter<(u64, Series)>;

    fn into_iter(self) -> Self::IntoIter {
        self.series.into_iter()
    }
}
