//! The page around every page's content (header, menu, login state), how a page or its live
//! fragment is answered, and what every page shows the same way: times, labels, long or
//! hostile text, forms and their CSRF tokens.

use std::collections::HashMap;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};

use super::session::{Viewer, add_cookie};
use super::text::{Lang, Text};
use crate::http::ApiState;

/// Seconds between two refreshes of a page's live part.
pub const REFRESH_SECONDS: u32 = 5;
/// Rows on one page of a long list.
pub const PAGE_SIZE: usize = 100;
/// Alerts on one page: a card weighs up to about 1 KB, and a page stays under 100 KB.
pub const ALERTS_PER_PAGE: usize = 50;
/// The most characters of a label value shown; the rest is cut (a 64 KB value is hostile).
pub const MAX_LABEL_CHARS: usize = 200;
/// The most characters of an annotation, comment or error shown.
pub const MAX_TEXT_CHARS: usize = 1000;

/// The page's own rules for the browser: nothing but its own scripts, styles and images,
/// never in a frame; what a hostile label value could try to load is refused.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The menu's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Alerts,
    Silences,
    Rules,
    Deliveries,
    Status,
    /// A page outside the menu (login, an alert's history).
    None,
}

impl Nav {
    const MENU: [(Self, &'static str, Text); 5] = [
        (Self::Alerts, "/", Text::Alerts),
        (Self::Silences, "/silences", Text::Silences),
        (Self::Rules, "/rules", Text::Rules),
        (Self::Deliveries, "/deliveries", Text::Deliveries),
        (Self::Status, "/status", Text::Status),
    ];
}

/// One request's language, visitor and kind (whole page or live fragment).
pub struct Ctx {
    pub lang: Lang,
    pub viewer: Viewer,
    /// Asked for with `HX-Request: true`: answer the live part only.
    pub fragment: bool,
    pub now: Timestamp,
}

impl Ctx {
    pub fn new(state: &ApiState, headers: &HeaderMap) -> Self {
        Self {
            lang: Lang::from_headers(headers),
            viewer: state.web.viewer(headers),
            fragment: headers
                .get("hx-request")
                .is_some_and(|v| v.as_bytes() == b"true"),
            now: Timestamp::now(),
        }
    }

    pub fn t(&self, text: Text) -> &'static str {
        self.lang.t(text)
    }

    /// The login page instead of the page at `uri`, which the visitor may not see; logging in
    /// leads back to it.
    pub fn must_log_in(&self, uri: &Uri) -> Option<Response> {
        let back = uri.path_and_query().map(|p| p.as_str());
        (!self.viewer.can_read).then(|| self.login_page(back))
    }

    /// The login form, 401; logging in leads to `next` (a local path), else to `/`.
    fn login_page(&self, next: Option<&str>) -> Response {
        let body = super::login::form(self, Some(self.t(Text::LoginNeeded)), next);
        self.page(
            StatusCode::UNAUTHORIZED,
            Nav::None,
            self.t(Text::LogIn),
            body,
        )
    }

    /// A page whose content does not refresh.
    pub fn page(&self, status: StatusCode, nav: Nav, title: &str, content: Markup) -> Response {
        self.answer(status, nav, title, html! {}, content, false)
    }

    /// A page: `fixed` (forms being typed into) stays, `live` is refreshed every few seconds
    /// without a reload; a fragment request gets `live` alone.
    pub fn live_page(&self, nav: Nav, title: &str, fixed: Markup, live: Markup) -> Response {
        self.answer(StatusCode::OK, nav, title, fixed, live, true)
    }

    fn answer(
        &self,
        status: StatusCode,
        nav: Nav,
        title: &str,
        fixed: Markup,
        live: Markup,
        refresh: bool,
    ) -> Response {
        let body = if self.fragment {
            live.into_string()
        } else {
            self.shell(nav, title, fixed, live, refresh).into_string()
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        secure_headers(headers);
        add_cookie(headers, self.viewer.set_cookie.clone());
        response
    }

    fn shell(&self, nav: Nav, title: &str, fixed: Markup, live: Markup, refresh: bool) -> Markup {
        let refresh = refresh.then_some(REFRESH_SECONDS);
        html! {
            (DOCTYPE)
            html lang=(self.lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    title { (title) " · atalaya" }
                    link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                    link rel="stylesheet" href="/assets/app.css";
                    script src="/assets/app.js" defer {}
                }
                body {
                    a.skip href="#main" { (self.t(Text::SkipToContent)) }
                    header {
                        nav aria-label=(self.t(Text::MainMenu)) {
                            ul {
                                @for (item, href, text) in Nav::MENU {
                                    li {
                                        a href=(href) aria-current=[(item == nav).then_some("page")] {
                                            (self.t(text))
                                        }
                                    }
                                }
                            }
                        }
                        (self.account())
                    }
                    main #main {
                        h1 { (title) }
                        (fixed)
                        div #live data-refresh=[refresh] { (live) }
                    }
                }
            }
        }
    }

    /// Who is logged in, with the way out; or the way in.
    fn account(&self) -> Markup {
        use super::session::Role;
        let viewer = &self.viewer;
        html! {
            div.account {
                @if viewer.role == Role::Guest {
                    @if viewer.can_log_in {
                        a.button href="/login" { (self.t(Text::LogIn)) }
                    }
                } @else {
                    span {
                        (self.t(Text::LoggedInAs)) " " bdi { (clip(&viewer.name, 64)) }
                        @if !viewer.can_write { " (" (self.t(Text::ReadOnly)) ")" }
                    }
                    form method="post" action="/logout" {
                        (self.csrf_field())
                        button type="submit" { (self.t(Text::LogOut)) }
                    }
                }
            }
        }
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.viewer.csrf); }
    }

    /// `at` as people read it: `5m` ago, with the UTC time on hover and for machines.
    pub fn ago(&self, at: Timestamp) -> Markup {
        html! {
            time datetime=(seconds(at)) title=(utc(at)) {
                (self.lang.duration(self.now.duration_since(at)))
            }
        }
    }

    /// `at` as a UTC date and time.
    pub fn when(&self, at: Timestamp) -> Markup {
        html! { time datetime=(seconds(at)) { (utc(at)) } }
    }

    /// A short message page (an error, a refusal).
    pub fn message(&self, status: StatusCode, text: &str) -> Response {
        self.page(
            status,
            Nav::None,
            "atalaya",
            html! { p.notice role="alert" { (text) } },
        )
    }
}

/// Headers every page carries: its content policy, no framing, no sniffing, no caching of
/// what may be private.
pub fn secure_headers(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(headers, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `2026-12-04T08:05:07Z`: what `datetime` attributes hold.
fn seconds(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-12-04 08:05 UTC`.
pub fn utc(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Labels as chips, values cut and isolated (`bdi`: a right-to-left mark in a value stays in
/// it).
pub fn labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Markup {
    html! {
        ul.labels {
            @for (name, value) in labels {
                li { bdi { (clip(name, 64)) } "=" bdi { (clip(value, MAX_LABEL_CHARS)) } }
            }
        }
    }
}

/// A redirect after a form (303: the browser then loads the page with GET).
pub fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// Where a form may send the browser back to: a path on this site only.
pub fn local_path(path: Option<&String>, default: &str) -> String {
    match path {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.clone(),
        _ => default.to_owned(),
    }
}

/// A posted form's fields (the last value of a repeated one).
pub fn form_fields(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The visitor of a posted form that changes something, when it may: logged in with the
/// write token (or no token configured), and the form carrying this session's CSRF token.
/// Else the refusal to answer (403, or the login page).
pub fn writer(
    state: &ApiState,
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
) -> Result<Ctx, Box<Response>> {
    let ctx = Ctx::new(state, headers);
    let csrf = fields.get("csrf").map_or("", String::as_str);
    if !state.web.csrf_ok(headers, csrf) {
        return Err(Box::new(
            ctx.message(StatusCode::FORBIDDEN, ctx.t(Text::CsrfRefused)),
        ));
    }
    if !ctx.viewer.can_write {
        // A guest who could log in is asked to; a reader is refused.
        let guest = ctx.viewer.role == super::session::Role::Guest;
        return Err(Box::new(if guest && ctx.viewer.can_log_in {
            ctx.login_page(None)
        } else {
            ctx.message(StatusCode::FORBIDDEN, ctx.t(Text::ReadOnly))
        }));
    }
    Ok(ctx)
}

/// Page `page` (from 1) of `rows`, `size` a page, and how many pages there are.
pub fn paginate<T>(rows: &[T], page: usize, size: usize) -> (&[T], usize, usize) {
    let pages = rows.len().div_ceil(size).max(1);
    let page = page.clamp(1, pages);
    let start = (page - 1) * size;
    let end = (start + size).min(rows.len());
    (&rows[start..end], page, pages)
}

/// Previous / next links of a paginated list; `link` makes the URL of a page.
pub fn pager(ctx: &Ctx, page: usize, pages: usize, link: impl Fn(usize) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label=(ctx.t(Text::PageOf)) {
                @if page > 1 { a.button href=(link(page - 1)) rel="prev" { (ctx.t(Text::Previous)) } }
                span { (ctx.t(Text::PageOf)) " " (page) " / " (pages) }
                @if page < pages { a.button href=(link(page + 1)) rel="next" { (ctx.t(Text::Next)) } }
            }
        }
    }
}

/// A query value as it goes into a URL.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ñañañaña", 3), "ñañ…");
        let huge = "x".repeat(64 * 1024);
        assert_eq!(
            clip(&huge, MAX_LABEL_CHARS).chars().count(),
            MAX_LABEL_CHARS + 1
        );
    }

    #[test]
    fn hostile_label_values_are_escaped_cut_and_isolated() {
        let hostile = format!(
            "<script>alert(1)</script>\u{202e}\"'&{}",
            "A".repeat(64 * 1024)
        );
        let pairs = [("room".to_owned(), hostile)];
        let shown = labels(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_string();
        assert!(!shown.contains("<script>"), "{shown}");
        assert!(shown.contains("&lt;script&gt;"));
        assert!(shown.contains("<bdi>"));
        assert!(shown.len() < 1000, "cut: {} bytes", shown.len());
    }

    #[test]
    fn forms_only_send_the_browser_back_to_this_site() {
        let p = |s: &str| local_path(Some(&s.to_owned()), "/");
        assert_eq!(p("/silences?page=2"), "/silences?page=2");
        assert_eq!(p("//evil.example/"), "/");
        assert_eq!(p("https://evil.example/"), "/");
        assert_eq!(p("/\\evil.example"), "/");
    }

    #[test]
    fn pages_of_a_long_list() {
        let rows: Vec<usize> = (0..250).collect();
        let (shown, page, pages) = paginate(&rows, 3, PAGE_SIZE);
        assert_eq!((shown.len(), page, pages, shown[0]), (50, 3, 3, 200));
        let (shown, page, _) = paginate(&rows, 99, PAGE_SIZE);
        assert_eq!((shown.len(), page), (50, 3));
        let (shown, page, pages) = paginate::<usize>(&[], 1, PAGE_SIZE);
        assert_eq!((shown.len(), page, pages), (0, 1, 1));
    }
}
