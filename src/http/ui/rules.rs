//! `/rules`: every rule with where it is defined, each series' state (inactive, pending until,
//! firing since) and last value, its last evaluation error; when the rules were last loaded,
//! the last refused reload's errors, and the rules' commit.

use std::sync::Arc;

use atalaya_rules::engine::{RuleExplanation, SeriesExplanation};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Ctx, MAX_LABEL_CHARS, MAX_TEXT_CHARS, Nav, PAGE_SIZE, clip, labels};
use super::text::Text;
use crate::alerting::routing::RouterCommand;
use crate::http::ApiState;
use crate::http::alerts::ask;

pub async fn page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let Some(overview) = ask(&state, RouterCommand::RulesOverview).await else {
        return ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable));
    };
    let live = html! {
        dl.facts {
            dt { (ctx.t(Text::LastReload)) }
            dd { @match overview.loaded_at { Some(at) => (ctx.when(at)), None => (ctx.t(Text::Unknown)) } }
            dt { (ctx.t(Text::RulesCommit)) }
            dd { @match &overview.rules_commit { Some(c) => code { (clip(c, 40)) }, None => (ctx.t(Text::Unknown)) } }
        }
        @if let Some(error) = &overview.reload_error {
            p.notice role="alert" { strong { (ctx.t(Text::ReloadError)) ": " } bdi { (clip(error, MAX_TEXT_CHARS)) } }
        }
        @if overview.rules.is_empty() { p.empty { (ctx.t(Text::NoRules)) } }
        @for rule in &overview.rules { (rule_card(&ctx, rule)) }
    };
    ctx.live_page(Nav::Rules, ctx.t(Text::Rules), html! {}, live)
}

fn rule_card(ctx: &Ctx, rule: &RuleExplanation) -> Markup {
    let firing = rule.series.iter().filter(|s| s.state == "firing").count();
    let pending = rule.series.iter().filter(|s| s.state == "pending").count();
    // The active series first: they are what a person looks for.
    let mut series: Vec<&SeriesExplanation> = rule.series.iter().collect();
    series.sort_by_key(|s| match s.state.as_str() {
        "firing" => 0,
        "pending" => 1,
        _ => 2,
    });
    html! {
        article.card.rule.firing[firing > 0] {
            h2 { bdi { (clip(&rule.rule, MAX_LABEL_CHARS)) } }
            p.meta {
                (ctx.t(Text::Origin)) " " code { (clip(&rule.origin, MAX_LABEL_CHARS)) }
                " · " (ctx.t(Text::Series)) " " (rule.series_count) "/" (rule.max_series)
                @if firing > 0 { " · " span.badge.firing { (firing) " " (ctx.t(Text::Firing)) } }
                @if pending > 0 { " · " span.badge.pending { (pending) " " (ctx.t(Text::Pending)) } }
            }
            @if let Some(error) = &rule.last_error {
                p.notice {
                    strong { (ctx.t(Text::EvalError)) }
                    @if let Some(at) = rule.last_error_at { " (" (ctx.ago(at)) ")" }
                    ": " bdi { (clip(error, MAX_TEXT_CHARS)) }
                }
            }
            @if !series.is_empty() {
                ul.series {
                    @for s in series.iter().take(PAGE_SIZE) { li { (series_line(ctx, s)) } }
                }
                @if series.len() > PAGE_SIZE { p.meta { "… " (series.len() - PAGE_SIZE) " " (ctx.t(Text::Truncated)) } }
            }
        }
    }
}

fn series_line(ctx: &Ctx, series: &SeriesExplanation) -> Markup {
    html! {
        @match series.state.as_str() {
            "firing" => {
                span.badge.firing { (ctx.t(Text::Firing)) }
                @if let Some(since) = series.since { " " (ctx.t(Text::Since)) " " (ctx.when(since)) }
            }
            "pending" => {
                span.badge.pending { (ctx.t(Text::Pending)) }
                @if let Some(at) = series.fires_at { " " (ctx.t(Text::FiresAt)) " " (ctx.when(at)) }
            }
            _ => { span.badge.resolved { (ctx.t(Text::Inactive)) } }
        }
        @if !series.value.is_null() {
            " · " (ctx.t(Text::LastValue)) " " code { (clip(&series.value.to_string(), 64)) }
        }
        " · " (ctx.t(Text::LastSeen)) " " (ctx.ago(series.last_seen))
        (labels(series.labels.iter()))
    }
}
