//! Silences: matchers and a time span during which matching alerts are not notified.

use atalaya_bus::Labels;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::matcher::{MatchOp, Matcher, MatcherError, Matchers};
use super::time_limits::{HORIZON, within_horizon};

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

    /// `name="value"`: what a silence on an alert's exact labels is made of.
    pub fn equal(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            is_regex: false,
            is_equal: true,
        }
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
    #[error(
        "these matchers would mute every alert; if that is meant, say so (`atalaya silence add --mute-all`, or `?mute_all=true` on the API)"
    )]
    MutesEveryAlert,
    #[error("{which} {at} is more than {} years ahead; silences end within that", HORIZON.as_hours() / 8766)]
    BeyondHorizon { which: &'static str, at: Timestamp },
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

    /// Checks a new silence (or a new version of one) and compiles its matchers: times in
    /// order, not over, within [`HORIZON`], and not muting every alert unless `mute_all`
    /// allows it.
    pub fn validate(&self, now: Timestamp, mute_all: MuteAll) -> Result<Matchers, SilenceError> {
        let matchers = self.compile()?;
        if mute_all == MuteAll::Refuse && mutes_every_alert(&matchers) {
            return Err(SilenceError::MutesEveryAlert);
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::EndsBeforeStart);
        }
        if self.ends_at <= now {
            return Err(SilenceError::EndsInPast);
        }
        for (which, at) in [("startsAt", self.starts_at), ("endsAt", self.ends_at)] {
            if !within_horizon(at, now) {
                return Err(SilenceError::BeyondHorizon { which, at });
            }
        }
        Ok(matchers)
    }

    /// Compiles the matchers of a silence, new or restored: at least one, each valid, and
    /// not all matching an alert without labels (Alertmanager's rule).
    pub fn compile(&self) -> Result<Matchers, SilenceError> {
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
        Ok(matchers)
    }
}

/// Whether a silence may mute every alert. Such a silence (`alertname=~".+"`) is how a
/// mistake, or anyone who can reach the API, silences the whole household: it takes an
/// explicit yes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MuteAll {
    #[default]
    Refuse,
    Allow,
}

/// Label values a catch-all matcher accepts and a real one, almost always, does not.
const PROBE_VALUES: &[&str] = &[
    "",
    "x",
    "KubeNodeNotReady",
    "critical",
    "pi-1",
    "home/kitchen/temperature",
    "A b-C_9.:/é",
    "zq7wv0-unlikely-value-3k9d",
];

/// Whether `matchers` match every alert, as far as probing tells: each matcher accepts
/// every probe value of its label, the empty one too (an absent label) — except on
/// `alertname`, which every alert has. Catches the ways people write "everything":
/// `alertname=~".+"`, `alertname!=""`, `alertname!="nothing"`.
fn mutes_every_alert(matchers: &Matchers) -> bool {
    matchers.0.iter().all(|m| {
        PROBE_VALUES
            .iter()
            .filter(|v| !(v.is_empty() && m.name == "alertname"))
            .all(|v| {
                let labels = Labels::from([(m.name.clone(), (*v).to_owned())]);
                m.matches(&labels)
            })
    })
}
