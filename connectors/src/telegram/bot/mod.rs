//! The two-way bot: silence buttons on firing messages and commands (`/alerts`,
//! `/silences`, `/silence`, `/unsilence`, `/status`, `/help`), for the Telegram integrations
//! that name `allowed_users`.
//!
//! - **Long polling** (`getUpdates` with `offset`, a 25-second `timeout`, `allowed_updates`
//!   = messages and callback queries): no public address is needed behind a home router. One
//!   poller per bot token, whatever the number of integrations using it; Telegram answers
//!   409 Conflict to a second one (another replica, another program with the same token),
//!   which is logged, counted and waited out. The offset is saved after each update, so a
//!   restart neither replays nor skips a press.
//! - **Who may act** is decided by the presser's or sender's `from.id`, never by the chat (in
//!   a group every member can press a button): `allowed_users` gives each user `read` or
//!   `silence`. Anything else is answered "not allowed", logged and counted.
//! - **Buttons** carry only a random token ([`super::buttons`]); a press looks it up, checks
//!   the message is the token's, its age against `button_max_age`, and that its alerts
//!   still fire, then silences them on their exact labels (`createdBy`: the Telegram user),
//!   edits the message to say who did what and answers with a short toast.
//! - **Acknowledgements** (`🔕 until resolved`) are silences held an hour at a time: every
//!   minute, one whose alerts still fire is extended when less than half an hour is left,
//!   and one whose alerts have all resolved is expired.
//! - Polling and sending are independent: replies go through the same flood limits as
//!   notifications, and a stuck poll never delays an alert.
//!
//! The bot asks the service for alerts, silences and status through [`ChatOps`].

pub mod ops;
pub mod texts;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use atalaya_bus::backoff::Backoff;
use atalaya_bus::store::Store;
use jiff::Timestamp;
use prometheus::{IntCounterVec, Opts, Registry};
use teloxide_core::payloads::{
    AnswerCallbackQuerySetters, EditMessageTextSetters, GetUpdatesSetters, SendMessageSetters,
    SetMyCommandsSetters,
};
use teloxide_core::requests::{Request, Requester};
use teloxide_core::types::{
    AllowedUpdate, BotCommand, CallbackQuery, ChatId, InlineKeyboardMarkup, Message, MessageId,
    ParseMode, Recipient, Update, UpdateKind, User,
};
use teloxide_core::{ApiError, Bot, RequestError};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use ops::{
    ChatAlert, ChatOps, ChatSilence, ChatStatus, OpFuture, SilenceMatchers, SilenceRequest,
};

use super::TelegramSender;
use super::buttons::{Action, ButtonAlert, ButtonSet, Buttons, keyboard};
use super::config::{Role, TelegramChat, TelegramConfig};
use super::error::{chain, redact};
use super::limiter::RateLimiter;
use super::sender::no_preview;
use crate::secret::read_secret;
use crate::templates::Locale;

/// How long one `getUpdates` waits for an update (Telegram's long poll), in seconds.
pub const POLL_TIMEOUT: u32 = 25;
/// The longest wait for `getUpdates` to answer beyond its own timeout.
const POLL_GRACE: Duration = Duration::from_secs(15);
/// An acknowledgement's silence lasts this long at a time...
pub const ACK_HOLD: Duration = Duration::from_secs(3600);
/// ...and is extended when less than this is left while its alerts fire.
const ACK_RENEW_BEFORE: Duration = Duration::from_secs(1800);
/// How often acknowledgements are looked at.
pub const ACK_CHECK_EVERY: Duration = Duration::from_secs(60);
/// The store table of each bot's update offset (key: the bot's id).
pub const UPDATES_TABLE: &str = "telegram_updates";
/// At most this many groups answer `/alerts`, one message each.
const MAX_ALERT_GROUPS: usize = 10;
/// A request of the bot taking longer fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One Telegram integration whose users may talk to the bot.
#[derive(Debug, Clone, PartialEq)]
pub struct BotReceiver {
    pub receiver: String,
    pub integration: usize,
    pub config: TelegramConfig,
}

/// `atalaya_telegram_updates_total{kind, outcome}` and
/// `atalaya_telegram_poll_errors_total{reason}`.
#[derive(Clone)]
struct BotMetrics {
    updates: IntCounterVec,
    poll_errors: IntCounterVec,
}

impl BotMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let updates = IntCounterVec::new(
            Opts::new(
                "atalaya_telegram_updates_total",
                "Button presses and commands the Telegram bot received, by kind (button, command, other) and outcome (done, denied, expired, invalid, unknown_chat, failed, ignored).",
            ),
            &["kind", "outcome"],
        )?;
        let poll_errors = IntCounterVec::new(
            Opts::new(
                "atalaya_telegram_poll_errors_total",
                "getUpdates calls of the Telegram bot that failed, by reason (conflict: another poller of the same bot; network, api, timeout, token).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(updates.clone()))?;
        registry.register(Box::new(poll_errors.clone()))?;
        for kind in ["button", "command"] {
            for outcome in ["done", "denied", "expired"] {
                updates.with_label_values(&[kind, outcome]);
            }
        }
        poll_errors.with_label_values(&["conflict"]);
        Ok(Self {
            updates,
            poll_errors,
        })
    }

    fn update(&self, kind: &str, outcome: &str) {
        self.updates.with_label_values(&[kind, outcome]).inc();
    }
}

/// What every poller shares.
struct Shared {
    client: reqwest::Client,
    limiter: Arc<RateLimiter>,
    buttons: Buttons,
    store: Arc<Store>,
    ops: Arc<dyn ChatOps>,
    metrics: BotMetrics,
    /// How often acknowledgements are looked at ([`ACK_CHECK_EVERY`]).
    ack_check_every: Duration,
}

/// The bot: one poller per bot token of the integrations given to [`TelegramBot::run`].
pub struct TelegramBot {
    shared: Arc<Shared>,
}

impl TelegramBot {
    /// A bot sending through `sender`'s client and flood limits, with its buttons.
    pub fn new(
        sender: &TelegramSender,
        store: Arc<Store>,
        ops: Arc<dyn ChatOps>,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                client: sender.client().clone(),
                limiter: Arc::clone(sender.limiter()),
                buttons: sender.buttons().clone(),
                store,
                ops,
                metrics: BotMetrics::register(registry)?,
                ack_check_every: ACK_CHECK_EVERY,
            }),
        })
    }

    /// Looks at acknowledgements every `every` instead of every minute (tests).
    pub fn checking_acknowledgements_every(mut self, every: Duration) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.ack_check_every = every;
        }
        self
    }

    /// Polls for the integrations `receivers` holds (those naming `allowed_users`), starting
    /// over when they change (a policy reload), until `stop`.
    pub async fn run(
        self,
        mut receivers: watch::Receiver<Vec<BotReceiver>>,
        stop: CancellationToken,
    ) {
        loop {
            let current: Vec<BotReceiver> = receivers
                .borrow_and_update()
                .iter()
                .filter(|r| !r.config.allowed_users.is_empty())
                .cloned()
                .collect();
            let round = stop.child_token();
            let mut pollers = JoinSet::new();
            for bot in by_bot(current) {
                let poller = Poller {
                    shared: Arc::clone(&self.shared),
                    receivers: bot,
                    sets: tokio::sync::Mutex::new(()),
                };
                pollers.spawn(poller.run(round.clone()));
            }
            let more = tokio::select! {
                () = stop.cancelled() => false,
                changed = receivers.changed() => changed.is_ok(),
            };
            round.cancel();
            while pollers.join_next().await.is_some() {}
            if !more {
                return;
            }
        }
    }
}

/// The integrations grouped by bot (token source and API URL): one poller each.
fn by_bot(receivers: Vec<BotReceiver>) -> Vec<Vec<BotReceiver>> {
    let mut bots: Vec<Vec<BotReceiver>> = Vec::new();
    for receiver in receivers {
        let same = |b: &Vec<BotReceiver>| {
            b[0].config.bot_token == receiver.config.bot_token
                && b[0].config.api_url == receiver.config.api_url
        };
        match bots.iter_mut().find(|b| same(b)) {
            Some(bot) => bot.push(receiver),
            None => bots.push(vec![receiver]),
        }
    }
    bots
}

/// Who wrote or pressed, and what they may do here.
struct Caller<'a> {
    user: u64,
    /// `Ana Pérez`, else `@ana`, else the id.
    name: String,
    role: Option<Role>,
    locale: Locale,
    /// The integrations this chat belongs to (or, in a private chat, that allow the user).
    receivers: Vec<&'a BotReceiver>,
}

impl Caller<'_> {
    /// The silence's `createdBy`.
    fn created_by(&self) -> String {
        format!("{} (Telegram {})", self.name, self.user)
    }
}

fn display_name(user: &User) -> String {
    let mut name = user.first_name.trim().to_owned();
    if let Some(last) = user.last_name.as_deref().filter(|l| !l.trim().is_empty()) {
        name.push(' ');
        name.push_str(last.trim());
    }
    if name.is_empty() {
        name = user
            .username
            .as_ref()
            .map_or_else(|| user.id.0.to_string(), |u| format!("@{u}"));
    }
    name
}

/// One bot: its integrations, polled with one token.
struct Poller {
    shared: Arc<Shared>,
    receivers: Vec<BotReceiver>,
    /// Held while a button set is read, changed and written back (a press, the
    /// acknowledgements' round), so neither overwrites the other's change.
    sets: tokio::sync::Mutex<()>,
}

/// What failed last, so a failure repeating is logged once.
#[derive(Default, PartialEq)]
struct Logged(Option<&'static str>);

impl Poller {
    fn first(&self) -> &TelegramConfig {
        &self.receivers[0].config
    }

    /// Polls, and looks after acknowledgements, until `stop`.
    async fn run(self, stop: CancellationToken) {
        tokio::join!(self.poll(&stop), self.acknowledgements(&stop));
    }

    /// Every [`ACK_CHECK_EVERY`]: [`Poller::hold_acknowledgements`].
    async fn acknowledgements(&self, stop: &CancellationToken) {
        loop {
            self.hold_acknowledgements().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.shared.ack_check_every) => {}
            }
        }
    }

    async fn poll(&self, stop: &CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut logged = Logged::default();
        let mut state = PollState::default();
        loop {
            if stop.is_cancelled() {
                return;
            }
            let failure = match self.poll_once(&mut state, stop).await {
                Ok(()) => {
                    if logged.0.take().is_some() {
                        info!(receiver = %self.receivers[0].receiver, "The Telegram bot reads its updates again.");
                    }
                    backoff.reset();
                    continue;
                }
                Err(failure) => failure,
            };
            self.shared
                .metrics
                .poll_errors
                .with_label_values(&[failure.reason])
                .inc();
            if logged.0 != Some(failure.reason) {
                logged.0 = Some(failure.reason);
                warn!(
                    receiver = %self.receivers[0].receiver,
                    reason = failure.reason,
                    error = %failure.message,
                    "The Telegram bot cannot read its updates; retrying with back-off. Notifications are sent regardless."
                );
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One `getUpdates`, and the updates it brought.
    async fn poll_once(
        &self,
        state: &mut PollState,
        stop: &CancellationToken,
    ) -> Result<(), PollFailure> {
        let token = read_secret(&self.first().bot_token)
            .await
            .map_err(|e| PollFailure {
                reason: "token",
                message: format!(
                    "cannot read the bot token from the {}: {}",
                    e.source_name, e.reason
                ),
            })?;
        let bot_id = token.split(':').next().unwrap_or_default().to_owned();
        let url = reqwest::Url::parse(&self.first().api_url).map_err(|e| PollFailure {
            reason: "api",
            message: format!("the api_url is invalid: {e}"),
        })?;
        let bot = Bot::with_client(token.clone(), self.shared.client.clone()).set_api_url(url);
        if !state.offset_loaded {
            state.offset = self.load_offset(&bot_id).await;
            state.offset_loaded = true;
        }
        if !state.commands_set {
            state.commands_set = self.set_commands(&bot, &token).await;
        }
        let mut request = bot
            .get_updates()
            .timeout(POLL_TIMEOUT)
            .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
        if let Some(offset) = state.offset {
            request = request.offset(offset);
        }
        let wait = Duration::from_secs(u64::from(POLL_TIMEOUT)) + POLL_GRACE;
        let answer = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            answer = tokio::time::timeout(wait, request.send()) => answer,
        };
        let updates = match answer {
            Err(_) => {
                return Err(PollFailure {
                    reason: "timeout",
                    message: format!("getUpdates did not answer within {wait:?}"),
                });
            }
            Ok(Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))) => {
                return Err(PollFailure {
                    reason: "conflict",
                    message: "409 Conflict: another program (or another atalaya replica) reads this bot's updates; only one may, so give each its own bot".to_owned(),
                });
            }
            Ok(Err(RequestError::Api(e))) => {
                return Err(PollFailure {
                    reason: "api",
                    message: redact(&e.to_string(), &token),
                });
            }
            Ok(Err(e)) => {
                return Err(PollFailure {
                    reason: "network",
                    message: redact(&chain(&e), &token),
                });
            }
            Ok(Ok(updates)) => updates,
        };
        for update in updates {
            let next = i32::try_from(update.id.0)
                .unwrap_or(i32::MAX)
                .saturating_add(1);
            self.handle(&bot, update).await;
            state.offset = Some(next);
            self.save_offset(&bot_id, next).await;
        }
        Ok(())
    }

    async fn load_offset(&self, bot_id: &str) -> Option<i32> {
        let store = Arc::clone(&self.shared.store);
        let key = bot_id.as_bytes().to_vec();
        let value = tokio::task::spawn_blocking(move || store.get(UPDATES_TABLE, &key))
            .await
            .ok()?
            .ok()??;
        std::str::from_utf8(&value).ok()?.parse().ok()
    }

    async fn save_offset(&self, bot_id: &str, offset: i32) {
        let store = Arc::clone(&self.shared.store);
        let key = bot_id.as_bytes().to_vec();
        let saved = tokio::task::spawn_blocking(move || {
            store.put(UPDATES_TABLE, &key, offset.to_string().as_bytes())
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            warn!(
                "Cannot save the Telegram bot's update offset; a restart may see the last update again."
            );
        }
    }

    /// Registers the commands in English (the default) and Spanish; whether it worked.
    async fn set_commands(&self, bot: &Bot, token: &str) -> bool {
        for (locale, code) in [(Locale::En, None), (Locale::Es, Some("es"))] {
            let commands = texts::commands(locale)
                .into_iter()
                .map(|(command, description)| BotCommand::new(command, description));
            let mut request = bot.set_my_commands(commands);
            if let Some(code) = code {
                request = request.language_code(code);
            }
            if let Err(e) = within(request.send()).await {
                warn!(error = %redact(&e, token), "Cannot register the Telegram bot's commands; they work anyway, Telegram just does not suggest them.");
                return false;
            }
        }
        true
    }

    async fn handle(&self, bot: &Bot, update: Update) {
        match update.kind {
            UpdateKind::CallbackQuery(query) => self.press(bot, query).await,
            UpdateKind::Message(message) => self.message(bot, message).await,
            _ => self.shared.metrics.update("other", "ignored"),
        }
    }

    /// Who `user` is in `chat`: the integrations of the chat (or, in a private chat, those
    /// allowing the user) and the highest role they give.
    fn caller(&self, chat: i64, user: &User) -> Caller<'_> {
        let mut receivers: Vec<&BotReceiver> = self
            .receivers
            .iter()
            .filter(|r| r.config.chats.contains(&TelegramChat::Id(chat)))
            .collect();
        if receivers.is_empty() && chat > 0 {
            receivers = self
                .receivers
                .iter()
                .filter(|r| r.config.role_of(user.id.0).is_some())
                .collect();
        }
        let role = receivers
            .iter()
            .filter_map(|r| r.config.role_of(user.id.0))
            .max();
        Caller {
            user: user.id.0,
            name: display_name(user),
            role,
            locale: receivers
                .first()
                .map_or(self.first().locale, |r| r.config.locale),
            receivers,
        }
    }

    async fn press(&self, bot: &Bot, query: CallbackQuery) {
        let metrics = &self.shared.metrics;
        let Some(message) = &query.message else {
            metrics.update("button", "invalid");
            return self
                .answer(bot, &query, texts::expired(self.first().locale))
                .await;
        };
        let chat = message.chat().id.0;
        let message_id = message.id().0;
        let caller = self.caller(chat, &query.from);
        let locale = caller.locale;
        let data = query.data.as_deref().unwrap_or_default();
        let _sets = self.sets.lock().await;
        let found = match self.shared.buttons.resolve(data).await {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "Cannot read the Telegram buttons from the store.");
                metrics.update("button", "failed");
                return self
                    .answer(bot, &query, &texts::failed("the state store", locale))
                    .await;
            }
        };
        let now = Timestamp::now();
        // The token must be this message's, its integration still configured, its age
        // within bounds.
        let found = found.and_then(|(set, action)| {
            let receiver = self
                .receivers
                .iter()
                .find(|r| r.receiver == set.receiver && r.integration == set.integration)?;
            let same_message = set.message_id == message_id
                && (set.chat == chat.to_string() || set.chat.starts_with('@'));
            (same_message && set.age(now) < receiver.config.button_max_age)
                .then_some((set, action, receiver))
        });
        let Some((mut set, action, receiver)) = found else {
            metrics.update("button", "expired");
            return self.answer(bot, &query, texts::expired(locale)).await;
        };
        let locale = receiver.config.locale;
        if receiver.config.role_of(caller.user) != Some(Role::Silence) {
            metrics.update("button", "denied");
            warn!(
                user = caller.user,
                chat,
                receiver = %set.receiver,
                action = ?action,
                "A Telegram user not allowed to silence pressed a button; nothing was done."
            );
            return self.answer(bot, &query, texts::not_allowed(locale)).await;
        }
        let outcome = match action {
            Action::Unsilence => {
                for id in std::mem::take(&mut set.silences) {
                    // Already expired or deleted: nothing left to do for it.
                    let _ = self.shared.ops.expire(id).await;
                }
                set.acknowledged = false;
                Ok(None)
            }
            _ => self.silence_set(&mut set, action, &caller).await,
        };
        let until = match outcome {
            Ok(until) => until,
            Err(Refusal::Resolved) => {
                metrics.update("button", "expired");
                return self.answer(bot, &query, texts::expired(locale)).await;
            }
            Err(Refusal::Failed(error)) => {
                metrics.update("button", "failed");
                warn!(error = %error, receiver = %set.receiver, "A silence from a Telegram button failed.");
                return self
                    .answer(bot, &query, &texts::failed(&error, locale))
                    .await;
            }
        };
        set.note = Some(texts::note(action, &caller.name, until, now, locale));
        if let Err(e) = self.shared.buttons.update(set.clone()).await {
            warn!(error = %e, "Cannot record a Telegram button press in the store.");
        }
        info!(
            user = caller.user,
            receiver = %set.receiver,
            action = ?action,
            silences = set.silences.len(),
            "Telegram button pressed."
        );
        self.edit(bot, &set, locale).await;
        metrics.update("button", "done");
        self.answer(bot, &query, &texts::toast(action, locale))
            .await;
    }

    /// Silences the set's alerts that still fire, for `action`'s time (an acknowledgement:
    /// [`ACK_HOLD`], extended later); replaces silences made from it before. When the
    /// silences end.
    async fn silence_set(
        &self,
        set: &mut ButtonSet,
        action: Action,
        caller: &Caller<'_>,
    ) -> Result<Option<Timestamp>, Refusal> {
        let alerts = self.shared.ops.alerts().await.map_err(Refusal::Failed)?;
        let firing: HashSet<&str> = alerts
            .iter()
            .filter(|a| a.firing)
            .map(|a| a.fingerprint.as_str())
            .collect();
        let targets: Vec<&ButtonAlert> = set
            .alerts
            .iter()
            .filter(|a| firing.contains(a.fingerprint.as_str()))
            .collect();
        if targets.is_empty() {
            return Err(Refusal::Resolved);
        }
        let duration = action.duration().unwrap_or(ACK_HOLD);
        let comment = match action {
            Action::Acknowledge => "from Telegram: acknowledged until it resolves",
            _ => "from Telegram",
        };
        let mut made = Vec::new();
        let mut until = None;
        for alert in targets {
            let request = SilenceRequest {
                matchers: SilenceMatchers::Exact(alert.labels.clone()),
                duration,
                created_by: caller.created_by(),
                comment: comment.to_owned(),
            };
            let silence = self
                .shared
                .ops
                .silence(request)
                .await
                .map_err(Refusal::Failed)?;
            until = Some(silence.ends_at);
            made.push(silence.id);
        }
        for old in std::mem::replace(&mut set.silences, made) {
            let _ = self.shared.ops.expire(old).await;
        }
        set.acknowledged = action == Action::Acknowledge;
        Ok(until.filter(|_| action != Action::Acknowledge))
    }

    /// Shows the set's message with its note and its buttons now.
    async fn edit(&self, bot: &Bot, set: &ButtonSet, locale: Locale) {
        let chat = match set.chat.parse::<i64>() {
            Ok(id) => Recipient::Id(ChatId(id)),
            Err(_) => Recipient::ChannelUsername(set.chat.clone()),
        };
        let request = bot
            .edit_message_text(chat, MessageId(set.message_id), set.shown_text())
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_preview())
            .reply_markup(keyboard(set, locale));
        self.wait_slot(&set.chat).await;
        match within(request.send()).await {
            Ok(()) => {}
            Err(e) if e.contains("message is not modified") => {}
            Err(e) => {
                warn!(error = %e, chat = %set.chat, "Cannot edit a Telegram message after a button press.")
            }
        }
    }

    /// Answers a button press with a toast.
    async fn answer(&self, bot: &Bot, query: &CallbackQuery, text: &str) {
        let request = bot
            .answer_callback_query(query.id.clone())
            .text(text.to_owned());
        if let Err(e) = within(request.send()).await {
            warn!(error = %e, "Cannot answer a Telegram button press.");
        }
    }

    async fn wait_slot(&self, chat: &str) {
        let group = chat.starts_with('-') || chat.starts_with('@');
        let slot = self.shared.limiter.reserve(chat, group, Instant::now());
        tokio::time::sleep_until(slot).await;
    }

    /// Sends `text` (Telegram HTML) to `chat`, with buttons when given; the message id.
    async fn reply(
        &self,
        bot: &Bot,
        chat: i64,
        text: &str,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Option<i32> {
        self.wait_slot(&chat.to_string()).await;
        let mut request = bot
            .send_message(ChatId(chat), text.to_owned())
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_preview());
        if let Some(markup) = markup {
            request = request.reply_markup(markup);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, request.send()).await {
            Ok(Ok(message)) => Some(message.id.0),
            Ok(Err(e)) => {
                warn!(error = %chain(&e), chat, "Cannot answer a Telegram command.");
                None
            }
            Err(_) => {
                warn!(chat, "Telegram did not take a command's answer in time.");
                None
            }
        }
    }

    async fn message(&self, bot: &Bot, message: Message) {
        let metrics = &self.shared.metrics;
        let (Some(text), Some(user)) = (message.text(), message.from.as_ref()) else {
            return metrics.update("other", "invalid");
        };
        let Some(command) = text.strip_prefix('/') else {
            // Talk between people: not for the bot.
            return metrics.update("other", "ignored");
        };
        let chat = message.chat.id.0;
        let caller = self.caller(chat, user);
        let locale = caller.locale;
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or_default();
        // `/alerts@atalaya_bot` in groups.
        let name = name
            .split('@')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let args: Vec<&str> = words.collect();
        if caller.receivers.is_empty() {
            metrics.update("command", "unknown_chat");
            warn!(
                user = caller.user,
                chat, "A Telegram chat the bot does not serve sent a command; ignored."
            );
            if chat > 0 {
                self.reply(bot, chat, &texts::stranger(caller.user, locale), None)
                    .await;
            }
            return;
        }
        let Some(role) = caller.role else {
            metrics.update("command", "denied");
            warn!(user = caller.user, chat, command = %name, "A Telegram user not allowed sent a command; nothing was done.");
            let text = if name == "help" || name == "start" {
                texts::stranger(caller.user, locale)
            } else {
                texts::not_allowed(locale).to_owned()
            };
            self.reply(bot, chat, &text, None).await;
            return;
        };
        let needs_silence = matches!(name.as_str(), "silence" | "unsilence");
        if needs_silence && role != Role::Silence {
            metrics.update("command", "denied");
            warn!(user = caller.user, chat, command = %name, "A Telegram user with the read role tried to silence; nothing was done.");
            self.reply(bot, chat, texts::not_allowed(locale), None)
                .await;
            return;
        }
        let now = Timestamp::now();
        let ops = &self.shared.ops;
        let (text, outcome) = match name.as_str() {
            "help" | "start" => (
                texts::help(
                    caller.user,
                    texts::role_name(role == Role::Silence, locale),
                    locale,
                ),
                "done",
            ),
            "alerts" => return self.alerts(bot, chat, &caller, role).await,
            "silences" => match ops.silences().await {
                Ok(silences) => (texts::silences(&silences, now, locale), "done"),
                Err(e) => (texts::failed(&e, locale), "failed"),
            },
            "silence" => self.silence_command(&args, &caller).await,
            "unsilence" => self.unsilence_command(&args, locale).await,
            "status" => (texts::status(&ops.status().await, locale), "done"),
            _ => (texts::unknown_command(locale).to_owned(), "invalid"),
        };
        metrics.update("command", outcome);
        self.reply(bot, chat, &text, None).await;
    }

    /// `/alerts`: one message per alert name, with buttons for whoever may silence.
    async fn alerts(&self, bot: &Bot, chat: i64, caller: &Caller<'_>, role: Role) {
        let locale = caller.locale;
        let metrics = &self.shared.metrics;
        let alerts = match self.shared.ops.alerts().await {
            Ok(alerts) => alerts,
            Err(e) => {
                metrics.update("command", "failed");
                self.reply(bot, chat, &texts::failed(&e, locale), None)
                    .await;
                return;
            }
        };
        let mut groups: BTreeMap<String, Vec<&ChatAlert>> = BTreeMap::new();
        for alert in alerts.iter().filter(|a| a.firing) {
            let name = alert
                .labels
                .get("alertname")
                .map(str::to_owned)
                .unwrap_or_default();
            groups.entry(name).or_default().push(alert);
        }
        metrics.update("command", "done");
        if groups.is_empty() {
            self.reply(bot, chat, texts::no_alerts(locale), None).await;
            return;
        }
        let now = Timestamp::now();
        let more = groups.len().saturating_sub(MAX_ALERT_GROUPS);
        let receiver = caller.receivers[0];
        for (name, alerts) in groups.into_iter().take(MAX_ALERT_GROUPS) {
            let text = texts::alert_group(&name, &alerts, now, locale);
            // Buttons only where someone may press them, and on the alerts not yet silenced.
            let set = (role == Role::Silence && alerts.iter().any(|a| a.silenced_by.is_empty()))
                .then(|| {
                    let targets = alerts
                        .iter()
                        .filter(|a| a.silenced_by.is_empty())
                        .map(|a| ButtonAlert {
                            fingerprint: a.fingerprint.clone(),
                            labels: a.labels.clone(),
                        })
                        .collect();
                    ButtonSet::new(
                        &receiver.receiver,
                        receiver.integration,
                        &chat.to_string(),
                        &text,
                        targets,
                        now,
                    )
                });
            let markup = set.as_ref().map(|s| keyboard(s, receiver.config.locale));
            let sent = self.reply(bot, chat, &text, markup).await;
            if let (Some(mut set), Some(id)) = (set, sent) {
                set.message_id = id;
                if let Err(e) = self.shared.buttons.insert(set).await {
                    warn!(error = %e, "Cannot keep the buttons of an /alerts message.");
                }
            }
        }
        if more > 0 {
            self.reply(bot, chat, &texts::more_groups(more, locale), None)
                .await;
        }
    }

    /// `/silence <matchers> <duration> [comment]`.
    async fn silence_command(&self, args: &[&str], caller: &Caller<'_>) -> (String, &'static str) {
        let locale = caller.locale;
        let Some((matchers, duration, comment)) = parse_silence(args) else {
            return (texts::silence_usage(locale).to_owned(), "invalid");
        };
        let request = SilenceRequest {
            matchers: SilenceMatchers::Written(matchers),
            duration,
            created_by: caller.created_by(),
            comment: if comment.is_empty() {
                "from Telegram".to_owned()
            } else {
                comment
            },
        };
        match self.shared.ops.silence(request).await {
            Ok(silence) => {
                info!(user = caller.user, silence = %silence.id, "Silence set from Telegram.");
                (texts::silenced(&silence, Timestamp::now(), locale), "done")
            }
            Err(e) => (texts::failed(&e, locale), "invalid"),
        }
    }

    /// `/unsilence <id or its start>`.
    async fn unsilence_command(&self, args: &[&str], locale: Locale) -> (String, &'static str) {
        let [prefix] = args else {
            return (texts::unsilence_usage(locale).to_owned(), "invalid");
        };
        let prefix = prefix.to_ascii_lowercase();
        let silences = match self.shared.ops.silences().await {
            Ok(silences) => silences,
            Err(e) => return (texts::failed(&e, locale), "failed"),
        };
        let matching: Vec<&ChatSilence> = silences
            .iter()
            .filter(|s| s.id.to_ascii_lowercase().starts_with(&prefix))
            .collect();
        match matching.as_slice() {
            [] => (texts::no_such_silence(&prefix, locale), "invalid"),
            [one] => match self.shared.ops.expire(one.id.clone()).await {
                Ok(()) => (texts::unsilenced(&one.id, locale), "done"),
                Err(e) => (texts::failed(&e, locale), "failed"),
            },
            _ => (texts::ambiguous_silence(&prefix, locale), "invalid"),
        }
    }

    /// Extends the acknowledgements whose alerts still fire; ends those whose alerts have
    /// resolved.
    async fn hold_acknowledgements(&self) {
        let ours: HashSet<(&str, usize)> = self
            .receivers
            .iter()
            .map(|r| (r.receiver.as_str(), r.integration))
            .collect();
        let _sets = self.sets.lock().await;
        let sets = match self.shared.buttons.acknowledged().await {
            Ok(sets) => sets,
            Err(e) => {
                warn!(error = %e, "Cannot read the acknowledgements from the store.");
                return;
            }
        };
        let sets: Vec<ButtonSet> = sets
            .into_iter()
            .filter(|s| ours.contains(&(s.receiver.as_str(), s.integration)))
            .collect();
        if sets.is_empty() {
            return;
        }
        let ops = &self.shared.ops;
        let (Ok(alerts), Ok(silences)) = (ops.alerts().await, ops.silences().await) else {
            return;
        };
        let firing: HashSet<&str> = alerts
            .iter()
            .filter(|a| a.firing)
            .map(|a| a.fingerprint.as_str())
            .collect();
        let now = Timestamp::now();
        for mut set in sets {
            let fires = set
                .alerts
                .iter()
                .any(|a| firing.contains(a.fingerprint.as_str()));
            if fires {
                let mut kept = Vec::new();
                for id in std::mem::take(&mut set.silences) {
                    let Some(silence) = silences.iter().find(|s| s.id == id) else {
                        // Expired or deleted by someone else: the acknowledgement ends there.
                        continue;
                    };
                    let left = silence.ends_at.duration_since(now);
                    if left.as_secs() < ACK_RENEW_BEFORE.as_secs() as i64
                        && let Err(e) = ops.extend(id.clone(), ACK_HOLD).await
                    {
                        warn!(error = %e, silence = %id, "Cannot extend an acknowledgement.");
                    }
                    kept.push(id);
                }
                set.silences = kept;
            } else {
                for id in std::mem::take(&mut set.silences) {
                    let _ = ops.expire(id).await;
                }
                info!(receiver = %set.receiver, "Acknowledged alerts resolved; their silences end.");
            }
            if set.silences.is_empty() {
                set.acknowledged = false;
            }
            if let Err(e) = self.shared.buttons.update(set).await {
                warn!(error = %e, "Cannot record an acknowledgement in the store.");
            }
        }
    }
}

/// Why a button did nothing.
enum Refusal {
    /// Its alerts have all resolved.
    Resolved,
    Failed(String),
}

/// What a poller keeps between polls.
#[derive(Default)]
struct PollState {
    /// The next update wanted (the last handled + 1).
    offset: Option<i32>,
    /// Whether `offset` was read from the store.
    offset_loaded: bool,
    /// Whether the commands were registered with Telegram.
    commands_set: bool,
}

struct PollFailure {
    reason: &'static str,
    message: String,
}

/// Runs a request within [`REQUEST_TIMEOUT`]; its error as text.
async fn within<T>(
    request: impl std::future::Future<Output = Result<T, RequestError>>,
) -> Result<(), String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(chain(&e)),
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

/// `/silence` arguments: matchers (words with `=`, `!=`, `=~` or `!~`, or one `{…}`
/// selector), then a duration, then an optional comment.
fn parse_silence(args: &[&str]) -> Option<(Vec<String>, Duration, String)> {
    let mut matchers = Vec::new();
    let mut rest = args;
    if let Some(first) = rest.first()
        && first.starts_with('{')
    {
        let end = rest.iter().position(|w| w.ends_with('}'))?;
        let selector = rest[..=end].join(" ");
        let inner = selector.trim_start_matches('{').trim_end_matches('}');
        matchers.extend(split_matchers(inner));
        rest = &rest[end + 1..];
    } else {
        while let Some(word) = rest.first()
            && word.contains('=') | word.contains("!~")
        {
            matchers.push((*word).to_owned());
            rest = &rest[1..];
        }
    }
    let (duration, comment) = rest.split_first()?;
    let duration = atalaya_bus::duration::parse_duration(duration).ok()?;
    if matchers.is_empty() || duration.is_zero() {
        return None;
    }
    Some((matchers, duration, comment.join(" ")))
}

/// The matchers of a `{a="b", c=~"d"}` selector's inside, split at commas outside quotes.
fn split_matchers(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '\\' if quoted && !escaped => escaped = true,
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => escaped = false,
        }
        if c != '\\' || escaped {
            current.push(c);
        }
    }
    out.push(current);
    out.into_iter()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_arguments_are_matchers_a_duration_and_a_comment() {
        let (m, d, c) = parse_silence(&[
            "alertname=node_lost",
            "node=~\"pi-.*\"",
            "2h",
            "kernel",
            "update",
        ])
        .unwrap();
        assert_eq!(m, ["alertname=node_lost", "node=~\"pi-.*\""]);
        assert_eq!(d, Duration::from_secs(7200));
        assert_eq!(c, "kernel update");
        let (m, d, c) = parse_silence(&["{alertname=\"a,b\",", "node!=\"x\"}", "30m"]).unwrap();
        assert_eq!(m, ["alertname=\"a,b\"", "node!=\"x\""]);
        assert_eq!(d, Duration::from_secs(1800));
        assert_eq!(c, "");
        // No matcher, no duration, a bad duration, an unclosed selector: usage.
        assert!(parse_silence(&["2h"]).is_none());
        assert!(parse_silence(&["alertname=x"]).is_none());
        assert!(parse_silence(&["alertname=x", "soon"]).is_none());
        assert!(parse_silence(&["{alertname=\"x\"", "2h"]).is_none());
    }

    #[test]
    fn one_poller_per_bot() {
        let config = |token: &str| TelegramConfig {
            bot_token: atalaya_bus::delivery::integration::SecretSource::Env(token.into()),
            chats: vec![TelegramChat::Id(1)],
            message_thread_id: None,
            api_url: "http://127.0.0.1:1".into(),
            on_resolve: super::super::OnResolve::Edit,
            message: None,
            locale: Locale::En,
            timeout: Duration::from_secs(1),
            allowed_users: Vec::new(),
            button_max_age: Duration::from_secs(60),
        };
        let receiver = |name: &str, token: &str| BotReceiver {
            receiver: name.into(),
            integration: 0,
            config: config(token),
        };
        let bots = by_bot(vec![
            receiver("a", "T1"),
            receiver("b", "T2"),
            receiver("c", "T1"),
        ]);
        assert_eq!(bots.len(), 2);
        assert_eq!(bots[0].len(), 2);
    }
}
