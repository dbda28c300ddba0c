//! `atalaya alerts` and `atalaya silence add|list|expire`: amtool's everyday commands,
//! against a running atalaya's HTTP API.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use atalaya_rules::routing::duration::parse_duration;
use atalaya_rules::routing::matcher::Matcher;
use atalaya_rules::routing::silence::SilenceMatcher;
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{ApiArgs, SilenceAddArgs, SilenceCommand, SilenceExpireArgs, SilenceListArgs};
use crate::commands::api_client::ApiClient;

/// `atalaya alerts`: one line per alert, firing first.
pub async fn alerts(args: ApiArgs) -> anyhow::Result<()> {
    let list = ApiClient::new(&args.url)
        .call(Method::GET, "/api/v1/alerts", None)
        .await?;
    print!("{}", render_alerts(&list, Timestamp::now()));
    Ok(())
}

fn render_alerts(list: &Value, now: Timestamp) -> String {
    let mut rows = vec![[
        "ALERTNAME".to_owned(),
        "STATE".to_owned(),
        "SINCE".to_owned(),
        "LABELS".to_owned(),
    ]];
    for alert in list.as_array().into_iter().flatten() {
        let labels = alert["labels"].as_object();
        let name = labels
            .and_then(|l| l.get("alertname"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let mut state = alert["status"]["state"].as_str().unwrap_or("?").to_owned();
        if let Some(by) = alert["status"]["silencedBy"]
            .as_array()
            .filter(|a| !a.is_empty())
        {
            let _ = write!(state, " (silenced by {})", join(by));
        }
        if let Some(by) = alert["status"]["inhibitedBy"]
            .as_array()
            .filter(|a| !a.is_empty())
        {
            let _ = write!(state, " (inhibited by {})", join(by));
        }
        let since = alert["startsAt"]
            .as_str()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map_or_else(
                || "?".to_owned(),
                |t| format!("{} ({} ago)", to_the_second(&t.to_string()), ago(now, t)),
            );
        let others: Vec<String> = labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        rows.push([name.to_owned(), state, since, others.join(" ")]);
    }
    table(&rows)
}

/// A timestamp without its fraction of a second; anything else as it is.
fn to_the_second(text: &str) -> String {
    text.parse::<Timestamp>()
        .ok()
        .and_then(|t| t.round(jiff::Unit::Second).ok())
        .map_or_else(|| text.to_owned(), |t| t.to_string())
}

fn join(values: &[Value]) -> String {
    values
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `5m`, `2h13m`, `3d4h`: how long ago, to the minute.
fn ago(now: Timestamp, then: Timestamp) -> String {
    let minutes = now.duration_since(then).as_secs().max(0) / 60;
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins}m"),
        (0, h) => format!("{h}h{mins}m"),
        (d, h) => format!("{d}d{h}h"),
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}

pub async fn silence(command: SilenceCommand) -> anyhow::Result<()> {
    match command {
        SilenceCommand::Add(args) => add(args).await,
        SilenceCommand::List(args) => list(args).await,
        SilenceCommand::Expire(args) => expire(args).await,
    }
}

async fn add(args: SilenceAddArgs) -> anyhow::Result<()> {
    let mut matchers = Vec::new();
    for text in &args.matchers {
        let matcher = Matcher::parse(text).map_err(|e| anyhow::anyhow!("matcher `{text}`: {e}"))?;
        matchers.push(SilenceMatcher::from_matcher(&matcher));
    }
    let duration = parse_duration(&args.duration)
        .map_err(|e| anyhow::anyhow!("--duration `{}`: {e}", args.duration))?;
    let duration = SignedDuration::try_from(duration).context("--duration is too long")?;
    let now = Timestamp::now();
    let ends = now
        .checked_add(duration)
        .context("--duration is too long")?;
    let author = args
        .author
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "atalaya".to_owned());
    let body = json!({
        "matchers": matchers,
        "startsAt": now.to_string(),
        "endsAt": ends.to_string(),
        "createdBy": author,
        "comment": args.comment,
    });
    let path = if args.mute_all {
        "/api/v1/silences?mute_all=true"
    } else {
        "/api/v1/silences"
    };
    let answer = ApiClient::new(&args.api.url)
        .call(Method::POST, path, Some(&body))
        .await?;
    println!("{}", answer["silenceID"].as_str().unwrap_or("?"));
    Ok(())
}

async fn list(args: SilenceListArgs) -> anyhow::Result<()> {
    let list = ApiClient::new(&args.api.url)
        .call(Method::GET, "/api/v1/silences", None)
        .await?;
    print!("{}", render_silences(&list, args.expired));
    Ok(())
}

fn render_silences(list: &Value, expired: bool) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "MATCHERS".to_owned(),
        "STATE".to_owned(),
        "ENDS AT".to_owned(),
        "CREATED BY".to_owned(),
        "COMMENT".to_owned(),
    ]];
    for silence in list.as_array().into_iter().flatten() {
        let state = silence["status"]["state"].as_str().unwrap_or("?");
        if state == "expired" && !expired {
            continue;
        }
        let matchers: Vec<String> = silence["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| serde_json::from_value::<SilenceMatcher>(m.clone()).ok())
            .filter_map(|m| m.compile().ok())
            .map(|m| m.to_string())
            .collect();
        let text = |key: &str| silence[key].as_str().unwrap_or_default().to_owned();
        rows.push([
            text("id"),
            matchers.join(" "),
            state.to_owned(),
            to_the_second(&text("endsAt")),
            text("createdBy"),
            text("comment"),
        ]);
    }
    table(&rows)
}

async fn expire(args: SilenceExpireArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.api.url);
    let mut failed = 0;
    for id in &args.ids {
        if id.is_empty() || id.contains('/') {
            bail!("`{id}` is not a silence id");
        }
        match client
            .call(Method::DELETE, &format!("/api/v1/silences/{id}"), None)
            .await
        {
            Ok(_) => println!("expired {id}"),
            Err(e) => {
                eprintln!("{id}: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} silence(s) not expired");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_render_as_a_table_with_why_they_are_suppressed() {
        let list = json!([
            {"labels": {"alertname": "node_lost", "node": "pi1"}, "startsAt": "2026-01-01T10:00:00Z",
             "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}},
            {"labels": {"alertname": "disk", "node": "pi1"}, "startsAt": "2026-01-01T11:50:00Z",
             "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}},
        ]);
        let now: Timestamp = "2026-01-01T12:05:00Z".parse().unwrap();
        let text = render_alerts(&list, now);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ALERTNAME  STATE"), "{text}");
        assert!(
            lines[1].contains("node_lost") && lines[1].contains("(2h5m ago)"),
            "{text}"
        );
        assert!(
            lines[2].contains("suppressed (silenced by s1)") && lines[2].ends_with("node=pi1"),
            "{text}"
        );
    }

    #[test]
    fn expired_silences_are_listed_only_when_asked() {
        let list = json!([
            {"id": "a", "matchers": [{"name": "node", "value": "pi.*", "isRegex": true, "isEqual": true}],
             "status": {"state": "active"}, "endsAt": "2026-01-01T12:00:00Z", "createdBy": "ana", "comment": "upgrade"},
            {"id": "b", "matchers": [{"name": "x", "value": "y", "isRegex": false, "isEqual": true}],
             "status": {"state": "expired"}, "endsAt": "2025-01-01T12:00:00Z", "createdBy": "ana", "comment": "old"},
        ]);
        let text = render_silences(&list, false);
        assert!(
            text.contains("node=~\"pi.*\"") && text.contains("upgrade"),
            "{text}"
        );
        assert!(!text.contains("old"));
        assert!(render_silences(&list, true).contains("old"));
    }
}
