//! [`TelegramError`]: why a Telegram notification was not delivered, whether trying again
//! may help, and when. No variant holds the bot token: teloxide's errors carry the request
//! URL, which holds it, so every message taken from them is passed through [`redact`].

use std::time::Duration;

use teloxide_core::{ApiError, RequestError};

/// What stands in for the bot token in messages.
const REDACTED: &str = "<bot token>";

/// Why a Telegram notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// The token's file or variable is missing or empty (a secret not mounted yet).
    #[error("cannot read the bot token from the {source_name}: {reason}")]
    Token { source_name: String, reason: String },
    #[error("the bot token is not a Telegram bot token (it must look like `123456:ABC…`)")]
    InvalidToken,
    #[error("the Telegram Bot API did not answer within {timeout:?} (chat {chat})")]
    Timeout { chat: String, timeout: Duration },
    /// Flood control: Telegram asked to wait.
    #[error("Telegram asks to wait {retry_after:?} before sending to chat {chat}")]
    RetryAfter { chat: String, retry_after: Duration },
    /// The Bot API could not be reached, or the connection broke.
    #[error("cannot reach the Telegram Bot API (chat {chat}): {message}")]
    Network { chat: String, message: String },
    /// Telegram answered with an error; `permanent` when the same request would get it
    /// again (a bad request, a bot blocked or kicked, a wrong token).
    #[error("Telegram refused the message to chat {chat}: {description}")]
    Refused {
        chat: String,
        description: String,
        permanent: bool,
    },
    #[error("chat {chat} is now supergroup {to}: write `chat_id: {to}` in the policy")]
    Migrated { chat: String, to: i64 },
    /// The answer was not the Bot API's JSON (a proxy's error page, say).
    #[error("the Telegram Bot API's answer cannot be read (chat {chat}): {message}")]
    InvalidAnswer { chat: String, message: String },
    #[error("cannot record the message sent to chat {chat}: {message}")]
    Store { chat: String, message: String },
}

impl TelegramError {
    /// Whether sending the same notification again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Token { .. }
            | Self::Timeout { .. }
            | Self::RetryAfter { .. }
            | Self::Network { .. }
            | Self::InvalidAnswer { .. }
            | Self::Store { .. } => true,
            Self::Refused { permanent, .. } => !permanent,
            Self::InvalidToken | Self::Migrated { .. } => false,
        }
    }

    /// How long Telegram asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RetryAfter { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `reason` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token { .. } => "token",
            Self::InvalidToken => "invalid_token",
            Self::Timeout { .. } => "timeout",
            Self::RetryAfter { .. } => "http_429",
            Self::Network { .. } => "connect",
            Self::Refused {
                permanent: true, ..
            } => "refused",
            Self::Refused { .. } => "telegram_error",
            Self::Migrated { .. } => "migrated",
            Self::InvalidAnswer { .. } => "invalid_answer",
            Self::Store { .. } => "store",
        }
    }

    /// A request's error, for `chat`, without the token.
    pub(super) fn from_request(error: &RequestError, chat: &str, token: &str) -> Self {
        let chat = chat.to_owned();
        match error {
            RequestError::RetryAfter(seconds) => Self::RetryAfter {
                chat,
                retry_after: seconds.duration(),
            },
            RequestError::MigrateToChatId(to) => Self::Migrated { chat, to: to.0 },
            RequestError::Api(api) => Self::Refused {
                chat,
                description: redact(&api_description(api), token),
                permanent: is_permanent(api),
            },
            RequestError::Network(e) => Self::Network {
                chat,
                message: redact(&chain(e.as_ref()), token),
            },
            RequestError::InvalidJson { source, .. } => Self::InvalidAnswer {
                chat,
                message: redact(&source.to_string(), token),
            },
            RequestError::Io(e) => Self::Network {
                chat,
                message: redact(&e.to_string(), token),
            },
        }
    }
}

/// What Telegram said, as it said it (`Bad Request: chat not found`).
fn api_description(error: &ApiError) -> String {
    match error {
        ApiError::Unknown(text) => text.clone(),
        ApiError::InvalidToken => "Unauthorized: the bot token is wrong".to_owned(),
        other => other.to_string(),
    }
}

/// Whether Telegram would answer the same request the same way: a bad request, a chat the
/// bot may not write to, a wrong token. Anything else (its own trouble, 5xx) is worth
/// another try.
fn is_permanent(error: &ApiError) -> bool {
    let description = api_description(error);
    ["Bad Request", "Forbidden", "Unauthorized", "Not Found"]
        .iter()
        .any(|p| description.starts_with(p))
}

/// `text` with every occurrence of `token` replaced.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    let text = text.replace(token, REDACTED);
    // The part after the bot's id is the secret itself: never shown alone either.
    match token.split_once(':') {
        Some((_, secret)) if secret.len() >= 8 => text.replace(secret, REDACTED),
        _ => text,
    }
}

/// An error and its sources, joined by `: `.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl From<TelegramError> for atalaya_bus::delivery::DeliveryError {
    /// The one place this integration's failures become the outbox's terms.
    fn from(error: TelegramError) -> Self {
        let retry_after = error.retry_after();
        Self::new(error.retryable(), error.kind(), error.to_string()).with_retry_after(retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_answers_are_classified() {
        let refused = |api| TelegramError::from_request(&RequestError::Api(api), "42", "123:T");
        let blocked = refused(ApiError::BotBlocked);
        assert!(!blocked.retryable());
        assert_eq!(blocked.kind(), "refused");
        assert_eq!(
            blocked.to_string(),
            "Telegram refused the message to chat 42: Forbidden: bot was blocked by the user"
        );
        assert!(!refused(ApiError::ChatNotFound).retryable());
        assert!(!refused(ApiError::InvalidToken).retryable());
        let busy = refused(ApiError::Unknown("Internal Server Error".into()));
        assert!(busy.retryable());
        assert_eq!(busy.kind(), "telegram_error");
        assert!(!refused(ApiError::Unknown("Bad Request: something new".into())).retryable());

        let flood = TelegramError::from_request(
            &RequestError::RetryAfter(teloxide_core::types::Seconds::from_seconds(7)),
            "42",
            "123:T",
        );
        assert!(flood.retryable());
        assert_eq!(flood.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(flood.kind(), "http_429");
    }

    #[test]
    fn the_token_is_redacted() {
        assert_eq!(
            redact(
                "error sending request for url (http://h/bot123:ABC/sendMessage)",
                "123:ABC"
            ),
            "error sending request for url (http://h/bot<bot token>/sendMessage)"
        );
        assert_eq!(redact("nothing", ""), "nothing");
    }
}
