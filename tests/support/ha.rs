//! High availability's harness for the end-to-end tests (`tests/ha.rs`, `tests/ha_state.rs`):
//! replicas of the real binary on a NATS cluster, each on a port and in a directory of its
//! own, numbered HTTP events (`?wait=durable`: answered once durable, so every 2xx is an event
//! that must not be lost) and a webhook receiver counting notifications per group.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atalaya_test_kit::nats::NatsCluster;
use atalaya_test_kit::webhook::Webhook;
use atalaya_test_kit::{PATIENCE, free_port};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

pub const RULES: &str = "rules:
  - name: numbered
    subject: ha/event/+n
    condition: value > 0
  - name: delayed
    subject: ha/slow/+n
    condition: value > 0
    for: 8s
";

/// The bound a failover must meet: 15 s (a follower takes a stale lease over within
/// `ttl − margin / 2 + poll_interval`, 14.75 s with the defaults), with margin for a loaded
/// 2-core machine and for the test's own polling.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(20);

/// One replica: the real binary on a port of its own, its own state directory.
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Stopped with SIGSTOP: not a candidate for the leader until SIGCONT.
    pub paused: bool,
}

impl Replica {
    pub fn new(index: usize, nats_urls: &[String], hook: &Webhook, ha_extra: &str) -> Self {
        Self::with(index, nats_urls, hook, "", ha_extra)
    }

    /// With `top` (YAML sections: `mqtt:`) besides `ha:` and its `ha_extra` keys.
    pub fn with(
        index: usize,
        nats_urls: &[String],
        hook: &Webhook,
        top: &str,
        ha_extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("r{index}");
        let rules = super::rules_dir(dir.path());
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
            "state:\n  dir: {data}\n  commit_interval: 5ms\nrules:\n  dir: {rules}\nrouting:\n  file: {routing}\noutbox:\n  initial_backoff: 200ms\n  max_backoff: 1s\nreceivers:\n  console:\n    enabled: false\n{top}ha:\n  servers: [{servers}]\n{cluster}  replica: {name}\n  poll_interval: 500ms\n{ha_extra}",
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
            paused: false,
        }
    }

    pub fn start(&mut self) {
        self.start_with("atalaya.yaml");
    }

    /// Starts as a single replica, without `ha:` (the config before going to three).
    pub fn start_single(&mut self) {
        let config = std::fs::read_to_string(self.dir.path().join("atalaya.yaml")).unwrap();
        let single = config.split("ha:\n").next().unwrap().to_owned();
        std::fs::write(self.dir.path().join("single.yaml"), single).unwrap();
        self.start_with("single.yaml");
    }

    pub fn start_with(&mut self, config: &str) {
        let mut cmd = super::command(self.dir.path());
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

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id().expect("running") as i32)
    }

    pub fn signal(&mut self, signal: Signal) {
        kill(self.pid(), signal).expect("signal");
        match signal {
            Signal::SIGSTOP => self.paused = true,
            Signal::SIGCONT => self.paused = false,
            _ => {}
        }
    }

    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// `/readyz`: the status and body; nothing from a dead (or paused) replica.
    pub async fn readyz(&self) -> Option<(u16, String)> {
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

    /// The body of `GET path` on this replica.
    pub async fn get(&self, path: &str) -> String {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the replica answers")
            .text()
            .await
            .unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

/// Three replicas on a NATS cluster, and the webhook they notify.
pub struct Deployment {
    pub nats: NatsCluster,
    pub hook: Webhook,
    pub replicas: Vec<Replica>,
    /// Every event acknowledged (2xx), by number.
    pub acknowledged: Vec<u32>,
}

impl Deployment {
    pub async fn start(ha_extra: &str) -> Self {
        let nats = NatsCluster::started(3).await;
        Self::start_on(nats, &|urls| urls.to_vec(), ha_extra).await
    }

    pub async fn start_on(
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
    pub async fn leader_within(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let mut ready = Vec::new();
            for (i, replica) in self.replicas.iter().enumerate() {
                if replica.child.is_some()
                    && !replica.paused
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

    pub fn all_logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {}:\n{}", r.name, r.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Posts event `subject` = 1 to whichever replica takes it, until one does (2xx once
    /// durable) or PATIENCE runs out.
    pub async fn send(&mut self, subject: &str) {
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

    pub async fn send_numbered(&mut self, numbers: std::ops::RangeInclusive<u32>) {
        for n in numbers {
            self.send(&format!("ha/event/{n}")).await;
            self.acknowledged.push(n);
        }
    }

    /// Notifications per group (`alertname/n`) the webhook accepted.
    pub fn per_group(&self) -> BTreeMap<String, usize> {
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
    pub async fn assert_all_notified(&self, extra: &[&str]) {
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

pub fn group_of(alert: &Value) -> String {
    format!(
        "{}/{}",
        alert["labels"]["alertname"].as_str().unwrap_or("?"),
        alert["labels"]["n"].as_str().unwrap_or("?")
    )
}

/// Whether `replica` logged that it was deposed.
pub fn deposed(replica: &Replica) -> bool {
    replica.logs().contains("lease as leader has ended")
}

/// Waits until `replica` serves `/readyz` as a follower.
pub async fn wait_for_follower(replica: &Replica) {
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

/// The replica's exit code and what it logged, started against `nats` after `prepare`
/// set up the NATS side wrongly.
pub async fn start_refused(nats_url: &str, extra: &str) -> (Option<i32>, String) {
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

/// The journal position a follower reports on `/readyz`.
pub async fn follower_position(replica: &Replica) -> Option<u64> {
    let (_, body) = replica.readyz().await?;
    body.split("journal position ").nth(1)?.trim().parse().ok()
}
