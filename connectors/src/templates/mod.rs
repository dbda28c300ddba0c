//! The text of Telegram messages and mails: minijinja templates rendered from a
//! notification, built in for English and Spanish (`locale: en|es`), overridable per
//! integration (`message`, `subject`, `text`, `html`).
//!
//! Templates render as the rules' do — an undefined variable is an error, a render has a
//! fuel limit — with `trim_blocks` and `lstrip_blocks` on, so a `{% … %}` line leaves no
//! blank line behind. In HTML templates (Telegram messages, the mail's HTML part) every
//! value is escaped — `&`, `<`, `>` and `"` become `&amp;`, `&lt;`, `&gt;`, `&quot;`, the
//! entities Telegram's HTML knows — unless marked `|safe`.
//!
//! A custom template that fails to render (a typo'd field, say) does not lose the alert:
//! the built-in template is used instead and the error is handed back to be logged.
//!
//! # Layout
//! - this file: the environments, escaping, rendering with fallback.
//! - `context`: the notification as templates see it (markers, durations, values).
//! - `settings`: [`Locale`] and custom templates as the routing policy gives them, checked
//!   when it compiles.
//! - `defaults/`: the built-in templates, one file per part and locale.

mod context;
mod settings;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use atalaya_bus::delivery::notification::Notification;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

pub use self::context::{context, duration_text, marker};
pub use self::settings::{Locale, MESSAGE_TEMPLATE_VARIABLES, locale, message_template};

/// The most steps one render may take: far more than a notification of a few hundred
/// alerts needs, little enough to stop a runaway loop at once.
pub const MESSAGE_FUEL: u64 = 1_000_000;

/// Custom templates kept compiled; past this many (reload after reload), the cache starts
/// afresh.
const MAX_CACHED: usize = 64;

/// The parts of a message a template writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessagePart {
    /// A Telegram message, in Telegram's HTML.
    TelegramHtml,
    /// A one-line title: a mail's subject, a push message's title.
    MailSubject,
    /// A mail's plain text part.
    MailText,
    /// A mail's HTML part.
    MailHtml,
    /// A push message's text (ntfy, Gotify, Discord, Pushover, Matrix's plain body): short,
    /// plain text, the title said apart.
    PushText,
}

impl MessagePart {
    fn is_html(self) -> bool {
        matches!(self, Self::TelegramHtml | Self::MailHtml)
    }

    fn builtin_name(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Self::TelegramHtml, Locale::En) => "telegram.en.html",
            (Self::TelegramHtml, Locale::Es) => "telegram.es.html",
            (Self::MailSubject, Locale::En) => "subject.en.txt",
            (Self::MailSubject, Locale::Es) => "subject.es.txt",
            (Self::MailText, Locale::En) => "mail.en.txt",
            (Self::MailText, Locale::Es) => "mail.es.txt",
            (Self::MailHtml, Locale::En) => "mail.en.html",
            (Self::MailHtml, Locale::Es) => "mail.es.html",
            (Self::PushText, Locale::En) => "push.en.txt",
            (Self::PushText, Locale::Es) => "push.es.txt",
        }
    }
}

/// The escaping mode of HTML templates.
const HTML_ESCAPE: AutoEscape = AutoEscape::Custom("telegram-html");

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(MESSAGE_FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            HTML_ESCAPE
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(|out, state, value| {
        if state.auto_escape() == HTML_ESCAPE && !value.is_safe() {
            let text = if value.is_none() || value.is_undefined() {
                String::new()
            } else {
                value.to_string()
            };
            out.write_str(&escape_html(&text)).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
            })
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

/// The built-in templates, compiled once.
static BUILTIN: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = environment();
    let templates = [
        (
            "telegram.en.html",
            include_str!("defaults/telegram.en.html.j2"),
        ),
        (
            "telegram.es.html",
            include_str!("defaults/telegram.es.html.j2"),
        ),
        ("subject.en.txt", include_str!("defaults/subject.en.txt.j2")),
        ("subject.es.txt", include_str!("defaults/subject.es.txt.j2")),
        ("mail.en.txt", include_str!("defaults/mail.en.txt.j2")),
        ("mail.es.txt", include_str!("defaults/mail.es.txt.j2")),
        ("mail.en.html", include_str!("defaults/mail.en.html.j2")),
        ("mail.es.html", include_str!("defaults/mail.es.html.j2")),
        ("push.en.txt", include_str!("defaults/push.en.txt.j2")),
        ("push.es.txt", include_str!("defaults/push.es.txt.j2")),
    ];
    for (name, source) in templates {
        // The built-in templates are checked by this module's tests: they compile.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "A built-in template does not compile.");
        }
    }
    env
});

/// `&`, `<`, `>` and `"` as the entities Telegram's HTML (and any HTML) understands.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// What rendering gave: the text (without trailing whitespace), and why the custom template was not used, if it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub custom_error: Option<String>,
}

/// Custom templates compiled, by source and whether they write HTML.
type CompiledTemplates = HashMap<(String, bool), Arc<Environment<'static>>>;

/// Renders message parts. Cheap to clone; custom templates are compiled once and kept.
#[derive(Clone, Default)]
pub struct MessageTemplates {
    custom: Arc<Mutex<CompiledTemplates>>,
}

impl MessageTemplates {
    /// Renders `part` of `notification`: with `custom` when given and it renders, else the
    /// built-in template for `locale`.
    pub fn render(
        &self,
        part: MessagePart,
        locale: Locale,
        custom: Option<&str>,
        notification: &Notification,
        external_url: &str,
    ) -> Rendered {
        let ctx = context(notification, external_url, locale);
        let custom_error = match custom.map(|source| self.render_custom(part, source, &ctx)) {
            Some(Ok(text)) if !text.trim().is_empty() => {
                return Rendered {
                    text: text.trim_end().to_owned(),
                    custom_error: None,
                };
            }
            Some(Ok(_)) => Some("the template rendered nothing".to_owned()),
            Some(Err(e)) => Some(e),
            None => None,
        };
        let text = BUILTIN
            .get_template(part.builtin_name(locale))
            .and_then(|t| t.render(&ctx))
            .unwrap_or_else(|e| {
                // Cannot happen: the built-in templates render every notification (tested).
                tracing::error!(error = %e, "A built-in template failed.");
                format!("{} {}", ctx["marker"], ctx["title"])
            });
        Rendered {
            text: text.trim_end().to_owned(),
            custom_error,
        }
    }

    fn render_custom(
        &self,
        part: MessagePart,
        source: &str,
        ctx: &serde_json::Value,
    ) -> Result<String, String> {
        let key = (source.to_owned(), part.is_html());
        let cached = self
            .custom
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let env = match cached {
            Some(env) => env,
            None => {
                let mut env = environment();
                let name = if part.is_html() {
                    "custom.html"
                } else {
                    "custom.txt"
                };
                env.add_template_owned(name, source.to_owned())
                    .map_err(|e| describe(&e))?;
                let env = Arc::new(env);
                let mut cache = self.custom.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(key, Arc::clone(&env));
                env
            }
        };
        let name = if part.is_html() {
            "custom.html"
        } else {
            "custom.txt"
        };
        env.get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| describe(&e))
    }
}

/// A minijinja error in one line: its kind, detail and line.
fn describe(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests;
