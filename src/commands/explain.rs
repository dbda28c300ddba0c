//! `atalaya explain`, `notifications`, `dead-letters` and `tail`: what happened to an alert
//! (or why a rule does not fire), what was sent, what was given up on, and what arrives now —
//! read from a running instance's API and printed for a person.

use anyhow::{Context, bail};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use reqwest::Method;
use serde_json::Value;

use super::api_client::ApiClient;
use crate::cli::{DeadLettersCommand, ExplainArgs, NotificationsArgs, TailArgs};

/// `atalaya explain FINGERPRINT | NAME | NAME=VALUE…`: each matching alert's timeline.
pub async fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(&args.api.url);
    if let Some(rule) = &args.rule {
        let explained = api
            .call(
                Method::GET,
                &format!("/api/v1/rules/{}/explain", query_escape(rule)),
                None,
            )
            .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&explained)?);
        } else {
            print!("{}", rule_report(&explained, &TimeZone::system()));
        }
        return Ok(());
    }
    let alerts = if let [one] = args.alert.as_slice()
        && is_fingerprint(one)
    {
        let entries = api
            .call(Method::GET, &format!("/api/v1/alerts/{one}/history"), None)
            .await?;
        vec![
            serde_json::json!({"fingerprint": one, "labels": last_labels(&entries), "entries": entries}),
        ]
    } else {
        let (name, matchers) = matchers(&args.alert)?;
        let found = api
            .call(
                Method::GET,
                &format!("/api/v1/history?alertname={}", query_escape(&name)),
                None,
            )
            .await?;
        let alerts: Vec<Value> = found
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| {
                matchers
                    .iter()
                    .all(|(k, v)| a["labels"][k].as_str() == Some(v.as_str()))
            })
            .collect();
        if alerts.is_empty() {
            bail!(
                "no alert named {name} has labels {}",
                show_matchers(&matchers)
            );
        }
        alerts
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&alerts)?);
        return Ok(());
    }
    let tz = TimeZone::system();
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", timeline(alert, &tz));
    }
    Ok(())
}

/// A history entry's labels at its last state change.
fn last_labels(entries: &Value) -> Value {
    entries
        .as_array()
        .and_then(|e| e.iter().rev().find(|e| e["kind"] == "state"))
        .map_or(Value::Null, |e| e["labels"].clone())
}

/// One alert's history, as lines a person reads: the alert, then each entry with its time
/// (the date whenever it changes).
pub fn timeline(alert: &Value, tz: &TimeZone) -> String {
    let mut out = String::new();
    let labels = &alert["labels"];
    let name = labels["alertname"].as_str().unwrap_or("?");
    let others: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "alertname")
        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
        .collect();
    out.push_str(&format!(
        "{name} {{{}}} (fingerprint {})\n",
        others.join(", "),
        alert["fingerprint"].as_str().unwrap_or("?")
    ));
    let mut last_day = String::new();
    for entry in alert["entries"].as_array().into_iter().flatten() {
        let at = entry["at"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(|t| t.to_zoned(tz.clone()));
        let (day, time) = at.map_or(("?".to_owned(), "?".to_owned()), |z| {
            (
                z.strftime("%Y-%m-%d").to_string(),
                z.strftime("%H:%M:%S").to_string(),
            )
        });
        if day != last_day {
            out.push_str(&format!("  {day}\n"));
            last_day = day;
        }
        out.push_str(&format!("    {time}  {}\n", describe(entry, tz)));
    }
    out
}

/// What one entry says.
fn describe(entry: &Value, tz: &TimeZone) -> String {
    let s = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
    match entry["kind"].as_str().unwrap_or_default() {
        "state" => {
            let mut line = format!("{} (value {})", s("state"), entry["value"]);
            if let Some(hash) = entry["rule_hash"].as_str() {
                line.push_str(&format!(", rule {hash}"));
            }
            if let Some(commit) = entry["rules_commit"].as_str() {
                line.push_str(&format!(" at commit {}", &commit[..commit.len().min(12)]));
            }
            line
        }
        "flapping" => format!(
            "flapping: {} more changes since {} not recorded",
            entry["changes"],
            entry["since"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string())
                .unwrap_or_default()
        ),
        "routed" => {
            let mut line = format!(
                "routed by {} to {}",
                join(&entry["routes"]),
                join(&entry["receivers"])
            );
            for s in entry["silenced_by"].as_array().into_iter().flatten() {
                line.push_str(&format!(
                    "; silenced by {} (silence {})",
                    s["created_by"].as_str().unwrap_or("?"),
                    s["silence"].as_str().unwrap_or("?")
                ));
            }
            if entry["inhibited_by"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                line.push_str(&format!("; inhibited by {}", join(&entry["inhibited_by"])));
            }
            line
        }
        "notified" => format!(
            "in a notification to {} #{} as {} (group {}, notification {})",
            s("receiver"),
            entry["integration"],
            s("status"),
            s("group_key"),
            s("notification"),
        ),
        "attempt" => {
            let what = match s("outcome").as_str() {
                "sent" => "sent".to_owned(),
                "retry" => "failed, to be retried".to_owned(),
                "dead_letter" => "given up (dead letter)".to_owned(),
                other => other.to_owned(),
            };
            let mut line = format!(
                "{what}: {} ({}), attempt {}, notification {}",
                s("receiver"),
                s("integration"),
                entry["attempt"],
                s("notification")
            );
            let messages: Vec<String> = entry["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "message {} in chat {}",
                        m["message_id"],
                        m["chat"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            if !messages.is_empty() {
                line.push_str(&format!(" ({})", messages.join(", ")));
            }
            if let Some(error) = entry["error"].as_str() {
                line.push_str(&format!(" — {error}"));
            }
            line
        }
        "silenced" => {
            let until = entry["ends_at"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| {
                    t.to_zoned(tz.clone())
                        .strftime("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            let mut line = format!(
                "silenced by {} until {until} (silence {})",
                s("created_by"),
                s("silence")
            );
            let comment = s("comment");
            if !comment.is_empty() {
                line.push_str(&format!(" — {comment}"));
            }
            line
        }
        other => format!("{other}: {entry}"),
    }
}

/// Why a rule does or does not fire, as a person reads it: the rule, then a line per
/// series.
pub fn rule_report(rule: &Value, tz: &TimeZone) -> String {
    let at = |key: &Value| {
        key.as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
    };
    let mut out = format!(
        "{} ({}): {} series of at most {}\n",
        rule["rule"].as_str().unwrap_or("?"),
        rule["origin"].as_str().unwrap_or("?"),
        rule["series_count"],
        rule["max_series"],
    );
    if rule["active_now"] == false {
        out.push_str("  outside its active hours now: it fires only within them\n");
    }
    if let Some(hit) = at(&rule["series_limit_hit_at"]) {
        out.push_str(&format!(
            "  series limit reached (last at {hit}): new series are ignored; raise max_series\n"
        ));
    }
    if let Some(error) = rule["last_error"].as_str() {
        out.push_str(&format!(
            "  evaluation error (last at {}): {error}\n",
            at(&rule["last_error_at"]).unwrap_or_default()
        ));
    }
    let series = rule["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        out.push_str("  no series yet: no event has matched its subject\n");
    }
    for s in &series {
        let labels: Vec<String> = s["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
            .collect();
        let seen = at(&s["last_seen"]).unwrap_or_default();
        let why = match s["state"].as_str().unwrap_or_default() {
            "pending" => format!(
                "pending since {} (value {}); fires at {} if the condition still holds",
                at(&s["since"]).unwrap_or_default(),
                s["value"],
                at(&s["fires_at"]).unwrap_or_default()
            ),
            "firing" => format!(
                "firing since {} (value {})",
                at(&s["since"]).unwrap_or_default(),
                s["value"]
            ),
            _ if s["held_out_of_hours"] == true => format!(
                "the condition holds (value {}) but outside the active hours; fires when they begin",
                s["value"]
            ),
            _ => format!("condition false when last evaluated, at {seen}"),
        };
        out.push_str(&format!("  {{{}}}  {why}\n", labels.join(", ")));
    }
    out
}

/// The strings of a JSON array, joined with `, ` (`none` when there are none).
fn join(list: &Value) -> String {
    let items: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Alertmanager's fingerprints are 16 hex digits.
fn is_fingerprint(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The alert's name and the other `NAME=VALUE` matchers; a bare word is the name.
fn matchers(args: &[String]) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let mut name = None;
    let mut rest = Vec::new();
    for arg in args {
        match arg.split_once('=') {
            None => name = Some(arg.clone()),
            Some((k, v)) => {
                let v = v.trim_matches('"').to_owned();
                if k == "alertname" {
                    name = Some(v);
                } else {
                    rest.push((k.to_owned(), v));
                }
            }
        }
    }
    let Some(name) = name else {
        bail!(
            "say which alert: a fingerprint, its rule's name, or alertname=NAME with other NAME=VALUE labels"
        );
    };
    Ok((name, rest))
}

fn show_matchers(matchers: &[(String, String)]) -> String {
    let shown: Vec<String> = matchers.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", shown.join(", "))
}

fn query_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `atalaya notifications [--failed] [--limit N]`: the latest delivery attempts.
pub async fn notifications(args: NotificationsArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(&args.api.url);
    let path = format!(
        "/api/v1/notifications?failed={}&limit={}",
        args.failed, args.limit
    );
    let attempts = api.call(Method::GET, &path, None).await?;
    let tz = TimeZone::system();
    for a in attempts.as_array().into_iter().flatten() {
        let at = a["at"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        let alerts: Vec<&str> = a["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["alertname"].as_str())
            .collect();
        let mut line = format!(
            "{at}  {:<11} {}/{} attempt {}  {}  ({})",
            a["outcome"].as_str().unwrap_or("?"),
            a["receiver"].as_str().unwrap_or("?"),
            a["integration"].as_str().unwrap_or("?"),
            a["attempt"],
            alerts.join(", "),
            a["notification"].as_str().unwrap_or("?"),
        );
        if let Some(error) = a["error"].as_str() {
            line.push_str(&format!("  — {error}"));
        }
        println!("{line}");
    }
    Ok(())
}

/// `atalaya tail [PATTERN] [--rules]`: live events, one line each as `mosquitto_sub -v`
/// prints them (`subject payload`), until interrupted.
pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let mut path = "/api/v1/tail".to_owned();
    if let Some(pattern) = &args.pattern {
        path.push_str(&format!("?pattern={}", query_escape(pattern)));
    }
    let mut response = ApiClient::new(&args.api.url).stream(&path).await?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await.context("reading the event stream")? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        // Server-sent events end with a blank line.
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            if let Some(line) = sse_line(&message, args.rules) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// What one server-sent event of `/api/v1/tail` prints as; `None` for a keep-alive.
fn sse_line(message: &str, rules: bool) -> Option<String> {
    let mut kind = "message";
    let mut data = String::new();
    for line in message.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        }
    }
    if data.is_empty() {
        return None;
    }
    if kind == "lagged" {
        return Some(format!("(missed {data} events: this client fell behind)"));
    }
    let item: Value = serde_json::from_str(&data).ok()?;
    let event = &item["event"];
    let mut line = format!(
        "{} {}",
        event["subject"].as_str().unwrap_or("?"),
        event["data"]
    );
    if rules {
        let names: Vec<&str> = item["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let changes: Vec<String> = item["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} → {}",
                    c[0].as_str().unwrap_or("?"),
                    c[1].as_str().unwrap_or("?")
                )
            })
            .collect();
        line.push_str(&format!(
            "\n    rules: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ));
        if !changes.is_empty() {
            line.push_str(&format!("; {}", changes.join(", ")));
        }
    }
    Some(line)
}

/// `atalaya dead-letters list | retry ID | drop ID`.
pub async fn dead_letters(command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List(api) => {
            let letters = ApiClient::new(&api.url)
                .call(Method::GET, "/api/v1/dead-letters", None)
                .await?;
            let letters = letters.as_array().context("an unexpected answer")?;
            if letters.is_empty() {
                println!("No dead letters.");
            }
            for l in letters {
                let alerts: Vec<&str> = l["alerts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["alertname"].as_str())
                    .collect();
                println!(
                    "{}  {} #{}  {} after {} attempt(s): {}  [{}]",
                    l["id"].as_str().unwrap_or("?"),
                    l["receiver"].as_str().unwrap_or("?"),
                    l["integration"],
                    l["deadLetteredAt"].as_str().unwrap_or("?"),
                    l["attempts"],
                    l["reason"].as_str().unwrap_or("?"),
                    alerts.join(", "),
                );
            }
        }
        DeadLettersCommand::Retry(args) => {
            let api = ApiClient::new(&args.api.url);
            for id in &args.ids {
                api.call(
                    Method::POST,
                    &format!("/api/v1/dead-letters/{}/retry", query_escape(id)),
                    None,
                )
                .await?;
                println!("Queued {id} again.");
            }
        }
        DeadLettersCommand::Drop(args) => {
            let api = ApiClient::new(&args.api.url);
            for id in &args.ids {
                api.call(
                    Method::DELETE,
                    &format!("/api/v1/dead-letters/{}", query_escape(id)),
                    None,
                )
                .await?;
                println!("Dropped {id}.");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_timeline_reads_as_what_happened() {
        let alert = json!({
            "fingerprint": "0123456789abcdef",
            "labels": {"alertname": "freezer_warm", "device": "freezer"},
            "entries": [
                {"at": "2026-12-04T10:02:00Z", "kind": "state", "state": "pending", "value": -9.6, "labels": {}},
                {"at": "2026-12-04T10:17:00Z", "kind": "state", "state": "firing", "value": -9.4, "labels": {}, "rule_hash": "00000000000000ff"},
                {"at": "2026-12-04T10:17:00Z", "kind": "routed", "routes": ["0", "0.1"], "receivers": ["family"], "silenced_by": [{"silence": "s0", "created_by": "Ana"}], "inhibited_by": ["ffff"]},
                {"at": "2026-12-04T10:17:00Z", "kind": "notified", "notification": "n1", "receiver": "family", "integration": 0, "group_key": "{}:{}", "status": "firing"},
                {"at": "2026-12-04T10:17:01Z", "kind": "attempt", "notification": "n1", "receiver": "family", "integration": "telegram", "attempt": 1, "outcome": "sent", "messages": [{"chat": "-100", "part": 0, "message_id": 4211}]},
                {"at": "2026-12-05T09:00:00Z", "kind": "silenced", "silence": "s1", "created_by": "Ana (Telegram 111)", "comment": "from Telegram", "ends_at": "2026-12-05T10:00:00Z"},
            ],
        });
        let text = timeline(&alert, &TimeZone::UTC);
        assert_eq!(
            text,
            "freezer_warm {device=\"freezer\"} (fingerprint 0123456789abcdef)\n  2026-12-04\n    10:02:00  pending (value -9.6)\n    10:17:00  firing (value -9.4), rule 00000000000000ff\n    10:17:00  routed by 0, 0.1 to family; silenced by Ana (silence s0); inhibited by ffff\n    10:17:00  in a notification to family #0 as firing (group {}:{}, notification n1)\n    10:17:01  sent: family (telegram), attempt 1, notification n1 (message 4211 in chat -100)\n  2026-12-05\n    09:00:00  silenced by Ana (Telegram 111) until 2026-12-05 10:00 (silence s1) — from Telegram\n"
        );
    }

    #[test]
    fn a_rule_report_says_why_each_series_fires_or_not() {
        let rule = json!({
            "rule": "hot", "origin": "rules/home.yaml:2:5", "series_count": 2, "max_series": 2,
            "series_limit_hit_at": "2026-12-04T10:00:00Z",
            "last_error_at": "2026-12-04T10:01:00Z", "last_error": "condition: no such key: foo",
            "series": [
                {"labels": {"room": "a"}, "state": "inactive", "value": null, "last_seen": "2026-12-04T10:00:00Z", "held_out_of_hours": false},
                {"labels": {"room": "b"}, "state": "pending", "since": "2026-12-04T10:00:00Z", "fires_at": "2026-12-04T10:05:00Z", "value": 35.0, "last_seen": "2026-12-04T10:00:00Z", "held_out_of_hours": false},
            ],
        });
        assert_eq!(
            rule_report(&rule, &TimeZone::UTC),
            "hot (rules/home.yaml:2:5): 2 series of at most 2\n  series limit reached (last at 2026-12-04 10:00:00): new series are ignored; raise max_series\n  evaluation error (last at 2026-12-04 10:01:00): condition: no such key: foo\n  {room=\"a\"}  condition false when last evaluated, at 2026-12-04 10:00:00\n  {room=\"b\"}  pending since 2026-12-04 10:00:00 (value 35.0); fires at 2026-12-04 10:05:00 if the condition still holds\n"
        );
    }

    #[test]
    fn tail_lines_read_like_mosquitto_sub() {
        let message = "data: {\"event\":{\"subject\":\"home/kitchen/temperature\",\"data\":{\"t\":21.5}},\"rules\":[\"kitchen_hot\"],\"changes\":[[\"kitchen_hot\",\"firing\"]]}\n\n";
        assert_eq!(
            sse_line(message, false).unwrap(),
            "home/kitchen/temperature {\"t\":21.5}"
        );
        assert_eq!(
            sse_line(message, true).unwrap(),
            "home/kitchen/temperature {\"t\":21.5}\n    rules: kitchen_hot; kitchen_hot → firing"
        );
        assert_eq!(
            sse_line("event: lagged\ndata: 12\n\n", false).unwrap(),
            "(missed 12 events: this client fell behind)"
        );
        assert_eq!(sse_line(":\n\n", false), None, "a keep-alive");
    }

    #[test]
    fn alerts_are_named_by_fingerprint_name_or_labels() {
        assert!(is_fingerprint("0123456789abcdef"));
        assert!(!is_fingerprint("freezer_warm"));
        let (name, rest) = matchers(&["freezer_warm".into(), "device=freezer".into()]).unwrap();
        assert_eq!((name.as_str(), rest.len()), ("freezer_warm", 1));
        let (name, _) = matchers(&["alertname=\"x\"".into()]).unwrap();
        assert_eq!(name, "x");
        assert!(matchers(&["device=freezer".into()]).is_err());
    }
}
