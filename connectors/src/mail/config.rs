//! `email_configs`: the settings of a mail integration and how a policy entry compiles into
//! them — Alertmanager's keys (`to`, `from`, `smarthost`, `hello`, `auth_username`,
//! `auth_password_file`, `require_tls`, `tls_config`, `headers`, `html`, `text`,
//! `send_resolved`, with the `global:` `smtp_*` defaults) and atalaya's
//! (`auth_password_env`, `tls`, `subject`, `locale`, `timeout`). A password written in the
//! policy is refused: secrets come from files or the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use atalaya_bus::delivery::integration::SecretSource;
use atalaya_bus::delivery::{Integration, IntegrationContext};
use atalaya_bus::yaml::{Node, Text, from_node};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::templates::{Locale, locale, message_template};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS (submission, port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: a relay on the same host or a trusted network only.
    None,
}

/// `email_configs`: one mail per notification, text and HTML, threaded per group.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// Recipients (Alertmanager's `to`, comma-separated addresses).
    pub to: Vec<String>,
    pub from: String,
    /// `smarthost` host, and port.
    pub host: String,
    pub port: u16,
    /// The name given in EHLO; default the `from` address' domain.
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    /// `auth_password_file` or `auth_password_env`; never inline.
    pub auth_password: Option<SecretSource>,
    pub tls: MailTls,
    /// With STARTTLS: refuse a server that does not offer it (Alertmanager's
    /// `require_tls`, default true); false sends in plain text to such a server.
    pub require_tls: bool,
    /// Extra CA certificates (PEM) to trust, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// The name the server certificate must have; default the smarthost's host.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// minijinja templates replacing the built-in subject, text and HTML parts.
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub locale: Locale,
    /// A connection or SMTP exchange taking longer fails (and is retried). Default 30 s.
    pub timeout: Duration,
}

const DEFAULT_EMAIL_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers atalaya writes itself; `Subject` has its own key.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// `email_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSpec {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    smarthost: Option<String>,
    #[serde(default)]
    hello: Option<String>,
    #[serde(default)]
    auth_username: Option<String>,
    /// Refused: a secret in the policy file.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    auth_password: Option<IgnoredAny>,
    #[serde(default)]
    auth_password_file: Option<String>,
    #[serde(default)]
    auth_password_env: Option<String>,
    /// Refused: CRAM-MD5 and identities are not supported.
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    auth_secret: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    auth_secret_file: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code, reason = "refused at its key, read from the node")]
    auth_identity: Option<IgnoredAny>,
    #[serde(default)]
    require_tls: Option<bool>,
    #[serde(default)]
    tls: Option<String>,
    #[serde(default)]
    tls_config: Option<TlsConfigSpec>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Text>>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    send_resolved: Option<bool>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    timeout: Option<Text>,
}

/// `tls_config:` of an email integration (the part of Alertmanager's that applies).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfigSpec {
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: Option<bool>,
}

/// The `global:` `smtp_*` values email integrations fall back to, as in Alertmanager. The
/// policy compiler checks `global:` as a whole; this reads only these keys of it.
#[derive(Debug, Default, Clone, Deserialize)]
struct SmtpDefaults {
    #[serde(default, rename = "smtp_from")]
    from: Option<String>,
    #[serde(default, rename = "smtp_smarthost")]
    smarthost: Option<String>,
    #[serde(default, rename = "smtp_hello")]
    hello: Option<String>,
    #[serde(default, rename = "smtp_auth_username")]
    auth_username: Option<String>,
    #[serde(default, rename = "smtp_auth_password_file")]
    auth_password_file: Option<String>,
    #[serde(default, rename = "smtp_require_tls")]
    require_tls: Option<bool>,
}

/// Compiles one `email_configs` entry; `send_resolved` defaults to false, as in
/// Alertmanager; unset connection settings fall back to `global:`'s `smtp_*`.
pub(super) fn compile(ctx: &mut IntegrationContext<'_>, node: &Node) -> Option<Integration> {
    let label = ctx.label;
    let spec = ctx.decoder.decode::<EmailSpec>(node)?;
    // Errors in `global:` are the policy compiler's to report.
    let defaults: SmtpDefaults = ctx
        .global
        .and_then(|g| from_node(g).ok())
        .unwrap_or_default();
    let defaults = &defaults;
    let before = ctx.decoder.errors.len();
    let at = |key: &str| node.get(key).map_or(node.position, |n| n.position);
    if let Some(position) = node.key_position("auth_password") {
        ctx.decoder.error(
            position,
            format!(
                "{label}: `auth_password` would put a secret in the policy file; write the \
                 password in a file named by `auth_password_file` (or name an environment \
                 variable holding it with `auth_password_env`)"
            ),
        );
    }
    for key in ["auth_secret", "auth_secret_file", "auth_identity"] {
        if let Some(position) = node.key_position(key) {
            ctx.decoder.error(
                position,
                format!(
                    "{label}: `{key}` is not supported by atalaya (no CRAM-MD5); it logs in \
                     with `auth_username` and the password (PLAIN or LOGIN)"
                ),
            );
        }
    }

    let to: Vec<String> = spec
        .to
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if to.is_empty() {
        ctx.decoder.error(
            at("to"),
            format!("{label}: an email integration needs `to`: one or more addresses"),
        );
    }
    for address in &to {
        if !looks_like_address(address) {
            ctx.decoder.error(
                at("to"),
                format!("{label}: `{address}` in `to` is not an email address"),
            );
        }
    }
    let from = spec.from.clone().or_else(|| defaults.from.clone());
    match &from {
        None => ctx.decoder.error(
            node.position,
            format!(
                "{label}: an email integration needs `from` (or `smtp_from` under \
                 `global:`)"
            ),
        ),
        Some(from) if !looks_like_address(from) => ctx.decoder.error(
            at("from"),
            format!("{label}: `from` `{from}` is not an email address"),
        ),
        Some(_) => {}
    }
    let smarthost = spec
        .smarthost
        .clone()
        .or_else(|| defaults.smarthost.clone());
    let host_port = match &smarthost {
        None => {
            ctx.decoder.error(
                node.position,
                format!(
                    "{label}: an email integration needs `smarthost` (`host:port`, or \
                     `smtp_smarthost` under `global:`)"
                ),
            );
            None
        }
        Some(text) => {
            let parsed = split_host_port(text);
            if parsed.is_none() {
                ctx.decoder.error(
                    at("smarthost"),
                    format!(
                        "{label}: `smarthost` `{text}` must be `host:port`, e.g. \
                         `smtp.example.org:587`"
                    ),
                );
            }
            parsed
        }
    };
    let port = host_port.as_ref().map_or(0, |(_, port)| *port);
    let tls = match spec.tls.as_deref() {
        None if port == 465 => MailTls::Implicit,
        None | Some("starttls") => MailTls::StartTls,
        Some("implicit") => MailTls::Implicit,
        Some("none") => MailTls::None,
        Some(other) => {
            ctx.decoder.error(
                at("tls"),
                format!("{label}: `tls` must be `starttls`, `implicit` or `none`, not `{other}`"),
            );
            MailTls::StartTls
        }
    };
    if tls == MailTls::None && spec.require_tls == Some(true) {
        ctx.decoder.error(
            at("require_tls"),
            format!("{label}: `require_tls: true` contradicts `tls: none`"),
        );
    }
    let password = if node.key_position("auth_password").is_some() {
        None
    } else if spec.auth_password_file.is_some() || spec.auth_password_env.is_some() {
        ctx.decoder.secret(
            label,
            node,
            ("auth_password_file", spec.auth_password_file.as_deref()),
            ("auth_password_env", spec.auth_password_env.as_deref()),
            true,
        )
    } else {
        defaults
            .auth_password_file
            .as_ref()
            .map(|f| SecretSource::File(PathBuf::from(f)))
    };
    let password = password.map(|source| ctx.secret_path(source));
    let username = spec
        .auth_username
        .clone()
        .or_else(|| defaults.auth_username.clone());
    if password.is_some() && username.is_none() {
        ctx.decoder.error(
            node.position,
            format!("{label}: a password is given but no `auth_username`"),
        );
    }

    let mut headers = BTreeMap::new();
    for (name, value) in spec.headers.unwrap_or_default() {
        let position = node
            .get("headers")
            .and_then(|h| h.key_position(&name))
            .unwrap_or(node.position);
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            ctx.decoder.error(
                position,
                format!(
                    "{label}: header `{name}` is written by atalaya{}",
                    if name.eq_ignore_ascii_case("subject") {
                        "; set the subject with `subject:` (a template)"
                    } else {
                        ""
                    }
                ),
            );
        } else if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            ctx.decoder
                .error(position, format!("{label}: `{name}` is not a header name"));
        } else if value.as_str().contains(['\r', '\n']) {
            ctx.decoder.error(
                position,
                format!("{label}: header `{name}` must be one line"),
            );
        } else {
            headers.insert(name, value.as_str().to_owned());
        }
    }

    let tls_config = spec.tls_config.unwrap_or_default();
    let subject = message_template(ctx, node, "subject", spec.subject);
    let text = message_template(ctx, node, "text", spec.text);
    let html = message_template(ctx, node, "html", spec.html);
    let locale = locale(ctx, node, spec.locale.as_deref());
    let timeout = ctx
        .decoder
        .duration(node, "timeout", spec.timeout.as_ref(), true);
    if ctx.decoder.errors.len() > before {
        return None;
    }
    let (host, port) = host_port?;
    let config = EmailConfig {
        to,
        from: from?,
        host,
        port,
        hello: spec.hello.or_else(|| defaults.hello.clone()),
        auth_username: username,
        auth_password: password,
        tls,
        require_tls: spec.require_tls.or(defaults.require_tls).unwrap_or(true),
        ca_file: tls_config.ca_file.as_deref().map(|f| ctx.path(f)),
        server_name: tls_config.server_name,
        insecure_skip_verify: tls_config.insecure_skip_verify.unwrap_or(false),
        headers,
        subject,
        text,
        html,
        locale,
        timeout: timeout.unwrap_or(DEFAULT_EMAIL_TIMEOUT),
    };
    Some(Integration::new(
        "email",
        spec.send_resolved.unwrap_or(false),
        config,
    ))
}

/// `host:port` (`[v6]:port` for an IPv6 address) with a port above 0.
fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    let valid = !host.is_empty() && !host.contains(|c: char| c.is_whitespace() || c == '/');
    valid.then(|| (host.to_owned(), port))
}

/// `user@host` or `Name <user@host>`: enough to catch a mistake; the mail library checks
/// the rest when sending.
fn looks_like_address(text: &str) -> bool {
    let address = match (text.find('<'), text.strip_suffix('>')) {
        (Some(open), Some(rest)) => &rest[open + 1..],
        _ => text,
    };
    address
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty() && !host.contains('@'))
        && !address.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarthosts_and_addresses() {
        assert_eq!(
            split_host_port("smtp.example.org:587"),
            Some(("smtp.example.org".to_owned(), 587))
        );
        assert_eq!(split_host_port("[::1]:25"), Some(("::1".to_owned(), 25)));
        assert_eq!(split_host_port("smtp.example.org"), None);
        assert_eq!(split_host_port(":25"), None);
        assert_eq!(split_host_port("h:0"), None);
        assert!(looks_like_address("admin@home.lan"));
        assert!(looks_like_address("atalaya <atalaya@home.lan>"));
        assert!(!looks_like_address("admin"));
        assert!(!looks_like_address("a@b@c"));
        assert!(!looks_like_address("a b@c"));
    }
}
