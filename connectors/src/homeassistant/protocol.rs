//! Home Assistant's WebSocket API, as far as this source speaks it: the messages it reads
//! ([`Incoming`], decoded from a text frame) and the commands it sends ([`Command`]).
//!
//! ```text
//! server: {"type":"auth_required","ha_version":"2025.1.0"}
//! client: {"type":"auth","access_token":"…"}
//! server: {"type":"auth_ok",…} | {"type":"auth_invalid","message":"…"}
//! client: {"id":1,"type":"config/entity_registry/list"}      (and device, area registries)
//! client: {"id":4,"type":"subscribe_events","event_type":"state_changed"}
//! server: {"id":4,"type":"result","success":true,"result":null}
//! server: {"id":4,"type":"event","event":{"event_type":"state_changed","data":{…},"time_fired":"…"}}
//! client: {"id":9,"type":"ping"}   server: {"id":9,"type":"pong"}
//! ```
//!
//! Ids increase per connection. A frame may also hold a JSON array of messages (Home
//! Assistant coalesces messages for clients that ask; this one does not, but reads them).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use atalaya_bus::secret::Secret;

/// One message from Home Assistant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Incoming {
    AuthRequired {
        #[serde(default)]
        ha_version: Option<String>,
    },
    AuthOk {
        #[serde(default)]
        ha_version: Option<String>,
    },
    AuthInvalid {
        #[serde(default)]
        message: Option<String>,
    },
    Result {
        id: u64,
        success: bool,
        #[serde(default)]
        result: Value,
        #[serde(default)]
        error: Option<ErrorBody>,
    },
    Event {
        id: u64,
        event: HaEvent,
    },
    Pong {
        id: u64,
    },
}

/// `error` of a failed result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ErrorBody {
    /// `unauthorized: Unauthorized`, for log lines.
    pub fn describe(error: Option<&Self>) -> String {
        match error {
            Some(Self {
                code: Some(code),
                message: Some(message),
            }) => format!("{code}: {message}"),
            Some(Self {
                code: Some(text), ..
            })
            | Some(Self {
                message: Some(text),
                ..
            }) => text.clone(),
            _ => "no reason given".to_owned(),
        }
    }
}

/// An event of a subscription.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct HaEvent {
    pub event_type: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub time_fired: Option<String>,
}

/// `data` of a `state_changed` event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct StateChanged {
    pub entity_id: String,
    #[serde(default)]
    pub old_state: Option<HaState>,
    #[serde(default)]
    pub new_state: Option<HaState>,
}

/// An entity's state, as Home Assistant keeps it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct HaState {
    pub state: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub last_changed: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// Why a text frame is not a message of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// serde_json's message: a position and what was expected, never the text itself.
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a message of the WebSocket API: {0}")]
    NotAMessage(String),
}

/// The messages of one text frame: one object, or an array of them.
pub(crate) fn decode(text: &str) -> Result<Vec<Incoming>, DecodeError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let one = |value: Value| {
        serde_json::from_value::<Incoming>(value)
            .map_err(|e| DecodeError::NotAMessage(e.to_string()))
    };
    match value {
        Value::Array(items) => items.into_iter().map(one).collect(),
        other => one(other).map(|message| vec![message]),
    }
}

/// A command this source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    SubscribeEvents(&'a str),
    /// `config/entity_registry/list` and the like.
    List(&'a str),
    Ping,
}

impl Command<'_> {
    /// The frame's text, with `id`.
    pub fn text(self, id: u64) -> String {
        match self {
            Self::SubscribeEvents(event_type) => {
                json!({"id": id, "type": "subscribe_events", "event_type": event_type})
            }
            Self::List(kind) => json!({"id": id, "type": kind}),
            Self::Ping => json!({"id": id, "type": "ping"}),
        }
        .to_string()
    }
}

/// The login message. The only place the token is put into words.
pub(crate) fn auth_text(token: &Secret) -> String {
    json!({"type": "auth", "access_token": token.expose()}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_messages_of_the_api() {
        assert_eq!(
            decode(r#"{"type":"auth_required","ha_version":"2025.1.2"}"#).unwrap(),
            [Incoming::AuthRequired {
                ha_version: Some("2025.1.2".into())
            }]
        );
        assert_eq!(
            decode(r#"{"type":"auth_invalid","message":"Invalid access token or password"}"#)
                .unwrap(),
            [Incoming::AuthInvalid {
                message: Some("Invalid access token or password".into())
            }]
        );
        let failed = decode(r#"{"id":2,"type":"result","success":false,"error":{"code":"unauthorized","message":"Unauthorized"}}"#).unwrap();
        let [
            Incoming::Result {
                id: 2,
                success: false,
                error,
                ..
            },
        ] = &failed[..]
        else {
            panic!("{failed:?}");
        };
        assert_eq!(
            ErrorBody::describe(error.as_ref()),
            "unauthorized: Unauthorized"
        );
        let coalesced = decode(r#"[{"id":3,"type":"pong"},{"id":1,"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"light.hall"}}}]"#).unwrap();
        assert_eq!(coalesced.len(), 2);
        assert_eq!(coalesced[0], Incoming::Pong { id: 3 });
    }

    #[test]
    fn garbage_is_an_error_that_does_not_repeat_it() {
        for garbage in [
            "",
            "hunter2",
            "{\"type\":\"surprise\",\"secret\":\"hunter2\"}",
            "{\"id\":\"x\",\"type\":\"pong\"}",
            "42",
            "[1]",
            "{\"type\":\"event\",\"id\":1}",
        ] {
            let error = decode(garbage).unwrap_err();
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn commands_carry_their_id_and_the_token_only_goes_in_auth() {
        assert_eq!(
            Command::SubscribeEvents("state_changed").text(7),
            r#"{"event_type":"state_changed","id":7,"type":"subscribe_events"}"#
        );
        assert_eq!(
            Command::List("config/area_registry/list").text(2),
            r#"{"id":2,"type":"config/area_registry/list"}"#
        );
        assert_eq!(Command::Ping.text(9), r#"{"id":9,"type":"ping"}"#);
        let token = Secret::new("s3cr3t".into());
        assert_eq!(
            auth_text(&token),
            r#"{"access_token":"s3cr3t","type":"auth"}"#
        );
    }
}
