//! Live events for `atalaya tail`: the rules runner sends each event it evaluates — with the
//! rules that took it and the alert changes it caused — to whoever listens, over a bounded
//! broadcast channel. Nothing is sent while nobody listens; a listener that falls behind
//! misses the oldest (it is told how many), and the runner never waits for one.

use std::sync::Arc;

use atalaya_bus::Event;
use atalaya_rules::alert::Output;
use serde::Serialize;
use tokio::sync::broadcast;

/// Events a listener may fall behind before it misses some.
const CAPACITY: usize = 1024;

/// One event as `atalaya tail` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TailItem {
    pub event: Event,
    /// The rules that took it.
    pub rules: Vec<String>,
    /// The alert changes it caused: `(rule, state)`.
    pub changes: Vec<(String, String)>,
}

/// The runner's end: cheap to clone (the HTTP API subscribes through it).
#[derive(Clone)]
pub struct Tail {
    sender: broadcast::Sender<Arc<TailItem>>,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Tail {
    /// Whether anyone listens: only then is an item built.
    pub fn listened(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Tells the listeners of `event`, which `rules` took and which caused `outputs`.
    pub fn send(&self, event: &Event, rules: Vec<&str>, outputs: &[Output]) {
        // Only the rules that took it: a timer of another rule may have run first.
        let changes = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Alert(alert) if rules.contains(&alert.rule.as_str()) => {
                    Some((alert.rule.clone(), alert.state.as_str().to_owned()))
                }
                _ => None,
            })
            .collect();
        let _ = self.sender.send(Arc::new(TailItem {
            event: event.clone(),
            rules: rules.into_iter().map(str::to_owned).collect(),
            changes,
        }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TailItem>> {
        self.sender.subscribe()
    }
}
