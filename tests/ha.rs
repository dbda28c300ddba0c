//! High availability end to end, failures: a three-node nats-server JetStream cluster on
//! loopback, three replicas of the real binary, numbered events over HTTP and MQTT QoS 1, a
//! webhook receiver counting notifications. The leader is killed, paused, cut off from NATS;
//! a NATS node is killed. Each time: a follower leads within the bound, nothing acknowledged
//! is lost, at most one notification per group is sent twice, and a deposed leader sends
//! nothing. The harness is `support/ha.rs`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use atalaya_test_kit::PATIENCE;
use atalaya_test_kit::metrics::sample_text;
use atalaya_test_kit::nats::NatsCluster;
use atalaya_test_kit::proxy::TcpProxy;
use atalaya_test_kit::webhook::Webhook;
use nix::sys::signal::Signal;
use support::ha::{Deployment, FAILOVER_BOUND, Replica, deposed, wait_for_follower};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_timers_and_the_outbox_without_loss() {
    let mut d = Deployment::start("").await;
    let first = d.leader_within(PATIENCE).await;
    d.send_numbered(1..=20).await;
    d.assert_all_notified(&[]).await;

    // Each replica is scraped for itself: the leader says it leads, under which term;
    // followers say they follow (their /metrics is not the leader's, forwarded).
    for (i, replica) in d.replicas.iter().enumerate() {
        let metrics = replica.get("/metrics").await;
        let value = |name| sample_text(&metrics, name, "").unwrap_or(-1.0);
        let leading = i == first;
        assert_eq!(
            value("atalaya_ha_leader"),
            f64::from(u8::from(leading)),
            "{metrics}"
        );
        assert_eq!(value("atalaya_ha_term") > 0.0, leading, "{metrics}");
        assert_eq!(
            metrics.contains("atalaya_bus_"),
            leading,
            "only the leader runs the bus: {metrics}"
        );
        assert!(
            value("atalaya_ha_journal_position") > 0.0,
            "replica {i} has a journal position: {metrics}"
        );
    }

    // Notifications wait in the outbox (the receiver is down), a `for:` timer runs.
    d.hook.set_failing(true);
    d.send_numbered(21..=30).await;
    d.send("ha/slow/1").await;
    d.hook.wait_refused(1).await;

    let killed = Instant::now();
    d.replicas[first].kill9().await;
    let second = d.leader_within(FAILOVER_BOUND).await;
    let failover = killed.elapsed();
    println!("failover after SIGKILL of the leader: {failover:?} (lease TTL 15 s, poll 0.5 s)");
    assert_ne!(first, second);

    d.send_numbered(31..=40).await;
    d.hook.set_failing(false);
    d.assert_all_notified(&["delayed/1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_sends_nothing_after_it_was_deposed() {
    let mut d = Deployment::start("  lease_ttl: 6s\n  renew_interval: 2s\n").await;
    let first = d.leader_within(PATIENCE).await;
    d.send_numbered(1..=5).await;
    d.assert_all_notified(&[]).await;

    // Pending notifications the paused leader would send as soon as it wakes.
    d.hook.set_failing(true);
    d.send_numbered(6..=10).await;
    d.hook.wait_refused(1).await;
    d.replicas[first].signal(Signal::SIGSTOP);
    let paused = Instant::now();
    let second = d.leader_within(FAILOVER_BOUND).await;
    println!(
        "failover after SIGSTOP of the leader: {:?}",
        paused.elapsed()
    );
    assert_ne!(first, second, "{}", d.all_logs());
    d.hook.set_failing(false);
    d.assert_all_notified(&[]).await;

    // Wake the old leader: it must notice its lease is gone and exit before sending.
    let before = d.hook.accepted().len();
    let requests_before = d.hook.refused() + before;
    d.replicas[first].signal(Signal::SIGCONT);
    let woke = Instant::now();
    let status = tokio::time::timeout(PATIENCE, d.replicas[first].child.as_mut().unwrap().wait())
        .await
        .expect("the deposed leader exits")
        .unwrap();
    assert_eq!(status.code(), Some(75), "{}", d.replicas[first].logs());
    assert!(deposed(&d.replicas[first]));
    println!("the woken leader exited after {:?}", woke.elapsed());
    d.replicas[first].child = None;
    // Nothing came from it: the only sender since is the new leader, which had nothing left.
    assert_eq!(d.hook.refused() + d.hook.accepted().len(), requests_before);
    d.send_numbered(11..=15).await;
    d.assert_all_notified(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_nats_server_loses_nothing() {
    let mut d = Deployment::start("  lease_ttl: 6s\n  renew_interval: 2s\n").await;
    d.leader_within(PATIENCE).await;
    d.send_numbered(1..=10).await;
    d.nats.nodes[0].kill();
    let killed = Instant::now();
    d.send_numbered(11..=30).await;
    println!(
        "20 events taken in {:?} after a NATS node died",
        killed.elapsed()
    );
    d.leader_within(FAILOVER_BOUND).await;
    d.assert_all_notified(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_nats_steps_down_and_a_follower_takes_over() {
    let nats = NatsCluster::started(3).await;
    // Each replica reaches NATS through a proxy of its own (to one node: the others route).
    let mut proxies = Vec::new();
    for node in &nats.nodes {
        let target: SocketAddr = node.url().trim_start_matches("nats://").parse().unwrap();
        proxies.push(TcpProxy::start(target).await);
    }
    let hook = Webhook::start().await;
    let ha = "  lease_ttl: 6s\n  renew_interval: 2s\n";
    let mut replicas: Vec<Replica> = proxies
        .iter()
        .enumerate()
        .map(|(i, proxy)| Replica::new(i, &[proxy.url("nats")], &hook, ha))
        .collect();
    for replica in &mut replicas {
        replica.start();
    }
    let mut d = Deployment {
        nats,
        hook,
        replicas,
        acknowledged: Vec::new(),
    };
    let first = d.leader_within(PATIENCE).await;
    d.send_numbered(1..=5).await;
    d.assert_all_notified(&[]).await;

    proxies[first].cut();
    let cut = Instant::now();
    // The cut-off leader exits when its lease lapses by its own clock; another leads.
    let Ok(status) =
        tokio::time::timeout(PATIENCE, d.replicas[first].child.as_mut().unwrap().wait()).await
    else {
        panic!("the cut-off leader does not exit:\n{}", d.all_logs());
    };
    let status = status.unwrap();
    assert_eq!(status.code(), Some(75), "{}", d.replicas[first].logs());
    d.replicas[first].child = None;
    let second = d.leader_within(FAILOVER_BOUND).await;
    println!(
        "failover after cutting the leader's NATS link: {:?}",
        cut.elapsed()
    );
    assert_ne!(first, second);
    d.send_numbered(6..=15).await;
    d.assert_all_notified(&[]).await;

    // Back on the network, restarted, the old leader follows and catches up.
    proxies[first].restore();
    d.replicas[first].start();
    wait_for_follower(&d.replicas[first]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_qos1_messages_wait_at_the_broker_through_a_failover() {
    let broker = atalaya_test_kit::mosquitto::Mosquitto::started().await;
    let nats = NatsCluster::started(3).await;
    let hook = Webhook::start().await;
    // Every replica has the same client id and a persistent session: the broker keeps QoS 1
    // messages for whichever connects next.
    let mqtt = format!(
        "mqtt:\n  host: 127.0.0.1\n  port: {}\n  client_id: atalaya-ha\n  reconnect: {{min: 100ms, max: 1s}}\n  subscriptions:\n    - topic: ha/event/+n\n",
        broker.port
    );
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| {
            Replica::with(
                i,
                &nats.urls(),
                &hook,
                &mqtt,
                "  lease_ttl: 6s\n  renew_interval: 2s\n",
            )
        })
        .collect();
    for replica in &mut replicas {
        replica.start();
    }
    let mut d = Deployment {
        nats,
        hook,
        replicas,
        acknowledged: Vec::new(),
    };
    let first = d.leader_within(PATIENCE).await;
    // The leader's subscription is in place once a first message gets through.
    let deadline = Instant::now() + PATIENCE;
    while !d.per_group().contains_key("numbered/1") {
        broker.publish("ha/event/1", "1", 1);
        assert!(Instant::now() < deadline, "{}", d.all_logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.acknowledged.push(1);
    for n in 2..=10 {
        broker.publish(&format!("ha/event/{n}"), "1", 1);
        d.acknowledged.push(n);
    }
    d.assert_all_notified(&[]).await;

    d.replicas[first].kill9().await;
    let killed = Instant::now();
    // Published while nobody leads: the broker keeps them for the session.
    for n in 11..=30 {
        broker.publish(&format!("ha/event/{n}"), "1", 1);
        d.acknowledged.push(n);
    }
    let second = d.leader_within(FAILOVER_BOUND).await;
    println!("MQTT failover: a new leader after {:?}", killed.elapsed());
    assert_ne!(first, second);
    d.assert_all_notified(&[]).await;
    assert!(d.per_group().values().all(|n| *n <= 2));
}
