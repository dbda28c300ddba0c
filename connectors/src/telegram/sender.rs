//! [`TelegramSender`]: one notification to every chat of a Telegram integration.
//!
//! Per chat, a notification is either *news* — it announces firing alerts the chat's last
//! message for the group did not list, or repeats them — and is sent as a new message (in
//! parts when long), which becomes the group's head; or a *resolve update* — it resolves
//! alerts of the head and announces nothing new — and is handled as `on_resolve` says: the
//! head is edited (`edit`, the default: no new message, no sound), replied to (`reply`), or
//! a new message is sent (`new`). When every alert of the group has resolved the head is
//! forgotten.
//!
//! Every request waits for its slot from the [`RateLimiter`]. What was sent is recorded
//! part by part, so a retry sends only what is missing: after a failure at the third chat
//! the first two do not get the message twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::config::{OnResolve, TelegramChat, TelegramConfig};
use atalaya_bus::delivery::notification::{Notification, Status};
use atalaya_bus::store::Store;
use jiff::Timestamp;
use teloxide_core::payloads::{EditMessageTextSetters, SendMessageSetters};
use teloxide_core::requests::{Request, Requester};
use teloxide_core::types::{
    ChatId, InlineKeyboardMarkup, LinkPreviewOptions, MessageId, ParseMode, Recipient,
    ReplyParameters, ThreadId,
};
use teloxide_core::{ApiError, Bot, RequestError};
use tokio::time::Instant;
use tracing::warn;

use super::buttons::{ButtonAlert, ButtonSet, Buttons, keyboard};
use super::error::TelegramError;
use super::limiter::RateLimiter;
use super::messages::{GroupHead, GroupRef, MessageLog, MessageLogError, SendRecord};
use super::split::{MAX_MESSAGE_LEN, plain_text, split_html};
use crate::secret::read_secret;
use crate::templates::{MessagePart, MessageTemplates};

/// How a notification is delivered to one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// New messages; the first becomes the group's head when `head` is set.
    New { head: bool },
    /// Each part replaces the text of the head's part in the same place; a part the head
    /// did not have replies to it without a sound.
    Edit(i32),
    /// Every part replies to the head.
    Reply(i32),
}

/// Sends notifications to Telegram. Cheap to clone: clones share the HTTP client, the rate
/// limiter and the message log.
#[derive(Clone)]
pub struct TelegramSender {
    client: reqwest::Client,
    log: MessageLog,
    limiter: Arc<RateLimiter>,
    templates: MessageTemplates,
    buttons: Buttons,
}

impl TelegramSender {
    /// A sender keeping its messages in `store`'s `telegram_messages` table (old entries
    /// pruned now), its rate limits seeded with the sends recorded there.
    pub fn new(store: Arc<Store>) -> Result<Self, TelegramError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("atalaya/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelegramError::Network {
                chat: "-".to_owned(),
                message: e.to_string(),
            })?;
        let log = MessageLog::new(Arc::clone(&store));
        let limiter = Arc::new(RateLimiter::default());
        let recent = log
            .open(Timestamp::now())
            .map_err(|e| TelegramError::Store {
                chat: "-".to_owned(),
                message: e.to_string(),
            })?;
        let now = Instant::now();
        for (chat, ages) in recent {
            limiter.seed(&chat, &ages, now);
        }
        let buttons = Buttons::open(store, Timestamp::now()).map_err(|e| TelegramError::Store {
            chat: "-".to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client,
            log,
            limiter,
            templates: MessageTemplates::default(),
            buttons,
        })
    }

    /// The button sets of the messages sent.
    pub(crate) fn buttons(&self) -> &Buttons {
        &self.buttons
    }

    /// The flood limits every request to Telegram waits for.
    pub(crate) fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The HTTP client (and its connection pool).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Delivers `notification` to every chat of `config`; a [`Notification::silent`] one
    /// without a sound (`disable_notification`).
    pub async fn send(
        &self,
        config: &TelegramConfig,
        notification: &Notification,
        external_url: &str,
    ) -> Result<(), TelegramError> {
        let token = read_secret(&config.bot_token)
            .await
            .map_err(|e| TelegramError::Token {
                source_name: e.source_name,
                reason: e.reason,
            })?;
        if !token.contains(':') || token.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(TelegramError::InvalidToken);
        }
        let url = reqwest::Url::parse(&config.api_url).map_err(|e| TelegramError::Refused {
            chat: "-".to_owned(),
            description: format!("the api_url is invalid: {e}"),
            permanent: true,
        })?;
        let bot = Bot::with_client(token.clone(), self.client.clone()).set_api_url(url);
        let rendered = self.templates.render(
            MessagePart::TelegramHtml,
            config.locale,
            config.message.as_deref(),
            notification,
            external_url,
        );
        if let Some(error) = &rendered.custom_error {
            warn!(
                receiver = %notification.receiver,
                notification = %notification.id,
                error = %error,
                "The Telegram `message` template failed; the built-in one is sent instead."
            );
        }
        let parts: Vec<String> = split_html(&rendered.text, MAX_MESSAGE_LEN)
            .into_iter()
            .filter(|part| !plain_text(part).trim().is_empty())
            .collect();
        let attempt = Attempt {
            sender: self,
            bot: &bot,
            token: &token,
            config,
            notification,
        };
        for chat in &config.chats {
            attempt.to_chat(chat, &parts).await?;
        }
        self.log
            .delivered(Timestamp::now())
            .await
            .map_err(|e| store_error("-", &e))
    }
}

/// One delivery attempt of one notification.
struct Attempt<'a> {
    sender: &'a TelegramSender,
    bot: &'a Bot,
    token: &'a str,
    config: &'a TelegramConfig,
    notification: &'a Notification,
}

impl Attempt<'_> {
    async fn to_chat(&self, chat: &TelegramChat, parts: &[String]) -> Result<(), TelegramError> {
        let key = chat.to_string();
        let group = GroupRef {
            receiver: &self.notification.receiver,
            integration: self.notification.integration,
            chat: &key,
            group_key: &self.notification.group_key,
        };
        let log = &self.sender.log;
        let head = log.head(&group).await.map_err(|e| store_error(&key, &e))?;
        let firing: BTreeSet<&str> = self
            .notification
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .map(|a| a.fingerprint.as_str())
            .collect();
        let plan = plan(
            self.notification,
            &firing,
            head.as_ref(),
            self.config.on_resolve,
        );
        // The message of each part, sent now or by an earlier attempt.
        let mut ids: Vec<i32> = Vec::with_capacity(parts.len());
        let old_parts: &[i32] = head.as_ref().map_or(&[], |h| h.parts.as_slice());
        for (index, part) in parts.iter().enumerate() {
            if let Some(id) = log
                .sent(&self.notification.id, &key, index)
                .await
                .map_err(|e| store_error(&key, &e))?
            {
                ids.push(id);
                continue;
            }
            // The last part of a message announcing firing alerts carries the buttons, when
            // someone may press them.
            let mut set =
                (index + 1 == parts.len() && !firing.is_empty() && self.config.has_buttons())
                    .then(|| self.button_set(&key, part));
            let markup = set.as_ref().map(|set| keyboard(set, self.config.locale));
            let reservation = set.as_ref().map(|set| self.sender.buttons.reserve(set));
            let message_id = match (plan, index) {
                (Plan::Edit(head), 0) => self.edit_or_send(chat, head, part, markup).await?,
                // The head's own later parts are edited like the first; a part it did not
                // have is sent without a sound (nothing new is firing).
                (Plan::Edit(head), _) => match old_parts.get(index - 1) {
                    Some(&old) => self.edit_or_send(chat, old, part, markup).await?,
                    None => self.send(chat, part, Some(head), true, markup).await?,
                },
                (Plan::Reply(head), _) => self.send(chat, part, Some(head), false, markup).await?,
                (Plan::New { .. }, _) => self.send(chat, part, None, false, markup).await?,
            };
            if let Some(mut set) = set.take() {
                set.message_id = message_id;
                self.sender
                    .buttons
                    .insert(set)
                    .await
                    .map_err(|e| store_error(&key, &e))?;
            }
            drop(reservation);
            ids.push(message_id);
            let new_head = match plan {
                Plan::New { head: true } if index == 0 => Some((
                    group_ref(&group),
                    GroupHead {
                        message_id,
                        firing: firing.iter().map(|f| (*f).to_owned()).collect(),
                        at: Timestamp::now().as_millisecond(),
                        parts: Vec::new(),
                    },
                )),
                _ => None,
            };
            log.record(
                SendRecord {
                    notification: &self.notification.id,
                    chat: &key,
                    part: index,
                    message_id,
                    head: new_head,
                },
                Timestamp::now(),
            )
            .await
            .map_err(|e| store_error(&key, &e))?;
        }
        // Parts of the head the edit no longer needs would go on showing alerts as firing:
        // they are marked resolved (a message that is gone is left alone).
        if let Plan::Edit(_) = plan {
            for &old in old_parts.iter().skip(parts.len().saturating_sub(1)) {
                self.mark_resolved(chat, old).await?;
            }
        }
        let firing_now = || firing.iter().map(|f| (*f).to_owned()).collect();
        let later_parts = ids.get(1..).unwrap_or_default().to_vec();
        // A resolve update leaves the head with the alerts still firing; the last one
        // resolved ends the group here. A new head in several parts remembers them all.
        let update = match (plan, &head) {
            _ if firing.is_empty() => Some(None),
            (Plan::Edit(_), Some(head)) => Some(Some(GroupHead {
                firing: firing_now(),
                parts: later_parts,
                ..head.clone()
            })),
            (Plan::Reply(_), Some(head)) => Some(Some(GroupHead {
                firing: firing_now(),
                ..head.clone()
            })),
            (Plan::New { head: true }, _) if !later_parts.is_empty() => {
                ids.first().map(|&message_id| {
                    Some(GroupHead {
                        message_id,
                        firing: firing_now(),
                        at: Timestamp::now().as_millisecond(),
                        parts: later_parts,
                    })
                })
            }
            _ => None,
        };
        if let Some(update) = update {
            log.set_head(&group, update)
                .await
                .map_err(|e| store_error(&key, &e))?;
        }
        Ok(())
    }

    /// The buttons of a message with text `text` to `chat`, for the notification's firing
    /// alerts.
    fn button_set(&self, chat: &str, text: &str) -> ButtonSet {
        let alerts = self
            .notification
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .map(|a| ButtonAlert {
                fingerprint: a.fingerprint.clone(),
                labels: a
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .collect();
        ButtonSet::new(
            &self.notification.receiver,
            self.notification.integration,
            chat,
            text,
            alerts,
            Timestamp::now(),
        )
    }

    /// Replaces the head's text (and its buttons: `markup`, or none); a head Telegram no
    /// longer has (deleted, too old to edit) gets a new message instead.
    async fn edit_or_send(
        &self,
        chat: &TelegramChat,
        head: i32,
        text: &str,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Result<i32, TelegramError> {
        let mut html = true;
        loop {
            let body = if html {
                text.to_owned()
            } else {
                plain_text(text)
            };
            let result = self
                .request(chat, || {
                    let mut request = self
                        .bot
                        .edit_message_text(recipient(chat), MessageId(head), body.clone())
                        .link_preview_options(no_preview());
                    if html {
                        request = request.parse_mode(ParseMode::Html);
                    }
                    if let Some(markup) = &markup {
                        request = request.reply_markup(markup.clone());
                    }
                    request.send()
                })
                .await;
            return match result {
                Ok(_) | Err(Failed::Request(RequestError::Api(ApiError::MessageNotModified))) => {
                    Ok(head)
                }
                Err(Failed::Request(RequestError::Api(
                    ApiError::MessageToEditNotFound
                    | ApiError::MessageCantBeEdited
                    | ApiError::MessageIdInvalid,
                ))) => self.send(chat, text, None, false, markup).await,
                Err(Failed::Request(RequestError::Api(ApiError::CantParseEntities(_)))) if html => {
                    html = false;
                    continue;
                }
                Err(failed) => Err(self.error(chat, failed)),
            };
        }
    }

    /// Marks a part of a head that the resolved text no longer needs (the group's text got
    /// shorter): its text becomes ✅. A message Telegram no longer has, or cannot edit, is
    /// left alone.
    async fn mark_resolved(&self, chat: &TelegramChat, message: i32) -> Result<(), TelegramError> {
        let result = self
            .request(chat, || {
                self.bot
                    .edit_message_text(recipient(chat), MessageId(message), "✅")
                    .send()
            })
            .await;
        match result {
            Ok(_)
            | Err(Failed::Request(RequestError::Api(
                ApiError::MessageNotModified
                | ApiError::MessageToEditNotFound
                | ApiError::MessageCantBeEdited
                | ApiError::MessageIdInvalid,
            ))) => Ok(()),
            Err(failed) => Err(self.error(chat, failed)),
        }
    }

    /// Sends `text` as a new message (with buttons: `markup`), replying to `reply_to` when
    /// given, without a sound when `quiet` (or the notification is silent); the message id.
    async fn send(
        &self,
        chat: &TelegramChat,
        text: &str,
        reply_to: Option<i32>,
        quiet: bool,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Result<i32, TelegramError> {
        let mut html = true;
        loop {
            let body = if html {
                text.to_owned()
            } else {
                plain_text(text)
            };
            let result = self
                .request(chat, || {
                    let mut request = self
                        .bot
                        .send_message(recipient(chat), body.clone())
                        .link_preview_options(no_preview())
                        .disable_notification(self.notification.silent || quiet);
                    if html {
                        request = request.parse_mode(ParseMode::Html);
                    }
                    if let Some(thread) = self.config.message_thread_id {
                        request = request.message_thread_id(ThreadId(MessageId(thread)));
                    }
                    if let Some(head) = reply_to {
                        request = request.reply_parameters(
                            ReplyParameters::new(MessageId(head)).allow_sending_without_reply(),
                        );
                    }
                    if let Some(markup) = &markup {
                        request = request.reply_markup(markup.clone());
                    }
                    request.send()
                })
                .await;
            return match result {
                Ok(message) => Ok(message.id.0),
                // A custom template wrote HTML Telegram cannot read: the text still
                // gets through, without formatting.
                Err(Failed::Request(RequestError::Api(ApiError::CantParseEntities(e)))) if html => {
                    warn!(
                        receiver = %self.notification.receiver,
                        notification = %self.notification.id,
                        error = %e,
                        "Telegram cannot parse the message's HTML; sending it as plain text."
                    );
                    html = false;
                    continue;
                }
                Err(failed) => Err(self.error(chat, failed)),
            };
        }
    }

    /// Waits for the chat's next slot, then makes the request made by `make`, within the
    /// integration's timeout. A 429 holds the chat for its `retry_after`.
    async fn request<T, F>(
        &self,
        chat: &TelegramChat,
        make: impl FnOnce() -> F,
    ) -> Result<T, Failed>
    where
        F: std::future::Future<Output = Result<T, RequestError>>,
    {
        let key = chat.to_string();
        let limiter = &self.sender.limiter;
        let slot = limiter.reserve(&key, chat.is_group(), Instant::now());
        tokio::time::sleep_until(slot).await;
        match tokio::time::timeout(self.config.timeout, make()).await {
            Err(_) => Err(Failed::Timeout),
            Ok(Err(RequestError::RetryAfter(seconds))) => {
                limiter.hold(&key, Instant::now() + seconds.duration());
                Err(Failed::Request(RequestError::RetryAfter(seconds)))
            }
            Ok(Err(e)) => Err(Failed::Request(e)),
            Ok(Ok(value)) => Ok(value),
        }
    }

    fn error(&self, chat: &TelegramChat, failed: Failed) -> TelegramError {
        match failed {
            Failed::Timeout => TelegramError::Timeout {
                chat: chat.to_string(),
                timeout: self.config.timeout,
            },
            Failed::Request(e) => TelegramError::from_request(&e, &chat.to_string(), self.token),
        }
    }
}

/// A request that did not succeed.
enum Failed {
    Timeout,
    Request(RequestError),
}

/// Whether the notification is news for a chat whose group head is `head`, or a resolve
/// update of it (see the module docs).
fn plan(
    notification: &Notification,
    firing: &BTreeSet<&str>,
    head: Option<&GroupHead>,
    on_resolve: OnResolve,
) -> Plan {
    let resolves = notification
        .alerts
        .iter()
        .any(|a| a.status == Status::Resolved);
    let update_of = head.filter(|head| {
        resolves
            && firing
                .iter()
                .all(|f| head.firing.iter().any(|known| known == f))
    });
    match (update_of, on_resolve) {
        (Some(head), OnResolve::Edit) => Plan::Edit(head.message_id),
        (Some(head), OnResolve::Reply) => Plan::Reply(head.message_id),
        _ => Plan::New {
            head: !firing.is_empty(),
        },
    }
}

fn group_ref<'a>(group: &GroupRef<'a>) -> GroupRef<'a> {
    GroupRef {
        receiver: group.receiver,
        integration: group.integration,
        chat: group.chat,
        group_key: group.group_key,
    }
}

pub(super) fn recipient(chat: &TelegramChat) -> Recipient {
    match chat {
        TelegramChat::Id(id) => Recipient::Id(ChatId(*id)),
        TelegramChat::Username(name) => Recipient::ChannelUsername(name.clone()),
    }
}

/// Links in alerts point at dashboards: a preview of them is noise.
pub(super) fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

fn store_error(chat: &str, error: &MessageLogError) -> TelegramError {
    TelegramError::Store {
        chat: chat.to_owned(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {

    use atalaya_bus::Labels;
    use atalaya_bus::delivery::notification::NotifiedAlert;

    use super::*;

    fn notification(alerts: &[(&str, Status)]) -> Notification {
        Notification {
            id: "n".into(),
            receiver: "r".into(),
            integration: 0,
            group_key: "g".into(),
            status: Status::Firing,
            group_labels: Labels::new(),
            common_labels: Labels::new(),
            common_annotations: Default::default(),
            alerts: alerts
                .iter()
                .map(|(fp, status)| NotifiedAlert {
                    instant: false,
                    status: *status,
                    fingerprint: (*fp).to_owned(),
                    labels: Labels::new(),
                    annotations: Default::default(),
                    starts_at: Timestamp::UNIX_EPOCH,
                    ends_at: None,
                    value: serde_json::Value::Null,
                    generator_url: None,
                })
                .collect(),
            created_at: Timestamp::UNIX_EPOCH,
            silent: false,
        }
    }

    fn decide(alerts: &[(&str, Status)], head: Option<&[&str]>, on_resolve: OnResolve) -> Plan {
        let n = notification(alerts);
        let firing: BTreeSet<&str> = n
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .map(|a| a.fingerprint.as_str())
            .collect();
        let head = head.map(|fps| GroupHead {
            message_id: 9,
            firing: fps.iter().map(|f| (*f).to_owned()).collect(),
            at: 0,
            parts: Vec::new(),
        });
        plan(&n, &firing, head.as_ref(), on_resolve)
    }

    #[test]
    fn news_is_a_new_message_and_resolves_update_the_head() {
        use Status::{Firing, Resolved};
        let edit = OnResolve::Edit;
        // First firing: news.
        assert_eq!(
            decide(&[("a", Firing)], None, edit),
            Plan::New { head: true }
        );
        // A new alert fires: news, even with the head around.
        assert_eq!(
            decide(&[("a", Firing), ("b", Firing)], Some(&["a"]), edit),
            Plan::New { head: true }
        );
        // A repeat (nothing resolved): a reminder, as a new message.
        assert_eq!(
            decide(&[("a", Firing)], Some(&["a"]), edit),
            Plan::New { head: true }
        );
        // One of two resolves: the head is edited.
        assert_eq!(
            decide(&[("a", Firing), ("b", Resolved)], Some(&["a", "b"]), edit),
            Plan::Edit(9)
        );
        // All resolved: edited, replied to, or a new message.
        let all = [("a", Resolved), ("b", Resolved)];
        assert_eq!(decide(&all, Some(&["a", "b"]), edit), Plan::Edit(9));
        assert_eq!(
            decide(&all, Some(&["a", "b"]), OnResolve::Reply),
            Plan::Reply(9)
        );
        assert_eq!(
            decide(&all, Some(&["a", "b"]), OnResolve::New),
            Plan::New { head: false }
        );
        // Resolved with no head known (it was pruned, or never sent): a new message.
        assert_eq!(decide(&all, None, edit), Plan::New { head: false });
        // A resolve together with a new firing alert is news.
        assert_eq!(
            decide(&[("c", Firing), ("a", Resolved)], Some(&["a"]), edit),
            Plan::New { head: true }
        );
    }
}
