//! [`ConfigError`]: one configuration mistake and where it was made (a file position, an
//! environment variable); what every part of loading reports into.

use std::fmt;
use std::path::PathBuf;

use super::locate::Position;

/// The `origin` the `config` crate gives values from the environment.
pub(super) const ENV_ORIGIN: &str = "the environment";
/// Prefix of environment overrides: `ATALAYA__HTTP__LISTEN` sets `http.listen`.
pub const ENV_PREFIX: &str = "ATALAYA";

/// One configuration mistake, with where it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(super) place: Place,
    /// The dotted key (`http.listen`), when the mistake is about one key.
    pub(super) key: Option<String>,
    pub(super) message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    File {
        path: PathBuf,
        position: Option<Position>,
    },
    Env {
        var: String,
    },
    Unknown,
}

impl ConfigError {
    /// Where it sorts among a file's errors: by file and position; then those of the
    /// environment, then those with no place.
    pub(super) fn order(&self) -> (u8, Option<&PathBuf>, Option<Position>, Option<&str>) {
        match &self.place {
            Place::File { path, position } => (0, Some(path), *position, None),
            Place::Env { var } => (1, None, None, Some(var)),
            Place::Unknown => (2, None, None, None),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::File {
                path,
                position: Some(p),
            } => write!(f, "{}:{}:{}: ", path.display(), p.line, p.column)?,
            Place::File {
                path,
                position: None,
            } => write!(f, "{}: ", path.display())?,
            Place::Env { var } => write!(f, "environment variable {var}: ")?,
            Place::Unknown => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}
