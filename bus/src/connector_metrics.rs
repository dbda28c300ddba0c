//! The metrics every connector shares, so dashboards see all sources and receivers alike:
//! `atalaya_connector_received_total{connector}`, `atalaya_connector_sent_total{connector}`
//! `atalaya_connector_errors_total{connector, stage}` and, for sources that push back,
//! `atalaya_connector_paused_seconds_total{connector}`.

use prometheus::{
    Counter, CounterVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The shared connector metric families, registered once.
#[derive(Clone)]
pub struct ConnectorMetrics {
    received: IntCounterVec,
    sent: IntCounterVec,
    errors: IntCounterVec,
    connected: IntGaugeVec,
    reconnects: IntCounterVec,
    paused: CounterVec,
}

impl ConnectorMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let received = IntCounterVec::new(
            Opts::new(
                "atalaya_connector_received_total",
                "Events received by each source connector and accepted onto the bus.",
            ),
            &["connector"],
        )?;
        let sent = IntCounterVec::new(
            Opts::new(
                "atalaya_connector_sent_total",
                "Messages sent by each connector to its outside system.",
            ),
            &["connector"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "atalaya_connector_errors_total",
                "Errors of each connector, by the stage where they happened.",
            ),
            &["connector", "stage"],
        )?;
        let connected = IntGaugeVec::new(
            Opts::new(
                "atalaya_connector_connected",
                "Whether each connector is connected to its outside system (1) or not (0).",
            ),
            &["connector"],
        )?;
        let reconnects = IntCounterVec::new(
            Opts::new(
                "atalaya_connector_reconnects_total",
                "Connections each connector lost and set up again.",
            ),
            &["connector"],
        )?;
        let paused = CounterVec::new(
            Opts::new(
                "atalaya_connector_paused_seconds_total",
                "Time each source stopped reading because atalaya was behind (backpressure: \
                 the broker holds the messages meanwhile).",
            ),
            &["connector"],
        )?;
        registry.register(Box::new(received.clone()))?;
        registry.register(Box::new(paused.clone()))?;
        registry.register(Box::new(sent.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(connected.clone()))?;
        registry.register(Box::new(reconnects.clone()))?;
        Ok(Self {
            received,
            sent,
            errors,
            connected,
            reconnects,
            paused,
        })
    }

    /// The counters of one connector; `stages` are created at zero so they show in
    /// `/metrics` before the first error.
    pub fn connector(&self, name: &str, stages: &[&str]) -> ConnectorCounters {
        for stage in stages {
            self.errors.with_label_values(&[name, stage]);
        }
        ConnectorCounters {
            name: name.to_owned(),
            received: self.received.with_label_values(&[name]),
            sent: self.sent.with_label_values(&[name]),
            errors: self.errors.clone(),
            connected: self.connected.with_label_values(&[name]),
            reconnects: self.reconnects.with_label_values(&[name]),
            paused: self.paused.with_label_values(&[name]),
        }
    }
}

/// One connector's counters.
#[derive(Clone)]
pub struct ConnectorCounters {
    name: String,
    pub received: IntCounter,
    pub sent: IntCounter,
    errors: IntCounterVec,
    /// 1 while connected (connectors with a connection only).
    pub connected: IntGauge,
    pub reconnects: IntCounter,
    /// Seconds spent not reading because atalaya was behind.
    pub paused: Counter,
}

impl ConnectorCounters {
    /// Counts one error at `stage`.
    pub fn error(&self, stage: &str) {
        self.errors.with_label_values(&[&self.name, stage]).inc();
    }
}
