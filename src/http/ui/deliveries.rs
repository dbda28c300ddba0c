//! `/deliveries`: what waits in the outbox, lane by lane (a receiver's integration); the
//! latest delivery attempts; the dead letters, each with retry and drop.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::history::outcome_class;
use super::layout::{
    Ctx, MAX_LABEL_CHARS, MAX_TEXT_CHARS, Nav, clip, encode, form_fields, see_other, writer,
};
use super::text::Text;
use crate::http::ApiState;
use crate::http::history::{blocking, recent_attempts};

/// Recent attempts shown.
const RECENT: usize = 50;

pub async fn page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let lanes = state.outbox.lanes();
    let outbox = state.outbox.clone();
    let letters = blocking(move || outbox.dead_letters()).await;
    let attempts = recent_attempts(state.history.clone(), RECENT, false).await;
    let (letters, attempts) = match (letters, attempts) {
        (Ok(letters), Ok(attempts)) => (letters, attempts),
        (Err(e), _) | (_, Err(e)) => {
            return ctx.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &clip(&format!("{e:#}"), MAX_TEXT_CHARS),
            );
        }
    };
    let live = html! {
        h2 { (ctx.t(Text::Queued)) }
        @if lanes.is_empty() {
            p.empty { (ctx.t(Text::NothingQueued)) }
        } @else {
            table {
                thead { tr { th scope="col" { (ctx.t(Text::Lane)) } th scope="col" { (ctx.t(Text::Queued)) } } }
                tbody {
                    @for ((receiver, integration), depth) in &lanes {
                        tr { td { bdi { (clip(receiver, MAX_LABEL_CHARS)) } " · #" (integration) } td { (depth) } }
                    }
                }
            }
        }
        h2 { (ctx.t(Text::DeadLetters)) " (" (letters.len()) ")" }
        @if letters.is_empty() { p.empty { (ctx.t(Text::NoDeadLetters)) } }
        ul.cards {
            @for letter in letters.iter().rev().take(super::layout::PAGE_SIZE) {
                @let n = &letter.notification;
                li { article.card.dead {
                    p.head {
                        span.badge.firing { "dead letter" } " "
                        bdi { (clip(&n.receiver, MAX_LABEL_CHARS)) } " #" (n.integration)
                        " · " (n.alerts.len()) " " (ctx.t(Text::Alerts).to_lowercase())
                    }
                    p.meta {
                        (ctx.when(letter.dead_lettered_at)) " · " (letter.attempts) "× · "
                        (ctx.t(Text::Reason)) ": " bdi { (clip(&letter.reason, MAX_TEXT_CHARS)) }
                    }
                    @if ctx.viewer.can_write {
                        div.actions {
                            form method="post" action=(format!("/deliveries/{}/retry", encode(&n.id))) {
                                (ctx.csrf_field())
                                button type="submit" { (ctx.t(Text::Retry)) }
                            }
                            form method="post" action=(format!("/deliveries/{}/drop", encode(&n.id))) {
                                (ctx.csrf_field())
                                button.danger type="submit" { (ctx.t(Text::Drop)) }
                            }
                        }
                    }
                } }
            }
        }
        h2 { (ctx.t(Text::RecentNotifications)) }
        @if attempts.is_empty() { p.empty { (ctx.t(Text::NoNotifications)) } }
        ul.cards {
            @for line in &attempts {
                li { article.card {
                    p.head {
                        span.badge.(outcome_class(&line.outcome)) { (line.outcome) } " "
                        bdi { (clip(&line.receiver, MAX_LABEL_CHARS)) } " · " (line.integration)
                        " #" (line.attempt)
                    }
                    p.meta {
                        (ctx.ago(line.at)) " · "
                        @for (fingerprint, name) in line.alerts.iter().take(10) {
                            a href=(format!("/alerts/{}/history", encode(fingerprint))) { bdi { (clip(name, 64)) } } " "
                        }
                    }
                    @if let Some(error) = &line.error {
                        p.error { bdi { (clip(error, MAX_TEXT_CHARS)) } }
                    }
                } }
            }
        }
    };
    ctx.live_page(Nav::Deliveries, ctx.t(Text::Deliveries), html! {}, live)
}

/// What a dead letter's button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LetterAction {
    Retry,
    Drop,
}

async fn act(
    state: Arc<ApiState>,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    action: LetterAction,
) -> Response {
    let fields = form_fields(&body);
    let ctx = match writer(&state, &headers, &fields) {
        Ok(ctx) => ctx,
        Err(refused) => return *refused,
    };
    let outbox = state.outbox.clone();
    let done = blocking(move || match action {
        LetterAction::Retry => outbox.retry_dead_letter(&id),
        LetterAction::Drop => outbox.drop_dead_letter(&id),
    })
    .await;
    match done {
        Ok(true) => see_other("/deliveries"),
        Ok(false) => ctx.message(StatusCode::NOT_FOUND, ctx.t(Text::NotFound)),
        Err(e) => ctx.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            &clip(&format!("{e:#}"), MAX_TEXT_CHARS),
        ),
    }
}

/// `POST /deliveries/{id}/retry`: the dead letter goes back in the outbox.
pub async fn retry(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(state, headers, id, body, LetterAction::Retry).await
}

/// `POST /deliveries/{id}/drop`: the dead letter is forgotten.
pub async fn drop_letter(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(state, headers, id, body, LetterAction::Drop).await
}
