//! A Telegram Bot API stand-in for tests: an HTTP server on loopback answering
//! `sendMessage` and `editMessageText` (any case: teloxide writes `SendMessage`) with the
//! Bot API's JSON, as teloxide expects it, at
//! `/bot<token>/<method>` — point a Telegram integration's `api_url` at [`BotApi::url`].
//!
//! It checks what Telegram checks (the token, a non-empty text of at most 4096 characters,
//! HTML whose tags balance) and records every request with the instant it arrived.
//! Switches make it answer 429 with `retry_after` (to all, or to one chat), or go down (connections
//! refused) and come back on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest message text Telegram accepts, in UTF-16 code units.
const MAX_MESSAGE_LEN: usize = 4096;

/// One request the stand-in answered with success.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `sendMessage` or `editMessageText`.
    pub method: String,
    /// As sent: a number, or `@channel`.
    pub chat: String,
    pub text: String,
    /// The message created, or edited.
    pub message_id: i64,
    pub parse_mode: Option<String>,
    pub disable_notification: bool,
    pub reply_to: Option<i64>,
    pub thread_id: Option<i64>,
    pub link_preview_disabled: bool,
    pub at: Instant,
}

/// The running server: how to stop it, and its task.
type Server = (oneshot::Sender<()>, JoinHandle<()>);

#[derive(Default)]
struct Inner {
    /// Every successful request, in arrival order.
    recorded: Vec<Recorded>,
    /// Every request, answered or not, with when it came.
    requests: Vec<(String, Instant)>,
    /// The current text of each message, by (chat, message id).
    texts: HashMap<(String, i64), String>,
    next_id: i64,
    /// Answer the next this-many requests with 429 and this `retry_after` (seconds).
    flood: Option<(usize, u64)>,
    /// Chats answered with 429 (this many more times).
    failing_chats: HashMap<String, usize>,
}

/// The stand-in. Cheap to clone; stops when the last clone is dropped... or on
/// [`BotApi::stop`].
#[derive(Clone)]
pub struct BotApi {
    token: Arc<str>,
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: Arc<Mutex<Option<Server>>>,
}

impl BotApi {
    /// Starts a stand-in accepting `token`, on a free loopback port.
    pub async fn start(token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("a bound address");
        let api = Self {
            token: token.into(),
            address,
            inner: Arc::new(Mutex::new(Inner {
                next_id: 100,
                ..Inner::default()
            })),
            server: Arc::new(Mutex::new(None)),
        };
        api.serve(listener);
        api
    }

    /// The base URL, for `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/{bot}/{method}", post(answer))
            .with_state(self.clone_state());
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        *self.server.lock().unwrap() = Some((stop_tx, task));
    }

    fn clone_state(&self) -> Shared {
        Shared {
            token: Arc::clone(&self.token),
            inner: Arc::clone(&self.inner),
        }
    }

    /// Goes down: the listener and every connection are closed; requests are refused.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some((stop, task)) = server {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Comes back on the same port.
    pub async fn restart(&self) {
        self.stop().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot bind {} again: {e}",
                        self.address
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
    }

    /// Answers the next `count` requests with 429 Too Many Requests, `retry_after`
    /// seconds.
    pub fn flood(&self, count: usize, retry_after: u64) {
        self.inner.lock().unwrap().flood = Some((count, retry_after));
    }

    /// Answers the next `count` requests to `chat` with 429, `retry_after` 1 second. (Not
    /// with a 5xx: on those teloxide waits 10 seconds before it reads the answer.)
    pub fn fail_chat(&self, chat: &str, count: usize) {
        self.inner
            .lock()
            .unwrap()
            .failing_chats
            .insert(chat.to_owned(), count);
    }

    /// Every successful request so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().recorded.clone()
    }

    /// The successful requests to `chat`.
    pub fn to_chat(&self, chat: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| r.chat == chat)
            .collect()
    }

    /// Every request that reached it (answered with success or not), with when.
    pub fn requests(&self) -> Vec<(String, Instant)> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The current text of a message.
    pub fn text_of(&self, chat: &str, message_id: i64) -> Option<String> {
        self.inner
            .lock()
            .unwrap()
            .texts
            .get(&(chat.to_owned(), message_id))
            .cloned()
    }
}

#[derive(Clone)]
struct Shared {
    token: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

fn error(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({
        "ok": false,
        "error_code": status.as_u16(),
        "description": description,
    });
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (status, axum::Json(body)).into_response()
}

/// The chat of a message, as the Bot API writes it.
fn chat_json(chat: &str) -> Value {
    match chat.parse::<i64>() {
        Ok(id) if id > 0 => json!({"id": id, "type": "private", "first_name": "Test"}),
        Ok(id) => json!({"id": id, "type": "supergroup", "title": "Test group"}),
        Err(_) => json!({
            "id": -1_009_999,
            "type": "channel",
            "title": "Test channel",
            "username": chat.trim_start_matches('@'),
        }),
    }
}

/// Whether the tags of `html` balance (what Telegram's parser insists on).
fn tags_balance(html: &str) -> bool {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else {
            return false;
        };
        let tag = &rest[start + 1..start + end];
        rest = &rest[start + end + 1..];
        let name = |t: &'_ str| {
            t.split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        if let Some(closing) = tag.strip_prefix('/') {
            if stack.pop().map(&name) != Some(name(closing)) {
                return false;
            }
        } else {
            stack.push(tag);
        }
    }
    stack.is_empty()
}

async fn answer(
    State(shared): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    body: String,
) -> Response {
    let now = Instant::now();
    // The Bot API takes method names in any case; teloxide writes them in PascalCase.
    let method = match method.to_ascii_lowercase().as_str() {
        "sendmessage" => "sendMessage".to_owned(),
        "editmessagetext" => "editMessageText".to_owned(),
        _ => method,
    };
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let chat = match &request["chat_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let mut inner = shared.inner.lock().unwrap();
    inner.requests.push((method.clone(), now));
    if bot.strip_prefix("bot") != Some(&*shared.token) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    if let Some((count, retry_after)) = inner.flood {
        inner.flood = (count > 1).then(|| (count - 1, retry_after));
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        );
    }
    if let Some(left) = inner.failing_chats.get_mut(&chat)
        && *left > 0
    {
        *left -= 1;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests: retry after 1",
            Some(json!({"retry_after": 1})),
        );
    }
    let text = request["text"].as_str().unwrap_or_default().to_owned();
    let parse_mode = request["parse_mode"].as_str().map(str::to_owned);
    if text.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message text is empty",
            None,
        );
    }
    if text.encode_utf16().count() > MAX_MESSAGE_LEN {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message is too long",
            None,
        );
    }
    if parse_mode.as_deref() == Some("HTML") && !tags_balance(&text) {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag",
            None,
        );
    }
    let message_id = match method.as_str() {
        "sendMessage" => {
            inner.next_id += 1;
            inner.next_id
        }
        "editMessageText" => {
            let id = request["message_id"].as_i64().unwrap_or_default();
            match inner.texts.get(&(chat.clone(), id)) {
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Bad Request: message to edit not found",
                        None,
                    );
                }
                Some(current) if *current == text => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Bad Request: message is not modified: specified new message content \
                         and reply markup are exactly the same as a current content and reply \
                         markup of the message",
                        None,
                    );
                }
                Some(_) => id,
            }
        }
        _ => return error(StatusCode::NOT_FOUND, "Not Found: method not found", None),
    };
    inner.texts.insert((chat.clone(), message_id), text.clone());
    inner.recorded.push(Recorded {
        method,
        chat: chat.clone(),
        text: text.clone(),
        message_id,
        parse_mode,
        disable_notification: request["disable_notification"].as_bool().unwrap_or(false),
        reply_to: request["reply_parameters"]["message_id"].as_i64(),
        thread_id: request["message_thread_id"].as_i64(),
        link_preview_disabled: request["link_preview_options"]["is_disabled"]
            .as_bool()
            .unwrap_or(false),
        at: now,
    });
    let message = json!({
        "message_id": message_id,
        "date": 1_767_225_600,
        "chat": chat_json(&chat),
        "from": {"id": 1, "is_bot": true, "first_name": "atalaya"},
        "text": text,
    });
    axum::Json(json!({"ok": true, "result": message})).into_response()
}
