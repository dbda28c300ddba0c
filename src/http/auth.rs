//! The bearer tokens on `/api/…`, compared in constant time: `http.token` for everything,
//! and for reads (`GET`, `HEAD`) also `http.read_token`, or nothing with
//! `http.anonymous_read`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::internal_events::RejectStage;

pub async fn require_token(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.token else {
        return next.run(request).await;
    };
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if read && state.anonymous_read {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes());
    let Some(token) = presented else {
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer …)",
        );
    };
    let is = |secret: &crate::config::Secret| bool::from(token.ct_eq(secret.expose().as_bytes()));
    if is(expected) {
        return next.run(request).await;
    }
    match &state.read_token {
        Some(reader) if is(reader) && read => next.run(request).await,
        Some(reader) if is(reader) => refuse(
            &state,
            StatusCode::FORBIDDEN,
            "the read-only token (http.read_token) cannot change anything",
        ),
        _ => refuse(&state, StatusCode::UNAUTHORIZED, "wrong bearer token"),
    }
}

fn refuse(state: &ApiState, status: StatusCode, reason: &str) -> Response {
    state.reject(RejectStage::Auth, status, reason.to_owned(), None)
}
