//! `atalaya send`: publish one event to a running instance, for shell scripts and cron jobs.

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::cli::SendArgs;
use crate::commands::api_client::ApiClient;

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let data = match args.data.as_deref() {
        None => Value::Null,
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read data from stdin")?;
            parse_data(text.trim())?
        }
        Some(text) => parse_data(text)?,
    };
    let mut labels = Map::new();
    for label in &args.labels {
        let Some((name, value)) = label.split_once('=') else {
            bail!("label `{label}` is not NAME=VALUE");
        };
        labels.insert(name.to_owned(), Value::from(value));
    }
    let event = json!({
        "specversion": "1.0",
        "subject": args.subject,
        "source": args.source,
        "type": args.event_type,
        "data": data,
        "labels": labels,
    });

    let body = ApiClient::new(&args.url)
        .call(reqwest::Method::POST, "/api/v1/events", Some(&event))
        .await?;
    let id = body["ids"][0].as_str().unwrap_or("?");
    println!("sent {} (id {id})", args.subject);
    Ok(())
}

/// JSON when it is JSON; otherwise plain text becomes a JSON string. Text that looks like
/// JSON (`{`, `[`, `"`) must be valid JSON, so a typo is not silently sent as a string.
fn parse_data(text: &str) -> anyhow::Result<Value> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(e) if text.starts_with(['{', '[', '"']) => {
            bail!("data is not valid JSON: {e}")
        }
        Err(_) => Ok(Value::from(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_json_or_text() {
        assert_eq!(parse_data("21.5").unwrap(), json!(21.5));
        assert_eq!(parse_data("true").unwrap(), json!(true));
        assert_eq!(parse_data(r#"{"a":1}"#).unwrap(), json!({"a": 1}));
        assert_eq!(parse_data("open").unwrap(), json!("open"));
        assert_eq!(parse_data("door open").unwrap(), json!("door open"));
        assert!(parse_data(r#"{"a":"#).is_err());
    }
}
