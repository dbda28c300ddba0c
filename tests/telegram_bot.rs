//! The two-way Telegram bot in the running service, against the Bot API stand-in (which
//! serves `getUpdates` and takes presses and commands injected by the test): buttons that
//! silence for whoever may and for no one else, commands, expired and forged buttons, a
//! restart between two presses, and a second poller's 409 Conflict. Silences are checked
//! where a user would look: `GET /api/v2/silences`.

mod support;

use std::path::Path;
use std::time::Duration;

use atalaya_test_kit::telegram::BotApi;
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Atalaya, Options, PATIENCE};
use tokio::time::Instant;

const TOKEN: &str = "123456:FAKE-token-bot-abcdefghijklmnop";
const GROUP: i64 = -100_200;
const ANA: (i64, &str) = (111, "Ana");
const LEO: (i64, &str) = (222, "Leo");
const STRANGER: (i64, &str) = (333, "Eve");

/// A policy sending every alert to the family group at once, Ana may silence, Leo read.
fn options(dir: &Path, api: &BotApi, extra: &str) -> Options {
    std::fs::write(dir.join("bot-token"), format!("{TOKEN}\n")).unwrap();
    let policy = format!(
        r#"route:
  receiver: family
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: family
    telegram_configs:
      - bot_token_file: bot-token
        chat_id: {GROUP}
        api_url: {url}
        allowed_users:
          - {{id: 111, role: silence}}
          - {{id: 222, role: read}}
{extra}"#,
        url = api.url()
    );
    std::fs::write(dir.join("routing.yaml"), policy).unwrap();
    Options {
        config: format!(
            "routing:\n  file: {}\noutbox:\n  initial_backoff: 100ms\n  max_backoff: 1s\n",
            dir.join("routing.yaml").display()
        ),
        ..Options::default()
    }
}

fn freezer() -> Value {
    json!([{
        "labels": {"alertname": "FreezerWarm", "room": "kitchen", "severity": "critical"},
        "annotations": {"summary": "Freezer at -2 °C"},
    }])
}

async fn post(atalaya: &Atalaya, alerts: Value) {
    let response = reqwest::Client::new()
        .post(atalaya.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Waits, within [`PATIENCE`], until `check` holds of the stand-in.
async fn until(api: &BotApi, what: &str, check: impl Fn(&BotApi) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check(api) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            api.recorded()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `n`-th message sent to the group (0-based), once there.
async fn nth_message(api: &BotApi, n: usize) -> i64 {
    until(api, "a message to the group", |api| {
        api.to_chat(&GROUP.to_string())
            .iter()
            .filter(|r| r.method == "sendMessage")
            .count()
            > n
    })
    .await;
    api.to_chat(&GROUP.to_string())
        .iter()
        .filter(|r| r.method == "sendMessage")
        .nth(n)
        .unwrap()
        .message_id
}

/// The callback data of the button labelled `label` on a message.
fn button(api: &BotApi, message: i64, label: &str) -> String {
    api.buttons_of(&GROUP.to_string(), message)
        .into_iter()
        .find(|(text, _)| text == label)
        .unwrap_or_else(|| {
            panic!(
                "no `{label}` button: {:?}",
                api.buttons_of(&GROUP.to_string(), message)
            )
        })
        .1
}

/// Presses a button and waits for the bot's answer to it; the answer's text.
async fn press(api: &BotApi, message: i64, user: (i64, &str), data: &str) -> String {
    let id = api.press(GROUP, message, user, data);
    until(api, "the answer to a press", |api| {
        api.answers().iter().any(|a| a.callback_query_id == id)
    })
    .await;
    api.answers()
        .into_iter()
        .find(|a| a.callback_query_id == id)
        .and_then(|a| a.text)
        .unwrap_or_default()
}

/// Writes a command and waits for the bot's reply in `chat`; the reply's text.
async fn say(api: &BotApi, chat: i64, user: (i64, &str), text: &str) -> String {
    let before = api.to_chat(&chat.to_string()).len();
    api.say(chat, user, text);
    until(api, "the reply to a command", |api| {
        api.to_chat(&chat.to_string()).len() > before
    })
    .await;
    api.to_chat(&chat.to_string())[before].text.clone()
}

async fn silences(atalaya: &Atalaya) -> Vec<Value> {
    atalaya
        .get_json("/api/v2/silences")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn active(silences: &[Value]) -> Vec<&Value> {
    silences
        .iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect()
}

/// Waits until the bot polls, and has registered its commands in both languages.
async fn until_polling(api: &BotApi) {
    until(api, "the bot to poll and register its commands", |api| {
        !api.polls().is_empty() && api.commands().len() == 2
    })
    .await;
}

#[tokio::test]
async fn a_press_silences_for_whoever_may_and_for_no_one_else() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &api, "");
    let atalaya = Atalaya::start_in(dir, opts).await;
    until_polling(&api).await;
    let poll = &api.polls()[0];
    assert_eq!(poll.timeout, Some(25));
    assert_eq!(
        poll.allowed_updates.as_deref(),
        Some(&["message".to_owned(), "callback_query".to_owned()][..])
    );
    let commands = api.commands();
    let english = commands.iter().find(|c| c.language_code.is_none()).unwrap();
    assert_eq!(
        english
            .commands
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>(),
        [
            "alerts",
            "silences",
            "silence",
            "unsilence",
            "status",
            "help"
        ]
    );

    post(&atalaya, freezer()).await;
    let message = nth_message(&api, 0).await;
    let labels: Vec<String> = api
        .buttons_of(&GROUP.to_string(), message)
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    assert_eq!(labels, ["🔕 1h", "🔕 8h", "🔕 until resolved"]);
    let eight_hours = button(&api, message, "🔕 8h");
    assert_eq!(eight_hours.len(), 32, "only a token: {eight_hours}");

    // A stranger, a reader, forged data: nothing happens.
    assert_eq!(
        press(&api, message, STRANGER, &eight_hours).await,
        "Not allowed"
    );
    assert_eq!(press(&api, message, LEO, &eight_hours).await, "Not allowed");
    let forged = press(&api, message, ANA, "alertname=\"FreezerWarm\"").await;
    assert!(forged.starts_with("Expired"), "{forged}");
    assert!(active(&silences(&atalaya).await).is_empty());

    // Ana silences it for 8 hours.
    assert_eq!(
        press(&api, message, ANA, &eight_hours).await,
        "Silenced for 8h"
    );
    let all = silences(&atalaya).await;
    let made = active(&all);
    assert_eq!(made.len(), 1, "{all:?}");
    let silence = made[0];
    assert_eq!(silence["createdBy"], "Ana (Telegram 111)");
    assert_eq!(silence["comment"], "from Telegram");
    let mut matchers: Vec<String> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["isEqual"], true);
            assert_eq!(m["isRegex"], false);
            format!(
                "{}={}",
                m["name"].as_str().unwrap(),
                m["value"].as_str().unwrap()
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        ["alertname=FreezerWarm", "room=kitchen", "severity=critical"]
    );
    let ends: jiff::Timestamp = silence["endsAt"].as_str().unwrap().parse().unwrap();
    let left = ends.duration_since(jiff::Timestamp::now());
    assert!(
        left > jiff::SignedDuration::from_mins(479) && left <= jiff::SignedDuration::from_hours(8),
        "{left:?}"
    );
    let group = GROUP.to_string();
    let text = api.text_of(&group, message).unwrap();
    assert!(text.contains("🔕 Silenced 8h by Ana, until "), "{text}");
    assert!(text.starts_with("🔴 <b>Freezer at -2 °C</b>"), "{text}");
    let labels: Vec<String> = api
        .buttons_of(&group, message)
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    assert_eq!(labels, ["🔔 Unsilence"]);

    // And lifts it.
    let unsilence = button(&api, message, "🔔 Unsilence");
    assert_eq!(press(&api, message, ANA, &unsilence).await, "Unsilenced");
    assert!(active(&silences(&atalaya).await).is_empty());
    let text = api.text_of(&group, message).unwrap();
    assert!(text.ends_with("🔔 Unsilenced by Ana"), "{text}");
    assert_eq!(api.buttons_of(&group, message).len(), 3);

    let metrics = atalaya
        .wait_for_metric(
            "atalaya_telegram_updates_total",
            r#"{kind="button",outcome="done"}"#,
            |done| done == 2.0,
        )
        .await;
    assert!(
        metrics.contains(r#"atalaya_telegram_updates_total{kind="button",outcome="denied"} 2"#)
    );
    assert!(
        metrics.contains(r#"atalaya_telegram_updates_total{kind="button",outcome="expired"} 1"#)
    );
    atalaya
        .wait_for_logs(&["pressed a button; nothing was done", "\"user\":333"], 1)
        .await;
    assert!(!atalaya.logs().contains("FAKE-token"));
    assert!(!metrics.contains("FAKE-token"));
}

/// A button of resolved alerts, or older than `button_max_age`, answers "expired".
#[tokio::test]
async fn buttons_of_resolved_alerts_or_too_old_do_nothing() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let second = format!(
        "      - bot_token_file: bot-token\n        chat_id: -100300\n        api_url: {}\n        allowed_users: [{{id: 111, role: silence}}]\n        button_max_age: 1ms\n",
        api.url()
    );
    let opts = options(dir.path(), &api, &second);
    let atalaya = Atalaya::start_in(dir, opts).await;
    until_polling(&api).await;
    post(&atalaya, freezer()).await;
    let message = nth_message(&api, 0).await;
    // The second integration's copy, whose buttons are older than a millisecond at once.
    until(&api, "the second chat's message", |api| {
        !api.to_chat("-100300").is_empty()
    })
    .await;
    let old = api.to_chat("-100300")[0].message_id;
    let data = api.buttons_of("-100300", old).into_iter().next().unwrap().1;
    let id = api.press(-100_300, old, ANA, &data);
    until(&api, "the answer", |api| {
        api.answers().iter().any(|a| a.callback_query_id == id)
    })
    .await;
    let answer = api
        .answers()
        .into_iter()
        .find(|a| a.callback_query_id == id)
        .unwrap();
    assert!(answer.text.unwrap().starts_with("Expired"));

    // Resolved: the edit drops the buttons; an old client pressing one gets "expired".
    let one_hour = button(&api, message, "🔕 1h");
    let mut resolved = freezer();
    resolved[0]["endsAt"] = json!(jiff::Timestamp::now().to_string());
    post(&atalaya, resolved).await;
    until(&api, "the resolve edit", |api| {
        api.text_of(&GROUP.to_string(), message)
            .is_some_and(|t| t.starts_with("✅"))
    })
    .await;
    assert!(api.buttons_of(&GROUP.to_string(), message).is_empty());
    let answer = press(&api, message, ANA, &one_hour).await;
    assert!(answer.starts_with("Expired"), "{answer}");
    assert!(active(&silences(&atalaya).await).is_empty());
}

#[tokio::test]
async fn commands_answer_in_the_chat_for_whoever_may() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &api, "");
    let atalaya = Atalaya::start_in(dir, opts).await;
    until_polling(&api).await;

    let help = say(&api, GROUP, ANA, "/help@atalaya_bot").await;
    assert!(
        help.contains("Your Telegram id is <code>111</code> (role: silence)"),
        "{help}"
    );
    assert!(
        help.contains("/silence — Silence: /silence &lt;matchers&gt;"),
        "{help}"
    );

    let reply = say(
        &api,
        GROUP,
        ANA,
        "/silence alertname=NodeLost node=~\"pi-.*\" 2h kernel update",
    )
    .await;
    assert!(
        reply
            .starts_with("🔕 Silenced <code>alertname=&quot;NodeLost&quot;, node=~&quot;pi-.*&quot;</code> until "),
        "{reply}"
    );
    let all = silences(&atalaya).await;
    let made = active(&all);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["comment"], "kernel update");
    assert_eq!(made[0]["createdBy"], "Ana (Telegram 111)");
    let id = made[0]["id"].as_str().unwrap().to_owned();

    let list = say(&api, GROUP, LEO, "/silences").await;
    assert!(
        list.contains(&format!("<code>{}</code>", &id[..8])),
        "{list}"
    );
    assert!(
        list.contains("by Ana (Telegram 111): <i>kernel update</i>"),
        "{list}"
    );

    // Leo reads, but may not silence; a stranger may do nothing; bad input is told.
    assert_eq!(say(&api, GROUP, LEO, "/unsilence x").await, "Not allowed");
    assert_eq!(say(&api, GROUP, STRANGER, "/silences").await, "Not allowed");
    let private = say(&api, STRANGER.0, STRANGER, "/start").await;
    assert!(
        private.contains("Your Telegram id is <code>333</code>"),
        "{private}"
    );
    let bad = say(&api, GROUP, ANA, "/silence alertname=~\"(\" 2h").await;
    assert!(
        bad.starts_with(
            "⚠️ That did not work: alertname=~&quot;(&quot;: invalid regular expression"
        ),
        "{bad}"
    );
    let usage = say(&api, GROUP, ANA, "/silence 2h").await;
    assert!(usage.starts_with("Usage: /silence"), "{usage}");
    let all_of_them = say(&api, GROUP, ANA, "/silence alertname=~\".+\" 2h").await;
    assert!(all_of_them.contains("mute every alert"), "{all_of_them}");
    assert_eq!(
        say(&api, GROUP, ANA, "/reboot").await,
        "Unknown command. /help lists what the bot does."
    );
    assert_eq!(active(&silences(&atalaya).await).len(), 1);

    let ended = say(&api, GROUP, ANA, &format!("/unsilence {}", &id[..8])).await;
    assert_eq!(
        ended,
        format!("🔔 Silence <code>{}</code> ended.", &id[..8])
    );
    assert!(active(&silences(&atalaya).await).is_empty());

    post(&atalaya, freezer()).await;
    until(&api, "the freezer's notification", |api| {
        api.to_chat(&GROUP.to_string())
            .iter()
            .any(|r| r.text.starts_with("🔴 <b>Freezer"))
    })
    .await;
    let before = api.to_chat(&GROUP.to_string()).len();
    api.say(GROUP, LEO, "/alerts");
    until(&api, "the /alerts answer", |api| {
        api.to_chat(&GROUP.to_string()).len() > before
    })
    .await;
    let answer = &api.to_chat(&GROUP.to_string())[before];
    assert!(
        answer
            .text
            .starts_with("🔴 <b>FreezerWarm</b>\n• Freezer at -2 °C — for "),
        "{}",
        answer.text
    );
    assert!(answer.reply_markup.is_none(), "a reader gets no buttons");

    let status = say(&api, GROUP, LEO, "/status").await;
    assert!(status.starts_with("<b>atalaya "), "{status}");
    assert!(status.contains("rules loaded"), "{status}");
    assert!(status.contains("notifications waiting"), "{status}");
    assert!(!status.contains("reload was refused"), "{status}");

    // A broken rule file: the reload is refused, and /status says why until one works.
    let rules = support::rules_dir(atalaya.dir.path());
    std::fs::write(
        rules.join("broken.yaml"),
        "rules:\n  - name: x\n    condition: \"value >\"\n",
    )
    .unwrap();
    let response = reqwest::Client::new()
        .post(atalaya.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert!(!response.status().is_success());
    let status = say(&api, GROUP, LEO, "/status").await;
    assert!(
        status.contains("⚠️ The last reload was refused: ") && status.contains("broken.yaml:2:5"),
        "{status}"
    );
}

/// The update offset is kept: a press handled before a restart is not handled again, and
/// one made while atalaya was down is handled once after it. Another poller of the same bot
/// (409 Conflict) is waited out, and notifications go on meanwhile.
#[tokio::test]
async fn restarts_lose_and_repeat_nothing_and_a_conflict_is_waited_out() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &api, "");
    let mut atalaya = Atalaya::start_in(dir, opts).await;
    until_polling(&api).await;
    post(&atalaya, freezer()).await;
    let message = nth_message(&api, 0).await;
    let one_hour = button(&api, message, "🔕 1h");
    assert_eq!(
        press(&api, message, ANA, &one_hour).await,
        "Silenced for 1h"
    );
    atalaya.signal(Signal::SIGTERM);
    atalaya.wait().await;

    // Pressed while atalaya is down.
    let unsilence = button(&api, message, "🔔 Unsilence");
    let while_down = api.press(GROUP, message, ANA, &unsilence);
    let dir = atalaya.dir;
    let opts = options(dir.path(), &api, "");
    let atalaya = Atalaya::start_in(dir, opts).await;
    until(&api, "the press made while down to be answered", |api| {
        api.answers()
            .iter()
            .any(|a| a.callback_query_id == while_down)
    })
    .await;
    until(&api, "every update confirmed", |api| {
        api.pending_updates() == 0
    })
    .await;
    let answers = api.answers();
    assert_eq!(answers.len(), 2, "each press answered once: {answers:?}");
    assert!(active(&silences(&atalaya).await).is_empty());

    // Someone else polls the same bot for a while.
    api.conflict(2);
    atalaya
        .wait_for_metric(
            "atalaya_telegram_poll_errors_total",
            r#"{reason="conflict"}"#,
            |n| n >= 1.0,
        )
        .await;
    post(
        &atalaya,
        json!([{"labels": {"alertname": "DoorOpen", "severity": "warning"}}]),
    )
    .await;
    let door = nth_message(&api, 1).await;
    let silence = button(&api, door, "🔕 1h");
    assert_eq!(press(&api, door, ANA, &silence).await, "Silenced for 1h");
    atalaya
        .wait_for_logs(&["409 Conflict: another program"], 1)
        .await;

    // The Bot API goes away and comes back: polling resumes by itself.
    api.stop().await;
    atalaya
        .wait_for_metric(
            "atalaya_telegram_poll_errors_total",
            r#"{reason="network"}"#,
            |n| n >= 1.0,
        )
        .await;
    api.restart().await;
    let unsilence = button(&api, door, "🔔 Unsilence");
    assert_eq!(press(&api, door, ANA, &unsilence).await, "Unsilenced");

    // A group the bot does not serve gets no answer; it is counted.
    api.say(-999, ANA, "/silences");
    atalaya
        .wait_for_metric(
            "atalaya_telegram_updates_total",
            r#"{kind="command",outcome="unknown_chat"}"#,
            |n| n == 1.0,
        )
        .await;
    assert!(api.to_chat("-999").is_empty());
}

/// A receiver in Spanish: its buttons, answers and notes are in Spanish.
#[tokio::test]
async fn a_spanish_receiver_gets_spanish_buttons_and_answers() {
    let api = BotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &api, "");
    let policy = std::fs::read_to_string(dir.path().join("routing.yaml"))
        .unwrap()
        .replace(
            "        allowed_users:",
            "        locale: es\n        allowed_users:",
        );
    std::fs::write(dir.path().join("routing.yaml"), policy).unwrap();
    let atalaya = Atalaya::start_in(dir, opts).await;
    until_polling(&api).await;
    let spanish = api
        .commands()
        .into_iter()
        .find(|c| c.language_code.as_deref() == Some("es"))
        .unwrap();
    assert_eq!(
        spanish.commands[0],
        (
            "alerts".to_owned(),
            "Alertas activas, con botones para silenciarlas".to_owned()
        )
    );
    post(&atalaya, freezer()).await;
    let message = nth_message(&api, 0).await;
    let labels: Vec<String> = api
        .buttons_of(&GROUP.to_string(), message)
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    assert_eq!(labels, ["🔕 1 h", "🔕 8 h", "🔕 hasta que se resuelva"]);
    assert_eq!(
        press(&api, message, STRANGER, &button(&api, message, "🔕 8 h")).await,
        "No permitido"
    );
    let eight = button(&api, message, "🔕 8 h");
    assert_eq!(press(&api, message, ANA, &eight).await, "Silenciada 8 h");
    let text = api.text_of(&GROUP.to_string(), message).unwrap();
    assert!(
        text.contains("🔕 Silenciada 8 h por Ana, hasta las "),
        "{text}"
    );
    let acknowledge = button(&api, message, "🔔 Quitar silencio");
    assert_eq!(
        press(&api, message, ANA, &acknowledge).await,
        "Silencio quitado"
    );
    let help = say(&api, GROUP, LEO, "/help").await;
    assert!(
        help.contains("Tu id de Telegram es <code>222</code> (rol: lectura)"),
        "{help}"
    );
}
