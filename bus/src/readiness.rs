//! Readiness: each component says whether it is ready; `/readyz` reports the whole.
//!
//! A component registers itself as not ready, then flips its [`ReadyHandle`] as it connects
//! or loses its connection. The service is ready when every component is, and never while
//! shutting down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntGaugeVec, Opts, Registry};

/// The readiness of every registered component. Cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Mutex<State>>,
    gauge: IntGaugeVec,
}

#[derive(Default)]
struct State {
    components: BTreeMap<String, bool>,
    shutting_down: bool,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub ready: bool,
    pub shutting_down: bool,
    /// Each component with whether it is ready, sorted by name.
    pub components: Vec<(String, bool)>,
}

impl Readiness {
    /// Registers `atalaya_component_ready{component}` in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "atalaya_component_ready",
                "Whether each component is ready (1) or not (0).",
            ),
            &["component"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self {
            inner: Arc::default(),
            gauge,
        })
    }

    /// Adds a component, not ready until its handle says so.
    pub fn register(&self, component: &str) -> ReadyHandle {
        self.lock().components.insert(component.to_owned(), false);
        self.gauge.with_label_values(&[component]).set(0);
        ReadyHandle {
            component: component.to_owned(),
            readiness: self.clone(),
        }
    }

    /// Marks the service as shutting down: not ready from now on.
    pub fn set_shutting_down(&self) {
        self.lock().shutting_down = true;
    }

    /// The current state of every component.
    pub fn report(&self) -> ReadinessReport {
        let state = self.lock();
        let components: Vec<(String, bool)> = state
            .components
            .iter()
            .map(|(name, ready)| (name.clone(), *ready))
            .collect();
        ReadinessReport {
            ready: !state.shutting_down && components.iter().all(|(_, ready)| *ready),
            shutting_down: state.shutting_down,
            components,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields; a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One component's switch.
pub struct ReadyHandle {
    component: String,
    readiness: Readiness,
}

impl ReadyHandle {
    /// Sets whether this component is ready.
    pub fn set(&self, ready: bool) {
        self.readiness
            .lock()
            .components
            .insert(self.component.clone(), ready);
        self.readiness
            .gauge
            .with_label_values(&[&self.component])
            .set(i64::from(ready));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_components_are_and_not_shutting_down() {
        let readiness = Readiness::new(&Registry::new()).unwrap();
        assert!(readiness.report().ready, "no components: ready");
        let http = readiness.register("http");
        let rules = readiness.register("rules");
        http.set(true);
        let report = readiness.report();
        assert!(!report.ready);
        assert_eq!(
            report.components,
            [("http".to_owned(), true), ("rules".to_owned(), false)]
        );
        rules.set(true);
        assert!(readiness.report().ready);
        readiness.set_shutting_down();
        assert!(!readiness.report().ready);
    }
}
