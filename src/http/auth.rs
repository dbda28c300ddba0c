//! The optional bearer token on `/api/…`, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
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
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let (ok, reason) = match presented {
        None => (false, "missing bearer token (Authorization: Bearer …)"),
        Some(token) => (
            bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())),
            "wrong bearer token",
        ),
    };
    if ok {
        next.run(request).await
    } else {
        state.reject(
            RejectStage::Auth,
            StatusCode::UNAUTHORIZED,
            reason.to_owned(),
            None,
        )
    }
}
