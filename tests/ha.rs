//! High availability end to end: a three-node nats-server JetStream cluster on loopback,
//! three replicas of the real binary, numbered events over HTTP (`?wait=durable`: answered
//! once durable, so every 2xx is an event that must not be lost) and a webhook receiver
//! counting notifications. The leader is killed, paused, cut off from NATS; a NATS node is
//! killed. Each time: a follower leads within the bound, nothing acknowledged is lost,
//! at most one notification per group is sent twice, and a deposed leader sends nothing.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atalaya_test_kit::nats::NatsCluster;
use atalaya_test_kit::proxy::TcpProxy;
use atalaya_test_kit::webhook::Webhook;
use atalaya_test_kit::{PATIENCE, free_port};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

const RULES: &str = "rules:
  - name: numbered
    subject: ha/event/+n
    condition: value > 0
  - name: delayed
    subject: ha/slow/+n
    condition: value > 0
    for: 8s
";

/// The bound a failover must meet: the lease TTL plus a follower's poll, with margin for a
/// loaded 2-core machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(25);

/// One replica: the real binary on a port of its own, its own state directory.
struct Replica {
    name: String,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    fn new(index: usize, nats_urls: &[String], hook: &Webhook, ha_extra: &str) -> Self {
        Self::with(index, nats_urls, hook, "", ha_extra)
    }

    /// With `top` (YAML sections: `mqtt:`) besides `ha:` and its `ha_extra` keys.
    fn with(index: usize, nats_urls: &[String], hook: &Webhook, top: &str, ha_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("r{index}");
        let rules = support::rules_dir(dir.path());
        std::fs::write(rules.join("ha.yaml"), RULES).unwrap();
        let routing = dir.path().join("routing.yaml");
        std::fs::write(
            &routing,
            format!(
                "route:\n  receiver: hook\n  group_by: [alertname, n]\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: false\n",
                hook.url()
            ),
        )
        .unwrap();
        let servers: Vec<String> = nats_urls.iter().map(|u| format!("\"{u}\"")).collect();
        let cluster = if ha_extra.contains("cluster:") {
            ""
        } else {
            "  cluster: test\n"
        };
        let config = format!(
            "state:\n  dir: {data}\n  commit_interval: 5ms\nrules:\n  dir: {rules}\nrouting:\n  file: {routing}\noutbox:\n  initial_backoff: 200ms\n  max_backoff: 1s\nreceivers:\n  console:\n    enabled: false\n{top}ha:\n  servers: [{servers}]\n{cluster}  replica: {name}\n  poll_interval: 1s\n{ha_extra}",
            data = dir.path().join("data").display(),
            rules = rules.display(),
            routing = routing.display(),
            servers = servers.join(", "),
        );
        std::fs::write(dir.path().join("atalaya.yaml"), config).unwrap();
        Self {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
            child: None,
            logs: Arc::default(),
        }
    }

    fn start(&mut self) {
        self.start_with("atalaya.yaml");
    }

    /// Starts as a single replica, without `ha:` (the config before going to three).
    fn start_single(&mut self) {
        let config = std::fs::read_to_string(self.dir.path().join("atalaya.yaml")).unwrap();
        let single = config.split("ha:\n").next().unwrap().to_owned();
        std::fs::write(self.dir.path().join("single.yaml"), single).unwrap();
        self.start_with("single.yaml");
    }

    fn start_with(&mut self, config: &str) {
        let mut cmd = support::command(self.dir.path());
        cmd.args(["run", "-c"])
            .arg(self.dir.path().join(config))
            .args(["--log-format", "json"])
            .env("ATALAYA__HTTP__LISTEN", self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn atalaya");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::clone(&self.logs);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id().expect("running") as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal");
    }

    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// `/readyz`: the status and body; nothing from a dead (or paused) replica.
    async fn readyz(&self) -> Option<(u16, String)> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let response = client
            .get(format!("http://{}/readyz", self.addr))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

/// Three replicas on a NATS cluster, and the webhook they notify.
struct Deployment {
    nats: NatsCluster,
    hook: Webhook,
    replicas: Vec<Replica>,
    /// Every event acknowledged (2xx), by number.
    acknowledged: Vec<u32>,
}

impl Deployment {
    async fn start(ha_extra: &str) -> Self {
        let nats = NatsCluster::started(3).await;
        Self::start_on(nats, &|urls| urls.to_vec(), ha_extra).await
    }

    async fn start_on(
        nats: NatsCluster,
        urls_of: &dyn Fn(&[String]) -> Vec<String>,
        ha_extra: &str,
    ) -> Self {
        let hook = Webhook::start().await;
        let urls = urls_of(&nats.urls());
        let mut replicas: Vec<Replica> = (0..3)
            .map(|i| Replica::new(i, &urls, &hook, ha_extra))
            .collect();
        for replica in &mut replicas {
            replica.start();
        }
        Self {
            nats,
            hook,
            replicas,
            acknowledged: Vec::new(),
        }
    }

    /// The replica whose `/readyz` says ready as the leader (followers say `ha follower`),
    /// waited for within `bound`; never two.
    async fn leader_within(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let mut ready = Vec::new();
            for (i, replica) in self.replicas.iter().enumerate() {
                if replica.child.is_some()
                    && let Some((200, body)) = replica.readyz().await
                    && !body.contains("ha follower")
                {
                    ready.push(i);
                }
            }
            assert!(ready.len() <= 1, "two replicas ready at once: {ready:?}");
            if let Some(&leader) = ready.first() {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {bound:?}; logs:\n{}",
                self.all_logs()
            );
            // Readiness of other processes: polled, bounded by the deadline.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn all_logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {}:\n{}", r.name, r.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Posts event `subject` = 1 to whichever replica takes it, until one does (2xx once
    /// durable) or PATIENCE runs out.
    async fn send(&mut self, subject: &str) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            for replica in self.replicas.iter().filter(|r| r.child.is_some()) {
                let url = format!(
                    "http://{}/api/v1/events/{subject}?wait=durable",
                    replica.addr
                );
                if let Ok(r) = client.post(url).body("1").send().await
                    && r.status().is_success()
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no replica took {subject}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn send_numbered(&mut self, numbers: std::ops::RangeInclusive<u32>) {
        for n in numbers {
            self.send(&format!("ha/event/{n}")).await;
            self.acknowledged.push(n);
        }
    }

    /// Notifications per group (`alertname/n`) the webhook accepted.
    fn per_group(&self) -> BTreeMap<String, usize> {
        let mut groups = BTreeMap::new();
        for payload in self.hook.accepted() {
            for alert in payload["alerts"].as_array().into_iter().flatten() {
                *groups.entry(group_of(alert)).or_insert(0) += 1;
            }
        }
        groups
    }

    /// Waits until every acknowledged event (and `extra` groups) was notified; then checks
    /// that no group was notified more than twice.
    async fn assert_all_notified(&self, extra: &[&str]) {
        let mut wanted: Vec<String> = self
            .acknowledged
            .iter()
            .map(|n| format!("numbered/{n}"))
            .collect();
        wanted.extend(extra.iter().map(|s| (*s).to_owned()));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let groups = self.per_group();
            let missing: Vec<&String> =
                wanted.iter().filter(|g| !groups.contains_key(*g)).collect();
            if missing.is_empty() {
                let twice: Vec<_> = groups.iter().filter(|(_, n)| **n > 1).collect();
                let over: Vec<_> = groups.iter().filter(|(_, n)| **n > 2).collect();
                assert!(over.is_empty(), "groups notified more than twice: {over:?}");
                println!(
                    "{} groups notified, {} of them twice: {twice:?}",
                    groups.len(),
                    twice.len()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never notified: {missing:?}; logs:\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn group_of(alert: &Value) -> String {
    format!(
        "{}/{}",
        alert["labels"]["alertname"].as_str().unwrap_or("?"),
        alert["labels"]["n"].as_str().unwrap_or("?")
    )
}

/// Whether `replica` logged that it was deposed.
fn deposed(replica: &Replica) -> bool {
    replica.logs().contains("lease as leader has ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_timers_and_the_outbox_without_loss() {
    let mut d = Deployment::start("").await;
    let first = d.leader_within(PATIENCE).await;
    d.send_numbered(1..=20).await;
    d.assert_all_notified(&[]).await;

    // Notifications wait in the outbox (the receiver is down), a `for:` timer runs.
    d.hook.set_failing(true);
    d.send_numbered(21..=30).await;
    d.send("ha/slow/1").await;
    d.hook.wait_refused(1).await;

    let killed = Instant::now();
    d.replicas[first].kill9().await;
    let second = d.leader_within(FAILOVER_BOUND).await;
    let failover = killed.elapsed();
    println!("failover after SIGKILL of the leader: {failover:?} (lease TTL 15 s, poll 1 s)");
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
    assert_ne!(first, second);
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

/// Waits until `replica` serves `/readyz` as a follower.
async fn wait_for_follower(replica: &Replica) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some((_, body)) = replica.readyz().await
            && body.contains("ha follower")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never follows:\n{}",
            replica.name,
            replica.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_from_one_replica_to_three_keeps_the_state() {
    let nats = NatsCluster::started(3).await;
    let hook = Webhook::start().await;
    let ha = "  lease_ttl: 6s\n  renew_interval: 2s\n";
    let replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::new(i, &nats.urls(), &hook, ha))
        .collect();
    let mut d = Deployment {
        nats,
        hook,
        replicas,
        acknowledged: Vec::new(),
    };
    // One replica as today, no NATS: alerts fire and are notified, a `for:` timer runs.
    d.replicas[0].start_single();
    d.leader_within(PATIENCE).await;
    d.send_numbered(1..=5).await;
    d.assert_all_notified(&[]).await;
    d.send("ha/slow/1").await;
    d.replicas[0].signal(Signal::SIGTERM);
    d.replicas[0].child.as_mut().unwrap().wait().await.unwrap();

    // The same replica with `ha:` first: it leads and writes its state into the journal.
    d.replicas[0].start();
    assert_eq!(d.leader_within(PATIENCE).await, 0);
    // Then two fresh ones, which start from that snapshot.
    d.replicas[1].start();
    d.replicas[2].start();
    wait_for_follower(&d.replicas[1]).await;
    wait_for_follower(&d.replicas[2]).await;
    d.replicas[0].kill9().await;
    let leader = d.leader_within(FAILOVER_BOUND).await;
    assert_ne!(leader, 0);
    // The fresh leader knows the alerts the single replica raised...
    let alerts = reqwest::get(format!("http://{}/api/v1/alerts", d.replicas[leader].addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for n in 1..=5 {
        assert!(
            alerts.contains(&format!("\"n\":\"{n}\"")),
            "alert {n} missing: {alerts}"
        );
    }
    // ...the timer went on, and what was notified is not notified again.
    d.send_numbered(6..=8).await;
    d.assert_all_notified(&["delayed/1"]).await;
    assert!(
        d.per_group().values().all(|n| *n == 1),
        "{:?}",
        d.per_group()
    );
}

/// The replica's exit code and what it logged, started against `nats` after `prepare`
/// set up the NATS side wrongly.
async fn start_refused(nats_url: &str, extra: &str) -> (Option<i32>, String) {
    let hook = Webhook::start().await;
    let mut replica = Replica::new(0, &[nats_url.to_owned()], &hook, extra);
    replica.start();
    let status = tokio::time::timeout(PATIENCE, replica.child.as_mut().unwrap().wait())
        .await
        .expect("a misconfigured replica stops at start")
        .unwrap();
    // The log reader may lag the exit by a moment: wait for the error line.
    let deadline = Instant::now() + PATIENCE;
    while !replica.logs().contains("cannot start") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.child = None;
    (status.code(), replica.logs())
}

#[tokio::test]
async fn a_bucket_or_stream_set_up_wrong_or_owned_by_another_cluster_is_refused_at_start() {
    let server = atalaya_test_kit::nats::NatsServer::started().await;
    let js = async_nats::jetstream::new(atalaya_test_kit::nats::client(&server.url()).await);
    let single = "  nats_replicas: 1\n";

    // A lease bucket keeping history, with another TTL.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KV_wrong-bucket".into(),
        description: Some("atalaya cluster test".into()),
        subjects: vec!["$KV.wrong-bucket.>".into()],
        max_messages_per_subject: 5,
        max_age: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .unwrap();
    let (code, logs) =
        start_refused(&server.url(), &format!("{single}  bucket: wrong-bucket\n")).await;
    assert_eq!(code, Some(1), "{logs}");
    assert!(logs.contains("keeps 5 values per key, not 1"), "{logs}");
    assert!(logs.contains("not after the lease TTL"), "{logs}");

    // A journal stream that would lose entries.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "WRONG_JOURNAL".into(),
        description: Some("atalaya cluster test".into()),
        subjects: vec!["atalaya.test.journal.>".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .unwrap();
    let (code, logs) = start_refused(
        &server.url(),
        &format!("{single}  bucket: b2\n  stream: WRONG_JOURNAL\n"),
    )
    .await;
    assert_eq!(code, Some(1), "{logs}");
    assert!(logs.contains("has retention WorkQueue"), "{logs}");

    // A second deployment on the same bucket: refused, naming the owner.
    let (code, logs) = start_refused(
        &server.url(),
        &format!("{single}  bucket: wrong-bucket\n  cluster: garage\n"),
    )
    .await;
    assert_eq!(code, Some(1), "{logs}");
    assert!(
        logs.contains("belongs to `atalaya cluster test`, not to `atalaya cluster garage`"),
        "{logs}"
    );
}

/// The journal position a follower reports on `/readyz`.
async fn follower_position(replica: &Replica) -> Option<u64> {
    let (_, body) = replica.readyz().await?;
    body.split("journal position ").nth(1)?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_apply_the_journal_within_a_few_hundred_ms_and_appends_cost_what_changed() {
    let mut d = Deployment::start("  lease_ttl: 6s\n  renew_interval: 2s\n").await;
    let leader = d.leader_within(PATIENCE).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &f in &followers {
        wait_for_follower(&d.replicas[f]).await;
    }
    let js = async_nats::jetstream::new(
        async_nats::ConnectOptions::new()
            .connect(d.nats.urls())
            .await
            .unwrap(),
    );
    let mut stream = js.get_stream("ATALAYA_JOURNAL").await.unwrap();
    let before = stream.info().await.unwrap().state.clone();

    let mut lags = Vec::new();
    for round in 0..10u32 {
        d.send_numbered(round * 5 + 1..=round * 5 + 5).await;
        let last = stream.info().await.unwrap().state.last_sequence;
        let acked = Instant::now();
        for &f in &followers {
            let deadline = Instant::now() + PATIENCE;
            while follower_position(&d.replicas[f]).await.unwrap_or(0) < last {
                assert!(Instant::now() < deadline, "follower {f} stuck below {last}");
                // Another process's progress: polled, bounded.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        lags.push(acked.elapsed());
    }
    lags.sort();
    println!(
        "follower lag after a durable ack (both followers at the stream's end): median {:?}, max {:?}",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
    // The median is the figure; a rare stall of the ordered consumer on a loaded machine
    // (seen once at 9.6 s, with the whole suite on 2 cores) is bounded by PATIENCE above.
    assert!(
        lags[lags.len() / 2] < Duration::from_millis(500),
        "{lags:?}"
    );

    let after = stream.info().await.unwrap().state.clone();
    let appends = after.messages - before.messages;
    let bytes = after.bytes - before.bytes;
    println!(
        "journal: {appends} appends for 50 events, {} bytes each on average (stored, with headers)",
        bytes / appends.max(1)
    );
    d.assert_all_notified(&[]).await;
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
