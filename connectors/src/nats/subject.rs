//! atalaya subjects and patterns in NATS form.
//!
//! atalaya writes subjects with `/` between tokens; NATS writes them with `.`. A pattern
//! becomes a NATS subscription subject: `+` and `+name` become `*`, `#` and `>` become `>`.
//! Our `#` also matches zero tokens where NATS `>` needs one, so `home/#` is subscribed as
//! both `home.>` and `home` (see [`NatsFilter::zero_rest`]).

use atalaya_bus::{Pattern, Subject};

/// What NATS is asked for, for one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NatsFilter {
    /// The subscription subject: `sensors.*.temp`, `home.>`.
    pub subject: String,
    /// For a pattern ending in `#` after at least one token, the subject that `#` matching
    /// zero tokens stands for (`home` for `home/#`). Core subscriptions subscribe to it too; a
    /// JetStream consumer has one filter and does without it.
    pub zero_rest: Option<String>,
}

/// The NATS form of `pattern`, or why it has none.
pub(crate) fn pattern_to_nats(pattern: &Pattern) -> Result<NatsFilter, String> {
    let tokens: Vec<&str> = pattern.as_str().split('/').collect();
    let mut nats = Vec::with_capacity(tokens.len());
    for token in &tokens {
        let converted = match *token {
            "#" | ">" => ">",
            capture if capture.starts_with('+') => "*",
            literal => {
                check_token(literal)?;
                literal
            }
        };
        nats.push(converted);
    }
    let zero_rest = match tokens.split_last() {
        Some((&"#", head)) if !head.is_empty() => Some(nats[..head.len()].join(".")),
        _ => None,
    };
    Ok(NatsFilter {
        subject: nats.join("."),
        zero_rest,
    })
}

/// The NATS subject for a `/`-separated atalaya subject, or why it has none.
pub(crate) fn publish_subject(subject: &str) -> Result<String, String> {
    let parsed = Subject::parse(subject).map_err(|e| e.to_string())?;
    let mut nats = String::with_capacity(subject.len());
    for (i, token) in parsed.tokens().enumerate() {
        check_token(token)?;
        if i > 0 {
            nats.push('.');
        }
        nats.push_str(token);
    }
    Ok(nats)
}

/// A literal token must survive the trip to NATS unchanged: no `.` (the NATS separator),
/// no whitespace or control characters (the protocol's delimiters), and not a NATS wildcard.
fn check_token(token: &str) -> Result<(), String> {
    if token.contains('.') {
        return Err(format!(
            "token `{token}` contains `.`, which separates NATS subject tokens"
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "token {token:?} contains whitespace or a control character"
        ));
    }
    if matches!(token, "*" | ">") {
        return Err(format!("token `{token}` is a NATS wildcard"));
    }
    Ok(())
}

/// Checks a stream or consumer name: NATS names hold no `.`, `*`, `>`, path separators,
/// whitespace or control characters.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {kind} name is empty"));
    }
    if name
        .chars()
        .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "the {kind} name {name:?} may not contain `.`, `*`, `>`, `/`, `\\` or whitespace"
        ));
    }
    Ok(())
}

/// Checks a queue group name: not empty, no whitespace or control characters.
pub(crate) fn check_queue_group(group: &str) -> Result<(), String> {
    if group.is_empty() || group.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "queue group {group:?} must be non-empty, without whitespace"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(pattern: &str) -> Result<NatsFilter, String> {
        pattern_to_nats(&Pattern::parse(pattern).unwrap())
    }

    #[test]
    fn patterns_become_nats_subjects() {
        let filter = nats("sensors/+room/+/temp").unwrap();
        assert_eq!(filter.subject, "sensors.*.*.temp");
        assert_eq!(filter.zero_rest, None);
        assert_eq!(nats("jobs/>").unwrap().subject, "jobs.>");
        let hash = nats("home/kitchen/#").unwrap();
        assert_eq!(hash.subject, "home.kitchen.>");
        assert_eq!(hash.zero_rest.as_deref(), Some("home.kitchen"));
        assert_eq!(nats("#").unwrap().subject, ">");
        assert_eq!(nats("#").unwrap().zero_rest, None);
        assert!(nats("a.b/c").unwrap_err().contains("`.`"));
        assert!(nats("a b/c").is_err());
    }

    #[test]
    fn subjects_become_nats_subjects() {
        assert_eq!(publish_subject("home/notify").unwrap(), "home.notify");
        assert!(publish_subject("home/+x").is_err());
        assert!(publish_subject("home//x").is_err());
        assert!(publish_subject("home/a.b").is_err());
        assert!(publish_subject("home/a b").is_err());
        assert!(publish_subject("a/*").is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("stream", "EVENTS_1").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b"] {
            assert!(check_name("stream", bad).is_err(), "{bad:?}");
        }
        assert!(check_queue_group("atalaya").is_ok());
        assert!(check_queue_group("a b").is_err());
        assert!(check_queue_group("").is_err());
    }
}
