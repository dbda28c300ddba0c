//! A Telegram Bot API stand-in for tests: an HTTP server on loopback answering, with the Bot
//! API's JSON as teloxide expects it, at `/bot<token>/<method>` (any case: teloxide writes
//! `SendMessage`) — point a Telegram integration's `api_url` at [`BotApi::url`]:
//!
//! - `sendMessage`, `editMessageText` (an edit without `reply_markup` drops the message's
//!   buttons, as Telegram does), `editMessageReplyMarkup`;
//! - `getUpdates` by long polling: updates from `offset` on (those before it are confirmed
//!   and forgotten), waiting up to `timeout` seconds for one;
//! - `answerCallbackQuery` and `setMyCommands`, recorded.
//!
//! It checks what Telegram checks (the token, a non-empty text of at most 4096 characters,
//! HTML whose tags balance, "message is not modified", commands' names) and records every
//! request with the instant it arrived. Tests act as users: [`BotApi::press`] a button,
//! [`BotApi::say`] a command. Switches make it answer 429 with `retry_after` (to all, or to
//! one chat), 409 Conflict to open and next `getUpdates` (another poller), or go down (connections refused)
//! and come back on the same port.

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
use tokio::sync::{Notify, oneshot};
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
    /// The buttons sent with it (`{"inline_keyboard": [[…]]}`).
    pub reply_markup: Option<Value>,
    pub at: Instant,
}

/// One `getUpdates` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub offset: Option<i64>,
    pub timeout: Option<u64>,
    pub allowed_updates: Option<Vec<String>>,
    pub at: Instant,
}

/// One `answerCallbackQuery`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub callback_query_id: String,
    pub text: Option<String>,
    pub show_alert: bool,
}

/// The commands registered for one language (`None`: the default).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSet {
    pub language_code: Option<String>,
    pub commands: Vec<(String, String)>,
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
    /// The buttons of each message, by (chat, message id).
    markups: HashMap<(String, i64), Value>,
    /// Updates not yet confirmed, in order.
    updates: Vec<Value>,
    next_update: i64,
    polls: Vec<Poll>,
    answers: Vec<Answer>,
    /// Callback queries issued, which `answerCallbackQuery` may answer.
    queries: Vec<String>,
    commands: Vec<CommandSet>,
    /// Answer the next this-many `getUpdates` with 409 Conflict.
    conflicts: usize,
    /// The server is stopping: long polls answer at once.
    stopping: bool,
}

/// The stand-in. Cheap to clone; stops when the last clone is dropped... or on
/// [`BotApi::stop`].
#[derive(Clone)]
pub struct BotApi {
    token: Arc<str>,
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: Arc<Mutex<Option<Server>>>,
    /// Woken when an update is queued (or the server stops), for waiting long polls.
    arrived: Arc<Notify>,
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
                next_update: 500,
                ..Inner::default()
            })),
            server: Arc::new(Mutex::new(None)),
            arrived: Arc::new(Notify::new()),
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
            arrived: Arc::clone(&self.arrived),
        }
    }

    /// Goes down: the listener and every connection are closed; requests are refused.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some((stop, task)) = server {
            let _ = stop.send(());
            // Open long polls answer at once rather than hold the shutdown.
            self.inner.lock().unwrap().stopping = true;
            self.arrived.notify_waiters();
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
        self.inner.lock().unwrap().stopping = false;
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

impl BotApi {
    /// The buttons of a message (`None`: it has none).
    pub fn markup_of(&self, chat: &str, message_id: i64) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .markups
            .get(&(chat.to_owned(), message_id))
            .cloned()
    }

    /// Each button of a message, in order: its text and its `callback_data`.
    pub fn buttons_of(&self, chat: &str, message_id: i64) -> Vec<(String, String)> {
        let Some(markup) = self.markup_of(chat, message_id) else {
            return Vec::new();
        };
        markup["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().into_iter().flatten())
            .map(|b| {
                (
                    b["text"].as_str().unwrap_or_default().to_owned(),
                    b["callback_data"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// User `user` (id, first name) pressed the button with `data` on message `message_id`
    /// of `chat`: a callback query is queued for `getUpdates`. Its id.
    pub fn press(&self, chat: i64, message_id: i64, user: (i64, &str), data: &str) -> String {
        let mut inner = self.inner.lock().unwrap();
        let key = (chat.to_string(), message_id);
        let mut message = json!({
            "message_id": message_id,
            "date": 1_767_225_600,
            "chat": chat_json(&chat.to_string()),
            "from": {"id": 1, "is_bot": true, "first_name": "atalaya"},
            "text": inner.texts.get(&key).cloned().unwrap_or_else(|| "?".to_owned()),
        });
        if let Some(markup) = inner.markups.get(&key) {
            message["reply_markup"] = markup.clone();
        }
        let id = format!("cq-{}", inner.next_update);
        inner.queries.push(id.clone());
        inner.queue(json!({"callback_query": {
            "id": id,
            "from": {"id": user.0, "is_bot": false, "first_name": user.1, "language_code": "en"},
            "message": message,
            "chat_instance": "42",
            "data": data,
        }}));
        drop(inner);
        self.arrived.notify_waiters();
        id
    }

    /// User `user` (id, first name) wrote `text` in `chat` (a private chat when positive):
    /// a message is queued for `getUpdates`, a command when it starts with `/`. Its id.
    pub fn say(&self, chat: i64, user: (i64, &str), text: &str) -> i64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let message_id = inner.next_id;
        let mut message = json!({
            "message_id": message_id,
            "from": {"id": user.0, "is_bot": false, "first_name": user.1, "language_code": "en"},
            "chat": chat_json(&chat.to_string()),
            "date": 1_767_225_600,
            "text": text,
        });
        if text.starts_with('/') {
            let command = text.split_whitespace().next().unwrap_or_default();
            message["entities"] = json!([{
                "type": "bot_command", "offset": 0, "length": command.encode_utf16().count(),
            }]);
        }
        inner.queue(json!({ "message": message }));
        drop(inner);
        self.arrived.notify_waiters();
        message_id
    }

    /// Another program polls the same bot: the open `getUpdates` and the next ones, `count`
    /// in all, are answered with 409 Conflict, as Telegram does.
    pub fn conflict(&self, count: usize) {
        self.inner.lock().unwrap().conflicts = count;
        self.arrived.notify_waiters();
    }

    /// Every `getUpdates` so far.
    pub fn polls(&self) -> Vec<Poll> {
        self.inner.lock().unwrap().polls.clone()
    }

    /// Updates queued and not yet confirmed by a `getUpdates` with a higher offset.
    pub fn pending_updates(&self) -> usize {
        self.inner.lock().unwrap().updates.len()
    }

    /// Every `answerCallbackQuery` so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.inner.lock().unwrap().answers.clone()
    }

    /// The commands registered, one set per language.
    pub fn commands(&self) -> Vec<CommandSet> {
        self.inner.lock().unwrap().commands.clone()
    }
}

impl Inner {
    fn queue(&mut self, mut update: Value) {
        update["update_id"] = json!(self.next_update);
        self.next_update += 1;
        self.updates.push(update);
    }

    /// Confirms the updates before `offset`; the ones from it on, at most `limit`.
    fn updates_from(&mut self, offset: Option<i64>, limit: usize) -> Vec<Value> {
        if let Some(offset) = offset {
            self.updates
                .retain(|u| u["update_id"].as_i64().unwrap_or_default() >= offset);
        }
        self.updates.iter().take(limit).cloned().collect()
    }
}

/// Whether Telegram takes a command: 1–32 lowercase letters, digits and underscores, and a
/// description of 1–256 characters.
fn valid_command(command: &str, description: &str) -> bool {
    (1..=32).contains(&command.len())
        && command
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && (1..=256).contains(&description.chars().count())
}

#[derive(Clone)]
struct Shared {
    token: Arc<str>,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
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

/// Answers what every method answers alike: a wrong token, a flood (429), a failing chat.
fn refused(inner: &mut Inner, bot: &str, token: &str, chat: &str) -> Option<Response> {
    if bot.strip_prefix("bot") != Some(token) {
        return Some(error(StatusCode::UNAUTHORIZED, "Unauthorized", None));
    }
    if let Some((count, retry_after)) = inner.flood {
        inner.flood = (count > 1).then(|| (count - 1, retry_after));
        return Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        ));
    }
    if let Some(left) = inner.failing_chats.get_mut(chat)
        && *left > 0
    {
        *left -= 1;
        return Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests: retry after 1",
            Some(json!({"retry_after": 1})),
        ));
    }
    None
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

/// A message as the Bot API returns it.
fn message_json(chat: &str, message_id: i64, text: &str, markup: Option<&Value>) -> Value {
    let mut message = json!({
        "message_id": message_id,
        "date": 1_767_225_600,
        "chat": chat_json(chat),
        "from": {"id": 1, "is_bot": true, "first_name": "atalaya"},
        "text": text,
    });
    if let Some(markup) = markup {
        message["reply_markup"] = markup.clone();
    }
    message
}

/// `getUpdates`: the pending updates from `offset` on, waiting up to `timeout` seconds for
/// one when there are none.
async fn get_updates(shared: Shared, bot: String, request: Value) -> Response {
    let offset = request["offset"].as_i64();
    let timeout = request["timeout"].as_u64();
    let limit = request["limit"]
        .as_u64()
        .filter(|l| (1..=100).contains(l))
        .unwrap_or(100) as usize;
    let deadline = Instant::now() + Duration::from_secs(timeout.unwrap_or(0));
    let conflict = || {
        error(
            StatusCode::CONFLICT,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
            None,
        )
    };
    {
        let mut inner = shared.inner.lock().unwrap();
        let now = Instant::now();
        inner.requests.push(("getUpdates".to_owned(), now));
        if let Some(refused) = refused(&mut inner, &bot, &shared.token, "") {
            return refused;
        }
        if inner.conflicts > 0 {
            inner.conflicts -= 1;
            return conflict();
        }
        inner.polls.push(Poll {
            offset,
            timeout,
            allowed_updates: request["allowed_updates"].as_array().map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            }),
            at: now,
        });
    }
    loop {
        let arrived = shared.arrived.notified();
        let updates = shared.inner.lock().unwrap().updates_from(offset, limit);
        if !updates.is_empty() || Instant::now() >= deadline {
            return ok(Value::Array(updates));
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return ok(json!([]));
        }
        let mut inner = shared.inner.lock().unwrap();
        // Woken by the server stopping: answer now; by another poller: 409.
        if inner.stopping {
            return ok(json!([]));
        }
        if inner.conflicts > 0 {
            inner.conflicts -= 1;
            return conflict();
        }
    }
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
        "editmessagereplymarkup" => "editMessageReplyMarkup".to_owned(),
        "getupdates" => "getUpdates".to_owned(),
        "answercallbackquery" => "answerCallbackQuery".to_owned(),
        "setmycommands" => "setMyCommands".to_owned(),
        _ => method,
    };
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if method == "getUpdates" {
        return get_updates(shared, bot, request).await;
    }
    let chat = match &request["chat_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let mut inner = shared.inner.lock().unwrap();
    inner.requests.push((method.clone(), now));
    if let Some(refused) = refused(&mut inner, &bot, &shared.token, &chat) {
        return refused;
    }
    match method.as_str() {
        "answerCallbackQuery" => {
            let id = request["callback_query_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !inner.queries.contains(&id) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                    None,
                );
            }
            inner.answers.push(Answer {
                callback_query_id: id,
                text: request["text"].as_str().map(str::to_owned),
                show_alert: request["show_alert"].as_bool().unwrap_or(false),
            });
            return ok(json!(true));
        }
        "setMyCommands" => {
            let mut commands = Vec::new();
            for c in request["commands"].as_array().into_iter().flatten() {
                let command = c["command"].as_str().unwrap_or_default();
                let description = c["description"].as_str().unwrap_or_default();
                if !valid_command(command, description) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Bad Request: BOT_COMMAND_INVALID",
                        None,
                    );
                }
                commands.push((command.to_owned(), description.to_owned()));
            }
            let language_code = request["language_code"].as_str().map(str::to_owned);
            inner
                .commands
                .retain(|set| set.language_code != language_code);
            inner.commands.push(CommandSet {
                language_code,
                commands,
            });
            return ok(json!(true));
        }
        "editMessageReplyMarkup" => {
            let id = request["message_id"].as_i64().unwrap_or_default();
            let key = (chat.clone(), id);
            let Some(text) = inner.texts.get(&key).cloned() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message to edit not found",
                    None,
                );
            };
            let markup = request
                .get("reply_markup")
                .filter(|m| !m.is_null())
                .cloned();
            if inner.markups.get(&key) == markup.as_ref() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                    None,
                );
            }
            match &markup {
                Some(m) => inner.markups.insert(key, m.clone()),
                None => inner.markups.remove(&key),
            };
            inner.recorded.push(Recorded {
                method,
                chat: chat.clone(),
                text: text.clone(),
                message_id: id,
                parse_mode: None,
                disable_notification: false,
                reply_to: None,
                thread_id: None,
                link_preview_disabled: false,
                reply_markup: markup.clone(),
                at: now,
            });
            return ok(message_json(&chat, id, &text, markup.as_ref()));
        }
        "sendMessage" | "editMessageText" => {}
        _ => return error(StatusCode::NOT_FOUND, "Not Found: method not found", None),
    }
    let text = request["text"].as_str().unwrap_or_default().to_owned();
    let parse_mode = request["parse_mode"].as_str().map(str::to_owned);
    let markup = request
        .get("reply_markup")
        .filter(|m| !m.is_null())
        .cloned();
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
    let message_id = if method == "sendMessage" {
        inner.next_id += 1;
        inner.next_id
    } else {
        let id = request["message_id"].as_i64().unwrap_or_default();
        let key = (chat.clone(), id);
        match inner.texts.get(&key) {
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message to edit not found",
                    None,
                );
            }
            Some(current) if *current == text && inner.markups.get(&key) == markup.as_ref() => {
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
    };
    let key = (chat.clone(), message_id);
    inner.texts.insert(key.clone(), text.clone());
    // An edit without buttons drops the message's, as Telegram does.
    match &markup {
        Some(m) => inner.markups.insert(key, m.clone()),
        None => inner.markups.remove(&key),
    };
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
        reply_markup: markup.clone(),
        at: now,
    });
    ok(message_json(&chat, message_id, &text, markup.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_before_the_offset_are_confirmed_for_good() {
        let mut inner = Inner {
            next_update: 500,
            ..Inner::default()
        };
        inner.queue(json!({"message": {"text": "/a"}}));
        inner.queue(json!({"message": {"text": "/b"}}));
        assert_eq!(inner.updates_from(None, 100).len(), 2);
        let from_501 = inner.updates_from(Some(501), 100);
        assert_eq!(from_501.len(), 1);
        assert_eq!(from_501[0]["update_id"], 501);
        // Confirmed: gone even for an older offset.
        assert_eq!(inner.updates_from(Some(500), 100).len(), 1);
        assert!(inner.updates_from(Some(502), 100).is_empty());
        assert!(inner.updates.is_empty());
    }

    #[test]
    fn commands_are_checked_as_telegram_checks_them() {
        assert!(valid_command("silence", "Silence alerts"));
        assert!(valid_command("un_silence2", "x"));
        assert!(!valid_command("Silence", "x"));
        assert!(!valid_command("", "x"));
        assert!(!valid_command("silence", ""));
        assert!(!valid_command(&"a".repeat(33), "x"));
    }

    #[test]
    fn tags_must_balance() {
        assert!(tags_balance("<b>x</b> <a href=\"y\">z</a>"));
        assert!(!tags_balance("<b>x"));
        assert!(!tags_balance("<b>x</i>"));
    }
}
