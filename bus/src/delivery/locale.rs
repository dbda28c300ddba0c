//! The languages atalaya speaks to people in (notifications, the Telegram bot, the web page),
//! and what every one of them writes the same way.

use jiff::SignedDuration;

/// The language of built-in texts: notifications' templates, the bot's replies, the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    En,
    Es,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }
}

/// A duration for people, at most two units: `45s`, `5m`, `2h 5m`, `3d 4h` (English) or
/// `45 s`, `5 min`, `2 h 5 min`, `3 d 4 h` (Spanish).
pub fn duration_text(duration: SignedDuration, locale: Locale) -> String {
    let secs = duration.as_secs().max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let units: [(i64, &str, &str); 4] =
        [(d, "d", "d"), (h, "h", "h"), (m, "m", "min"), (s, "s", "s")];
    let first = units.iter().position(|(n, ..)| *n > 0).unwrap_or(3);
    units[first..]
        .iter()
        .take(2)
        .filter(|(n, ..)| *n > 0 || first == 3)
        .map(|(n, en, es)| match locale {
            Locale::En => format!("{n}{en}"),
            Locale::Es => format!("{n} {es}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well_in_both_languages() {
        let d = SignedDuration::from_secs;
        assert_eq!(duration_text(d(0), Locale::En), "0s");
        assert_eq!(duration_text(d(45), Locale::En), "45s");
        assert_eq!(duration_text(d(300), Locale::En), "5m");
        assert_eq!(duration_text(d(7500), Locale::En), "2h 5m");
        assert_eq!(duration_text(d(7205), Locale::En), "2h");
        assert_eq!(
            duration_text(d(3 * 86_400 + 4 * 3600 + 9), Locale::En),
            "3d 4h"
        );
        assert_eq!(duration_text(d(300), Locale::Es), "5 min");
        assert_eq!(duration_text(d(7500), Locale::Es), "2 h 5 min");
        assert_eq!(duration_text(d(-5), Locale::Es), "0 s");
    }
}
