//! Settings of the console receiver.

/// Settings of the console receiver. The binary reads them from its configuration file; this
/// crate only consumes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleReceiverConfig {
    /// Whether the console receiver runs at all. On by default, so that `atalaya run` with no
    /// configuration shows what it receives; turned off where stdout is collected and would
    /// only duplicate other receivers.
    pub enabled: bool,
    /// Whether every event on the bus is printed, one line each. On by default; turn it off
    /// when the event stream is too busy to read but the receiver should stay.
    pub events: bool,
}

impl Default for ConsoleReceiverConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            events: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_every_event_by_default() {
        let config = ConsoleReceiverConfig::default();
        assert!(config.enabled);
        assert!(config.events);
    }
}
