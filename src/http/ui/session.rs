//! Who is looking at the page, and whether a form really came from it.
//!
//! A visitor logs in with the API token (`http.token`: may change things) or the read token
//! (`http.read_token`: only looks), and a name that silences record as `createdBy`. The
//! session is a cookie (`HttpOnly`, `SameSite=Strict`) holding the role, the name, an expiry
//! and a random nonce, signed with HMAC-SHA256 under a key derived from the token: never the
//! token itself. A new token ends every session; a restart keeps them.
//!
//! Every visitor has a session, a guest one before logging in, so every form carries a CSRF
//! token: the HMAC of the session cookie, which a page on another site can neither read nor
//! forge. What a guest may do: everything when no token is configured (as the API), look when
//! `http.web_anonymous_read` is on, else nothing but log in.

use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The cookie's name.
const COOKIE_NAME: &str = "atalaya_session";
/// How long a login lasts.
const LOGIN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a guest session (and so the CSRF token of its forms) lasts.
const GUEST_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The longest name kept in a session (what `createdBy` shows).
const MAX_NAME_CHARS: usize = 64;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Logged in with `http.token`.
    Admin,
    /// Logged in with `http.read_token`.
    Reader,
    /// Not logged in.
    Guest,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Reader => "reader",
            Self::Guest => "guest",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "reader" => Some(Self::Reader),
            "guest" => Some(Self::Guest),
            _ => None,
        }
    }
}

/// The page's access rules and the key sessions are signed with.
pub struct WebAccess {
    key: hmac::Key,
    token: Option<Secret>,
    read_token: Option<Secret>,
    /// Guests may look (`http.web_anonymous_read`, or the API's `http.anonymous_read`).
    anonymous_read: bool,
}

/// One request's visitor.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub role: Role,
    /// Who silences are created by.
    pub name: String,
    /// May see the pages.
    pub can_read: bool,
    /// May silence, expire, retry and drop.
    pub can_write: bool,
    /// Whether a login would give more (a token is configured).
    pub can_log_in: bool,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// A new session cookie to set (a guest's first visit, or an expired session).
    pub set_cookie: Option<HeaderValue>,
}

impl WebAccess {
    pub fn new(token: Option<Secret>, read_token: Option<Secret>, anonymous_read: bool) -> Self {
        let key = match &token {
            // Derived from the token: stable across restarts, void once the token changes.
            Some(token) => {
                let derive = hmac::Key::new(hmac::HMAC_SHA256, token.expose().as_bytes());
                let derived = hmac::sign(&derive, b"atalaya web sessions v1");
                hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
            }
            // No token: guest sessions only, whose key may die with the process.
            None => hmac::Key::new(hmac::HMAC_SHA256, &random_bytes()),
        };
        Self {
            key,
            token,
            read_token,
            anonymous_read,
        }
    }

    /// The visitor of a request with `headers`.
    pub fn viewer(&self, headers: &HeaderMap) -> Viewer {
        let now = Timestamp::now();
        let presented = cookie(headers, COOKIE_NAME);
        let session = presented.and_then(|value| self.verify(value, now).map(|s| (value, s)));
        let (cookie_value, role, name, set_cookie) = match session {
            Some((value, (role, name))) => (value.to_owned(), role, name, None),
            None => {
                let value = self.sign(Role::Guest, "", now, GUEST_LIFETIME);
                let header = set_cookie_header(&value, GUEST_LIFETIME, secure(headers));
                (value, Role::Guest, String::new(), header)
            }
        };
        let open = self.token.is_none();
        let (can_read, can_write) = match role {
            Role::Admin => (true, true),
            Role::Reader => (true, false),
            Role::Guest if open => (true, true),
            Role::Guest => (self.anonymous_read, false),
        };
        let name = if name.is_empty() {
            "web".to_owned()
        } else {
            name
        };
        Viewer {
            role,
            name,
            can_read,
            can_write,
            can_log_in: !open,
            csrf: self.csrf_of(&cookie_value),
            set_cookie,
        }
    }

    /// Whether `presented` is the CSRF token of the request's session.
    pub fn csrf_ok(&self, headers: &HeaderMap, presented: &str) -> bool {
        let Some(value) = cookie(headers, COOKIE_NAME) else {
            return false;
        };
        if self.verify(value, Timestamp::now()).is_none() {
            return false;
        }
        let expected = self.csrf_of(value);
        bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The role `token` logs in as, compared in constant time; `None` for a wrong one.
    pub fn role_of_token(&self, token: &str) -> Option<Role> {
        let is = |secret: &Secret| bool::from(token.as_bytes().ct_eq(secret.expose().as_bytes()));
        if self.token.as_ref().is_some_and(is) {
            Some(Role::Admin)
        } else if self.read_token.as_ref().is_some_and(is) {
            Some(Role::Reader)
        } else {
            None
        }
    }

    /// The cookie of a new session for `role` and `name`.
    pub fn login_cookie(&self, role: Role, name: &str, headers: &HeaderMap) -> Option<HeaderValue> {
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect();
        let value = self.sign(role, &name, Timestamp::now(), LOGIN_LIFETIME);
        set_cookie_header(&value, LOGIN_LIFETIME, secure(headers))
    }

    /// The cookie that ends a session (a fresh guest one).
    pub fn logout_cookie(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let value = self.sign(Role::Guest, "", Timestamp::now(), GUEST_LIFETIME);
        set_cookie_header(&value, GUEST_LIFETIME, secure(headers))
    }

    /// `v1.<role>.<expiry seconds>.<nonce hex>.<name hex>.<mac hex>`.
    fn sign(&self, role: Role, name: &str, now: Timestamp, lifetime: Duration) -> String {
        let expiry = now
            .as_second()
            .saturating_add(lifetime.as_secs().cast_signed());
        let nonce = hex(&random_bytes()[..16]);
        let payload = format!(
            "v1.{}.{expiry}.{nonce}.{}",
            role.as_str(),
            hex(name.as_bytes())
        );
        let mac = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", hex(mac.as_ref()))
    }

    /// The role and name of a genuine, unexpired session cookie.
    fn verify(&self, value: &str, now: Timestamp) -> Option<(Role, String)> {
        let (payload, mac) = value.rsplit_once('.')?;
        let mac = unhex(mac)?;
        hmac::verify(&self.key, payload.as_bytes(), &mac).ok()?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(role), Some(expiry), Some(_nonce), Some(name), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let role = Role::parse(role)?;
        if expiry.parse::<i64>().ok()? <= now.as_second() {
            return None;
        }
        let name = String::from_utf8(unhex(name)?).ok()?;
        // A role that a token change took away: sessions are signed under the token's key,
        // so this only guards a read token removed from the configuration.
        if role == Role::Reader && self.read_token.is_none() {
            return None;
        }
        Some((role, name))
    }

    fn csrf_of(&self, cookie_value: &str) -> String {
        let mut message = b"csrf:".to_vec();
        message.extend_from_slice(cookie_value.as_bytes());
        hex(hmac::sign(&self.key, &message).as_ref())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Behind a TLS-terminating proxy the cookie is `Secure` too.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie_header(value: &str, lifetime: Duration, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        lifetime.as_secs()
    ))
    .ok()
}

/// Adds the viewer's new session cookie to a response's headers.
pub fn add_cookie(headers: &mut HeaderMap, cookie: Option<HeaderValue>) {
    if let Some(cookie) = cookie {
        headers.append(SET_COOKIE, cookie);
    }
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 512 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text.to_owned())
    }

    fn with_cookie(header: &HeaderValue) -> HeaderMap {
        let value = header
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&value).unwrap());
        headers
    }

    #[test]
    fn a_login_names_its_user_and_a_guest_may_do_nothing_without_anonymous_read() {
        let access = WebAccess::new(Some(secret("fake-admin")), Some(secret("fake-read")), false);
        let guest = access.viewer(&HeaderMap::new());
        assert_eq!(guest.role, Role::Guest);
        assert!(!guest.can_read && !guest.can_write && guest.can_log_in);
        assert!(guest.set_cookie.is_some());

        assert_eq!(access.role_of_token("fake-admin"), Some(Role::Admin));
        assert_eq!(access.role_of_token("fake-read"), Some(Role::Reader));
        assert_eq!(access.role_of_token("fake-admi"), None);

        let cookie = access
            .login_cookie(Role::Admin, " Ana\u{202e} ", &HeaderMap::new())
            .unwrap();
        let text = cookie.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(
            !text.contains("fake-admin"),
            "the token never goes in the cookie"
        );
        let headers = with_cookie(&cookie);
        let admin = access.viewer(&headers);
        assert_eq!(
            (admin.role, admin.name.as_str()),
            (Role::Admin, "Ana\u{202e}")
        );
        assert!(admin.can_write && admin.set_cookie.is_none());
        assert!(access.csrf_ok(&headers, &admin.csrf));
        assert!(!access.csrf_ok(&headers, "0000"));
        assert!(!access.csrf_ok(&HeaderMap::new(), &admin.csrf));
    }

    #[test]
    fn a_forged_or_foreign_cookie_is_a_guest() {
        let access = WebAccess::new(Some(secret("fake-admin")), None, true);
        let other = WebAccess::new(Some(secret("another-token")), None, true);
        let cookie = other
            .login_cookie(Role::Admin, "mallory", &HeaderMap::new())
            .unwrap();
        let viewer = access.viewer(&with_cookie(&cookie));
        assert_eq!(viewer.role, Role::Guest);
        assert!(viewer.can_read && !viewer.can_write, "anonymous read-only");
        // An edited role breaks the signature.
        let forged = cookie.to_str().unwrap().replace("v1.admin", "v1.reader");
        let viewer = access.viewer(&with_cookie(&HeaderValue::from_str(&forged).unwrap()));
        assert_eq!(viewer.role, Role::Guest);
    }

    #[test]
    fn without_a_token_a_guest_may_do_everything_as_on_the_api() {
        let access = WebAccess::new(None, None, false);
        let guest = access.viewer(&HeaderMap::new());
        assert!(guest.can_read && guest.can_write && !guest.can_log_in);
        assert_eq!(guest.name, "web");
    }
}
