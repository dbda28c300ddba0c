//! Building the mail of a notification: addresses, subject, threading headers, text and
//! HTML parts.

use super::EmailConfig;
use atalaya_bus::delivery::notification::Notification;
use atalaya_bus::fingerprint::{fingerprint_text, fnv1a};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use super::error::MailError;
use crate::templates::{MessagePart, MessageTemplates, Rendered};

/// The longest subject written, in characters; a longer one is cut with `…`.
const MAX_SUBJECT_CHARS: usize = 200;

/// The thread of a group's mails: `<group-HASH@domain>`, the same for every mail of the
/// group (receiver, integration, group key).
pub fn thread_id(notification: &Notification, domain: &str) -> String {
    let hash = fnv1a(&[
        &notification.receiver,
        &notification.integration.to_string(),
        &notification.group_key,
    ]);
    format!("<group-{}@{domain}>", fingerprint_text(hash))
}

/// The domain of an address (`atalaya@home.lan`, `atalaya <atalaya@home.lan>`), or
/// `atalaya` when it has none.
fn domain_of(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map(|(_, rest)| rest.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("atalaya")
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            address: address.to_owned(),
            reason: e.to_string(),
        })
}

/// The mail for `notification`, and what its custom templates reported when they failed
/// (the built-in ones were used instead).
pub fn build_message(
    config: &EmailConfig,
    notification: &Notification,
    external_url: &str,
    templates: &MessageTemplates,
) -> Result<(Message, Vec<String>), MailError> {
    let render = |part, custom: &Option<String>| -> Rendered {
        templates.render(
            part,
            config.locale,
            custom.as_deref(),
            notification,
            external_url,
        )
    };
    let subject = render(MessagePart::MailSubject, &config.subject);
    let text = render(MessagePart::MailText, &config.text);
    let html = render(MessagePart::MailHtml, &config.html);
    let failures: Vec<String> = [("subject", &subject), ("text", &text), ("html", &html)]
        .into_iter()
        .filter_map(|(key, r)| r.custom_error.as_ref().map(|e| format!("`{key}`: {e}")))
        .collect();

    let domain = domain_of(&config.from);
    let thread = thread_id(notification, domain);
    let mut builder = Message::builder()
        .from(mailbox(&config.from)?)
        .subject(one_line(&subject.text))
        .message_id(Some(format!("<{}@{domain}>", notification.id)))
        .in_reply_to(thread.clone())
        .references(thread)
        .user_agent(concat!("atalaya/", env!("CARGO_PKG_VERSION")).to_owned());
    for to in &config.to {
        builder = builder.to(mailbox(to)?);
    }
    for (name, value) in &config.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| MailError::Message(format!("header `{name}`: {e}")))?;
        builder = builder.raw_header(HeaderValue::new(name, value.clone()));
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(text.text, html.text))
        .map_err(|e| MailError::Message(e.to_string()))?;
    Ok((message, failures))
}

/// A subject on one line, at most [`MAX_SUBJECT_CHARS`] characters.
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= MAX_SUBJECT_CHARS {
        line
    } else {
        let mut cut: String = line.chars().take(MAX_SUBJECT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_subjects() {
        assert_eq!(domain_of("atalaya@home.lan"), "home.lan");
        assert_eq!(domain_of("Atalaya <atalaya@home.lan>"), "home.lan");
        assert_eq!(domain_of("nobody"), "atalaya");
        assert_eq!(one_line("a\n  b\tc "), "a b c");
        let long = "x".repeat(300);
        assert_eq!(one_line(&long).chars().count(), MAX_SUBJECT_CHARS);
    }
}
