//! The subject index: which rules an event's subject can match, without trying every rule.
//!
//! A trie over pattern tokens: literal tokens are map lookups, `+` / `+name` share one
//! wildcard branch, and `#` / `>` sit on the node where the rest begins. Looking up a subject
//! walks only the branches its tokens can take, so the cost grows with the rules that match,
//! not with the number of rules.
//!
//! Literal tokens are looked up by a 64-bit hash, not compared: comparing read each
//! rule token's bytes, elsewhere in memory, on every event. Two different tokens with the
//! same hash would make a rule a candidate for a subject it does not match; the engine
//! matches every candidate's pattern anyway, so such a collision costs a match attempt,
//! never a wrong result.

use std::collections::HashMap;

use atalaya_bus::{Pattern, Subject};

use crate::engine::KeyHash;

#[derive(Debug, Default)]
pub struct SubjectIndex {
    root: TrieNode,
}

#[derive(Debug, Default)]
struct TrieNode {
    /// Children by the [`token_hash`] of their literal token.
    literal: HashMap<u64, TrieNode, KeyHash>,
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
                literal => node = node.literal.entry(token_hash(literal)).or_default(),
            }
        }
        node.exact.push(id);
    }

    /// The ids of the rules whose pattern matches `subject`, in ascending order (and, after
    /// a 64-bit hash collision, one that does not: see the module docs).
    pub fn matches(&self, subject: &Subject) -> Vec<usize> {
        let tokens: Vec<&str> = subject.tokens().collect();
        let mut found = Vec::new();
        self.matches_tokens(&tokens, &mut found);
        found
    }

    /// [`matches`](Self::matches) for a subject given as its tokens, into `found`, which is
    /// cleared first: the engine splits each subject once, reuses one buffer for every
    /// event, and matches each candidate's pattern.
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
        if !node.literal.is_empty()
            && let Some(next) = node.literal.get(&token_hash(first))
        {
            Self::walk(next, rest, found);
        }
        if let Some(next) = &node.wildcard {
            Self::walk(next, rest, found);
        }
    }
}

/// A literal token's key in the trie: its 64-bit FNV-1a hash (a few bytes, hashed at
/// each level of every event's walk: cheap). A chosen collision only adds a candidate the
/// engine rejects.
fn token_hash(token: &str) -> u64 {
    token.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
