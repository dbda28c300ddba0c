//! What asks for a reload of the rules and the routing policy: a change in the rules
//! directory or the routing file, SIGHUP, `POST /-/reload`.
//! All three send a [`ReloadRequest`] to the rules runner, which compiles everything first
//! and keeps the running rules on any error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::alerting::runner::ReloadRequest;

/// How long file events are gathered before one reload: a `git pull` or a ConfigMap update
/// touches several files at once.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Watches the rules directory (recursively: ConfigMaps swap a `..data` symlink inside it)
/// and the routing file (through its directory, for the same reason), and asks for a reload
/// after each burst of changes. Keep the returned watcher alive for as long as the watch
/// should last.
pub fn watch_sources(
    rules: Option<&Path>,
    routing: Option<&Path>,
    reloads: mpsc::Sender<ReloadRequest>,
) -> notify::Result<Debouncer<notify::RecommendedWatcher, RecommendedCache>> {
    let rules_dir = rules.map(absolute);
    let routing_file = routing.map(absolute);
    let routing_dir = routing_file
        .as_ref()
        .and_then(|f| f.parent().map(Path::to_path_buf));
    let relevant = {
        let (rules_dir, routing_file, routing_dir) =
            (rules_dir.clone(), routing_file.clone(), routing_dir.clone());
        move |path: &Path| {
            rules_dir.as_ref().is_some_and(|d| path.starts_with(d))
                || routing_file.as_deref() == Some(path)
                // A ConfigMap update swaps `..data` beside the routing file.
                || (path.parent() == routing_dir.as_deref()
                    && path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("..")))
        }
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        match result {
            Ok(events) => {
                if events
                    .iter()
                    .any(|e| !e.kind.is_access() && e.paths.iter().any(|p| relevant(p)))
                {
                    debug!(events = events.len(), "Rules or routing changed.");
                    // A full queue means a reload is already on its way.
                    let _ = reloads.try_send(ReloadRequest {
                        cause: "file change",
                        reply: None,
                    });
                }
            }
            Err(errors) => {
                for e in errors {
                    warn!(error = %e, "Watching the rules or routing files failed.");
                }
            }
        }
    })?;
    if let Some(dir) = &rules_dir {
        debouncer.watch(dir, RecursiveMode::Recursive)?;
    }
    if let Some(dir) = &routing_dir
        && !rules_dir.as_ref().is_some_and(|r| dir.starts_with(r))
    {
        debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(debouncer)
}

/// `path` made absolute (against the working directory), as watch events name paths.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Asks for a reload on every SIGHUP until `shutdown`.
pub async fn reload_on_sighup(
    reloads: mpsc::Sender<ReloadRequest>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = hangup.recv() => {
                let _ = reloads.send(ReloadRequest { cause: "SIGHUP", reply: None }).await;
            }
        }
    }
}
