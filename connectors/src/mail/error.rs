//! [`MailError`]: why a mail was not sent, and whether trying again may help. No variant
//! holds the SMTP password.

use crate::secret::SecretError;

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The password's file or variable is missing or empty (a secret not mounted yet).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// `from` or a `to` address that is not one.
    #[error("`{address}` is not a mail address: {reason}")]
    Address { address: String, reason: String },
    /// The mail could not be put together.
    #[error("the mail cannot be built: {0}")]
    Message(String),
    /// The extra CA certificates could not be read (a file not mounted yet).
    #[error("cannot read the CA certificates `{path}`: {reason}")]
    CaFile { path: String, reason: String },
    /// The TLS settings cannot be used (certificates that do not parse).
    #[error("the TLS settings cannot be used: {0}")]
    Tls(String),
    /// The server refused the mail for good (5xx): the address, the size, the login.
    #[error("the mail server refused the mail: {0}")]
    Refused(String),
    /// The server is unavailable, busy (4xx), or the connection failed.
    #[error("the mail could not be sent: {0}")]
    Smtp(String),
    #[error("the mail server did not answer in time: {0}")]
    Timeout(String),
}

impl MailError {
    /// Whether sending the same mail again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Secret(_) | Self::CaFile { .. } | Self::Smtp(_) | Self::Timeout(_) => true,
            Self::Address { .. } | Self::Message(_) | Self::Tls(_) | Self::Refused(_) => false,
        }
    }

    /// The `reason` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Secret(_) => "secret",
            Self::Address { .. } => "address",
            Self::Message(_) => "message",
            Self::CaFile { .. } => "ca_file",
            Self::Tls(_) => "tls",
            Self::Refused(_) => "smtp_5xx",
            Self::Smtp(_) => "smtp",
            Self::Timeout(_) => "timeout",
        }
    }

    /// lettre's error, without the password.
    pub(super) fn from_smtp(error: &lettre::transport::smtp::Error, password: &str) -> Self {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        if !password.is_empty() {
            text = text.replace(password, "<password>");
        }
        if error.is_permanent() {
            Self::Refused(text)
        } else if error.is_timeout() {
            Self::Timeout(text)
        } else {
            Self::Smtp(text)
        }
    }
}

impl From<MailError> for atalaya_bus::delivery::DeliveryError {
    /// The one place this integration's failures become the outbox's terms.
    fn from(error: MailError) -> Self {
        let retry_after = None;
        Self::new(error.retryable(), error.kind(), error.to_string()).with_retry_after(retry_after)
    }
}
