//! NATS ingest: N messages through a local nats-server, received by a plain async-nats
//! subscriber (the broker-bound baseline) and then by atalaya with R rules, in the same run;
//! then (with `BENCH_JETSTREAM=1`) N messages stored in a JetStream stream, consumed by a bare
//! durable pull consumer acking each message explicitly (the baseline) and by atalaya's
//! durable consumer.
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

    // The bare subscriber and atalaya each hold up to `n` messages while behind (a client's
    // subscription buffer; atalaya's `nats.max_pending`), so that neither drops any of the
    // burst and both are timed on the whole of it. Three rounds, each side in turn; medians.
    let subscriber = async_nats::ConnectOptions::new()
        .subscription_capacity(n)
        .connect(&url)
        .await
        .unwrap();
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
    let client = reqwest::Client::new();
    let (mut baselines, mut ours, mut baseline_got, mut got) = (Vec::new(), Vec::new(), 0, 0);
    for round in 0..3 {
        // Baseline: a plain subscriber.
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
        baseline_got = receiving.await.unwrap();
        baselines.push(baseline_got as f64 / start.elapsed().as_secs_f64());
        // Unsubscribed (the subscription dropped) before atalaya's turn.
        subscriber.flush().await.unwrap();

        let (mut atalaya, http) = spawn_atalaya(
            &work.path().join(format!("data-{round}")),
            &rules_dir,
            &format!(
                "  servers: [\"{url}\"]\n  subscriptions: [{{subject: bench}}]\n  max_pending: {n}\n"
            ),
        );
        while !ready(&client, http).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // atalaya with `rules` rules on the same subject: the same burst, timed until its
        // received count has grown by all of it. The count is read every 20 ms, and more
        // often as the end nears (half the time the rest should take at the rate so far,
        // down to 1 ms), so that the reading is about as close to the last message as the
        // baseline's own; a read costs atalaya ~0.2 ms of CPU.
        let before = received(&client, http).await.unwrap();
        let start = Instant::now();
        publish_all(publisher.clone()).await;
        let mut last_change = Instant::now();
        got = 0;
        let mut wait = Duration::from_millis(20);
        while got < n && last_change.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(wait).await;
            let now = received(&client, http).await.unwrap_or(before) - before;
            if now != got {
                last_change = Instant::now();
                got = now;
                let rest = start
                    .elapsed()
                    .mul_f64(n.saturating_sub(got) as f64 / got as f64);
                wait = (rest / 2).clamp(Duration::from_millis(1), Duration::from_millis(20));
            }
        }
        let elapsed = if got < n {
            start.elapsed() - Duration::from_secs(5)
        } else {
            start.elapsed()
        };
        ours.push(got as f64 / elapsed.as_secs_f64());
        let _ = atalaya.kill();
        let _ = atalaya.wait();
    }
    let (baseline, ours) = (median(baselines), median(ours));
    println!("NATS ingest, {n} core messages through nats-server (median of 3 rounds)");
    println!("  async-nats subscriber alone  {baseline:>12.0} msg/s  ({baseline_got} received)");
    println!(
        "  atalaya with {rules:>4} rules      {ours:>12.0} msg/s  ({got} received; {:.2}x the baseline)",
        ours / baseline
    );
    if std::env::var("BENCH_JETSTREAM").is_ok_and(|v| v == "1") {
        jetstream(&url, n, &rules_dir, work.path()).await;
    }
    server.kill();
}

/// N messages stored in a stream, then consumed: by a bare durable pull consumer with an
/// explicit ack per message, and by atalaya's durable consumer (acks after persisting).
async fn jetstream(url: &str, n: usize, rules_dir: &std::path::Path, work: &std::path::Path) {
    use async_nats::jetstream::{self, consumer::pull};
    let nc = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(nc.clone());
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "BENCH".to_owned(),
            subjects: vec!["js.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut acks = Vec::with_capacity(1000);
    for i in 0..n {
        acks.push(js.publish("js.bench", i.to_string().into()).await.unwrap());
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await.unwrap();
    }

    let start = Instant::now();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("baseline".to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 256,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut got = 0;
    while got < n {
        // A busy machine may miss the pull's idle heartbeat: the stream says so and goes on.
        let message = match messages.next().await.expect("the consumer's stream ended") {
            Ok(message) => message,
            Err(e) => {
                eprintln!("jetstream baseline: {e}");
                continue;
            }
        };
        message.ack().await.unwrap();
        got += 1;
    }
    let baseline = n as f64 / start.elapsed().as_secs_f64();

    let (mut atalaya, http) = spawn_atalaya(
        &work.join("data-js"),
        rules_dir,
        &format!("  servers: [\"{url}\"]\n  jetstream: [{{stream: BENCH, durable: atalaya}}]\n"),
    );
    let client = reqwest::Client::new();
    let mut got = 0;
    let mut last_change = Instant::now();
    // Timed from the first answer of its HTTP endpoint (the store open, rules compiled).
    let mut start = None;
    while got < n && last_change.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Some(now) = received(&client, http).await else {
            continue;
        };
        start.get_or_insert_with(Instant::now);
        if now != got {
            last_change = Instant::now();
            got = now;
        }
    }
    let ours = got as f64 / start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let _ = atalaya.kill();
    let _ = atalaya.wait();
    println!("JetStream, {n} stored messages, durable pull consumers with explicit acks");
    println!("  bare async-nats consumer     {baseline:>12.0} msg/s  ({n} received)");
    println!(
        "  atalaya                      {ours:>12.0} msg/s  ({got} received; {:.2}x the baseline)",
        ours / baseline
    );
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Starts the release binary on a free port with state in `data`, rules from `rules`, and
/// `nats` as the body of its `nats:` section; returns it and its HTTP port.
fn spawn_atalaya(
    data: &std::path::Path,
    rules: &std::path::Path,
    nats: &str,
) -> (std::process::Child, u16) {
    let http = free_port();
    let config = data.with_extension("yaml");
    std::fs::write(
        &config,
        format!(
            "http: {{listen: \"127.0.0.1:{http}\"}}\nstate: {{dir: {}}}\nrules: {{dir: {}}}\nreceivers: {{console: {{events: false}}}}\nnats:\n{nats}",
            data.display(),
            rules.display()
        ),
    )
    .unwrap();
    // ATALAYA_BIN: another build of atalaya (scripts/bench-peers passes it on).
    let binary =
        std::env::var_os("ATALAYA_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_atalaya").into());
    let child = Command::new(binary)
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, http)
}

/// Whether atalaya answers `/readyz` with success (connected, rules loaded).
async fn ready(client: &reqwest::Client, http: u16) -> bool {
    client
        .get(format!("http://127.0.0.1:{http}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// `atalaya_connector_received_total{connector="nats"}`, or `None` while nothing answers.
async fn received(client: &reqwest::Client, http: u16) -> Option<usize> {
    let text = client
        .get(format!("http://127.0.0.1:{http}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("atalaya_connector_received_total{connector=\"nats\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Some(count as usize)
}
