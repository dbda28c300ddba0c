//! Event ingest over HTTP.
//!
//! - `POST /api/v1/events`: a CloudEvents structured JSON object, or an array of them (a
//!   batch, accepted all or nothing).
//! - `POST /api/v1/events/{subject path}`: the body is the event's `data` (any JSON, or
//!   empty for `null`); query parameters become labels.
//!
//! Accepted events are on the bus when the `202` is sent. Bad input is rejected whole with a
//! JSON error naming what and where, and nothing is published.

use std::sync::Arc;

use atalaya_bus::bus::PublishError;
use atalaya_bus::cloudevents::{EventDefaults, decode_structured, parse_json};
use atalaya_bus::event::{DEFAULT_EVENT_TYPE, Labels, validate_labels};
use atalaya_bus::{Event, Subject};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::ApiState;
use crate::internal_events::{HttpEventsAccepted, RejectStage};

/// The `source` of events whose producer gave none.
pub const HTTP_SOURCE: &str = "/atalaya/http";

/// The query of `POST /api/v1/events`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructuredQuery {
    /// `durable`: answer once every change the events cause is on disk.
    wait: Option<String>,
}

/// Whether `wait=` asks for durability; only `durable` is understood.
fn wants_durable(wait: Option<&str>) -> Result<bool, String> {
    match wait {
        None => Ok(false),
        Some("durable") => Ok(true),
        Some(other) => Err(format!("wait={other}: the only wait is `durable`")),
    }
}

pub async fn structured(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<StructuredQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejected(&state, rejection),
    };
    let bad =
        |message: String| state.reject(RejectStage::Decode, StatusCode::BAD_REQUEST, message, None);
    let durable = match query
        .map_err(|e| e.to_string())
        .and_then(|Query(q)| wants_durable(q.wait.as_deref()))
    {
        Ok(durable) => durable,
        Err(e) => return bad(format!("query string: {e}")),
    };
    let defaults = EventDefaults {
        source: HTTP_SOURCE,
        event_type: DEFAULT_EVENT_TYPE,
        now: Timestamp::now(),
    };
    match decode_structured(&body, defaults) {
        Ok(events) => publish(&state, events, durable).await,
        Err(e) => state.reject(
            RejectStage::Decode,
            StatusCode::BAD_REQUEST,
            e.to_string(),
            e.position(),
        ),
    }
}

pub async fn plain(
    State(state): State<Arc<ApiState>>,
    subject: Result<Path<String>, PathRejection>,
    labels: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejected(&state, rejection),
    };
    let bad =
        |message: String| state.reject(RejectStage::Decode, StatusCode::BAD_REQUEST, message, None);
    let subject = match subject {
        Ok(Path(path)) => match Subject::parse(&path) {
            Ok(subject) => subject,
            Err(e) => return bad(format!("subject in the path: {e}")),
        },
        Err(e) => return bad(format!("subject in the path: {e}")),
    };
    let mut labels: Labels = match labels {
        Ok(Query(pairs)) => pairs.into_iter().collect(),
        Err(e) => return bad(format!("query string: {e}")),
    };
    // `wait` is not a label: it asks for durability, as on the structured endpoint.
    let durable = match wants_durable(labels.remove("wait").as_deref()) {
        Ok(durable) => durable,
        Err(e) => return bad(format!("query string: {e}")),
    };
    if let Err(e) = validate_labels(&labels) {
        return bad(format!("query string: {e}"));
    }
    let data = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match parse_json(&body) {
            Ok(data) => data,
            Err(e) => {
                return state.reject(
                    RejectStage::Decode,
                    StatusCode::BAD_REQUEST,
                    e.to_string(),
                    e.position(),
                );
            }
        }
    };
    let mut event = Event::new(HTTP_SOURCE, subject, data, Timestamp::now());
    event.labels = labels;
    publish(&state, vec![event], durable).await
}

fn body_rejected(state: &ApiState, rejection: BytesRejection) -> Response {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body is larger than http.max_body_bytes".to_owned()
    } else {
        format!("cannot read request body: {}", rejection.body_text())
    };
    state.reject(RejectStage::Read, status, message, None)
}

/// Publishes `events`: answers 202 once they are on the bus, or with `durable`, 200 once
/// every change they caused is on disk (the request timeout bounds that wait: 408 then, the
/// events accepted but not known durable).
async fn publish(state: &ApiState, events: Vec<Event>, durable: bool) -> Response {
    let count = events.len();
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let published = tokio::time::timeout(state.publish_timeout, async {
        if durable {
            state.publisher.publish_durable(events).await.map(Some)
        } else {
            state.publisher.publish_batch(events).await.map(|()| None)
        }
    })
    .await;
    let (status, message) = match published {
        Ok(Ok(delivery)) => {
            HttpEventsAccepted { count }.emit(&state.counters);
            let status = match delivery {
                Some(delivery) => {
                    delivery.done().await;
                    StatusCode::OK
                }
                None => StatusCode::ACCEPTED,
            };
            let body = json!({ "accepted": count, "ids": ids, "durable": durable });
            return (status, Json(body)).into_response();
        }
        Ok(Err(e @ PublishError::BatchTooLarge { .. })) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{e}; split it (bus.capacity)"),
        ),
        Ok(Err(e @ PublishError::Closed)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_elapsed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the bus stayed full for {:?}; nothing was accepted, retry later",
                state.publish_timeout
            ),
        ),
    };
    state.reject(RejectStage::Publish, status, message, None)
}
