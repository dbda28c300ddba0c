//! Running a connector in a test: start it on a bus, stop it and check it ended cleanly.

use atalaya_bus::Pattern;
use atalaya_connectors::nats::{NatsConfig, NatsConnector, NatsError, NatsSubscription};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{TestBus, WAIT};

/// A core subscription to `pattern`.
pub fn subscription(pattern: &str, queue_group: Option<&str>) -> NatsSubscription {
    NatsSubscription {
        pattern: Pattern::parse(pattern).expect("a valid pattern"),
        queue_group: queue_group.map(str::to_owned),
    }
}

/// A running connector: its task and the token that stops it.
pub struct Running {
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), NatsError>>,
}

impl Running {
    pub async fn start(config: NatsConfig, bus: &TestBus, name: &str) -> Self {
        let (connector, _publisher) =
            NatsConnector::connect(config, bus.publisher.clone(), bus.counters(name), None)
                .await
                .expect("the connector starts");
        let stop = CancellationToken::new();
        let task = tokio::spawn(connector.run(stop.clone()));
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the connector stops within the wait")
            .expect("the connector task does not panic");
        result.expect("the connector ends without error");
    }
}
