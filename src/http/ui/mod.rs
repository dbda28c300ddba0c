//! The web page: server-rendered HTML (maud: the templates are Rust, checked when the
//! binary compiles, every value escaped), one small stylesheet and one small script, all
//! embedded in the binary. Phone first; dark when the system is; English or Spanish by
//! `Accept-Language`.
//!
//! A page asked for with the `HX-Request: true` header (as htmx sends it; the script does the
//! same when it refreshes) is answered with its live part only, the fragment that replaces
//! the old one in place, so refreshing keeps the scroll position and any form being typed.
//!
//! # Layout
//! - `session`: who the visitor is (login cookie, roles), and CSRF tokens.
//! - `text`: the words, in English and Spanish.
//! - `layout`: the page around each page's content, and helpers every page uses.
//! - `alerts` (`/`), `silences` (`/silences…`), `history` (`/alerts/{fingerprint}/history`),
//!   `rules` (`/rules`), `deliveries` (`/deliveries…`), `status` (`/status`), `login`
//!   (`/login`, `/logout`): one file per page and its actions.
//! - `assets/`: `app.css`, `app.js`, `icon.svg`, served from `/assets/`.
//!
//! The pages ask what the API handlers ask (the router's commands, the history store, the
//! outbox): no business logic of their own.

mod alerts;
mod deliveries;
mod history;
mod layout;
mod login;
mod rules;
mod session;
mod silences;
mod status;
mod text;

pub use self::session::WebAccess;

use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use super::ApiState;

/// The page's routes (outside `/api`: the page has its own login, not the bearer token).
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(alerts::page))
        .route("/alerts/silence", post(alerts::silence))
        .route("/alerts/{fingerprint}/history", get(history::page))
        .route("/silences", get(silences::list).post(silences::save))
        .route("/silences/new", get(silences::new))
        .route("/silences/preview", get(silences::preview))
        .route("/silences/{id}/edit", get(silences::edit))
        .route("/silences/{id}/expire", post(silences::expire))
        .route("/rules", get(rules::page))
        .route("/deliveries", get(deliveries::page))
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route("/deliveries/{id}/drop", post(deliveries::drop_letter))
        .route("/status", get(status::page))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/assets/icon.svg", get(icon))
}

/// An embedded asset, cached for an hour (a new binary may change it).
fn asset(content_type: &'static str, body: &'static str) -> axum::response::Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn css() -> axum::response::Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> axum::response::Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

async fn icon() -> axum::response::Response {
    asset("image/svg+xml", include_str!("assets/icon.svg"))
}
