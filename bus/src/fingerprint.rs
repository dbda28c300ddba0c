//! Fingerprints: the stable 64-bit FNV-1a hash that names alerts, series and
//! notifications, and its 16-hex-digit text. Stable across builds and platforms, unlike
//! `std`'s hasher, so identities persisted in the store survive upgrades.

use crate::Labels;

/// The 64-bit FNV-1a hash: stable across builds and platforms, unlike `std`'s hasher, so
/// fingerprints survive upgrades.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash = Fnv::default();
    for part in parts {
        hash.part(part);
    }
    hash.0
}

/// FNV-1a over parts, each followed by a 0xff byte (which UTF-8 never holds) so that
/// ("ab", "c") and ("a", "bc") differ.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn part(&mut self, part: &str) {
        for byte in part.bytes() {
            self.byte(byte);
        }
        self.byte(0xff);
    }

    fn byte(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// The fingerprint of `rule`'s series with `labels`, as a number (no allocation).
pub fn fingerprint_hash(rule: &str, labels: &Labels) -> u64 {
    fingerprint_hash_sorted(rule, labels.iter())
}

/// [`fingerprint_hash`] over label pairs already sorted by name.
pub fn fingerprint_hash_sorted<'a>(
    rule: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> u64 {
    fingerprint_hash_from(fingerprint_seed(rule), labels)
}

/// Where the fingerprints of `rule`'s series start: the hash of its name, which they all
/// share, computed once per rule by the engine.
pub fn fingerprint_seed(rule: &str) -> u64 {
    let mut hash = Fnv::default();
    hash.part(rule);
    hash.0
}

/// [`fingerprint_hash_sorted`] from the rule's [`fingerprint_seed`].
pub fn fingerprint_hash_from<'a>(
    seed: u64,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut hash = Fnv(seed);
    for (name, value) in labels {
        hash.part(name);
        hash.part(value);
    }
    hash.0
}

/// Alertmanager's fingerprint of a label set (prometheus/common's `LabelSet.Fingerprint`):
/// FNV-1a over the labels sorted by name, each name and value followed by the 0xff
/// separator byte. What Alertmanager shows as an alert's `fingerprint` in its API and
/// webhooks, so consumers that deduplicate by it see the same ids from atalaya.
pub fn labels_fingerprint(labels: &Labels) -> String {
    fingerprint_text(fingerprint_hash_from(Fnv::default().0, labels.iter()))
}

/// A fingerprint as written in alerts and the store: 16 hex digits. Written digit by
/// digit: every series persisted needs one, and `format!` cost several times more.
pub fn fingerprint_text(hash: u64) -> String {
    (0..16)
        .rev()
        .map(|digit| {
            let nibble = (hash >> (digit * 4)) & 0xf;
            // A nibble is below 16: always a hex digit.
            char::from_digit(nibble as u32, 16).unwrap_or('0')
        })
        .collect()
}

/// The fingerprint of `rule`'s series with `labels`.
pub fn fingerprint(rule: &str, labels: &Labels) -> String {
    fingerprint_text(fingerprint_hash(rule, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_separate_parts() {
        let labels = Labels::from([("node".to_owned(), "pi1".to_owned())]);
        assert_eq!(fingerprint("r", &labels), fingerprint("r", &labels.clone()));
        // Known value: changing this breaks every stored alert identity.
        assert_eq!(fingerprint("node_lost", &labels), "106bfd771a40bce9");
        for hash in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(fingerprint_text(hash), format!("{hash:016x}"));
        }
        let ab = Labels::from([("a".to_owned(), "bc".to_owned())]);
        let abc = Labels::from([("ab".to_owned(), "c".to_owned())]);
        assert_ne!(fingerprint("r", &ab), fingerprint("r", &abc));
    }

    /// Known values, as Alertmanager 0.25 shows them in `GET /api/v2/alerts` (and as
    /// prometheus/common computes them: the empty set is FNV-1a's offset basis).
    #[test]
    fn label_fingerprints_are_alertmanagers() {
        assert_eq!(labels_fingerprint(&Labels::new()), "cbf29ce484222325");
        let labels = Labels::from([
            ("alertname".to_owned(), "DiskFull".to_owned()),
            ("host".to_owned(), "pi-1".to_owned()),
        ]);
        assert_eq!(labels_fingerprint(&labels), "2df3876452eae553");
        let labels = Labels::from([
            ("alertname".to_owned(), "Hot".to_owned()),
            ("room".to_owned(), "kitchen".to_owned()),
            ("severity".to_owned(), "warning".to_owned()),
        ]);
        assert_eq!(labels_fingerprint(&labels), "fc381233ad890edd");
        let labels = Labels::from([("x".to_owned(), "é\"\\n".to_owned())]);
        assert_eq!(labels_fingerprint(&labels), "a829ccf66c82fee5");
    }
}
