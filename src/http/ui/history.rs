//! `/alerts/{fingerprint}/history`: one alert's timeline from the history store — state
//! changes with the value that caused them and the rules' commit, how it was routed, every
//! notification and delivery attempt, the silences made for it — newest first.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    Ctx, MAX_LABEL_CHARS, MAX_TEXT_CHARS, Nav, PAGE_SIZE, clip, encode, labels, pager, paginate,
};
use super::text::Text;
use crate::alerting::history::{HistoryEntry, What};
use crate::http::ApiState;
use crate::http::history::blocking;

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page: Option<usize>,
}

pub async fn page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(fingerprint): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let history = state.history.clone();
    let fp = fingerprint.clone();
    let mut entries = match blocking(move || history.of(&fp)).await {
        Ok(entries) => entries,
        Err(e) => {
            return ctx.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &clip(&format!("{e:#}"), MAX_TEXT_CHARS),
            );
        }
    };
    entries.reverse();
    let name = entries
        .first()
        .map(|e| e.alertname.clone())
        .unwrap_or_default();
    let current_labels = entries.iter().find_map(|e| match &e.what {
        What::State { labels, .. } => Some(labels.clone()),
        _ => None,
    });
    let (shown, page, pages) = paginate(&entries, query.page.unwrap_or(1), PAGE_SIZE);
    let link = |p: usize| format!("/alerts/{}/history?page={p}", encode(&fingerprint));
    let title = format!("{} · {}", ctx.t(Text::History), clip(&name, 64));
    let live = html! {
        p.meta { code { (clip(&fingerprint, 32)) } }
        @if let Some(labels_of) = &current_labels { (labels(labels_of.iter())) }
        @if entries.is_empty() {
            p.empty { (ctx.t(Text::NoHistory)) }
        } @else {
            (pager(&ctx, page, pages, link))
            ol.timeline {
                @for entry in shown { li { (entry_line(&ctx, entry)) } }
            }
            (pager(&ctx, page, pages, link))
        }
    };
    ctx.live_page(Nav::None, &title, html! {}, live)
}

fn entry_line(ctx: &Ctx, entry: &HistoryEntry) -> Markup {
    html! {
        span.when { (ctx.when(entry.at)) }
        " "
        @match &entry.what {
            What::State { state, value, rules_commit, .. } => {
                span.badge.(state_class(state)) { (state_text(ctx, state)) }
                @if !value.is_null() { " " (ctx.t(Text::Value)) " " (clip(&value.to_string(), 64)) }
                @if let Some(commit) = rules_commit { " · " (ctx.t(Text::RulesCommit)) " " code { (clip(commit, 12)) } }
            }
            What::Flapping { changes, since } => {
                "flapping: " (changes) " changes since " (ctx.when(*since))
            }
            What::Routed { routes, receivers, silenced_by, inhibited_by } => {
                "routed " bdi { (clip(&routes.join(" → "), MAX_LABEL_CHARS)) }
                " → " bdi { (clip(&receivers.join(", "), MAX_LABEL_CHARS)) }
                @for s in silenced_by { " · " (ctx.t(Text::Silenced)) " " code { (clip(&s.silence, 8)) } " " (ctx.t(Text::CreatedBy)) " " bdi { (clip(&s.created_by, 64)) } }
                @if !inhibited_by.is_empty() { " · " (ctx.t(Text::Inhibits)) " " (inhibited_by.len()) }
            }
            What::Notified { receiver, integration, status, .. } => {
                "notified " bdi { (clip(receiver, 64)) } " #" (integration) " (" (status) ")"
            }
            What::Attempt { receiver, integration, attempt, outcome, error, .. } => {
                "delivery " bdi { (clip(receiver, 64)) } " · " (integration) " #" (attempt) ": "
                span.badge.(outcome_class(outcome)) { (outcome) }
                @if let Some(error) = error { " " span.error { bdi { (clip(error, MAX_TEXT_CHARS)) } } }
            }
            What::Silenced { silence, created_by, comment, ends_at } => {
                (ctx.t(Text::Silenced)) " " code { (clip(silence, 8)) } " " (ctx.t(Text::CreatedBy)) " " bdi { (clip(created_by, 64)) }
                " · " (ctx.t(Text::Ends)) " " (ctx.when(*ends_at))
                @if !comment.is_empty() { ": " bdi { (clip(comment, MAX_TEXT_CHARS)) } }
            }
        }
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "firing" => "firing",
        "pending" => "pending",
        _ => "resolved",
    }
}

fn state_text(ctx: &Ctx, state: &str) -> &'static str {
    match state {
        "firing" => ctx.t(Text::Firing),
        "pending" => ctx.t(Text::Pending),
        "resolved" => ctx.t(Text::Resolved),
        _ => ctx.t(Text::Unknown),
    }
}

pub fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "sent" => "resolved",
        "retry" => "pending",
        _ => "firing",
    }
}
