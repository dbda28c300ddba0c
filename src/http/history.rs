//! What happened, over HTTP: an alert's history (`GET /api/v1/alerts/{fingerprint}/history`,
//! `GET /api/v1/history?alertname=`), why a rule does or does not fire
//! (`GET /api/v1/rules/{name}/explain`), recent delivery attempts (`GET /api/v1/notifications`)
//! and the dead letters (`GET /api/v1/dead-letters`, `POST …/{id}/retry`, `DELETE …/{id}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use crate::alerting::history::{HistoryEntry, What};

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
}

fn failed(error: &anyhow::Error) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": format!("{error:#}") })),
    )
        .into_response()
}

/// Runs a store read off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| anyhow::anyhow!("the store task failed: {e}"))?
}

/// `GET /api/v1/alerts/{fingerprint}/history`: the alert's entries, oldest first; 404 when
/// it has none (unknown, or pruned).
pub async fn alert_history(
    State(state): State<Arc<ApiState>>,
    Path(fingerprint): Path<String>,
) -> Response {
    let history = state.history.clone();
    let fp = fingerprint.clone();
    match blocking(move || history.of(&fp)).await {
        Ok(entries) if entries.is_empty() => {
            not_found(format!("no history for alert {fingerprint}"))
        }
        Ok(entries) => Json(with_messages(&state.history, entries)).into_response(),
        Err(e) => failed(&e),
    }
}

/// `entries` as JSON, each Telegram delivery with the messages it sent (`messages`: chat,
/// part, message id) while the Telegram integration keeps them (two days).
fn with_messages(
    #[cfg_attr(not(feature = "telegram"), allow(unused_variables))]
    history: &crate::alerting::history::History,
    entries: Vec<HistoryEntry>,
) -> Vec<Value> {
    entries
        .into_iter()
        .map(|entry| {
            let mut value = serde_json::to_value(&entry).unwrap_or(Value::Null);
            #[cfg(feature = "telegram")]
            if let What::Attempt {
                notification,
                integration,
                outcome,
                ..
            } = &entry.what
                && integration == "telegram"
                && outcome == "sent"
                && let Ok(messages) =
                    atalaya_connectors::telegram::messages_of(history.store(), notification)
            {
                value["messages"] = messages
                    .into_iter()
                    .map(|(chat, part, id)| json!({"chat": chat, "part": part, "message_id": id}))
                    .collect();
            }
            value
        })
        .collect()
}

#[derive(Deserialize)]
pub struct ByName {
    alertname: String,
}

/// `GET /api/v1/history?alertname=NAME`: every alert of the rule with a history, each with
/// its entries: `[{"fingerprint", "labels", "entries"}]`, most recently active first.
pub async fn rule_history(
    State(state): State<Arc<ApiState>>,
    Query(ByName { alertname }): Query<ByName>,
) -> Response {
    let history = state.history.clone();
    let name = alertname.clone();
    let found = blocking(move || {
        let mut alerts = Vec::new();
        for fingerprint in history.alerts_of(&name)? {
            let entries = history.of(&fingerprint)?;
            if !entries.is_empty() {
                alerts.push((fingerprint, entries));
            }
        }
        Ok(alerts)
    })
    .await;
    match found {
        Ok(alerts) if alerts.is_empty() => {
            not_found(format!("no history for alerts named {alertname}"))
        }
        Ok(mut alerts) => {
            alerts.sort_by_key(|(_, entries)| std::cmp::Reverse(entries.last().map(|e| e.at)));
            let body: Vec<Value> = alerts
                .into_iter()
                .map(|(fingerprint, entries)| {
                    json!({
                        "fingerprint": fingerprint,
                        "labels": last_labels(&entries),
                        "entries": with_messages(&state.history, entries),
                    })
                })
                .collect();
            Json(body).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// The labels of an alert's last state change.
fn last_labels(entries: &[HistoryEntry]) -> Value {
    entries
        .iter()
        .rev()
        .find_map(|e| match &e.what {
            What::State { labels, .. } => Some(json!(labels)),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

#[derive(Deserialize)]
pub struct NotificationsQuery {
    #[serde(default)]
    failed: bool,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/rules/{name}/explain`: why the rule does or does not fire, series by series;
/// 404 for a rule not loaded.
pub async fn explain_rule(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Response {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let asked = state
        .router
        .send(crate::alerting::routing::RouterCommand::ExplainRule(
            name.clone(),
            reply,
        ))
        .await;
    match (asked, answer.await) {
        (Ok(()), Ok(Some(explained))) => Json(explained).into_response(),
        (Ok(()), Ok(None)) => not_found(format!("no rule named {name} is loaded")),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "atalaya is shutting down"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
pub struct TailQuery {
    #[serde(default)]
    pattern: Option<String>,
}

/// `GET /api/v1/tail[?pattern=P]`: live events as server-sent events, each `data:` one JSON
/// object (`event`, `rules` that took it, `changes` it caused); `event: lagged` with how many
/// were missed when this listener fell behind. Only events some subscription or ingest put on
/// the bus, from the moment of connecting.
pub async fn tail(State(state): State<Arc<ApiState>>, Query(query): Query<TailQuery>) -> Response {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;

    let pattern = match query.pattern.as_deref().map(atalaya_bus::Pattern::parse) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("pattern: {e}") })),
            )
                .into_response();
        }
    };
    let receiver = state.tail.subscribe();
    let stream =
        futures_util::stream::unfold((receiver, pattern), |(mut receiver, pattern)| async move {
            loop {
                let sse = match receiver.recv().await {
                    Ok(item) => {
                        if pattern
                            .as_ref()
                            .is_some_and(|p| !p.is_match(&item.event.subject))
                        {
                            continue;
                        }
                        SseEvent::default().data(serde_json::to_string(&*item).unwrap_or_default())
                    }
                    Err(RecvError::Lagged(missed)) => {
                        SseEvent::default().event("lagged").data(missed.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok::<_, std::convert::Infallible>(sse), (receiver, pattern)));
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One delivery attempt of a notification, with the alerts it held.
pub(super) struct AttemptLine {
    pub at: jiff::Timestamp,
    pub notification: String,
    pub receiver: String,
    pub integration: String,
    pub attempt: u32,
    /// `sent`, `retry` or `dead_letter`.
    pub outcome: String,
    pub error: Option<String>,
    /// (fingerprint, alertname) of each alert it held.
    pub alerts: Vec<(String, String)>,
}

/// The latest `limit` delivery attempts, newest first (only failed ones with `failed`): what
/// `GET /api/v1/notifications` and the web page's deliveries show.
pub(super) async fn recent_attempts(
    history: crate::alerting::history::History,
    limit: usize,
    failed: bool,
) -> anyhow::Result<Vec<AttemptLine>> {
    let wanted = move |e: &HistoryEntry| match &e.what {
        What::Attempt { outcome, .. } => !failed || outcome != "sent",
        _ => false,
    };
    // One line per attempt of a notification, with the alerts it held.
    let entries = blocking(move || history.recent(limit * 20, wanted)).await?;
    let mut attempts: BTreeMap<(String, u32), AttemptLine> = BTreeMap::new();
    let mut order = Vec::new();
    for entry in entries {
        let What::Attempt {
            notification,
            receiver,
            integration,
            attempt,
            outcome,
            error,
        } = entry.what
        else {
            continue;
        };
        let key = (notification.clone(), attempt);
        let line = attempts.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            AttemptLine {
                at: entry.at,
                notification,
                receiver,
                integration,
                attempt,
                outcome,
                error,
                alerts: Vec::new(),
            }
        });
        line.alerts.push((entry.fingerprint, entry.alertname));
    }
    Ok(order
        .into_iter()
        .take(limit)
        .filter_map(|key| attempts.remove(&key))
        .collect())
}

/// `GET /api/v1/notifications[?failed=true&limit=N]`: the latest delivery attempts, newest
/// first, one per notification and attempt (with the alerts it held).
pub async fn notifications(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<NotificationsQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let lines = match recent_attempts(state.history.clone(), limit, query.failed).await {
        Ok(lines) => lines,
        Err(e) => return failed(&e),
    };
    let body: Vec<Value> = lines
        .into_iter()
        .map(|line| {
            json!({
                "at": line.at.to_string(),
                "notification": line.notification,
                "receiver": line.receiver,
                "integration": line.integration,
                "attempt": line.attempt,
                "outcome": line.outcome,
                "error": line.error,
                "alerts": line.alerts.into_iter().map(|(fingerprint, alertname)| {
                    json!({"fingerprint": fingerprint, "alertname": alertname})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(body).into_response()
}

/// `GET /api/v1/dead-letters`: notifications given up on, oldest first.
pub async fn dead_letters(State(state): State<Arc<ApiState>>) -> Response {
    let outbox = state.outbox.clone();
    match blocking(move || outbox.dead_letters()).await {
        Ok(letters) => {
            let body: Vec<Value> = letters
                .iter()
                .map(|l| {
                    json!({
                        "id": l.notification.id,
                        "receiver": l.notification.receiver,
                        "integration": l.notification.integration,
                        "status": l.notification.status.as_str(),
                        "alerts": l.notification.alerts.iter().map(|a| json!({
                            "fingerprint": a.fingerprint,
                            "alertname": a.labels.get("alertname"),
                        })).collect::<Vec<_>>(),
                        "createdAt": l.notification.created_at.to_string(),
                        "attempts": l.attempts,
                        "reason": l.reason,
                        "deadLetteredAt": l.dead_lettered_at.to_string(),
                    })
                })
                .collect();
            Json(body).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// `POST /api/v1/dead-letters/{id}/retry`: queues it again.
pub async fn retry_dead_letter(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Response {
    let outbox = state.outbox.clone();
    let wanted = id.clone();
    match blocking(move || outbox.retry_dead_letter(&wanted)).await {
        Ok(true) => Json(json!({ "retried": id })).into_response(),
        Ok(false) => not_found(format!("no dead letter {id}")),
        Err(e) => failed(&e),
    }
}

/// `DELETE /api/v1/dead-letters/{id}`: forgets it.
pub async fn drop_dead_letter(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Response {
    let outbox = state.outbox.clone();
    let wanted = id.clone();
    match blocking(move || outbox.drop_dead_letter(&wanted)).await {
        Ok(true) => Json(json!({ "dropped": id })).into_response(),
        Ok(false) => not_found(format!("no dead letter {id}")),
        Err(e) => failed(&e),
    }
}
