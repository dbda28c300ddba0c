//! The metrics every connector shares, so dashboards see all sources and receivers alike:
//! `atalaya_connector_received_total{connector}`, `atalaya_connector_sent_total{connector}`
//! `atalaya_connector_errors_total{connector, stage}`, for connectors with a connection
//! (MQTT, NATS, Kubernetes) `atalaya_connector_connected{connector}`, for sources with a
//! persistent session at their broker `atalaya_connector_sessions_lost_total{connector}` and,
//! for sources that push back, `atalaya_connector_paused_seconds_total{connector}`.

use prometheus::core::Collector;
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
    sessions_lost: IntCounterVec,
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
        let sessions_lost = IntCounterVec::new(
            Opts::new(
                "atalaya_connector_sessions_lost_total",
                "Connections that found the broker without atalaya's persistent session: what \
                 was published for atalaya while it was away was not kept.",
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
        registry.register(Box::new(sessions_lost.clone()))?;
        Ok(Self {
            received,
            sent,
            errors,
            connected,
            reconnects,
            sessions_lost,
            paused,
        })
    }

    /// The counters of one connector without a connection of its own (the HTTP API, the
    /// console); `stages` are created at zero so they show in `/metrics` before the first
    /// error (an alert on `increase()` sees the first one).
    pub fn connector(&self, name: &str, stages: &[&str]) -> ConnectorCounters {
        for stage in stages {
            self.errors.with_label_values(&[name, stage]);
        }
        ConnectorCounters {
            name: name.to_owned(),
            received: self.received.with_label_values(&[name]),
            sent: self.sent.with_label_values(&[name]),
            errors: self.errors.clone(),
            connected: None,
            reconnects: self.reconnects.with_label_values(&[name]),
            sessions_lost: self.sessions_lost.clone(),
            paused: self.paused.with_label_values(&[name]),
        }
    }

    /// The counters of a connector with a connection to an outside system (a broker, the
    /// Kubernetes API): as [`connector`](Self::connector), plus
    /// `atalaya_connector_connected{connector}`, 0 until it connects.
    pub fn connection(&self, name: &str, stages: &[&str]) -> ConnectorCounters {
        ConnectorCounters {
            // Created at 0: not connected until the connector says so.
            connected: Some(self.connected.with_label_values(&[name])),
            ..self.connector(name, stages)
        }
    }

    /// Each connector with a connection and whether it is connected now, sorted by name.
    pub fn connections(&self) -> Vec<(String, bool)> {
        let mut connections: Vec<(String, bool)> = self
            .connected
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter_map(|metric| {
                let name = metric
                    .get_label()
                    .iter()
                    .find(|label| label.name() == "connector")?
                    .value()
                    .to_owned();
                Some((name, metric.get_gauge().get_value() > 0.0))
            })
            .collect();
        connections.sort();
        connections
    }
}

/// One connector's counters.
#[derive(Clone)]
pub struct ConnectorCounters {
    name: String,
    pub received: IntCounter,
    pub sent: IntCounter,
    errors: IntCounterVec,
    /// 1 while connected; `None` for connectors without a connection (an HTTP API is not
    /// "disconnected", and a gauge stuck at 0 would read as an outage).
    connected: Option<IntGauge>,
    pub reconnects: IntCounter,
    sessions_lost: IntCounterVec,
    /// Seconds spent not reading because atalaya was behind.
    pub paused: Counter,
}

impl ConnectorCounters {
    /// Counts one error at `stage`.
    pub fn error(&self, stage: &str) {
        self.errors.with_label_values(&[&self.name, stage]).inc();
    }

    /// Whether `atalaya_connector_connected` says connected (false without a connection).
    pub fn is_connected(&self) -> bool {
        self.connected
            .as_ref()
            .is_some_and(|gauge| gauge.get() == 1)
    }

    /// Creates `atalaya_connector_sessions_lost_total` at 0: this connector keeps a
    /// persistent session at its broker.
    pub fn keeps_sessions(&self) {
        self.sessions_lost.with_label_values(&[&self.name]);
    }

    /// Counts a connection that found the broker without the persistent session.
    pub fn session_lost(&self) {
        self.sessions_lost.with_label_values(&[&self.name]).inc();
    }

    /// Sets `atalaya_connector_connected` (nothing for a connector without a connection).
    pub fn set_connected(&self, connected: bool) {
        if let Some(gauge) = &self.connected {
            gauge.set(i64::from(connected));
        }
    }
}
