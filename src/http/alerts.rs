//! Alerts and silences over HTTP.
//!
//! - `GET /api/v1/alerts`: the alerts the router holds, with their state (`active`,
//!   `suppressed`, `resolved`), the silences and alerts that suppress them, and the
//!   receivers they reach.
//! - `POST /api/v2/alerts`: alerts as Prometheus sends them to an Alertmanager; they go
//!   through the same routing as atalaya's own.
//! - `GET`/`POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`: silences, in
//!   Alertmanager's API shape (`matchers` with `isRegex`/`isEqual`, `startsAt`, `endsAt`,
//!   `createdBy`, `comment`).

use std::sync::Arc;

use atalaya_bus::Labels;
use atalaya_bus::labels::Annotations;
use atalaya_rules::routing::router::{RoutedAlert, posted_alert_id};
use atalaya_rules::routing::silence::{
    MuteAll, Silence, SilenceError, SilenceMatcher, SilenceState,
};
use atalaya_rules::routing::time_limits::{HORIZON, within_horizon};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::ApiState;
use crate::alerting::routing::{PostRefused, RouterCommand};
use crate::internal_events::RejectStage;

/// What Go clients (amtool, Grafana) send for a time they leave unset: Go's zero time.
/// Alertmanager reads it as unset, and so does atalaya.
const GO_ZERO_TIME: Timestamp = Timestamp::constant(-62_135_596_800, 0);

/// A posted time, `None` when missing or Go's zero time.
fn set(at: Option<Timestamp>) -> Option<Timestamp> {
    at.filter(|at| *at != GO_ZERO_TIME)
}

/// Asks the router and waits for its answer; `None` when it is gone (shutting down).
pub(super) async fn ask<T>(
    state: &ApiState,
    command: impl FnOnce(oneshot::Sender<T>) -> RouterCommand,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    state.router.send(command(reply)).await.ok()?;
    answer.await.ok()
}

pub(super) fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "shutting down" })),
    )
        .into_response()
}

pub async fn list_alerts(State(state): State<Arc<ApiState>>) -> Response {
    let Some(views) = ask(&state, RouterCommand::ListAlerts).await else {
        return unavailable();
    };
    let alerts: Vec<Value> = views
        .iter()
        .map(|v| {
            json!({
                "fingerprint": v.fingerprint,
                "status": {
                    "state": v.state(),
                    "silencedBy": v.silenced_by,
                    "inhibitedBy": v.inhibited_by,
                },
                "labels": v.labels,
                "annotations": v.annotations,
                "startsAt": v.starts_at.to_string(),
                "endsAt": v.ends_at.map(|t| t.to_string()),
                "value": v.value,
                "receivers": v.receivers,
            })
        })
        .collect();
    Json(alerts).into_response()
}

/// One alert as Prometheus posts it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PostableAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Annotations,
    starts_at: Option<Timestamp>,
    ends_at: Option<Timestamp>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub async fn post_alerts(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let now = Timestamp::now();
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(alerts) => alerts,
        Err(e) => {
            return state.reject(
                RejectStage::Decode,
                StatusCode::BAD_REQUEST,
                format!("not a list of alerts: {e}"),
                Some((e.line(), e.column())),
            );
        }
    };
    let mut alerts = Vec::with_capacity(posted.len());
    for (index, mut alert) in posted.into_iter().enumerate() {
        alert.starts_at = set(alert.starts_at);
        alert.ends_at = set(alert.ends_at);
        let problem = if alert.labels.is_empty() {
            Some("has no labels".to_owned())
        } else {
            alert
                .labels
                .keys()
                .find(|name| !valid_label_name(name))
                .map(|name| format!("has an invalid label name `{name}`"))
        };
        if let Some(problem) = problem {
            return state.reject(
                RejectStage::Decode,
                StatusCode::BAD_REQUEST,
                format!("alert {index} {problem}"),
                None,
            );
        }
        let beyond = [("startsAt", alert.starts_at), ("endsAt", alert.ends_at)]
            .into_iter()
            .find_map(|(which, at)| {
                at.filter(|at| !within_horizon(*at, now))
                    .map(|at| (which, at))
            });
        if let Some((which, at)) = beyond {
            return state.reject(
                RejectStage::Decode,
                StatusCode::BAD_REQUEST,
                format!(
                    "alert {index}: {which} {at} is more than {} years ahead",
                    HORIZON.as_hours() / 8766
                ),
                None,
            );
        }
        // As Alertmanager: an unset start is the end when one is given, else now; an unset
        // end is filled by the router, `global.resolve_timeout` from now.
        let starts_at = alert.starts_at.or(alert.ends_at).unwrap_or(now);
        alerts.push(RoutedAlert {
            fingerprint: posted_alert_id(&alert.labels),
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at,
            ends_at: alert.ends_at,
            value: Value::Null,
            generator_url: alert.generator_url,
            updated_at: None,
        });
    }
    match ask(&state, |reply| RouterCommand::Post(alerts, reply)).await {
        None => unavailable(),
        Some(Ok(())) => StatusCode::OK.into_response(),
        Some(Err(refused)) => {
            let status = match refused {
                PostRefused::TooManyInRequest { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                PostRefused::TooManyHeld { .. } => StatusCode::TOO_MANY_REQUESTS,
            };
            state.reject(RejectStage::Limit, status, refused.to_string(), None)
        }
    }
}

/// A silence as posted: Alertmanager's `PostableSilence`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PostableSilence {
    /// Given: replace that silence.
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: Option<Timestamp>,
    ends_at: Timestamp,
    created_by: String,
    comment: String,
}

pub(super) fn silence_json(silence: &Silence, now: Timestamp) -> Value {
    let mut value = serde_json::to_value(silence).unwrap_or(Value::Null);
    value["status"] = json!({ "state": silence.state(now) });
    value
}

pub async fn list_silences(State(state): State<Arc<ApiState>>) -> Response {
    let Some(silences) = ask(&state, RouterCommand::ListSilences).await else {
        return unavailable();
    };
    let now = Timestamp::now();
    let list: Vec<Value> = silences.iter().map(|s| silence_json(s, now)).collect();
    Json(list).into_response()
}

/// The query of `POST /api/v1/silences`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceQuery {
    /// Allow a silence that mutes every alert (refused without it).
    #[serde(default)]
    mute_all: bool,
}

pub async fn post_silence(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<SilenceQuery>,
    body: Bytes,
) -> Response {
    let api = SilenceApi::Atalaya {
        mute_all: query.mute_all,
    };
    create_silence(&state, &body, api).await
}

/// Which API a silence is posted to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SilenceApi {
    /// atalaya's: `mute_all` allows a silence that mutes every alert; an `id` that names no
    /// silence creates one with that id.
    Atalaya { mute_all: bool },
    /// Alertmanager's v2: every field required (422 otherwise, as its schema check
    /// answers); an `id` that names no silence is 404, one that names an expired silence
    /// creates a new one.
    Alertmanager,
}

/// Creates (or, with an `id`, replaces) a silence from a posted `PostableSilence`.
pub(super) async fn create_silence(state: &ApiState, body: &[u8], api: SilenceApi) -> Response {
    let posted: PostableSilence = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            if api == SilenceApi::Alertmanager
                && let Some(field) = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
            {
                return schema_error(state, 602, format!("{field} in body is required"));
            }
            return state.reject(
                RejectStage::Decode,
                StatusCode::BAD_REQUEST,
                format!("not a silence: {e}"),
                Some((e.line(), e.column())),
            );
        }
    };
    if api == SilenceApi::Alertmanager {
        if posted.matchers.is_empty() {
            return schema_error(
                state,
                612,
                "matchers in body should have at least 1 items".to_owned(),
            );
        }
        if posted.starts_at.is_none() {
            return schema_error(state, 602, "startsAt in body is required".to_owned());
        }
    }
    let now = Timestamp::now();
    let mut given = posted.id.filter(|id| !id.is_empty());
    if api == SilenceApi::Alertmanager
        && let Some(id) = &given
    {
        let Some(silences) = ask(state, RouterCommand::ListSilences).await else {
            return unavailable();
        };
        match silences.iter().find(|s| &s.id == id) {
            None => return silence_error(state, &SilenceError::NotFound(id.clone())),
            Some(old) if old.state(now) == SilenceState::Expired => given = None,
            Some(_) => {}
        }
    }
    let id = given.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let silence = Silence {
        id: id.clone(),
        matchers: posted.matchers,
        starts_at: posted.starts_at.unwrap_or(now).max(now),
        ends_at: posted.ends_at,
        created_by: posted.created_by,
        comment: posted.comment,
        updated_at: now,
    };
    let mute_all = if api == (SilenceApi::Atalaya { mute_all: true }) {
        MuteAll::Allow
    } else {
        MuteAll::Refuse
    };
    match ask(state, |reply| {
        RouterCommand::AddSilence(silence, mute_all, reply)
    })
    .await
    {
        None => unavailable(),
        Some(Ok(())) => Json(json!({ "silenceID": id })).into_response(),
        Some(Err(e)) => silence_error(state, &e),
    }
}

pub async fn expire_silence(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Response {
    match ask(&state, |reply| RouterCommand::ExpireSilence(id, reply)).await {
        None => unavailable(),
        Some(Ok(())) => StatusCode::OK.into_response(),
        Some(Err(e)) => silence_error(&state, &e),
    }
}

/// What Alertmanager answers a body its OpenAPI schema refuses: 422 with go-openapi's
/// `{"code", "message"}`.
fn schema_error(state: &ApiState, code: u16, message: String) -> Response {
    let response = state.reject(
        RejectStage::Decode,
        StatusCode::UNPROCESSABLE_ENTITY,
        message.clone(),
        None,
    );
    let (parts, _) = response.into_parts();
    (parts, Json(json!({ "code": code, "message": message }))).into_response()
}

fn silence_error(state: &ApiState, error: &SilenceError) -> Response {
    let status = match error {
        SilenceError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    state.reject(RejectStage::Decode, status, error.to_string(), None)
}
