//! Silences: matchers and a time span during which matching alerts are not notified.

use atalaya_bus::Labels;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::matcher::{MatchOp, Matcher, MatcherError, Matchers};

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    Active,
    Expired,
}

/// A matcher as stored and shown (Alertmanager's API shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "default_true")]
    pub is_equal: bool,
}

fn default_true() -> bool {
    true
}

impl SilenceMatcher {
    pub fn compile(&self) -> Result<Matcher, MatcherError> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(&self.name, op, &self.value)
    }

    pub fn from_matcher(m: &Matcher) -> Self {
        Self {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
        }
    }
}

/// A silence as created through the API or `atalaya silence add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub updated_at: Timestamp,
}

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SilenceError {
    #[error("a silence needs at least one matcher")]
    NoMatchers,
    #[error("matcher {index}: {source}")]
    Matcher {
        index: usize,
        #[source]
        source: MatcherError,
    },
    #[error("a silence whose matchers all match the empty string would silence every alert")]
    MatchesEverything,
    #[error("endsAt must be after startsAt")]
    EndsBeforeStart,
    #[error("endsAt is in the past")]
    EndsInPast,
    #[error("no silence with id `{0}`")]
    NotFound(String),
    #[error("silence `{0}` has already expired")]
    AlreadyExpired(String),
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Checks the silence and compiles its matchers.
    pub fn compile(&self, now: Timestamp) -> Result<Matchers, SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        let matchers = self
            .matchers
            .iter()
            .enumerate()
            .map(|(index, m)| {
                m.compile()
                    .map_err(|source| SilenceError::Matcher { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let matchers = Matchers(matchers);
        if matchers.matches(&Labels::new()) {
            return Err(SilenceError::MatchesEverything);
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::EndsBeforeStart);
        }
        if self.ends_at <= now {
            return Err(SilenceError::EndsInPast);
        }
        Ok(matchers)
    }
}
