//! Subjects: the token path every event is addressed by.
//!
//! MQTT topics (`home/kitchen/temp`) and NATS subjects (`home.kitchen.temp`) become the same
//! subject, written with `/` between tokens. One pattern syntax then serves every source.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest subject accepted, in bytes. Keeps label and index memory bounded.
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// A validated subject: non-empty tokens joined by `/`.
///
/// Tokens are never empty, never a wildcard (`+…`, `#`, `>`, `*`), and hold no control
/// characters, so a subject can never be mistaken for a pattern.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

/// Why a string is not a valid subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject is empty")]
    Empty,
    #[error("subject is {len} bytes long; the limit is {MAX_SUBJECT_BYTES}")]
    TooLong { len: usize },
    #[error("subject `{subject}` has an empty token at position {position}")]
    EmptyToken { subject: String, position: usize },
    #[error(
        "subject token `{token}` is a wildcard; wildcards (`+`, `#`, `>`, `*`) belong in patterns, not subjects"
    )]
    Wildcard { token: String },
    #[error("subject contains a control character at byte {index}")]
    ControlCharacter { index: usize },
    #[error("NATS subject token `{token}` contains `/`, which separates subject tokens")]
    SlashInNatsToken { token: String },
}

impl Subject {
    /// Parses a `/`-separated subject (the form of MQTT topics, HTTP paths and CloudEvents
    /// `subject` attributes).
    pub fn parse(path: &str) -> Result<Self, SubjectError> {
        Self::check_text(path)?;
        for (position, token) in path.split('/').enumerate() {
            Self::check_token(token, position, || path.to_owned())?;
        }
        Ok(Self(path.to_owned()))
    }

    /// Parses a `.`-separated NATS subject into the same token path, with the same checks,
    /// in one pass and one allocation.
    pub fn from_nats(subject: &str) -> Result<Self, SubjectError> {
        if subject.contains('/')
            && let Some(token) = subject.split('.').find(|t| t.contains('/'))
        {
            return Err(SubjectError::SlashInNatsToken {
                token: token.to_owned(),
            });
        }
        // `.` and `/` are one byte each: lengths and byte positions are the same in both forms.
        Self::check_text(subject)?;
        let mut path = String::with_capacity(subject.len());
        for (position, token) in subject.split('.').enumerate() {
            Self::check_token(token, position, || subject.replace('.', "/"))?;
            if position > 0 {
                path.push('/');
            }
            path.push_str(token);
        }
        Ok(Self(path))
    }

    /// The checks on the whole text: not empty, not too long, no control characters.
    fn check_text(text: &str) -> Result<(), SubjectError> {
        if text.is_empty() {
            return Err(SubjectError::Empty);
        }
        if text.len() > MAX_SUBJECT_BYTES {
            return Err(SubjectError::TooLong { len: text.len() });
        }
        if let Some(index) = text.bytes().position(|b| b.is_ascii_control()) {
            return Err(SubjectError::ControlCharacter { index });
        }
        Ok(())
    }

    /// The checks on one token: not empty, not a wildcard. `path` makes the subject for an
    /// error (only then).
    fn check_token(
        token: &str,
        position: usize,
        path: impl FnOnce() -> String,
    ) -> Result<(), SubjectError> {
        if token.is_empty() {
            return Err(SubjectError::EmptyToken {
                subject: path(),
                position,
            });
        }
        if token.starts_with('+') || matches!(token, "#" | ">" | "*") {
            return Err(SubjectError::Wildcard {
                token: token.to_owned(),
            });
        }
        Ok(())
    }

    /// The subject as a `/`-separated path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tokens, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.split('/')
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({:?})", self.0)
    }
}

impl std::str::FromStr for Subject {
    type Err = SubjectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_paths() {
        let s = Subject::parse("home/kitchen/temp").unwrap();
        assert_eq!(s.tokens().collect::<Vec<_>>(), ["home", "kitchen", "temp"]);
        assert_eq!(s.to_string(), "home/kitchen/temp");
    }

    #[test]
    fn mqtt_and_nats_forms_are_the_same_subject() {
        assert_eq!(
            Subject::from_nats("home.kitchen.temp").unwrap(),
            Subject::parse("home/kitchen/temp").unwrap()
        );
        // A dot inside an MQTT topic level stays part of the token.
        assert_eq!(Subject::parse("a/b.c").unwrap().tokens().count(), 2);
    }

    proptest::proptest! {
        /// A NATS subject parses as its `/` form would, error for error, whatever it holds.
        #[test]
        fn a_nats_subject_is_its_slash_form(subject in "[a-c.+#>*\\x00 ñ]{0,12}") {
            proptest::prop_assert_eq!(
                Subject::from_nats(&subject),
                Subject::parse(&subject.replace('.', "/"))
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_subject() {
        assert_eq!(Subject::parse(""), Err(SubjectError::Empty));
        assert!(matches!(
            Subject::parse("a//b"),
            Err(SubjectError::EmptyToken { position: 1, .. })
        ));
        assert!(matches!(
            Subject::parse("/a"),
            Err(SubjectError::EmptyToken { position: 0, .. })
        ));
        for wild in ["a/+/b", "a/+room", "a/#", "a/>", "*"] {
            assert!(
                matches!(Subject::parse(wild), Err(SubjectError::Wildcard { .. })),
                "{wild}"
            );
        }
        assert!(matches!(
            Subject::parse("a/b\nc"),
            Err(SubjectError::ControlCharacter { index: 3 })
        ));
        assert!(matches!(
            Subject::parse(&"x".repeat(MAX_SUBJECT_BYTES + 1)),
            Err(SubjectError::TooLong { .. })
        ));
        assert!(matches!(
            Subject::from_nats("a/b.c"),
            Err(SubjectError::SlashInNatsToken { .. })
        ));
    }
}
