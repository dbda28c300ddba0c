//! `atalaya routes test LABEL=VALUE…`: the receivers an alert reaches, printed as
//! `amtool config routes test` prints them.

use atalaya_connectors::notifiers::integration_kinds;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use atalaya_bus::Labels;
use atalaya_rules::routing::config::{RoutingPolicy, load_policy};
use atalaya_rules::routing::matcher::{MatchOp, Matcher};

use crate::cli::RoutesTestArgs;
use crate::config::{ConfigSource, load};

/// Prints the receivers line; `Ok(false)` when `--verify-receivers` did not match.
pub fn run(args: RoutesTestArgs) -> anyhow::Result<bool> {
    let labels = parse_labels(&args.labels)?;
    let policy = match policy_file(&args)? {
        Some(path) => load_policy(&path, &integration_kinds()).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{}", lines.join("\n"))
        })?,
        None => RoutingPolicy::console_default(),
    };
    let line = policy.tree.receivers_line(&labels);
    println!("{line}");
    match args.verify_receivers {
        Some(expected) if expected != line => {
            eprintln!("WARNING: Expected receivers did not match resolved receivers.");
            Ok(false)
        }
        _ => Ok(true),
    }
}

/// The labels as amtool reads them: each argument a matcher (`name=value`, the value
/// optionally quoted and escaped) that must be an equality.
fn parse_labels(args: &[String]) -> anyhow::Result<Labels> {
    let mut labels = Labels::new();
    for arg in args {
        let matcher = Matcher::parse(arg).map_err(|e| anyhow!("label `{arg}`: {e}"))?;
        if matcher.op != MatchOp::Equal {
            bail!(
                "label `{arg}`: labels must be given as NAME=VALUE, not as a {} matcher",
                matcher.op
            );
        }
        labels.insert(matcher.name, matcher.value);
    }
    Ok(labels)
}

/// `--routing`, else the config's `routing.file`.
fn policy_file(args: &RoutesTestArgs) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = &args.routing {
        return Ok(Some(path.clone()));
    }
    let source = ConfigSource::resolve(args.config.as_deref());
    let config = load(&source, None).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    });
    Ok(config
        .with_context(|| format!("reading {source}"))?
        .routing
        .file)
}
