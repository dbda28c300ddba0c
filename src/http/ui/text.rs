//! What the web page says, in English or Spanish (from `Accept-Language`). Where the page
//! says what a notification or the Telegram bot says (the silence buttons, "silenced",
//! "for 5m"), it uses the same words; a test checks them against the Telegram texts.

use atalaya_bus::delivery::locale::{Locale, duration_text};
use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;
use jiff::SignedDuration;

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Es,
}

impl Lang {
    /// The best of English and Spanish for an `Accept-Language` header (by `q`, then order);
    /// English when it names neither.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let Some(header) = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
            return Self::En;
        };
        let mut best: Option<(f32, Self)> = None;
        for item in header.split(',').take(16) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let lang = match primary {
                "en" => Self::En,
                "es" => Self::Es,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Self::En, |(_, lang)| lang)
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    /// A duration for people, at most two units, as the notifications write it: `2h 5m`
    /// (English) or `2 h 5 min` (Spanish).
    pub fn duration(self, duration: SignedDuration) -> String {
        duration_text(duration, self.locale())
    }

    fn locale(self) -> Locale {
        match self {
            Self::En => Locale::En,
            Self::Es => Locale::Es,
        }
    }

    pub fn t(self, text: Text) -> &'static str {
        let (en, es) = text.both();
        match self {
            Self::En => en,
            Self::Es => es,
        }
    }
}

/// Everything the page says that is not data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Alerts,
    Silences,
    Rules,
    Deliveries,
    Status,
    History,
    SkipToContent,
    MainMenu,
    LogIn,
    LogOut,
    LoggedInAs,
    ReadOnly,
    Name,
    Token,
    WrongToken,
    LoginNeeded,
    Firing,
    Pending,
    Silenced,
    Inhibited,
    Resolved,
    NothingFiring,
    For,
    Since,
    Receivers,
    Silence1h,
    Silence8h,
    SilenceUntilResolved,
    Filter,
    GroupBy,
    RouteGroups,
    Apply,
    PageOf,
    Previous,
    Next,
    FiresAt,
    Active,
    Expired,
    NoSilences,
    NewSilence,
    EditSilence,
    Matchers,
    MatchersHelp,
    Duration,
    Comment,
    CreatedBy,
    Save,
    Expire,
    Edit,
    Ends,
    Starts,
    MatchesAlerts,
    BadMatchers,
    Refused,
    NoHistory,
    Origin,
    Series,
    LastValue,
    LastSeen,
    EvalError,
    LastReload,
    ReloadError,
    RulesCommit,
    Unknown,
    NoRules,
    Inactive,
    Queued,
    Lane,
    NothingQueued,
    RecentNotifications,
    NoNotifications,
    DeadLetters,
    NoDeadLetters,
    Retry,
    Drop,
    Reason,
    Version,
    Uptime,
    Connectors,
    Connected,
    Disconnected,
    NoConnectors,
    Components,
    Ready,
    NotReady,
    StoreSize,
    Value,
    Truncated,
    CsrfRefused,
    NotFound,
    Unavailable,
    Inhibits,
}

impl Text {
    /// English, Spanish.
    fn both(self) -> (&'static str, &'static str) {
        match self {
            Self::Alerts => ("Alerts", "Alertas"),
            Self::Silences => ("Silences", "Silencios"),
            Self::Rules => ("Rules", "Reglas"),
            Self::Deliveries => ("Deliveries", "Envíos"),
            Self::Status => ("Status", "Estado"),
            Self::History => ("History", "Historial"),
            Self::SkipToContent => ("Skip to content", "Saltar al contenido"),
            Self::MainMenu => ("Main menu", "Menú principal"),
            Self::LogIn => ("Log in", "Entrar"),
            Self::LogOut => ("Log out", "Salir"),
            Self::LoggedInAs => ("Logged in as", "Conectado como"),
            Self::ReadOnly => ("read only", "solo lectura"),
            Self::Name => ("Your name", "Tu nombre"),
            Self::Token => ("API token", "Token de la API"),
            Self::WrongToken => ("Wrong token.", "Token incorrecto."),
            Self::LoginNeeded => (
                "Log in with the API token to see this page.",
                "Entra con el token de la API para ver esta página.",
            ),
            Self::Firing => ("firing", "activa"),
            Self::Pending => ("pending", "pendiente"),
            Self::Silenced => ("🔕 silenced", "🔕 silenciada"),
            Self::Inhibited => ("inhibited", "inhibida"),
            Self::Resolved => ("resolved", "resuelta"),
            Self::NothingFiring => ("✅ Nothing is firing.", "✅ No hay ninguna alerta activa."),
            Self::For => ("for", "desde hace"),
            Self::Since => ("since", "desde"),
            Self::Receivers => ("Sent to", "Enviada a"),
            Self::Silence1h => ("🔕 1h", "🔕 1 h"),
            Self::Silence8h => ("🔕 8h", "🔕 8 h"),
            Self::SilenceUntilResolved => ("🔕 until resolved", "🔕 hasta que se resuelva"),
            Self::Filter => ("Filter (matchers)", "Filtro (etiquetas)"),
            Self::GroupBy => ("Group by", "Agrupar por"),
            Self::RouteGroups => ("route groups", "grupos de la ruta"),
            Self::Apply => ("Apply", "Aplicar"),
            Self::PageOf => ("Page", "Página"),
            Self::Previous => ("Previous", "Anterior"),
            Self::Next => ("Next", "Siguiente"),
            Self::FiresAt => ("fires at", "se activa a las"),
            Self::Active => ("active", "activo"),
            Self::Expired => ("expired", "caducado"),
            Self::NoSilences => ("No silences.", "No hay silencios."),
            Self::NewSilence => ("New silence", "Nuevo silencio"),
            Self::EditSilence => ("Edit silence", "Editar silencio"),
            Self::Matchers => ("Matchers", "Etiquetas"),
            Self::MatchersHelp => (
                "For example: alertname=\"DoorOpen\", room=~\"kitchen|hall\"",
                "Por ejemplo: alertname=\"DoorOpen\", room=~\"kitchen|hall\"",
            ),
            Self::Duration => ("Duration", "Duración"),
            Self::Comment => ("Comment", "Comentario"),
            Self::CreatedBy => ("by", "por"),
            Self::Save => ("Save", "Guardar"),
            Self::Expire => ("Expire", "Quitar silencio"),
            Self::Edit => ("Edit", "Editar"),
            Self::Ends => ("ends", "termina"),
            Self::Starts => ("starts", "empieza"),
            Self::MatchesAlerts => ("Matches alerts now:", "Alertas que coinciden ahora:"),
            Self::BadMatchers => ("Not matchers:", "Etiquetas no válidas:"),
            Self::Refused => ("Refused:", "Rechazado:"),
            Self::NoHistory => (
                "No history for this alert (unknown, or pruned).",
                "No hay historial de esta alerta (desconocida, o ya borrada).",
            ),
            Self::Origin => ("Defined at", "Definida en"),
            Self::Series => ("Series", "Series"),
            Self::LastValue => ("last value", "último valor"),
            Self::LastSeen => ("last seen", "visto por última vez"),
            Self::EvalError => ("Evaluation error", "Error de evaluación"),
            Self::LastReload => ("Last reload", "Última recarga"),
            Self::ReloadError => ("Last reload refused", "Última recarga rechazada"),
            Self::RulesCommit => ("Rules commit", "Commit de las reglas"),
            Self::Unknown => ("unknown", "desconocido"),
            Self::NoRules => ("No rules are loaded.", "No hay reglas cargadas."),
            Self::Inactive => ("inactive", "inactiva"),
            Self::Queued => ("Queued", "En cola"),
            Self::Lane => ("Receiver · integration", "Receptor · integración"),
            Self::NothingQueued => ("Nothing waits to be sent.", "No hay nada esperando envío."),
            Self::RecentNotifications => ("Recent notifications", "Notificaciones recientes"),
            Self::NoNotifications => ("No notifications yet.", "Aún no hay notificaciones."),
            Self::DeadLetters => ("Dead letters", "Envíos abandonados"),
            Self::NoDeadLetters => ("No dead letters.", "No hay envíos abandonados."),
            Self::Retry => ("Retry", "Reintentar"),
            Self::Drop => ("Drop", "Descartar"),
            Self::Reason => ("Reason", "Motivo"),
            Self::Version => ("Version", "Versión"),
            Self::Uptime => ("Up for", "En marcha desde hace"),
            Self::Connectors => ("Connections", "Conexiones"),
            Self::Connected => ("connected", "conectada"),
            Self::Disconnected => ("disconnected", "desconectada"),
            Self::NoConnectors => ("No brokers configured.", "No hay brokers configurados."),
            Self::Components => ("Components", "Componentes"),
            Self::Ready => ("ready", "listo"),
            Self::NotReady => ("not ready", "no listo"),
            Self::StoreSize => ("State store", "Almacén de estado"),
            Self::Value => ("value", "valor"),
            Self::Truncated => ("(truncated)", "(recortado)"),
            Self::CsrfRefused => (
                "This form is stale or came from another site; reload the page and try again.",
                "Este formulario está caducado o vino de otro sitio; recarga la página y vuelve a intentarlo.",
            ),
            Self::NotFound => ("Not found.", "No encontrado."),
            Self::Unavailable => ("atalaya is shutting down.", "atalaya se está deteniendo."),
            Self::Inhibits => ("inhibited by", "inhibida por"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn lang(header: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_str(header).unwrap());
        Lang::from_headers(&headers)
    }

    #[test]
    fn accept_language_picks_the_best_of_english_and_spanish() {
        assert_eq!(lang("es-ES,es;q=0.9,en;q=0.8"), Lang::Es);
        assert_eq!(lang("en-GB,es;q=0.5"), Lang::En);
        assert_eq!(lang("fr-FR,es;q=0.7,en;q=0.3"), Lang::Es);
        assert_eq!(lang("de"), Lang::En);
        assert_eq!(lang("es;q=0,en"), Lang::En);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }

    #[cfg(feature = "telegram")]
    #[test]
    fn the_page_says_what_the_notifications_say() {
        use atalaya_connectors::telegram::bot::texts;
        use atalaya_connectors::telegram::buttons::Action;
        use atalaya_connectors::templates::{Locale, duration_text};
        for (lang, locale) in [(Lang::En, Locale::En), (Lang::Es, Locale::Es)] {
            for (text, action) in [
                (Text::Silence1h, Action::Silence1h),
                (Text::Silence8h, Action::Silence8h),
                (Text::SilenceUntilResolved, Action::Acknowledge),
            ] {
                assert_eq!(lang.t(text), texts::button(action, locale));
            }
            assert_eq!(lang.t(Text::NothingFiring), texts::no_alerts(locale));
            for secs in [0, 45, 300, 7500, 277_200] {
                let d = SignedDuration::from_secs(secs);
                assert_eq!(lang.duration(d), duration_text(d, locale));
            }
        }
    }
}
