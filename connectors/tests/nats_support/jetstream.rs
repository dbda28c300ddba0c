//! JetStream in tests: streams, numbered messages, consumer state.

use std::time::Duration;

use async_nats::jetstream;
use atalaya_bus::Pattern;
use atalaya_bus::bus::Received;
use atalaya_connectors::nats::{JetStreamConsumer, NatsConfig};

use super::{TestBus, WAIT};

/// Creates stream `name` over `subjects` and returns the JetStream context.
pub async fn stream(nc: &async_nats::Client, name: &str, subjects: &str) -> jetstream::Context {
    let js = jetstream::new(nc.clone());
    js.create_stream(jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        ..Default::default()
    })
    .await
    .expect("create the stream");
    js
}

/// Publishes each number of `numbers` to `subject`, waiting for the stream's ack.
pub async fn publish_numbers(
    js: &jetstream::Context,
    subject: &str,
    numbers: std::ops::Range<u64>,
) {
    for n in numbers {
        js.publish(subject.to_owned(), n.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("the stream acks");
    }
}

/// `(num_ack_pending, num_pending)` of a consumer.
pub async fn consumer_info(js: &jetstream::Context, stream: &str, durable: &str) -> (usize, u64) {
    let info = js
        .get_stream(stream)
        .await
        .expect("the stream")
        .consumer_info(durable)
        .await
        .expect("the consumer");
    (info.num_ack_pending, info.num_pending)
}

/// Polls a consumer until `(num_ack_pending, num_pending)` is `want`, failing after [`WAIT`].
pub async fn wait_for_consumer(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
    want: (usize, u64),
) {
    let waited = async {
        loop {
            let info = async {
                js.get_stream(stream)
                    .await
                    .ok()?
                    .consumer_info(durable)
                    .await
                    .ok()
            };
            if let Some(info) = info.await
                && (info.num_ack_pending, info.num_pending) == want
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, waited)
        .await
        .unwrap_or_else(|_| panic!("consumer {stream}/{durable} never reached {want:?}"));
}

/// A connector config with one durable consumer filtered by `events/+kind/#`.
pub fn jetstream_config(
    url: String,
    stream: &str,
    durable: &str,
    ack_wait: Duration,
) -> NatsConfig {
    let mut config = NatsConfig::new(url);
    let mut consumer = JetStreamConsumer::new(stream, durable);
    consumer.filter = Some(Pattern::parse("events/+kind/#").unwrap());
    consumer.ack_wait = ack_wait;
    config.jetstream = vec![consumer];
    config
}

/// Takes `count` events off the bus: their numbers, sorted, and the events (still held).
pub async fn take_numbers(bus: &mut TestBus, count: usize) -> (Vec<u64>, Vec<Received>) {
    let mut numbers = Vec::new();
    let mut held = Vec::new();
    for _ in 0..count {
        let event = bus.next().await;
        numbers.extend(event.data.as_u64());
        held.push(event);
    }
    numbers.sort_unstable();
    (numbers, held)
}
