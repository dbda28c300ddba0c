//! Subject patterns, one syntax for every source.
//!
//! A pattern is `/`-separated tokens:
//! - a literal token matches itself;
//! - `+` matches exactly one token;
//! - `+name` matches exactly one token and captures it into label `name`;
//! - `#` (last only) matches the rest: zero or more tokens, as in MQTT (`home/#` matches
//!   `home` and `home/kitchen/temp`);
//! - `>` (last only) matches the rest: one or more tokens, as in NATS.

use std::fmt;

use crate::event::{Labels, is_valid_label_name};
use crate::subject::Subject;

/// A compiled subject pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<PatternToken>,
    /// The positions of the capturing tokens, ordered by label name: what
    /// [`Pattern::match_tokens`] hands out, in the order label maps and fingerprints use.
    captures_by_name: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PatternToken {
    Literal(String),
    Any,
    Capture(String),
    /// `#` (`min_one == false`) or `>` (`min_one == true`).
    Rest {
        min_one: bool,
    },
}

/// Why a string is not a valid pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern is empty")]
    Empty,
    #[error("pattern `{pattern}` has an empty token at position {position}")]
    EmptyToken { pattern: String, position: usize },
    #[error("`{token}` must be the last token of the pattern")]
    RestNotLast { token: String },
    #[error(
        "`+{name}`: capture names start with a letter or `_` and hold only letters, digits and `_`"
    )]
    InvalidCaptureName { name: String },
    #[error("label `{name}` is captured twice")]
    DuplicateCapture { name: String },
    #[error("token `{token}` mixes a wildcard with text; a wildcard is a whole token")]
    MixedWildcard { token: String },
}

impl Pattern {
    /// Parses a `/`-separated pattern.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        let parts: Vec<&str> = pattern.split('/').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (position, part) in parts.iter().enumerate() {
            let last = position + 1 == parts.len();
            let token = match *part {
                "" => {
                    return Err(PatternError::EmptyToken {
                        pattern: pattern.to_owned(),
                        position,
                    });
                }
                "+" => PatternToken::Any,
                "#" | ">" if !last => {
                    return Err(PatternError::RestNotLast {
                        token: (*part).to_owned(),
                    });
                }
                "#" => PatternToken::Rest { min_one: false },
                ">" => PatternToken::Rest { min_one: true },
                capture if capture.starts_with('+') => {
                    let name = &capture[1..];
                    if !is_valid_label_name(name) {
                        return Err(PatternError::InvalidCaptureName {
                            name: name.to_owned(),
                        });
                    }
                    if tokens
                        .iter()
                        .any(|t| matches!(t, PatternToken::Capture(n) if n == name))
                    {
                        return Err(PatternError::DuplicateCapture {
                            name: name.to_owned(),
                        });
                    }
                    PatternToken::Capture(name.to_owned())
                }
                literal if literal.contains(['+', '#']) || literal == "*" => {
                    return Err(PatternError::MixedWildcard {
                        token: literal.to_owned(),
                    });
                }
                literal => PatternToken::Literal(literal.to_owned()),
            };
            tokens.push(token);
        }
        let mut captures_by_name: Vec<usize> = (0..tokens.len())
            .filter(|&i| matches!(tokens[i], PatternToken::Capture(_)))
            .collect();
        captures_by_name.sort_by_key(|&i| match &tokens[i] {
            PatternToken::Capture(name) => name.as_str(),
            _ => "",
        });
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
            captures_by_name,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The names of the labels this pattern captures, in order.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().filter_map(|t| match t {
            PatternToken::Capture(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether the captures alone tell matching subjects apart: every wildcard captures
    /// (`+name`), none is anonymous (`+`) or a rest (`#`, `>`). Two subjects that match
    /// with the same captures are then the same subject.
    pub fn captures_identify_subject(&self) -> bool {
        self.tokens
            .iter()
            .all(|t| matches!(t, PatternToken::Literal(_) | PatternToken::Capture(_)))
    }

    /// Whether `subject` matches.
    pub fn is_match(&self, subject: &Subject) -> bool {
        self.match_with(subject, |_, _| {})
    }

    /// Matches `subject`, returning the captured `(label, token)` pairs on a match.
    pub fn captures<'s>(&'s self, subject: &'s Subject) -> Option<Vec<(&'s str, &'s str)>> {
        let mut captured = Vec::new();
        self.captures_into(subject, &mut captured)
            .then_some(captured)
    }

    /// Matches `subject`, appending the captured `(label, token)` pairs to `captured`;
    /// whether it matched (on no match, `captured` may hold some pairs). For a caller that
    /// reuses one buffer.
    pub fn captures_into<'s>(
        &'s self,
        subject: &'s Subject,
        captured: &mut Vec<(&'s str, &'s str)>,
    ) -> bool {
        self.match_with(subject, |name, token| captured.push((name, token)))
    }

    /// Matches a subject given as its tokens ([`Subject::tokens`], split once however many
    /// patterns are tried): on a match, the captured `(label, token)` pairs, sorted by
    /// label name.
    pub fn match_tokens<'a>(
        &'a self,
        tokens: &[&'a str],
    ) -> Option<impl Iterator<Item = (&'a str, &'a str)> + Clone> {
        let mut rest = tokens;
        for token in &self.tokens {
            match token {
                PatternToken::Rest { min_one } => {
                    if *min_one && rest.is_empty() {
                        return None;
                    }
                    rest = &[];
                    break;
                }
                PatternToken::Literal(literal) => match rest.split_first() {
                    Some((t, tail)) if t == literal => rest = tail,
                    _ => return None,
                },
                PatternToken::Any | PatternToken::Capture(_) => rest = rest.split_first()?.1,
            }
        }
        if !rest.is_empty() {
            return None;
        }
        // A match consumed a subject token at each capture's position: none is skipped.
        Some(self.captures_by_name.iter().filter_map(move |&i| {
            match (&self.tokens[i], tokens.get(i)) {
                (PatternToken::Capture(name), Some(token)) => Some((name.as_str(), *token)),
                _ => None,
            }
        }))
    }

    /// Matches `subject` and, on a match, writes the captures into `labels` (a capture
    /// overrides a label of the same name).
    pub fn capture_into(&self, subject: &Subject, labels: &mut Labels) -> bool {
        match self.captures(subject) {
            Some(captured) => {
                for (name, token) in captured {
                    labels.insert(name.to_owned(), token.to_owned());
                }
                true
            }
            None => false,
        }
    }

    fn match_with<'s>(
        &'s self,
        subject: &'s Subject,
        mut on_capture: impl FnMut(&'s str, &'s str),
    ) -> bool {
        let mut subject_tokens = subject.tokens();
        for token in &self.tokens {
            match token {
                PatternToken::Rest { min_one } => {
                    return !*min_one || subject_tokens.next().is_some();
                }
                PatternToken::Literal(literal) => match subject_tokens.next() {
                    Some(t) if t == literal => {}
                    _ => return false,
                },
                PatternToken::Any => {
                    if subject_tokens.next().is_none() {
                        return false;
                    }
                }
                PatternToken::Capture(name) => match subject_tokens.next() {
                    Some(t) => on_capture(name, t),
                    None => return false,
                },
            }
        }
        subject_tokens.next().is_none()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn subject(s: &str) -> Subject {
        Subject::parse(s).unwrap()
    }

    #[test]
    fn wildcards_and_captures() {
        let p = Pattern::parse("home/+room/+/temp").unwrap();
        assert_eq!(
            p.captures(&subject("home/kitchen/esp1/temp")),
            Some(vec![("room", "kitchen")])
        );
        assert!(!p.is_match(&subject("home/kitchen/temp")));
        assert!(!p.is_match(&subject("home/kitchen/esp1/temp/raw")));
        assert_eq!(p.capture_names().collect::<Vec<_>>(), ["room"]);
    }

    #[test]
    fn captures_identify_the_subject_only_without_anonymous_wildcards() {
        let identifies = |p: &str| Pattern::parse(p).unwrap().captures_identify_subject();
        assert!(identifies("home/+room/+sensor/temp"));
        assert!(identifies("home/kitchen"));
        for p in ["home/+room/+/temp", "home/+room/#", "home/>"] {
            assert!(!identifies(p), "{p}");
        }
    }

    #[test]
    fn hash_matches_zero_or_more_and_gt_one_or_more() {
        let hash = Pattern::parse("home/#").unwrap();
        assert!(hash.is_match(&subject("home")));
        assert!(hash.is_match(&subject("home/a/b/c")));
        assert!(!hash.is_match(&subject("garden/a")));
        let gt = Pattern::parse("home/>").unwrap();
        assert!(!gt.is_match(&subject("home")));
        assert!(gt.is_match(&subject("home/a")));
        assert!(
            Pattern::parse("#")
                .unwrap()
                .is_match(&subject("anything/at/all"))
        );
    }

    #[test]
    fn capture_into_overrides_labels() {
        let p = Pattern::parse("k8s/node/+node/ready").unwrap();
        let mut labels = Labels::from([("node".to_owned(), "old".to_owned())]);
        assert!(p.capture_into(&subject("k8s/node/pi1/ready"), &mut labels));
        assert_eq!(&labels["node"], "pi1");
    }

    #[test]
    fn rejects_bad_patterns() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::parse("a/#/b"),
            Err(PatternError::RestNotLast { .. })
        ));
        assert!(matches!(
            Pattern::parse("a/+1x"),
            Err(PatternError::InvalidCaptureName { .. })
        ));
        assert!(matches!(
            Pattern::parse("+a/+a"),
            Err(PatternError::DuplicateCapture { .. })
        ));
        assert!(matches!(
            Pattern::parse("a/b#"),
            Err(PatternError::MixedWildcard { .. })
        ));
        assert!(matches!(
            Pattern::parse("a//b"),
            Err(PatternError::EmptyToken { .. })
        ));
    }

    fn token() -> impl Strategy<Value = String> {
        "[a-z0-9_.-]{1,6}"
    }

    fn tokens() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(token(), 1..8)
    }

    proptest! {
        #[test]
        fn literal_pattern_matches_only_its_own_subject(a in tokens(), b in tokens()) {
            let pattern = Pattern::parse(&a.join("/")).unwrap();
            prop_assert!(pattern.is_match(&subject(&a.join("/"))));
            prop_assert_eq!(pattern.is_match(&subject(&b.join("/"))), a == b);
        }

        #[test]
        fn captures_return_the_tokens_they_replace(
            toks in tokens(),
            mask in prop::collection::vec(0u8..3, 8),
        ) {
            // 0 keeps the literal, 1 puts `+`, 2 captures into a label named after the position.
            let mut expected = Vec::new();
            let parts: Vec<String> = toks.iter().enumerate().map(|(i, t)| match mask[i] {
                0 => t.clone(),
                1 => "+".to_owned(),
                _ => { expected.push((format!("l{i}"), t.clone())); format!("+l{i}") }
            }).collect();
            let pattern = Pattern::parse(&parts.join("/")).unwrap();
            let s = subject(&toks.join("/"));
            let got: Vec<(String, String)> = pattern
                .captures(&s)
                .expect("a pattern built from the subject matches it")
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn rest_matches_every_extension_of_the_prefix(
            prefix in tokens(),
            rest in prop::collection::vec(token(), 0..5),
        ) {
            let s = subject(&prefix.iter().chain(&rest).cloned().collect::<Vec<_>>().join("/"));
            let hash = Pattern::parse(&format!("{}/#", prefix.join("/"))).unwrap();
            let gt = Pattern::parse(&format!("{}/>", prefix.join("/"))).unwrap();
            prop_assert!(hash.is_match(&s));
            prop_assert_eq!(gt.is_match(&s), !rest.is_empty());
        }

        #[test]
        fn wildcard_count_must_equal_token_count(toks in tokens(), n in 1usize..9) {
            let pattern = Pattern::parse(&vec!["+"; n].join("/")).unwrap();
            prop_assert_eq!(pattern.is_match(&subject(&toks.join("/"))), n == toks.len());
        }

        #[test]
        fn matching_tokens_agrees_with_matching_the_subject(
            pattern in "(a|b|\\+|\\+x|\\+y)(/(a|b|\\+|\\+z|\\+w)){0,3}(/(#|>))?",
            subject in "(a|b|c)(/(a|b|c)){0,4}",
        ) {
            if let Ok(pattern) = Pattern::parse(&pattern) {
                let subject = Subject::parse(&subject).unwrap();
                let tokens: Vec<&str> = subject.tokens().collect();
                let expected = pattern.captures(&subject).map(|mut c| { c.sort_unstable(); c });
                let got = pattern.match_tokens(&tokens).map(|c| c.collect::<Vec<_>>());
                prop_assert_eq!(got, expected);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_input(p in "\\PC{0,40}", s in "\\PC{0,40}") {
            if let (Ok(pattern), Ok(subject)) = (Pattern::parse(&p), Subject::parse(&s)) {
                let _ = pattern.captures(&subject);
                let tokens: Vec<&str> = subject.tokens().collect();
                let _ = pattern.match_tokens(&tokens).map(Iterator::count);
            }
        }

        #[test]
        fn nats_and_mqtt_forms_match_alike(toks in prop::collection::vec("[a-z0-9_-]{1,6}", 1..8)) {
            let pattern = Pattern::parse(&toks.join("/")).unwrap();
            prop_assert!(pattern.is_match(&Subject::from_nats(&toks.join(".")).unwrap()));
        }
    }
}
