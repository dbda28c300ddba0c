//! The kit's JetStream cluster forms: a stream replicated on three servers takes a message
//! and keeps it when the server a client talks to is killed.

use std::time::Duration;

use async_nats::jetstream;
use atalaya_test_kit::PATIENCE;
use atalaya_test_kit::nats::NatsCluster;

#[tokio::test]
async fn three_servers_keep_a_replicated_stream_through_the_loss_of_one() {
    let mut cluster = NatsCluster::started(3).await;
    let client = async_nats::ConnectOptions::new()
        .connect(cluster.urls())
        .await
        .unwrap();
    let js = jetstream::new(client);
    // The cluster elects its JetStream leader by itself, soon after the servers meet.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let stream = loop {
        match js
            .get_or_create_stream(jetstream::stream::Config {
                name: "EVENTS".into(),
                subjects: vec!["events.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
        {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "no R3 stream: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(stream.cached_info().config.num_replicas, 3);
    js.publish("events.a", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    cluster.nodes[0].kill();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let kept = match js.get_stream("EVENTS").await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).ok(),
            Err(_) => None,
        };
        if kept == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message was lost"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
