//! Inhibition rules: a firing source alert mutes target alerts that share some labels.

use atalaya_bus::Labels;

use super::matcher::Matchers;

/// One `inhibit_rules` entry, compiled.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Matchers,
    pub target: Matchers,
    /// Labels whose values must be equal in source and target (both missing counts as equal,
    /// as in Alertmanager).
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Whether `source` (a firing alert) and `target` agree on every `equal` label.
    pub fn equal_labels(&self, source: &Labels, target: &Labels) -> bool {
        self.equal
            .iter()
            .all(|name| source.get(name) == target.get(name))
    }
}
