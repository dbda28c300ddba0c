//! `/silences`: the silences (active, pending, expired), the form that makes or edits one
//! and says how many alerts its matchers match while they are typed
//! (`/silences/preview`), and expiring one.

use std::sync::Arc;

use atalaya_bus::duration::{format_duration, parse_any_duration};
use atalaya_rules::routing::matcher::Matchers;
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceMatcher, SilenceState};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    Ctx, MAX_LABEL_CHARS, MAX_TEXT_CHARS, Nav, PAGE_SIZE, clip, encode, form_fields, see_other,
    writer,
};
use super::text::Text;
use crate::alerting::routing::RouterCommand;
use crate::http::ApiState;
use crate::http::alerts::ask;

/// What the form holds.
#[derive(Default)]
struct SilenceForm {
    /// Set when editing: the silence it replaces.
    id: Option<String>,
    matchers: String,
    duration: String,
    comment: String,
}

/// `{name="value", …}` as the form shows a silence's matchers.
fn matchers_text(matchers: &[SilenceMatcher]) -> String {
    let shown: Vec<String> = matchers
        .iter()
        .map(|m| match m.compile() {
            Ok(compiled) => compiled.to_string(),
            Err(_) => format!("{}=\"{}\"", m.name, m.value),
        })
        .collect();
    shown.join(", ")
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let Some(mut silences) = ask(&state, RouterCommand::ListSilences).await else {
        return ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable));
    };
    let now = ctx.now;
    silences.sort_by(|a, b| match (a.state(now), b.state(now)) {
        (SilenceState::Expired, SilenceState::Expired) => b.ends_at.cmp(&a.ends_at),
        _ => a.ends_at.cmp(&b.ends_at),
    });
    let of = |state: SilenceState| -> Vec<&Silence> {
        silences
            .iter()
            .filter(|s| s.state(now) == state)
            .take(PAGE_SIZE)
            .collect()
    };
    let sections = [
        (Text::Active, of(SilenceState::Active)),
        (Text::Pending, of(SilenceState::Pending)),
        (Text::Expired, of(SilenceState::Expired)),
    ];
    let live = html! {
        @if silences.is_empty() { p.empty { (ctx.t(Text::NoSilences)) } }
        @for (title, list) in &sections {
            @if !list.is_empty() {
                h2 { (ctx.t(*title)) " (" (list.len()) ")" }
                ul.cards {
                    @for silence in list { li { (silence_card(&ctx, silence)) } }
                }
            }
        }
    };
    let fixed = html! {
        @if ctx.viewer.can_write {
            p { a.button.primary href="/silences/new" { (ctx.t(Text::NewSilence)) } }
        }
    };
    ctx.live_page(Nav::Silences, ctx.t(Text::Silences), fixed, live)
}

fn silence_card(ctx: &Ctx, silence: &Silence) -> Markup {
    let state = silence.state(ctx.now);
    html! {
        article.card.silence data-silence=(silence.id) {
            p.head {
                code { (clip(&silence.id, 8)) } " "
                bdi { (clip(&matchers_text(&silence.matchers), MAX_TEXT_CHARS)) }
            }
            p.meta {
                @match state {
                    SilenceState::Pending => { (ctx.t(Text::Starts)) " " (ctx.when(silence.starts_at)) " · " }
                    _ => {}
                }
                (ctx.t(Text::Ends)) " " (ctx.when(silence.ends_at))
                " · " (ctx.t(Text::CreatedBy)) " " bdi { (clip(&silence.created_by, MAX_LABEL_CHARS)) }
            }
            @if !silence.comment.is_empty() {
                p.description { bdi { (clip(&silence.comment, MAX_TEXT_CHARS)) } }
            }
            @if ctx.viewer.can_write && state != SilenceState::Expired {
                div.actions {
                    a.button href=(format!("/silences/{}/edit", encode(&silence.id))) { (ctx.t(Text::Edit)) }
                    form method="post" action=(format!("/silences/{}/expire", encode(&silence.id))) {
                        (ctx.csrf_field())
                        button.danger type="submit" { (ctx.t(Text::Expire)) }
                    }
                }
            }
        }
    }
}

/// The matchers in a query, for the form opened from an alert (`?matchers=…`).
#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    matchers: String,
}

pub async fn new(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<NewQuery>,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let form = SilenceForm {
        matchers: query.matchers,
        duration: "2h".to_owned(),
        ..SilenceForm::default()
    };
    let count = preview_text(&state, &ctx, &form.matchers).await;
    form_page(&ctx, &form, None, count, StatusCode::OK)
}

pub async fn edit(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let Some(silences) = ask(&state, RouterCommand::ListSilences).await else {
        return ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable));
    };
    let Some(silence) = silences.into_iter().find(|s| s.id == id) else {
        return ctx.message(StatusCode::NOT_FOUND, ctx.t(Text::NotFound));
    };
    let left = ctx
        .now
        .duration_until(silence.ends_at)
        .max(SignedDuration::ZERO);
    let form = SilenceForm {
        id: Some(silence.id),
        matchers: matchers_text(&silence.matchers),
        // Whole minutes left, as a Prometheus duration (`1h59m`).
        duration: format_duration(std::time::Duration::from_secs(
            (left.as_secs().max(60) / 60 * 60).cast_unsigned(),
        )),
        comment: silence.comment,
    };
    let count = preview_text(&state, &ctx, &form.matchers).await;
    form_page(&ctx, &form, None, count, StatusCode::OK)
}

fn form_page(
    ctx: &Ctx,
    form: &SilenceForm,
    error: Option<String>,
    count: Markup,
    status: StatusCode,
) -> Response {
    let title = if form.id.is_some() {
        ctx.t(Text::EditSilence)
    } else {
        ctx.t(Text::NewSilence)
    };
    let content = html! {
        @if let Some(error) = error {
            p.notice role="alert" { (ctx.t(Text::Refused)) " " (clip(&error, MAX_TEXT_CHARS)) }
        }
        form.stack #silence-form method="post" action="/silences" {
            (ctx.csrf_field())
            @if let Some(id) = &form.id { input type="hidden" name="id" value=(id); }
            label for="matchers" { (ctx.t(Text::Matchers)) }
            input #matchers type="text" name="matchers" value=(form.matchers) required
                autocomplete="off" spellcheck="false" aria-describedby="matchers-help preview";
            small #matchers-help { (ctx.t(Text::MatchersHelp)) }
            output #preview for="matchers" data-src="/silences/preview" aria-live="polite" { (count) }
            label for="duration" { (ctx.t(Text::Duration)) }
            input #duration type="text" name="duration" value=(form.duration) required
                list="durations" autocomplete="off";
            datalist #durations { option value="1h" {} option value="2h" {} option value="8h" {} option value="1d" {} option value="1w" {} }
            label for="comment" { (ctx.t(Text::Comment)) }
            input #comment type="text" name="comment" value=(form.comment) maxlength="1000";
            p.meta { (ctx.t(Text::CreatedBy)) " " bdi { (ctx.viewer.name) } }
            button.primary type="submit" { (ctx.t(Text::Save)) }
        }
    };
    if ctx.viewer.can_write {
        ctx.page(status, Nav::Silences, title, content)
    } else {
        ctx.message(StatusCode::FORBIDDEN, ctx.t(Text::ReadOnly))
    }
}

/// "Matches alerts now: N", or why the matchers are not matchers.
async fn preview_text(state: &ApiState, ctx: &Ctx, text: &str) -> Markup {
    if text.trim().is_empty() {
        return html! {};
    }
    let silence = match to_silence(text, ctx.now, SignedDuration::from_hours(1)) {
        Ok(silence) => silence,
        Err(error) => {
            return html! { span.error { (ctx.t(Text::BadMatchers)) " " (clip(&error, MAX_TEXT_CHARS)) } };
        }
    };
    let matchers = match silence.compile() {
        Ok(m) => m,
        Err(e) => return html! { span.error { (ctx.t(Text::Refused)) " " (e.to_string()) } },
    };
    let Some(alerts) = ask(state, RouterCommand::ListAlerts).await else {
        return html! {};
    };
    let count = alerts
        .iter()
        .filter(|a| a.ends_at.is_none_or(|end| end >= ctx.now))
        .filter(|a| matchers.matches(&a.labels))
        .count();
    html! { (ctx.t(Text::MatchesAlerts)) " " strong #match-count { (count) } }
}

/// A silence of `text`'s matchers from `now` for `duration`, not yet checked.
fn to_silence(text: &str, now: Timestamp, duration: SignedDuration) -> Result<Silence, String> {
    let matchers = Matchers::parse(text).map_err(|e| e.to_string())?;
    Ok(Silence {
        id: String::new(),
        matchers: matchers
            .0
            .iter()
            .map(SilenceMatcher::from_matcher)
            .collect(),
        starts_at: now,
        ends_at: now.saturating_add(duration).unwrap_or(now),
        created_by: String::new(),
        comment: String::new(),
        updated_at: now,
    })
}

/// `GET /silences/preview?matchers=…`: the live count under the form.
pub async fn preview(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<NewQuery>,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let text = preview_text(&state, &ctx, &query.matchers).await;
    let fragment = Ctx {
        fragment: true,
        ..ctx
    };
    fragment.page(StatusCode::OK, Nav::None, "", text)
}

/// `POST /silences`: makes a silence, or replaces the one named by `id`.
pub async fn save(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form_fields(&body);
    let ctx = match writer(&state, &headers, &fields) {
        Ok(ctx) => ctx,
        Err(refused) => return *refused,
    };
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let form = SilenceForm {
        id: fields.get("id").filter(|id| !id.is_empty()).cloned(),
        matchers: field("matchers"),
        duration: field("duration"),
        comment: field("comment"),
    };
    let made = parse_any_duration(form.duration.trim())
        .and_then(|d| SignedDuration::try_from(d).map_err(|e| e.to_string()))
        .and_then(|duration| to_silence(&form.matchers, ctx.now, duration));
    let mut silence = match made {
        Ok(silence) => silence,
        Err(error) => {
            let count = preview_text(&state, &ctx, &form.matchers).await;
            return form_page(&ctx, &form, Some(error), count, StatusCode::BAD_REQUEST);
        }
    };
    silence.id = form
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    silence.created_by = ctx.viewer.name.clone();
    silence.comment = form.comment.chars().take(MAX_TEXT_CHARS).collect();
    match ask(&state, |reply| {
        RouterCommand::AddSilence(silence, MuteAll::Refuse, reply)
    })
    .await
    {
        None => ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable)),
        Some(Ok(())) => see_other("/silences"),
        Some(Err(e)) => {
            let count = preview_text(&state, &ctx, &form.matchers).await;
            form_page(
                &ctx,
                &form,
                Some(e.to_string()),
                count,
                StatusCode::BAD_REQUEST,
            )
        }
    }
}

/// `POST /silences/{id}/expire`.
pub async fn expire(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let ctx = match writer(&state, &headers, &fields) {
        Ok(ctx) => ctx,
        Err(refused) => return *refused,
    };
    match ask(&state, |reply| RouterCommand::ExpireSilence(id, reply)).await {
        None => ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable)),
        Some(Ok(())) => see_other("/silences"),
        Some(Err(e)) => ctx.message(
            StatusCode::BAD_REQUEST,
            &format!("{} {e}", ctx.t(Text::Refused)),
        ),
    }
}
