//! NATS ingest: N messages through a local nats-server, received by a plain async-nats
//! subscriber (the broker-bound baseline) and then by atalaya with R rules, in the same run.
//!
//! Run: `cargo bench --bench nats_ingest` (N and R from the environment: `BENCH_N`,
//! `BENCH_RULES`). Needs /usr/sbin/nats-server (scripts/test installs it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atalaya_test_kit::free_port;
use atalaya_test_kit::nats::NatsServer;
use futures_util::StreamExt;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let n = env_or("BENCH_N", 20_000);
    let rules = env_or("BENCH_RULES", 100);
    let work = tempfile::tempdir().unwrap();
    let mut server = NatsServer::started().await;
    let url = server.url();
    let publisher = loop {
        if let Ok(c) = async_nats::connect(&url).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let publish_all = |client: async_nats::Client| async move {
        for i in 0..n {
            client.publish("bench", i.to_string().into()).await.unwrap();
        }
        client.flush().await.unwrap();
    };

    // Baseline: a plain subscriber.
    let subscriber = async_nats::connect(&url).await.unwrap();
    let mut sub = subscriber.subscribe("bench").await.unwrap();
    subscriber.flush().await.unwrap();
    let start = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
                Ok(Some(_)) => got += 1,
                _ => break,
            }
        }
        got
    });
    publish_all(publisher.clone()).await;
    let baseline_got = receiving.await.unwrap();
    let baseline = baseline_got as f64 / start.elapsed().as_secs_f64();

    // atalaya with `rules` rules on the same subject.
    let rules_dir = work.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let mut yaml = String::from("rules:\n");
    for i in 0..rules {
        yaml.push_str(&format!(
            "  - name: r{i}\n    subject: bench\n    condition: value > {}\n",
            n + i
        ));
    }
    std::fs::write(rules_dir.join("bench.yaml"), yaml).unwrap();
    let http = free_port();
    let config = work.path().join("atalaya.yaml");
    std::fs::write(
        &config,
        format!(
            "http: {{listen: \"127.0.0.1:{http}\"}}\nstate: {{dir: {}}}\nrules: {{dir: {}}}\nreceivers: {{console: {{events: false}}}}\nnats:\n  servers: [\"{url}\"]\n  subscriptions: [{{subject: bench}}]\n",
            work.path().join("data").display(),
            rules_dir.display()
        ),
    )
    .unwrap();
    let mut atalaya = Command::new(env!("CARGO_BIN_EXE_atalaya"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let metrics = format!("http://127.0.0.1:{http}/metrics");
    loop {
        if client
            .get(format!("http://127.0.0.1:{http}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = || async {
        let text = client
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("atalaya_connector_received_total{connector=\"nats\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as usize
    };
    let start = Instant::now();
    publish_all(publisher).await;
    let mut got = received().await;
    let mut last_change = Instant::now();
    while got < n && last_change.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received().await;
        if now != got {
            last_change = Instant::now();
            got = now;
        }
    }
    let elapsed = if got < n {
        start.elapsed() - Duration::from_secs(5)
    } else {
        start.elapsed()
    };
    let ours = got as f64 / elapsed.as_secs_f64();
    let _ = atalaya.kill();
    let _ = atalaya.wait();
    server.kill();
    println!("NATS ingest, {n} core messages through nats-server");
    println!("  async-nats subscriber alone  {baseline:>12.0} msg/s  ({baseline_got} received)");
    println!(
        "  atalaya with {rules:>4} rules      {ours:>12.0} msg/s  ({got} received; {:.2}x the baseline)",
        ours / baseline
    );
}
