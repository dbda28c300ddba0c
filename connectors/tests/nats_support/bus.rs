//! A bus with one consumer, the connector metrics in the same registry, and bounded waits.

use std::time::Duration;

use atalaya_bus::bus::{BusBuilder, Consumer, Publisher, Received};
use atalaya_bus::connector_metrics::{ConnectorCounters, ConnectorMetrics};
use atalaya_connectors::nats::ERROR_STAGES;
use prometheus::Registry;

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A bus with one consumer (`test`), and connector metrics, all in one registry.
pub struct TestBus {
    pub registry: Registry,
    pub publisher: Publisher,
    pub consumer: Consumer,
    metrics: ConnectorMetrics,
}

impl TestBus {
    pub fn new(capacity: usize) -> Self {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(capacity, &registry).expect("bus metrics");
        let consumer = builder.consumer("test");
        let metrics = ConnectorMetrics::register(&registry).expect("connector metrics");
        Self {
            publisher: builder.build(),
            consumer,
            metrics,
            registry,
        }
    }

    /// The counters of the connector called `name`.
    pub fn counters(&self, name: &str) -> ConnectorCounters {
        self.metrics.connection(name, ERROR_STAGES)
    }

    /// The value of metric `family` whose labels include every one of `labels` (0 if none).
    pub fn metric(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        atalaya_test_kit::metrics::sample(&self.registry, family, labels)
    }

    pub fn errors(&self, connector: &str, stage: &str) -> f64 {
        self.metric(
            "atalaya_connector_errors_total",
            &[("connector", connector), ("stage", stage)],
        )
    }

    /// The next event, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.consumer.recv())
            .await
            .expect("an event within the wait")
            .expect("the bus is open")
    }

    /// Publishes numbered warmups to `subject` until one arrives as an event (the connector
    /// has subscribed), dropping whatever arrives before it. Only the newest warmup ends the
    /// wait: a subscription keeps the publisher's order, so no older warmup can come after it.
    pub async fn until_subscribed(&mut self, client: &async_nats::Client, subject: &str) {
        let expected = subject.replace('.', "/");
        let warmed = async {
            for n in 0u64.. {
                let warmup = format!("warmup-{n}");
                client
                    .publish(subject.to_owned(), warmup.clone().into())
                    .await
                    .expect("publish warmup");
                client.flush().await.expect("flush warmup");
                let window = tokio::time::sleep(Duration::from_millis(200));
                tokio::pin!(window);
                loop {
                    tokio::select! {
                        () = &mut window => break,
                        Some(event) = self.consumer.recv() => {
                            if event.subject.as_str() == expected && event.data == warmup.as_str() {
                                return;
                            }
                        }
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, warmed)
            .await
            .expect("the connector subscribes within the wait");
    }

    /// Polls `condition` every 50 ms until it holds, failing the test after [`WAIT`].
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let waited = async {
            while !condition(self) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(WAIT, waited).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }
}
