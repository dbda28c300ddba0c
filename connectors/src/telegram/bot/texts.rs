//! What the bot says, in the receiver's language (English or Spanish). Values that come
//! from alerts, silences or users are HTML-escaped here.

use std::time::Duration;

use jiff::Timestamp;

use super::super::buttons::Action;
use super::ops::{ChatAlert, ChatSilence, ChatStatus};
use crate::templates::{Locale, duration_text, escape_html};

/// The commands, as `setMyCommands` registers them and `/help` lists them.
pub fn commands(locale: Locale) -> [(&'static str, &'static str); 6] {
    match locale {
        Locale::En => [
            ("alerts", "Firing alerts, with buttons to silence them"),
            ("silences", "Active and pending silences"),
            (
                "silence",
                "Silence: /silence <matchers> <duration> [comment]",
            ),
            ("unsilence", "End a silence: /unsilence <id>"),
            ("status", "Connections, rules, deliveries waiting"),
            ("help", "What the bot does, and your Telegram id"),
        ],
        Locale::Es => [
            ("alerts", "Alertas activas, con botones para silenciarlas"),
            ("silences", "Silencios activos y pendientes"),
            (
                "silence",
                "Silenciar: /silence <etiquetas> <duración> [comentario]",
            ),
            ("unsilence", "Quitar un silencio: /unsilence <id>"),
            ("status", "Conexiones, reglas, envíos pendientes"),
            ("help", "Qué hace el bot, y tu id de Telegram"),
        ],
    }
}

/// A button's label.
pub fn button(action: Action, locale: Locale) -> &'static str {
    match (action, locale) {
        (Action::Silence1h, Locale::En) => "🔕 1h",
        (Action::Silence1h, Locale::Es) => "🔕 1 h",
        (Action::Silence8h, Locale::En) => "🔕 8h",
        (Action::Silence8h, Locale::Es) => "🔕 8 h",
        (Action::Acknowledge, Locale::En) => "🔕 until resolved",
        (Action::Acknowledge, Locale::Es) => "🔕 hasta que se resuelva",
        (Action::Unsilence, Locale::En) => "🔔 Unsilence",
        (Action::Unsilence, Locale::Es) => "🔔 Quitar silencio",
    }
}

/// `HH:MM UTC`, or with the date when it is not today.
fn at(time: Timestamp, now: Timestamp) -> String {
    let same_day = time.strftime("%Y-%m-%d").to_string() == now.strftime("%Y-%m-%d").to_string();
    if same_day {
        time.strftime("%H:%M UTC").to_string()
    } else {
        time.strftime("%Y-%m-%d %H:%M UTC").to_string()
    }
}

fn span(duration: Duration, locale: Locale) -> String {
    duration_text(
        jiff::SignedDuration::try_from(duration).unwrap_or_default(),
        locale,
    )
}

/// The line added under a message after a button did its work (HTML).
pub fn note(
    action: Action,
    who: &str,
    until: Option<Timestamp>,
    now: Timestamp,
    locale: Locale,
) -> String {
    let who = escape_html(who);
    match (action, locale) {
        (Action::Unsilence, Locale::En) => format!("🔔 Unsilenced by {who}"),
        (Action::Unsilence, Locale::Es) => format!("🔔 {who} quitó el silencio"),
        (Action::Acknowledge, Locale::En) => {
            format!("🔕 Acknowledged by {who}: silenced until it resolves")
        }
        (Action::Acknowledge, Locale::Es) => {
            format!("🔕 {who} se encarga: silenciada hasta que se resuelva")
        }
        (silence, locale) => {
            let length = span(silence.duration().unwrap_or_default(), locale);
            let until = until.map(|u| at(u, now)).unwrap_or_default();
            match locale {
                Locale::En => format!("🔕 Silenced {length} by {who}, until {until}"),
                Locale::Es => format!("🔕 Silenciada {length} por {who}, hasta las {until}"),
            }
        }
    }
}

/// The short answer to a button press (a toast).
pub fn toast(action: Action, locale: Locale) -> String {
    match (action, locale) {
        (Action::Unsilence, Locale::En) => "Unsilenced".to_owned(),
        (Action::Unsilence, Locale::Es) => "Silencio quitado".to_owned(),
        (Action::Acknowledge, Locale::En) => "Silenced until it resolves".to_owned(),
        (Action::Acknowledge, Locale::Es) => "Silenciada hasta que se resuelva".to_owned(),
        (silence, locale) => {
            let length = span(silence.duration().unwrap_or_default(), locale);
            match locale {
                Locale::En => format!("Silenced for {length}"),
                Locale::Es => format!("Silenciada {length}"),
            }
        }
    }
}

pub fn expired(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "Expired: these alerts have resolved, or the button is too old",
        Locale::Es => "Caducado: estas alertas ya se resolvieron, o el botón es antiguo",
    }
}

pub fn not_allowed(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "Not allowed",
        Locale::Es => "No permitido",
    }
}

/// The answer to a private message from someone the bot does not know.
pub fn stranger(user: u64, locale: Locale) -> String {
    match locale {
        Locale::En => format!(
            "Not allowed. Your Telegram id is <code>{user}</code>: to be let in, ask whoever runs atalaya to add it to <code>allowed_users</code>."
        ),
        Locale::Es => format!(
            "No permitido. Tu id de Telegram es <code>{user}</code>: para entrar, pide a quien administra atalaya que lo añada a <code>allowed_users</code>."
        ),
    }
}

pub fn failed(error: &str, locale: Locale) -> String {
    let error = escape_html(error);
    match locale {
        Locale::En => format!("⚠️ That did not work: {error}"),
        Locale::Es => format!("⚠️ No se pudo: {error}"),
    }
}

pub fn unknown_command(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "Unknown command. /help lists what the bot does.",
        Locale::Es => "Orden desconocida. /help muestra lo que hace el bot.",
    }
}

pub fn help(user: u64, role: &str, locale: Locale) -> String {
    let mut text = match locale {
        Locale::En => "<b>atalaya</b> tells this chat about alerts. Commands:\n".to_owned(),
        Locale::Es => "<b>atalaya</b> avisa en este chat de las alertas. Órdenes:\n".to_owned(),
    };
    for (command, description) in commands(locale) {
        text.push_str(&format!("/{command} — {}\n", escape_html(description)));
    }
    text.push_str(&match locale {
        Locale::En => format!(
            "\nExamples: <code>/silence alertname=node_lost node=pi-1 2h kernel update</code>, <code>/unsilence 3f2a9c1e</code>.\nYour Telegram id is <code>{user}</code> (role: {role})."
        ),
        Locale::Es => format!(
            "\nEjemplos: <code>/silence alertname=node_lost node=pi-1 2h actualizar el kernel</code>, <code>/unsilence 3f2a9c1e</code>.\nTu id de Telegram es <code>{user}</code> (rol: {role})."
        ),
    });
    text
}

pub fn role_name(silence: bool, locale: Locale) -> &'static str {
    match (silence, locale) {
        (true, Locale::En) => "silence",
        (true, Locale::Es) => "silenciar",
        (false, Locale::En) => "read",
        (false, Locale::Es) => "lectura",
    }
}

pub fn no_alerts(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "✅ Nothing is firing.",
        Locale::Es => "✅ No hay ninguna alerta activa.",
    }
}

/// One group of `/alerts`: the alerts with one name.
pub fn alert_group(name: &str, alerts: &[&ChatAlert], now: Timestamp, locale: Locale) -> String {
    let mut text = format!("🔴 <b>{}</b>", escape_html(name));
    if alerts.len() > 1 {
        text.push_str(&format!(" ({})", alerts.len()));
    }
    for alert in alerts {
        let since = duration_text(now.duration_since(alert.starts_at), locale);
        let state = if !alert.silenced_by.is_empty() {
            match locale {
                Locale::En => " · 🔕 silenced",
                Locale::Es => " · 🔕 silenciada",
            }
        } else if alert.inhibited {
            match locale {
                Locale::En => " · inhibited",
                Locale::Es => " · inhibida",
            }
        } else {
            ""
        };
        let for_ = match locale {
            Locale::En => "for",
            Locale::Es => "desde hace",
        };
        text.push_str(&format!(
            "\n• {} — {for_} {since}{state}",
            escape_html(&alert.summary)
        ));
    }
    text
}

pub fn more_groups(count: usize, locale: Locale) -> String {
    match locale {
        Locale::En => format!("… and {count} more alert names: see the web page or amtool."),
        Locale::Es => format!("… y {count} nombres de alerta más: mira la página web o amtool."),
    }
}

pub fn silences(silences: &[ChatSilence], now: Timestamp, locale: Locale) -> String {
    if silences.is_empty() {
        return match locale {
            Locale::En => "No silences.".to_owned(),
            Locale::Es => "No hay silencios.".to_owned(),
        };
    }
    let mut text = match locale {
        Locale::En => "<b>Silences</b>".to_owned(),
        Locale::Es => "<b>Silencios</b>".to_owned(),
    };
    for s in silences {
        let short: String = s.id.chars().take(8).collect();
        let when = if s.starts_at > now {
            match locale {
                Locale::En => format!("from {} to {}", at(s.starts_at, now), at(s.ends_at, now)),
                Locale::Es => format!("de {} a {}", at(s.starts_at, now), at(s.ends_at, now)),
            }
        } else {
            match locale {
                Locale::En => format!("until {}", at(s.ends_at, now)),
                Locale::Es => format!("hasta las {}", at(s.ends_at, now)),
            }
        };
        let by = match locale {
            Locale::En => "by",
            Locale::Es => "por",
        };
        text.push_str(&format!(
            "\n\n🔕 <code>{short}</code> {}\n{when}, {by} {}",
            escape_html(&s.matchers),
            escape_html(&s.created_by)
        ));
        if !s.comment.is_empty() {
            text.push_str(&format!(": <i>{}</i>", escape_html(&s.comment)));
        }
    }
    text
}

pub fn silenced(silence: &ChatSilence, now: Timestamp, locale: Locale) -> String {
    let short: String = silence.id.chars().take(8).collect();
    let until = at(silence.ends_at, now);
    let matchers = escape_html(&silence.matchers);
    match locale {
        Locale::En => {
            format!("🔕 Silenced <code>{matchers}</code> until {until} (id <code>{short}</code>).")
        }
        Locale::Es => format!(
            "🔕 Silenciado <code>{matchers}</code> hasta las {until} (id <code>{short}</code>)."
        ),
    }
}

pub fn unsilenced(id: &str, locale: Locale) -> String {
    let short: String = id.chars().take(8).collect();
    match locale {
        Locale::En => format!("🔔 Silence <code>{short}</code> ended."),
        Locale::Es => format!("🔔 Silencio <code>{short}</code> terminado."),
    }
}

pub fn silence_usage(locale: Locale) -> &'static str {
    match locale {
        Locale::En => {
            "Usage: /silence &lt;matchers&gt; &lt;duration&gt; [comment], for example <code>/silence alertname=node_lost node=pi-1 2h kernel update</code>"
        }
        Locale::Es => {
            "Uso: /silence &lt;etiquetas&gt; &lt;duración&gt; [comentario], por ejemplo <code>/silence alertname=node_lost node=pi-1 2h actualizar el kernel</code>"
        }
    }
}

pub fn unsilence_usage(locale: Locale) -> &'static str {
    match locale {
        Locale::En => {
            "Usage: /unsilence &lt;id&gt; (the first 8 characters are enough; /silences lists them)"
        }
        Locale::Es => {
            "Uso: /unsilence &lt;id&gt; (bastan los 8 primeros caracteres; /silences los muestra)"
        }
    }
}

pub fn no_such_silence(id: &str, locale: Locale) -> String {
    let id = escape_html(id);
    match locale {
        Locale::En => {
            format!("No active or pending silence has an id starting with <code>{id}</code>.")
        }
        Locale::Es => format!(
            "Ningún silencio activo o pendiente tiene un id que empiece por <code>{id}</code>."
        ),
    }
}

pub fn ambiguous_silence(id: &str, locale: Locale) -> String {
    let id = escape_html(id);
    match locale {
        Locale::En => {
            format!("Several silences start with <code>{id}</code>: give more of the id.")
        }
        Locale::Es => {
            format!("Varios silencios empiezan por <code>{id}</code>: da más caracteres del id.")
        }
    }
}

pub fn status(status: &ChatStatus, locale: Locale) -> String {
    let uptime = span(status.uptime, locale);
    let mut text = match locale {
        Locale::En => format!(
            "<b>atalaya {}</b>, up {uptime}",
            escape_html(&status.version)
        ),
        Locale::Es => format!(
            "<b>atalaya {}</b>, en marcha desde hace {uptime}",
            escape_html(&status.version)
        ),
    };
    for (name, connected) in &status.connectors {
        let state = match (connected, locale) {
            (true, Locale::En) => "connected",
            (true, Locale::Es) => "conectado",
            (false, Locale::En) => "NOT connected",
            (false, Locale::Es) => "SIN conexión",
        };
        let mark = if *connected { "🟢" } else { "🔴" };
        text.push_str(&format!("\n{mark} {}: {state}", escape_html(name)));
    }
    text.push_str(&match locale {
        Locale::En => format!(
            "\n📜 {} rules loaded\n📬 {} notifications waiting",
            status.rules_loaded, status.outbox_depth
        ),
        Locale::Es => format!(
            "\n📜 {} reglas cargadas\n📬 {} avisos por enviar",
            status.rules_loaded, status.outbox_depth
        ),
    });
    if let Some(error) = &status.reload_error {
        text.push_str(&match locale {
            Locale::En => format!("\n⚠️ The last reload was refused: {}", escape_html(error)),
            Locale::Es => format!("\n⚠️ La última recarga se rechazó: {}", escape_html(error)),
        });
    }
    text
}
