//! `/login` and `/logout`: a name and the API token in, a signed session cookie out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use tracing::info;

use super::layout::{Ctx, Nav, form_fields, local_path, see_other};
use super::session::{Role, add_cookie};
use super::text::Text;
use crate::http::ApiState;

/// The login form, with `notice` above it; it leads to `next` once logged in.
pub fn form(ctx: &Ctx, notice: Option<&str>, next: Option<&str>) -> Markup {
    html! {
        @if let Some(notice) = notice { p.notice role="alert" { (notice) } }
        form.stack method="post" action="/login" {
            (ctx.csrf_field())
            @if let Some(next) = next { input type="hidden" name="next" value=(next); }
            label for="login-name" { (ctx.t(Text::Name)) }
            input #login-name type="text" name="name" autocomplete="username" maxlength="64";
            label for="login-token" { (ctx.t(Text::Token)) }
            input #login-token type="password" name="token" autocomplete="current-password" required;
            button.primary type="submit" { (ctx.t(Text::LogIn)) }
        }
    }
}

pub async fn page(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let ctx = Ctx::new(&state, &headers);
    ctx.page(
        StatusCode::OK,
        Nav::None,
        ctx.t(Text::LogIn),
        form(&ctx, None, None),
    )
}

pub async fn submit(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let fields = form_fields(&body);
    // A login form posted from another site would log the victim in as the attacker.
    if !state
        .web
        .csrf_ok(&headers, fields.get("csrf").map_or("", String::as_str))
    {
        return ctx.message(StatusCode::FORBIDDEN, ctx.t(Text::CsrfRefused));
    }
    let token = fields.get("token").map_or("", |t| t.trim());
    let next = fields.get("next");
    let Some(role) = state.web.role_of_token(token) else {
        let refused = form(
            &ctx,
            Some(ctx.t(Text::WrongToken)),
            next.map(String::as_str),
        );
        return ctx.page(
            StatusCode::UNAUTHORIZED,
            Nav::None,
            ctx.t(Text::LogIn),
            refused,
        );
    };
    let name = fields.get("name").map_or("", String::as_str);
    info!(user = %name, read_only = (role == Role::Reader), "Logged in to the web page.");
    let mut response = see_other(&local_path(next, "/"));
    add_cookie(
        response.headers_mut(),
        state.web.login_cookie(role, name, &headers),
    );
    response
}

pub async fn logout(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    let fields = form_fields(&body);
    if !state
        .web
        .csrf_ok(&headers, fields.get("csrf").map_or("", String::as_str))
    {
        return ctx.message(StatusCode::FORBIDDEN, ctx.t(Text::CsrfRefused));
    }
    let mut response = see_other("/");
    add_cookie(response.headers_mut(), state.web.logout_cookie(&headers));
    response
}
