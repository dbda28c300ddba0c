//! Alertmanager's API v2 (`api/v2/openapi.yaml` of prometheus/alertmanager), so that
//! amtool, Grafana's Alertmanager data source and Karma work against atalaya as they do
//! against Alertmanager: the same paths, query parameters and JSON shapes.
//!
//! - `GET /api/v2/alerts` (`filter`, `silenced`, `inhibited`, `active`, `unprocessed`,
//!   `receiver`) and `GET /api/v2/alerts/groups`: alerts from rules and from Prometheus
//!   alike, resolved ones left out (as Alertmanager leaves them out).
//! - `GET`/`POST /api/v2/silences`, `GET`/`DELETE /api/v2/silence/{id}`.
//! - `GET /api/v2/status`: the policy as an Alertmanager configuration (secrets and
//!   atalaya's own integrations left out), uptime, version, a one-peer cluster.
//! - `GET /api/v2/receivers`.
//!
//! `POST /api/v2/alerts` is in `alerts.rs`. Errors are JSON strings, as Alertmanager's
//! (a Go client reading an object where a string is expected fails to decode it).

use std::sync::Arc;

use atalaya_bus::Labels;
use atalaya_rules::routing::matcher::{MatchOp, Matcher};
use atalaya_rules::routing::router::{AlertView, GroupView};
use atalaya_rules::routing::silence::{Silence, SilenceMatcher, SilenceState};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::ApiState;
use super::alerts::{
    SilenceApi, ask, create_silence, expire_silence, post_alerts, silence_json, unavailable,
};
use crate::alerting::routing::RouterCommand;
use crate::internal_events::RejectStage;

/// What Alertmanager writes for a time that is not set (the `endsAt` of a firing alert
/// from a rule, which has no timeout).
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The routes under `/api/v2`.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .layer(middleware::from_fn(errors_as_strings))
}

/// Rewrites atalaya's `{"error": "…"}` answers into the JSON string Alertmanager answers.
async fn errors_as_strings(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, Json("error")).into_response();
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) if object.contains_key("error") => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(object["error"].to_string())
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// The query parameters of the alert endpoints.
struct AlertQuery {
    filter: Vec<Matcher>,
    silenced: bool,
    inhibited: bool,
    active: bool,
    receiver: Option<regex::Regex>,
}

/// Parses a query string as Alertmanager does: `filter` repeated, booleans defaulting to
/// true, `receiver` a regex matched against the whole receiver name.
fn alert_query(raw: Option<&str>) -> Result<AlertQuery, String> {
    let mut query = AlertQuery {
        filter: Vec::new(),
        silenced: true,
        inhibited: true,
        active: true,
        receiver: None,
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "filter" => query.filter.push(filter_matcher(&value)?),
            "silenced" => query.silenced = boolean(&name, &value)?,
            "inhibited" => query.inhibited = boolean(&name, &value)?,
            "active" => query.active = boolean(&name, &value)?,
            // atalaya takes every alert in as it arrives: none is ever unprocessed.
            "unprocessed" => {
                boolean(&name, &value)?;
            }
            "receiver" => {
                let regex = regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("failed to parse receiver param: {e}"))?;
                query.receiver = Some(regex);
            }
            _ => {}
        }
    }
    Ok(query)
}

fn filter_matcher(text: &str) -> Result<Matcher, String> {
    Matcher::parse(text).map_err(|e| format!("bad matcher format: {text}: {e}"))
}

fn boolean(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!(
            "{name} in query must be of type boolean: \"{value}\""
        )),
    }
}

/// Alertmanager's filter: a matcher for `""` also matches a missing label, and a negative
/// one for `""` is met by any present label.
fn matches_filter(filter: &[Matcher], labels: &Labels) -> bool {
    filter.iter().all(|m| {
        let present = labels.contains_key(&m.name);
        let skip = match m.op {
            MatchOp::NotEqual | MatchOp::NotRegex => m.value.is_empty() && present,
            MatchOp::Equal | MatchOp::Regex => m.value.is_empty() && !present,
        };
        skip || m.matches(labels)
    })
}

impl AlertQuery {
    fn keeps(&self, alert: &AlertView, now: Timestamp) -> bool {
        let resolved = alert.ends_at.is_some_and(|end| end < now);
        if resolved || !matches_filter(&self.filter, &alert.labels) {
            return false;
        }
        let silenced = !alert.silenced_by.is_empty();
        let inhibited = !alert.inhibited_by.is_empty();
        if !self.active && !silenced && !inhibited {
            return false;
        }
        (self.silenced || !silenced) && (self.inhibited || !inhibited)
    }
}

/// A `gettableAlert`.
fn alert_json(alert: &AlertView) -> Value {
    let state = if alert.silenced_by.is_empty() && alert.inhibited_by.is_empty() {
        "active"
    } else {
        "suppressed"
    };
    let receivers: Vec<Value> = alert
        .receivers
        .iter()
        .map(|name| json!({ "name": name }))
        .collect();
    json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "fingerprint": alert.fingerprint,
        "startsAt": alert.starts_at.to_string(),
        "updatedAt": alert.updated_at.unwrap_or(alert.starts_at).to_string(),
        "endsAt": alert.ends_at.map_or_else(|| GO_ZERO_TIME.to_owned(), |t| t.to_string()),
        "generatorURL": alert.generator_url.as_deref().unwrap_or(""),
        "receivers": receivers,
        "status": {
            "state": state,
            "silencedBy": alert.silenced_by,
            "inhibitedBy": alert.inhibited_by,
        },
    })
}

fn bad_request(state: &ApiState, message: String) -> Response {
    state.reject(RejectStage::Decode, StatusCode::BAD_REQUEST, message, None)
}

async fn get_alerts(State(state): State<Arc<ApiState>>, RawQuery(raw): RawQuery) -> Response {
    let query = match alert_query(raw.as_deref()) {
        Ok(query) => query,
        Err(message) => return bad_request(&state, message),
    };
    let Some(mut views) = ask(&state, RouterCommand::ListAlerts).await else {
        return unavailable();
    };
    let now = Timestamp::now();
    views.retain(|a| {
        query.keeps(a, now)
            && query
                .receiver
                .as_ref()
                .is_none_or(|r| a.receivers.iter().any(|name| r.is_match(name)))
    });
    views.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Json(views.iter().map(alert_json).collect::<Vec<_>>()).into_response()
}

async fn get_groups(State(state): State<Arc<ApiState>>, RawQuery(raw): RawQuery) -> Response {
    let query = match alert_query(raw.as_deref()) {
        Ok(query) => query,
        Err(message) => return bad_request(&state, message),
    };
    let Some(groups) = ask(&state, RouterCommand::ListGroups).await else {
        return unavailable();
    };
    let now = Timestamp::now();
    let mut shown: Vec<(String, Value)> = groups
        .into_iter()
        .filter(|g| {
            query
                .receiver
                .as_ref()
                .is_none_or(|r| r.is_match(&g.receiver))
        })
        .filter_map(
            |GroupView {
                 labels,
                 receiver,
                 alerts,
             }| {
                let alerts: Vec<Value> = alerts
                    .iter()
                    .filter(|a| query.keeps(a, now))
                    .map(alert_json)
                    .collect();
                let order = format!("{labels:?}{receiver}");
                (!alerts.is_empty()).then(|| {
                (
                    order,
                    json!({ "labels": labels, "receiver": { "name": receiver }, "alerts": alerts }),
                )
            })
            },
        )
        .collect();
    shown.sort_by(|a, b| a.0.cmp(&b.0));
    Json(shown.into_iter().map(|(_, g)| g).collect::<Vec<_>>()).into_response()
}

/// Alertmanager's silence filter: every filter matcher must be one of the silence's
/// matchers (same name, kind and value).
fn silence_has(silence: &Silence, filter: &[Matcher]) -> bool {
    filter.iter().all(|f| {
        silence.matchers.iter().any(|m: &SilenceMatcher| {
            let op = match (m.is_equal, m.is_regex) {
                (true, false) => MatchOp::Equal,
                (false, false) => MatchOp::NotEqual,
                (true, true) => MatchOp::Regex,
                (false, true) => MatchOp::NotRegex,
            };
            m.name == f.name && op == f.op && m.value == f.value
        })
    })
}

async fn get_silences(State(state): State<Arc<ApiState>>, RawQuery(raw): RawQuery) -> Response {
    let mut filter = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if name == "filter" {
            match filter_matcher(&value) {
                Ok(m) => filter.push(m),
                Err(message) => return bad_request(&state, message),
            }
        }
    }
    let Some(mut silences) = ask(&state, RouterCommand::ListSilences).await else {
        return unavailable();
    };
    silences.retain(|s| silence_has(s, &filter));
    let now = Timestamp::now();
    // As Alertmanager: active (ending soonest first), pending (starting soonest first),
    // expired (most recently ended first).
    silences.sort_by(|a, b| {
        let rank = |s: &Silence| match s.state(now) {
            SilenceState::Active => 1,
            SilenceState::Pending => 2,
            SilenceState::Expired => 3,
        };
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    let list: Vec<Value> = silences.iter().map(|s| silence_json(s, now)).collect();
    Json(list).into_response()
}

async fn post_silence(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    create_silence(&state, &body, SilenceApi::Alertmanager).await
}

async fn get_silence(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let Some(silences) = ask(&state, RouterCommand::ListSilences).await else {
        return unavailable();
    };
    match silences.iter().find(|s| s.id == id) {
        Some(silence) => Json(silence_json(silence, Timestamp::now())).into_response(),
        None => state.reject(
            RejectStage::Decode,
            StatusCode::NOT_FOUND,
            format!("no silence with id `{id}`"),
            None,
        ),
    }
}

async fn delete_silence(state: State<Arc<ApiState>>, id: Path<String>) -> Response {
    expire_silence(state, id).await
}

async fn status(State(state): State<Arc<ApiState>>) -> Response {
    let Some(policy) = ask(&state, RouterCommand::Policy).await else {
        return unavailable();
    };
    let name = format!("atalaya@{}", state.listen);
    Json(json!({
        "cluster": {
            "name": name,
            "status": "ready",
            "peers": [{ "name": name, "address": state.listen.to_string() }],
        },
        "config": { "original": policy.shown },
        "uptime": state.started_at.to_string(),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("ATALAYA_REVISION").unwrap_or("unknown"),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "none (atalaya is written in Rust)",
        },
    }))
    .into_response()
}

async fn receivers(State(state): State<Arc<ApiState>>) -> Response {
    let Some(policy) = ask(&state, RouterCommand::Policy).await else {
        return unavailable();
    };
    let list: Vec<Value> = policy
        .receivers
        .iter()
        .map(|r| json!({ "name": r.name }))
        .collect();
    Json(list).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_read_empty_values_as_alertmanager() {
        let alert = labels(&[("alertname", "Hot"), ("room", "kitchen")]);
        let filter = |text: &str| vec![filter_matcher(text).unwrap()];
        assert!(matches_filter(&filter(r#"room="kitchen""#), &alert));
        assert!(!matches_filter(&filter(r#"room="hall""#), &alert));
        // `=""` is met by a missing label; `!=""` by a present one.
        assert!(matches_filter(&filter(r#"floor="""#), &alert));
        assert!(matches_filter(&filter(r#"room!="""#), &alert));
        assert!(matches_filter(&filter(r#"room=~"kit.*""#), &alert));
        assert!(!matches_filter(&filter(r#"room!~"kit.*""#), &alert));
    }

    #[test]
    fn query_strings_as_amtool_sends_them() {
        let query = alert_query(Some(
            "filter=alertname%3D%22Hot%22&silenced=false&receiver=ph.*",
        ))
        .unwrap();
        assert_eq!(query.filter.len(), 1);
        assert!(!query.silenced && query.inhibited && query.active);
        assert!(query.receiver.unwrap().is_match("phone"));
        assert!(alert_query(Some("active=maybe")).is_err());
        assert!(alert_query(Some("filter=%7Bfoo")).is_err());
    }
}
