//! What asks for a rule reload: a change in the rules directory, SIGHUP, `POST /-/reload`.
//! All three send a [`ReloadRequest`] to the rules runner, which compiles everything first
//! and keeps the running rules on any error.

use std::path::Path;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::rules_runner::ReloadRequest;

/// How long file events are gathered before one reload: a `git pull` or a ConfigMap update
/// touches several files at once.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Watches `dir` (recursively: ConfigMaps swap a `..data` symlink inside it) and asks for a
/// reload after each burst of changes. Keep the returned watcher alive for as long as the
/// watch should last.
pub fn watch_rules(
    dir: &Path,
    reloads: mpsc::Sender<ReloadRequest>,
) -> notify::Result<Debouncer<notify::RecommendedWatcher, RecommendedCache>> {
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        match result {
            Ok(events) => {
                if events.iter().any(|e| !e.kind.is_access()) {
                    debug!(events = events.len(), "Rules directory changed.");
                    // A full queue means a reload is already on its way.
                    let _ = reloads.try_send(ReloadRequest {
                        cause: "file change",
                        reply: None,
                    });
                }
            }
            Err(errors) => {
                for e in errors {
                    warn!(error = %e, "Watching the rules directory failed.");
                }
            }
        }
    })?;
    debouncer.watch(dir, RecursiveMode::Recursive)?;
    Ok(debouncer)
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
