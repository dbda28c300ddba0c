//! The subject index: which rules an event's subject can match, without trying every rule.
//!
//! A trie over pattern tokens: literal tokens are map lookups, `+` / `+name` share one
//! wildcard branch, and `#` / `>` sit on the node where the rest begins. Looking up a subject
//! walks only the branches its tokens can take, so the cost grows with the rules that match,
//! not with the number of rules.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use atalaya_bus::{Pattern, Subject};

#[derive(Debug, Default)]
pub struct SubjectIndex {
    root: TrieNode,
}

#[derive(Debug, Default)]
struct TrieNode {
    literal: HashMap<String, TrieNode, BuildHasherDefault<TokenHasher>>,
    wildcard: Option<Box<TrieNode>>,
    /// Rules whose pattern ends here.
    exact: Vec<usize>,
    /// Rules whose pattern continues with `#` (zero or more tokens) here.
    rest_zero: Vec<usize>,
    /// Rules whose pattern continues with `>` (one or more tokens) here.
    rest_one: Vec<usize>,
}

impl SubjectIndex {
    /// Indexes `patterns`; rule ids are their positions.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a Pattern>) -> Self {
        let mut index = Self::default();
        for (id, pattern) in patterns.into_iter().enumerate() {
            index.insert(id, pattern);
        }
        index
    }

    fn insert(&mut self, id: usize, pattern: &Pattern) {
        let mut node = &mut self.root;
        for token in pattern.as_str().split('/') {
            match token {
                "#" => return node.rest_zero.push(id),
                ">" => return node.rest_one.push(id),
                t if t.starts_with('+') => {
                    node = node.wildcard.get_or_insert_with(Box::default);
                }
                literal => node = node.literal.entry(literal.to_owned()).or_default(),
            }
        }
        node.exact.push(id);
    }

    /// The ids of the rules whose pattern matches `subject`, in ascending order.
    pub fn matches(&self, subject: &Subject) -> Vec<usize> {
        let tokens: Vec<&str> = subject.tokens().collect();
        let mut found = Vec::new();
        self.matches_tokens(&tokens, &mut found);
        found
    }

    /// [`matches`](Self::matches) for a subject given as its tokens, into `found`, which is
    /// cleared first: the engine splits each subject once, and reuses one buffer for every
    /// event.
    pub fn matches_tokens(&self, tokens: &[&str], found: &mut Vec<usize>) {
        found.clear();
        Self::walk(&self.root, tokens, found);
        found.sort_unstable();
        found.dedup();
    }

    fn walk(node: &TrieNode, tokens: &[&str], found: &mut Vec<usize>) {
        found.extend_from_slice(&node.rest_zero);
        let Some((first, rest)) = tokens.split_first() else {
            found.extend_from_slice(&node.exact);
            return;
        };
        found.extend_from_slice(&node.rest_one);
        if let Some(next) = node.literal.get(*first) {
            Self::walk(next, rest, found);
        }
        if let Some(next) = &node.wildcard {
            Self::walk(next, rest, found);
        }
    }
}

/// FNV-1a, for the trie's literal tokens: a few bytes each, hashed at every level of every
/// event's walk, where SipHash cost more than the rest of the lookup. Its protection
/// against chosen collisions is not needed here: the keys are the rules' own tokens, fixed
/// when the rules load, and a subject only looks them up.
struct TokenHasher(u64);

impl Default for TokenHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn finds_exactly_the_matching_patterns() {
        let patterns: Vec<Pattern> = [
            "home/+room/temp",
            "home/#",
            "k8s/node/+node/ready",
            "home/kitchen/>",
            "#",
            "a/b",
        ]
        .iter()
        .map(|p| Pattern::parse(p).unwrap())
        .collect();
        let index = SubjectIndex::new(&patterns);
        let s = |s: &str| Subject::parse(s).unwrap();
        assert_eq!(index.matches(&s("home/kitchen/temp")), [0, 1, 3, 4]);
        assert_eq!(index.matches(&s("home")), [1, 4]);
        assert_eq!(index.matches(&s("k8s/node/pi1/ready")), [2, 4]);
        assert_eq!(index.matches(&s("a/b")), [4, 5]);
        assert_eq!(index.matches(&s("a/b/c")), [4]);
    }

    proptest! {
        #[test]
        fn agrees_with_matching_every_pattern(
            patterns in prop::collection::vec("(a|b|\\+|\\+x)(/(a|b|\\+|\\+y)){0,3}(/(#|>))?", 1..20),
            subject in "(a|b|c)(/(a|b|c)){0,4}",
        ) {
            let patterns: Vec<Pattern> = patterns.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
            let subject = Subject::parse(&subject).unwrap();
            let expected: Vec<usize> = patterns.iter().enumerate().filter(|(_, p)| p.is_match(&subject)).map(|(i, _)| i).collect();
            prop_assert_eq!(SubjectIndex::new(&patterns).matches(&subject), expected);
        }
    }
}
