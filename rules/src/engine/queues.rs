//! What needs attention later: the deadline queue (series with a timer running) and the
//! persistence queues (series changed since they were last persisted).

use std::collections::{BTreeSet, HashSet, VecDeque};

use jiff::Timestamp;

use super::{KeyHash, SOFT_PERSIST_INTERVAL, Series};
use crate::compile::Rule;
use crate::metrics::EngineMetrics;

/// Kept apart from the series maps, so that an evaluation updates the queues while it holds
/// a series in its map.
#[derive(Default)]
pub(super) struct Queues {
    /// (when, rule id, fingerprint): one entry per series with a deadline, due at or before
    /// it (see [`Queues::schedule`]).
    pub deadlines: BTreeSet<(Timestamp, usize, u64)>,
    /// Series whose phase, arm or latch changed since they were last persisted.
    pub urgent: HashSet<(usize, u64), KeyHash>,
    /// Series with other changes, with when they are due to be persisted, oldest first. A
    /// series here has its `soft_queued` flag set, so it is queued once.
    pub soft: VecDeque<(Timestamp, usize, u64)>,
}

impl Queues {
    /// Brings the queues and the alert gauges in step with a series (of rule `id`, with
    /// fingerprint `key`) that an event or a deadline has just moved. A change of phase, arm
    /// or latch is queued to be persisted at once; `changed`, other changes a restart needs
    /// (see `Evaluation::event`), within [`SOFT_PERSIST_INTERVAL`].
    pub fn settle(
        &mut self,
        metrics: &EngineMetrics,
        (id, key): (usize, u64),
        rule: &Rule,
        series: &mut Series,
        now: Timestamp,
        changed: bool,
    ) {
        series.deadline = series.next_deadline(rule, now);
        self.schedule(id, key, series);
        let state = series.alert_state();
        if series.counted != state {
            metrics.count_alert(series.counted, -1);
            metrics.count_alert(state, 1);
            series.counted = state;
        }
        if series.persisted.as_ref() != Some(&series.essentials()) {
            self.urgent.insert((id, key));
        } else if changed && !series.soft_queued {
            series.soft_queued = true;
            let due = now.checked_add(SOFT_PERSIST_INTERVAL).unwrap_or(now);
            self.soft.push_back((due, id, key));
        }
    }

    /// Keeps the series' entry in the deadline queue in step with its deadline. An entry
    /// due at or before the deadline stays: most events push a deadline later (every event
    /// restarts an absence timer), and moving the entry each time would cost a queue
    /// removal and insertion per event; the tick at the old time queues it again instead.
    /// An entry due after the deadline moves, so no deadline is ever processed late.
    pub fn schedule(&mut self, id: usize, key: u64, series: &mut Series) {
        match (series.scheduled, series.deadline) {
            (Some(queued), Some(deadline)) if queued <= deadline => {}
            (None, None) => {}
            (queued, deadline) => {
                if let Some(queued) = queued {
                    self.deadlines.remove(&(queued, id, key));
                }
                if let Some(deadline) = deadline {
                    self.deadlines.insert((deadline, id, key));
                }
                series.scheduled = deadline;
            }
        }
    }
}
