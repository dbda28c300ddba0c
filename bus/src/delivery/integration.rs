//! Receivers as the routing policy configures them: a name and the integrations that notify
//! it. What routing needs of an integration (its kind, `send_resolved`, when it is quiet) is
//! here; the kind's own settings are opaque to routing and read back by the kind's notifier.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A receiver as compiled from the policy.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    /// In the order written: each is delivered and retried on its own; a notification's
    /// `integration` is an index into this list.
    pub integrations: Vec<Integration>,
}

/// One way of notifying a receiver: one entry of a `<kind>_configs` list.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The kind, as in metrics and logs: `webhook`, `telegram`, `email`, … (the policy key
    /// without `_configs`).
    pub kind: &'static str,
    /// Whether resolved alerts are notified (Alertmanager's `send_resolved`).
    pub send_resolved: bool,
    /// When notifications go out silently (kinds that can send without a sound).
    pub quiet: QuietConfig,
    /// The kind's own settings; see [`Integration::settings`].
    settings: Arc<dyn IntegrationSettings>,
}

impl Integration {
    /// An integration of `kind` with its `settings`, never quiet.
    pub fn new(
        kind: &'static str,
        send_resolved: bool,
        settings: impl IntegrationSettings,
    ) -> Self {
        Self {
            kind,
            send_resolved,
            quiet: QuietConfig::default(),
            settings: Arc::new(settings),
        }
    }

    /// This integration, quiet as `quiet` says.
    pub fn with_quiet(self, quiet: QuietConfig) -> Self {
        Self { quiet, ..self }
    }

    /// The kind's settings, if they are a `T` (they always are for the kind that made them).
    pub fn settings<T: IntegrationSettings>(&self) -> Option<&T> {
        let settings: &dyn Any = self.settings.as_ref();
        settings.downcast_ref()
    }
}

/// What an integration kind keeps of its policy entry: any plain data type.
pub trait IntegrationSettings: Any + fmt::Debug + Send + Sync {}

impl<T: Any + fmt::Debug + Send + Sync> IntegrationSettings for T {}

/// Where a secret (a bot token, an SMTP password) is read from, at every send, so a rotated
/// secret is used without a reload. Secrets are never written in the policy itself.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding it (surrounding whitespace trimmed); a relative path is relative to
    /// the policy file.
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// When an integration's notifications go out silently (Telegram's `disable_notification`):
/// phones show them without a sound. The router decides (see
/// [`Notification::silent`](super::Notification::silent)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuietConfig {
    /// Always (Telegram's `disable_notifications`).
    pub always: bool,
    /// Silent when any rule applies.
    pub rules: Vec<QuietRule>,
}

/// One `quiet` rule: it applies when both of what it gives hold (at least one is given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuietRule {
    /// Every alert of the notification has one of these `severity` labels.
    pub severities: Vec<String>,
    /// The notification is sent inside one of these named time intervals.
    pub time_intervals: Vec<String>,
}
