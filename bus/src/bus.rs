//! The in-process bus: bounded, fan-out, with backpressure.
//!
//! Each consumer owns a bounded queue. Publishing reserves room for the whole batch in every
//! consumer's queue before any event is enqueued, so a batch is delivered to all consumers or
//! to none, and a full queue makes the publisher wait rather than memory grow. Publishers
//! that cannot wait (an HTTP request) put a timeout around [`Publisher::publish_batch`]: the
//! reservation is dropped with the future and nothing was published.
//!
//! The topology is fixed at start: consumers are registered on the [`BusBuilder`], then
//! [`BusBuilder::build`] hands out the [`Publisher`]. When every publisher clone is dropped,
//! consumers drain what is queued and then see the end of the stream — that is how shutdown
//! drains the bus.

use std::ops::Deref;
use std::sync::Arc;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::event::Event;

/// Default queue capacity of each consumer, in events.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Why a publish did not happen. Nothing was enqueued in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the bus is closed (shutting down)")]
    Closed,
    #[error("a batch of {len} events does not fit the bus queues ({capacity} events)")]
    BatchTooLarge { len: usize, capacity: usize },
}

struct BusMetrics {
    published: IntCounter,
    publish_waits: IntCounter,
    delivered: IntCounterVec,
    depth: IntGaugeVec,
}

impl BusMetrics {
    fn register(registry: &Registry, capacity: usize) -> prometheus::Result<Self> {
        let published = IntCounter::new(
            "atalaya_bus_events_published_total",
            "Events published on the bus.",
        )?;
        let publish_waits = IntCounter::new(
            "atalaya_bus_publish_waits_total",
            "Publishes that had to wait because a consumer queue was full (backpressure).",
        )?;
        let delivered = IntCounterVec::new(
            Opts::new(
                "atalaya_bus_events_delivered_total",
                "Events taken from the bus by each consumer.",
            ),
            &["consumer"],
        )?;
        let depth = IntGaugeVec::new(
            Opts::new(
                "atalaya_bus_queue_depth",
                "Events waiting in each consumer's queue.",
            ),
            &["consumer"],
        )?;
        let capacity_gauge = IntGauge::new(
            "atalaya_bus_queue_capacity",
            "Capacity of each consumer queue, in events.",
        )?;
        capacity_gauge.set(i64::try_from(capacity).unwrap_or(i64::MAX));
        registry.register(Box::new(published.clone()))?;
        registry.register(Box::new(publish_waits.clone()))?;
        registry.register(Box::new(delivered.clone()))?;
        registry.register(Box::new(depth.clone()))?;
        registry.register(Box::new(capacity_gauge))?;
        Ok(Self {
            published,
            publish_waits,
            delivered,
            depth,
        })
    }
}

struct Outlet {
    /// The consumer's name, for [`Publisher::full_consumers`].
    name: String,
    tx: mpsc::Sender<Received>,
    depth: IntGauge,
}

/// An event as a consumer receives it. Cheap to clone. While any consumer still holds an
/// event of a tracked batch, that batch's [`Delivery`] is pending: a consumer finishes with
/// an event by dropping it, after it has done what the event asks (printed it, or made the
/// state it caused durable).
///
/// The events of one publish share one allocation, freed with the last of them: publishing
/// moves the batch's vector, not each event (and one event held keeps its whole batch).
#[derive(Clone)]
pub struct Received {
    batch: Arc<Batch>,
    index: usize,
}

struct Batch {
    events: Vec<Event>,
    /// Its publisher waits for every change it causes to be on disk, minor ones included
    /// (see [`Publisher::publish_durable`]).
    durable: bool,
    /// Dropped with the batch, which is what completes its [`Delivery`].
    _done: Option<oneshot::Sender<()>>,
}

impl Received {
    /// Whether the publisher waits for every change this event causes to be on disk:
    /// consumers that defer minor writes must write them before dropping it.
    pub fn wants_durable(&self) -> bool {
        self.batch.durable
    }
}

impl Deref for Received {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.batch.events[self.index]
    }
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Completes once every consumer has finished with every event of a tracked batch: what a
/// source waits for before acknowledging its input (MQTT PUBACK, JetStream ack).
pub struct Delivery(oneshot::Receiver<()>);

impl Delivery {
    /// Waits until the batch is done everywhere (or the bus is gone, which for a source
    /// means the same: nothing more will happen to these events).
    pub async fn done(self) {
        // The sender is never used to send: its drop is the signal.
        let _ = self.0.await;
    }
}

/// Registers consumers, then builds the [`Publisher`].
pub struct BusBuilder {
    capacity: usize,
    outlets: Vec<Outlet>,
    metrics: BusMetrics,
}

impl BusBuilder {
    /// A bus whose consumer queues each hold `capacity` events (at least 1), with its
    /// metrics registered in `registry`.
    pub fn new(capacity: usize, registry: &Registry) -> prometheus::Result<Self> {
        let capacity = capacity.max(1);
        Ok(Self {
            capacity,
            outlets: Vec::new(),
            metrics: BusMetrics::register(registry, capacity)?,
        })
    }

    /// Adds a consumer that will receive every event published from now on.
    pub fn consumer(&mut self, name: &str) -> Consumer {
        let (tx, rx) = mpsc::channel(self.capacity);
        let depth = self.metrics.depth.with_label_values(&[name]);
        self.outlets.push(Outlet {
            name: name.to_owned(),
            tx,
            depth: depth.clone(),
        });
        Consumer {
            name: name.to_owned(),
            rx,
            depth,
            delivered: self.metrics.delivered.with_label_values(&[name]),
        }
    }

    /// Finishes the topology and returns the publisher (clone it for each source).
    pub fn build(self) -> Publisher {
        Publisher {
            inner: Arc::new(PublisherInner {
                capacity: self.capacity,
                outlets: self.outlets,
                published: self.metrics.published,
                publish_waits: self.metrics.publish_waits,
            }),
        }
    }
}

/// Which consumer queues are full, without holding the bus open: see
/// [`Publisher::queue_watch`].
pub struct QueueWatch(std::sync::Weak<PublisherInner>);

impl QueueWatch {
    /// The consumers whose queue is full: while one is, publishers wait (and HTTP ingest
    /// answers 503). Empty once the bus is gone.
    pub fn full_consumers(&self) -> Vec<String> {
        let Some(inner) = self.0.upgrade() else {
            return Vec::new();
        };
        inner
            .outlets
            .iter()
            .filter(|o| o.tx.capacity() == 0)
            .map(|o| o.name.clone())
            .collect()
    }
}

/// Publishes events to every consumer. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    capacity: usize,
    outlets: Vec<Outlet>,
    published: IntCounter,
    publish_waits: IntCounter,
}

impl Publisher {
    /// A view of the consumer queues that does not keep the bus open (consumers see the
    /// end of the bus when the last `Publisher` is dropped; a watchdog must not delay that).
    pub fn queue_watch(&self) -> QueueWatch {
        QueueWatch(Arc::downgrade(&self.inner))
    }

    /// Publishes one event, waiting while a consumer queue is full.
    pub async fn publish(&self, event: Event) -> Result<(), PublishError> {
        self.publish_batch(vec![event]).await
    }

    /// Publishes `events` in order to every consumer, all or nothing, waiting while a
    /// consumer queue lacks room for the whole batch. Cancel-safe: dropping the future before
    /// it completes publishes nothing.
    pub async fn publish_batch(&self, events: Vec<Event>) -> Result<(), PublishError> {
        self.publish_inner(events, None, false).await
    }

    /// Like [`Publisher::publish_batch`], and returns a [`Delivery`] that completes once
    /// every consumer has finished with every event of the batch.
    pub async fn publish_tracked(&self, events: Vec<Event>) -> Result<Delivery, PublishError> {
        let (done, delivery) = oneshot::channel();
        self.publish_inner(events, Some(done), false).await?;
        Ok(Delivery(delivery))
    }

    /// Like [`Publisher::publish_tracked`], and asks consumers to make *every* change the
    /// events cause durable before finishing with them (the rules runner otherwise defers
    /// minor changes for up to 30 s): `POST /api/v1/events?wait=durable`.
    pub async fn publish_durable(&self, events: Vec<Event>) -> Result<Delivery, PublishError> {
        let (done, delivery) = oneshot::channel();
        self.publish_inner(events, Some(done), true).await?;
        Ok(Delivery(delivery))
    }

    async fn publish_inner(
        &self,
        events: Vec<Event>,
        done: Option<oneshot::Sender<()>>,
        durable: bool,
    ) -> Result<(), PublishError> {
        let inner = &*self.inner;
        let len = events.len();
        if len == 0 {
            return Ok(());
        }
        if len > inner.capacity {
            return Err(PublishError::BatchTooLarge {
                len,
                capacity: inner.capacity,
            });
        }
        let mut reserved = Vec::with_capacity(inner.outlets.len());
        for outlet in &inner.outlets {
            let permits = match outlet.tx.try_reserve_many(len) {
                Ok(permits) => permits,
                Err(TrySendError::Full(())) => {
                    inner.publish_waits.inc();
                    outlet
                        .tx
                        .reserve_many(len)
                        .await
                        .map_err(|_| PublishError::Closed)?
                }
                Err(TrySendError::Closed(())) => return Err(PublishError::Closed),
            };
            reserved.push(permits);
        }
        let batch = Arc::new(Batch {
            events,
            durable,
            _done: done,
        });
        for (outlet, permits) in inner.outlets.iter().zip(reserved) {
            outlet.depth.add(len as i64);
            for (index, permit) in permits.enumerate() {
                permit.send(Received {
                    batch: batch.clone(),
                    index,
                });
            }
        }
        inner.published.inc_by(len as u64);
        Ok(())
    }

    /// Most events one batch may hold (the consumer queue capacity).
    pub fn max_batch(&self) -> usize {
        self.inner.capacity
    }
}

/// One consumer's end of the bus.
pub struct Consumer {
    name: String,
    rx: mpsc::Receiver<Received>,
    depth: IntGauge,
    delivered: IntCounter,
}

impl Consumer {
    /// The next event, or `None` once every publisher is gone and the queue is drained.
    pub async fn recv(&mut self) -> Option<Received> {
        let event = self.rx.recv().await?;
        self.depth.dec();
        self.delivered.inc();
        Some(event)
    }

    /// The next event if one is waiting now, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        let event = self.rx.try_recv().ok()?;
        self.depth.dec();
        self.delivered.inc();
        Some(event)
    }

    /// Whether no event is waiting right now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The name this consumer was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use serde_json::Value;

    use super::*;
    use crate::subject::Subject;

    fn event(n: u64) -> Event {
        Event::new(
            "/test",
            Subject::parse("test/n").unwrap(),
            Value::from(n),
            Timestamp::UNIX_EPOCH,
        )
    }

    fn gauge(registry: &Registry, name: &str, consumer: &str) -> i64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .and_then(|f| {
                f.get_metric()
                    .iter()
                    .find(|m| m.get_label().iter().any(|l| l.value() == consumer))
                    .map(|m| m.get_gauge().get_value() as i64)
            })
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn fans_out_in_order_to_every_consumer() {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(8, &registry).unwrap();
        let mut a = builder.consumer("a");
        let mut b = builder.consumer("b");
        let publisher = builder.build();
        publisher
            .publish_batch((0..5).map(event).collect())
            .await
            .unwrap();
        drop(publisher);
        for consumer in [&mut a, &mut b] {
            let mut got = Vec::new();
            while let Some(e) = consumer.recv().await {
                got.push(e.data.as_u64().unwrap());
            }
            assert_eq!(got, [0, 1, 2, 3, 4], "{}", consumer.name());
        }
        assert_eq!(gauge(&registry, "atalaya_bus_queue_depth", "a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_blocks_the_publisher_instead_of_growing() {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(4, &registry).unwrap();
        let mut slow = builder.consumer("slow");
        let publisher = builder.build();
        for n in 0..4 {
            publisher.publish(event(n)).await.unwrap();
        }
        assert_eq!(gauge(&registry, "atalaya_bus_queue_depth", "slow"), 4);
        // The fifth waits: the flood does not grow the queue.
        let blocked = tokio::time::timeout(Duration::from_secs(60), publisher.publish(event(4)));
        assert!(
            blocked.await.is_err(),
            "publish should wait while the queue is full"
        );
        assert_eq!(gauge(&registry, "atalaya_bus_queue_depth", "slow"), 4);
        // Room again: it goes through, and the timed-out attempt published nothing.
        assert_eq!(slow.recv().await.unwrap().data, 0);
        publisher.publish(event(5)).await.unwrap();
        drop(publisher);
        let mut rest = Vec::new();
        while let Some(e) = slow.recv().await {
            rest.push(e.data.as_u64().unwrap());
        }
        assert_eq!(rest, [1, 2, 3, 5]);
        let waits = registry
            .gather()
            .iter()
            .find(|f| f.name() == "atalaya_bus_publish_waits_total")
            .map(|f| f.get_metric()[0].get_counter().get_value())
            .unwrap();
        assert_eq!(waits, 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_all_or_nothing_across_consumers() {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(4, &registry).unwrap();
        let mut fast = builder.consumer("fast");
        let mut full = builder.consumer("full");
        let publisher = builder.build();
        publisher
            .publish_batch((0..3).map(event).collect())
            .await
            .unwrap();
        // `full` has room for 1, the batch needs 2: it waits and, timed out, leaves no trace.
        let attempt = publisher.publish_batch(vec![event(10), event(11)]);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), attempt)
                .await
                .is_err()
        );
        drop(publisher);
        let mut fast_got = 0;
        while fast.recv().await.is_some() {
            fast_got += 1;
        }
        let mut full_got = 0;
        while full.recv().await.is_some() {
            full_got += 1;
        }
        assert_eq!((fast_got, full_got), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tracked_delivery_completes_when_every_consumer_is_done() {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(8, &registry).unwrap();
        let mut a = builder.consumer("a");
        let mut b = builder.consumer("b");
        let publisher = builder.build();
        let delivery = publisher
            .publish_tracked(vec![event(1), event(2)])
            .await
            .unwrap();
        let mut delivery = std::pin::pin!(delivery.done());
        let held_a: Vec<Received> = vec![a.recv().await.unwrap(), a.recv().await.unwrap()];
        let first_b = b.recv().await.unwrap();
        drop(held_a);
        drop(first_b);
        // `b` has not taken the second event yet: not done.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut delivery)
                .await
                .is_err()
        );
        let second_b = b.recv().await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut delivery)
                .await
                .is_err()
        );
        drop(second_b);
        tokio::time::timeout(Duration::from_secs(1), delivery)
            .await
            .expect("done once every consumer dropped every event");
    }

    #[tokio::test]
    async fn oversized_batches_and_closed_bus_are_errors() {
        let registry = Registry::new();
        let mut builder = BusBuilder::new(2, &registry).unwrap();
        let consumer = builder.consumer("c");
        let publisher = builder.build();
        assert_eq!(
            publisher.publish_batch((0..3).map(event).collect()).await,
            Err(PublishError::BatchTooLarge {
                len: 3,
                capacity: 2
            })
        );
        drop(consumer);
        assert_eq!(publisher.publish(event(0)).await, Err(PublishError::Closed));
    }
}
