//! `/`: the alerts — firing, silenced and inhibited ones from the router, pending ones from
//! the rules — grouped as the route tree groups them or by a chosen label (Karma's grid), a
//! page of [`ALERTS_PER_PAGE`] at a time; and `POST /alerts/{fingerprint}/silence`, the one-tap
//! silences.

use std::sync::Arc;

use atalaya_rules::routing::matcher::Matcher;
use atalaya_rules::routing::router::{AlertView, GroupView};
use atalaya_rules::routing::silence::{MuteAll, Silence, SilenceMatcher};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    ALERTS_PER_PAGE, Ctx, MAX_LABEL_CHARS, MAX_TEXT_CHARS, Nav, PAGE_SIZE, clip, encode,
    form_fields, labels, local_path, pager, paginate, see_other, writer,
};
use super::text::Text;
use crate::alerting::routing::{RouterCommand, UNTIL_RESOLVED, UNTIL_RESOLVED_HOLD};
use crate::http::ApiState;
use crate::http::alerts::ask;

#[derive(Deserialize, Default)]
pub struct AlertsQuery {
    /// Group by this label; empty: by the route tree's groups.
    #[serde(default)]
    by: String,
    /// Matchers every alert shown must meet (`severity="critical", room=~"k.*"`).
    #[serde(default)]
    filter: String,
    #[serde(default)]
    page: Option<usize>,
}

/// The most characters of an alert's description on its card (the API and the notifications
/// have it whole).
const MAX_DESCRIPTION_CHARS: usize = 280;

/// One alert under one group heading.
struct Row<'a> {
    group: String,
    alert: &'a AlertView,
}

pub async fn page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<AlertsQuery>,
) -> Response {
    let ctx = Ctx::new(&state, &headers);
    if let Some(login) = ctx.must_log_in(&uri) {
        return login;
    }
    let filter = parse_filter(&query.filter);
    let by = query.by.trim();
    // Route groups: an alert in several groups (several receivers) shows in each.
    let groups: Vec<GroupView> = if by.is_empty() {
        match ask(&state, RouterCommand::ListGroups).await {
            Some(groups) => groups,
            None => return ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable)),
        }
    } else {
        match ask(&state, RouterCommand::ListAlerts).await {
            Some(alerts) => vec![GroupView {
                labels: Default::default(),
                receiver: String::new(),
                alerts,
            }],
            None => return ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable)),
        }
    };
    let keep = |a: &AlertView| {
        a.ends_at.is_none_or(|end| end >= ctx.now)
            && filter
                .as_ref()
                .is_ok_and(|f| f.iter().all(|m| m.matches(&a.labels)))
    };
    let mut rows: Vec<Row<'_>> = Vec::new();
    for group in &groups {
        let heading = if by.is_empty() {
            group_heading(group)
        } else {
            String::new()
        };
        for alert in group.alerts.iter().filter(|a| keep(a)) {
            let group = if by.is_empty() {
                heading.clone()
            } else {
                format!("{by}={}", alert.labels.get(by).unwrap_or(""))
            };
            rows.push(Row { group, alert });
        }
    }
    // Group by group; in a group the ones that still notify first, then the newest.
    rows.sort_by(|a, b| {
        (
            &a.group,
            suppressed(a.alert),
            std::cmp::Reverse(a.alert.starts_at),
        )
            .cmp(&(
                &b.group,
                suppressed(b.alert),
                std::cmp::Reverse(b.alert.starts_at),
            ))
    });
    let (shown, page, pages) = paginate(&rows, query.page.unwrap_or(1), ALERTS_PER_PAGE);
    let pending = if page == 1 {
        pending_series(&state, filter.as_deref().unwrap_or_default()).await
    } else {
        Vec::new()
    };
    let link = |p: usize| {
        format!(
            "/?by={}&filter={}&page={p}",
            encode(by),
            encode(&query.filter)
        )
    };
    let here = link(page);
    let live = html! {
        // The one form every alert's silence buttons submit (each button's value: the alert's
        // fingerprint and how long): one CSRF token per page, not one per alert.
        @if ctx.viewer.can_write {
            form #quick method="post" action="/alerts/silence" {
                (ctx.csrf_field())
                input type="hidden" name="back" value=(here);
            }
        }
        p.summary {
            (rows.len()) " " (ctx.t(Text::Alerts).to_lowercase())
            @if !pending.is_empty() { " · " (pending.len()) " " (ctx.t(Text::Pending)) }
        }
        @if rows.is_empty() && pending.is_empty() {
            p.empty { (ctx.t(Text::NothingFiring)) }
        }
        (pager(&ctx, page, pages, link))
        @for (i, row) in shown.iter().enumerate() {
            @if !row.group.is_empty() && (i == 0 || shown[i - 1].group != row.group) {
                h2.group { bdi { (clip(&row.group, MAX_LABEL_CHARS)) } }
            }
            (alert_card(&ctx, row.alert))
        }
        @if !pending.is_empty() {
            h2.group { (ctx.t(Text::Pending)) }
            ul.cards {
                @for (rule, labels_of, fires_at) in &pending {
                    li.card.pending {
                        p.head { span.badge.pending { (ctx.t(Text::Pending)) } " " strong { bdi { (clip(rule, MAX_LABEL_CHARS)) } } }
                        (labels(labels_of.iter()))
                        @if let Some(at) = fires_at {
                            p.meta { (ctx.t(Text::FiresAt)) " " (ctx.when(*at)) }
                        }
                    }
                }
            }
        }
        (pager(&ctx, page, pages, link))
    };
    let fixed = filter_form(&ctx, by, &query.filter, filter.as_ref().err());
    ctx.live_page(Nav::Alerts, ctx.t(Text::Alerts), fixed, live)
}

fn suppressed(alert: &AlertView) -> bool {
    !alert.silenced_by.is_empty() || !alert.inhibited_by.is_empty()
}

/// A route group's heading: its labels, and the receiver it goes to.
fn group_heading(group: &GroupView) -> String {
    let labels: Vec<String> = group
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", clip(v, MAX_LABEL_CHARS)))
        .collect();
    if labels.is_empty() {
        format!("→ {}", group.receiver)
    } else {
        format!("{} → {}", labels.join(", "), group.receiver)
    }
}

fn parse_filter(text: &str) -> Result<Vec<Matcher>, String> {
    atalaya_rules::routing::matcher::Matchers::parse(text)
        .map(|m| m.0)
        .map_err(|e| e.to_string())
}

/// Series of the rules that are pending (the condition holds, `for:` has not passed): the
/// rule, the labels, and when it fires if it keeps holding. At most a page of them.
async fn pending_series(
    state: &ApiState,
    filter: &[Matcher],
) -> Vec<(String, atalaya_bus::Labels, Option<Timestamp>)> {
    let Some(overview) = ask(state, RouterCommand::RulesOverview).await else {
        return Vec::new();
    };
    overview
        .rules
        .into_iter()
        .flat_map(|rule| {
            let name = rule.rule;
            rule.series
                .into_iter()
                .filter(|s| s.state == "pending")
                .map(move |s| (name.clone(), s.labels, s.fires_at))
        })
        .filter(|(_, labels, _)| filter.iter().all(|m| m.matches(labels)))
        .take(PAGE_SIZE)
        .collect()
}

fn filter_form(ctx: &Ctx, by: &str, filter: &str, error: Option<&String>) -> Markup {
    let open = !by.is_empty() || !filter.is_empty() || error.is_some();
    html! {
        details.filter-box open[open] {
        summary { (ctx.t(Text::Filter)) " · " (ctx.t(Text::GroupBy)) }
        form.filters method="get" action="/" role="search" {
            div {
                label for="filter" { (ctx.t(Text::Filter)) }
                input #filter type="search" name="filter" value=(filter)
                    placeholder="severity=\"critical\"" autocomplete="off";
            }
            div {
                label for="by" { (ctx.t(Text::GroupBy)) }
                input #by type="text" name="by" value=(by) list="group-labels"
                    placeholder=(ctx.t(Text::RouteGroups)) autocomplete="off";
                datalist #group-labels {
                    option value="alertname" {} option value="severity" {} option value="room" {}
                }
            }
            button type="submit" { (ctx.t(Text::Apply)) }
            @if let Some(error) = error {
                p.notice role="alert" { (ctx.t(Text::BadMatchers)) " " (clip(error, MAX_TEXT_CHARS)) }
            }
        }
        }
    }
}

fn alert_card(ctx: &Ctx, alert: &AlertView) -> Markup {
    let silenced = !alert.silenced_by.is_empty();
    let inhibited = !alert.inhibited_by.is_empty();
    let name = alert.labels.get("alertname").unwrap_or("");
    let summary = alert
        .annotations
        .get("summary")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(name);
    let (badge, badge_text) = if silenced {
        ("silenced", Text::Silenced)
    } else if inhibited {
        ("inhibited", Text::Inhibited)
    } else {
        ("firing", Text::Firing)
    };
    let history = format!("/alerts/{}/history", encode(&alert.fingerprint));
    html! {
        article.card.alert.silenced[silenced].inhibited[inhibited] data-fingerprint=(alert.fingerprint) {
            p.head {
                span.badge.(badge) { (ctx.t(badge_text)) }
                " "
                strong { bdi { (clip(summary, MAX_LABEL_CHARS)) } }
            }
            (labels(alert.labels.iter().filter(|(k, _)| *k != "alertname")))
            p.meta {
                (ctx.t(Text::For)) " " (ctx.ago(alert.starts_at))
                @if !alert.receivers.is_empty() {
                    " · " (ctx.t(Text::Receivers)) " " bdi { (clip(&alert.receivers.join(", "), MAX_LABEL_CHARS)) }
                }
                @if !alert.value.is_null() {
                    " · " (ctx.t(Text::Value)) " " (clip(&value_text(&alert.value), 64))
                }
            }
            @if let Some(description) = alert.annotations.get("description") {
                p.description { bdi { (clip(description, MAX_DESCRIPTION_CHARS)) } }
            }
            @if silenced {
                p.meta {
                    (ctx.t(Text::Silenced)) ": "
                    @for id in &alert.silenced_by {
                        a href=(format!("/silences/{}/edit", encode(id))) { code { (clip(id, 8)) } } " "
                    }
                }
            }
            @if inhibited {
                p.meta {
                    (ctx.t(Text::Inhibits)) " "
                    @for fp in &alert.inhibited_by {
                        a href=(format!("/alerts/{}/history", encode(fp))) { code { (clip(fp, 16)) } } " "
                    }
                }
            }
            div.actions {
                @if ctx.viewer.can_write && !silenced {
                    @for (duration, text) in [("1h", Text::Silence1h), ("8h", Text::Silence8h), ("resolved", Text::SilenceUntilResolved)] {
                        button form="quick" name="silence" value=(format!("{} {duration}", alert.fingerprint)) { (ctx.t(text)) }
                    }
                }
                a.button href=(history) { (ctx.t(Text::History)) }
            }
        }
    }
}

/// The rule's value as the notifications show it: numbers with at most two decimals.
fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => {
                let text = format!("{f:.2}");
                text.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How long a one-tap silence lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuickSilence {
    OneHour,
    EightHours,
    /// Until the alert resolves (at most [`UNTIL_RESOLVED_HOLD`]): the rules runner expires
    /// it then.
    UntilResolved,
}

impl QuickSilence {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "1h" => Some(Self::OneHour),
            "8h" => Some(Self::EightHours),
            "resolved" => Some(Self::UntilResolved),
            _ => None,
        }
    }

    fn duration(self) -> SignedDuration {
        match self {
            Self::OneHour => SignedDuration::from_hours(1),
            Self::EightHours => SignedDuration::from_hours(8),
            Self::UntilResolved => UNTIL_RESOLVED_HOLD,
        }
    }
}

/// `POST /alerts/silence` (`silence`: the alert's fingerprint and `1h`, `8h` or `resolved`,
/// space-separated): silences the alert's exact labels, created by the logged-in user.
pub async fn silence(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let ctx = match writer(&state, &headers, &fields) {
        Ok(ctx) => ctx,
        Err(refused) => return *refused,
    };
    let asked = fields
        .get("silence")
        .and_then(|s| s.split_once(' '))
        .and_then(|(fingerprint, d)| Some((fingerprint.to_owned(), QuickSilence::parse(d)?)));
    let Some((fingerprint, quick)) = asked else {
        return ctx.message(StatusCode::BAD_REQUEST, ctx.t(Text::Refused));
    };
    let Some(alerts) = ask(&state, RouterCommand::ListAlerts).await else {
        return ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable));
    };
    let Some(alert) = alerts.iter().find(|a| a.fingerprint == fingerprint) else {
        return ctx.message(StatusCode::NOT_FOUND, ctx.t(Text::NotFound));
    };
    let now = Timestamp::now();
    let silence = Silence {
        id: uuid::Uuid::now_v7().to_string(),
        matchers: exact(&alert.labels),
        starts_at: now,
        ends_at: now.saturating_add(quick.duration()).unwrap_or(now),
        created_by: ctx.viewer.name.clone(),
        comment: match quick {
            QuickSilence::UntilResolved => format!("{UNTIL_RESOLVED}{fingerprint}"),
            _ => "from the web page".to_owned(),
        },
        updated_at: now,
    };
    match ask(&state, |reply| {
        RouterCommand::AddSilence(silence, MuteAll::Refuse, reply)
    })
    .await
    {
        None => ctx.message(StatusCode::SERVICE_UNAVAILABLE, ctx.t(Text::Unavailable)),
        Some(Ok(())) => see_other(&local_path(fields.get("back"), "/")),
        Some(Err(e)) => ctx.message(
            StatusCode::BAD_REQUEST,
            &format!("{} {e}", ctx.t(Text::Refused)),
        ),
    }
}

/// Matchers for exactly these labels.
fn exact(labels: &atalaya_bus::Labels) -> Vec<SilenceMatcher> {
    labels
        .iter()
        .map(|(name, value)| SilenceMatcher::equal(name, value))
        .collect()
}
