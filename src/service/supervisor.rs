//! Supervision: every long-running task is spawned here, so none can die unnoticed.
//!
//! One [`CancellationToken`] is the shutdown signal for all tasks. Tasks belong to a stage:
//! sources (which publish onto the bus) stop first, then sinks (which drain it). A task that
//! ends while the service is not shutting down — by returning an error, by returning early,
//! or by panicking — is logged, counted in `atalaya_task_failures_total{task}`, and starts
//! the shutdown of the whole service, which then exits with a non-zero code so that the
//! orchestrator restarts it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error};

/// Which shutdown stage a task belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Takes input from outside and publishes on the bus; stopped first.
    Source,
    /// Consumes the bus; runs until the bus is drained.
    Sink,
}

#[derive(Clone)]
pub struct Supervisor {
    token: CancellationToken,
    sources: TaskTracker,
    sinks: TaskTracker,
    failures: IntCounterVec,
    /// Set once any task failed: the process must not exit 0 afterwards.
    failed: Arc<AtomicBool>,
}

impl Supervisor {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let failures = IntCounterVec::new(
            Opts::new(
                "atalaya_task_failures_total",
                "Supervised tasks that ended unexpectedly (error, early return or panic).",
            ),
            &["task"],
        )?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self {
            token: CancellationToken::new(),
            sources: TaskTracker::new(),
            sinks: TaskTracker::new(),
            failures,
            failed: Arc::default(),
        })
    }

    /// The shutdown signal; cancelled when shutdown starts.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether any supervised task failed.
    pub fn any_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Spawns `task` under supervision.
    pub fn spawn<F>(&self, stage: Stage, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.failures.with_label_values(&[name]);
        let this = self.clone();
        let tracker = match stage {
            Stage::Source => &self.sources,
            Stage::Sink => &self.sinks,
        };
        tracker.spawn(async move {
            let outcome = tokio::spawn(task).await;
            let failure = match outcome {
                Ok(Ok(())) if this.token.is_cancelled() || stage == Stage::Sink => {
                    debug!(task = name, "Task finished.");
                    return;
                }
                Ok(Ok(())) => "ended while the service was running".to_owned(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(join) if join.is_panic() => "panicked".to_owned(),
                Err(_) => "was aborted".to_owned(),
            };
            error!(task = name, error = %failure, "Task failed; shutting down.");
            this.failures.with_label_values(&[name]).inc();
            this.failed.store(true, Ordering::SeqCst);
            this.token.cancel();
        });
    }

    /// Stops sources and waits for them, then lets the sinks drain and waits for them. The
    /// caller must hold no bus publisher, or sinks never see the end of the bus.
    pub async fn drain(&self) {
        self.sources.close();
        self.sources.wait().await;
        self.sinks.close();
        self.sinks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failures(registry: &Registry, task: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == "atalaya_task_failures_total")
            .and_then(|f| {
                f.get_metric()
                    .iter()
                    .find(|m| m.get_label()[0].value() == task)
                    .map(|m| m.get_counter().get_value())
            })
            .unwrap_or(0.0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_counted_and_shuts_everything_down() {
        let registry = Registry::new();
        let sup = Supervisor::new(&registry).unwrap();
        let token = sup.token().clone();
        sup.spawn(Stage::Source, "steady", async move {
            token.cancelled().await;
            Ok(())
        });
        sup.spawn(Stage::Source, "fragile", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("boom");
        });
        tokio::time::timeout(Duration::from_secs(5), sup.token().cancelled())
            .await
            .expect("a failed task starts shutdown");
        sup.drain().await;
        assert!(sup.any_failed());
        assert_eq!(failures(&registry, "fragile"), 1.0);
        assert_eq!(failures(&registry, "steady"), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_early_returns_are_failures_but_a_clean_shutdown_is_not() {
        let registry = Registry::new();
        let sup = Supervisor::new(&registry).unwrap();
        sup.spawn(Stage::Source, "erring", async {
            anyhow::bail!("socket closed")
        });
        sup.token().cancelled().await;
        sup.drain().await;
        assert_eq!(failures(&registry, "erring"), 1.0);

        let registry = Registry::new();
        let sup = Supervisor::new(&registry).unwrap();
        sup.spawn(Stage::Source, "early", async { Ok(()) });
        sup.token().cancelled().await;
        sup.drain().await;
        assert_eq!(failures(&registry, "early"), 1.0);

        let registry = Registry::new();
        let sup = Supervisor::new(&registry).unwrap();
        let token = sup.token().clone();
        sup.spawn(Stage::Source, "polite", async move {
            token.cancelled().await;
            Ok(())
        });
        sup.spawn(Stage::Sink, "drainer", async { Ok(()) });
        sup.token().cancel();
        sup.drain().await;
        assert!(!sup.any_failed());
    }
}
