//! Starts the real `atalaya` binary for end-to-end tests: on a free loopback port, with its
//! own state directory, JSON logs captured from stderr and console lines from stdout.

#![allow(dead_code, reason = "each test binary uses its own part of the helper")]

pub mod ha;

pub use atalaya_test_kit::PATIENCE;
pub use atalaya_test_kit::metrics::sample_text as sample;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_atalaya")
}

/// A command for the binary with no `ATALAYA…` variables leaking in from the outside.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir).kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("ATALAYA") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// [`command`] for a blocking run (`output()` without a runtime).
pub fn std_command(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary());
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("ATALAYA") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// What the test does with the service's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutMode {
    /// Read every console line.
    Read,
    /// Keep the pipe open but never read it, so it fills up.
    Unread,
    /// Close the read end, so the console's next write fails (EPIPE).
    Closed,
}

pub struct Options {
    /// Extra YAML appended to the generated config (must not set `http.listen`, `state`).
    pub config: String,
    pub env: Vec<(String, String)>,
    /// What happens to stdout, where the console receiver writes.
    pub stdout: StdoutMode,
    /// Rule files written into the rules directory before start: (file name, YAML).
    pub rules: Vec<(&'static str, String)>,
    /// A config file to use as it is, instead of one generated in the test directory.
    pub config_file: Option<PathBuf>,
    /// A routing policy (YAML) written as `routing.yaml` and named in the generated config.
    pub routing: Option<String>,
}

/// A policy that writes every alert to the console at once (no `group_wait`), and its
/// resolution a second later: the console lines end-to-end tests wait for.
pub const CONSOLE_AT_ONCE: &str = "route:
  receiver: console
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: console
    console_configs: [{}]
";

impl Default for Options {
    fn default() -> Self {
        Self {
            config: String::new(),
            env: Vec::new(),
            stdout: StdoutMode::Read,
            rules: Vec::new(),
            config_file: None,
            routing: None,
        }
    }
}

pub struct Atalaya {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// Every stderr line so far (JSON log lines).
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Woken at every new log line.
    pub logged: Arc<Notify>,
    /// Console receiver lines, as they come.
    pub stdout: mpsc::UnboundedReceiver<String>,
}

impl Atalaya {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, options).await
    }

    /// Starts in `dir`, whose `data/` keeps the state (reuse it to restart).
    pub async fn start_in(dir: tempfile::TempDir, options: Options) -> Self {
        let config_path = match &options.config_file {
            Some(path) => path.clone(),
            None => {
                let path = dir.path().join("atalaya.yaml");
                let mut config = format!(
                    "state:\n  dir: {}\nrules:\n  dir: {}\n{}",
                    dir.path().join("data").display(),
                    rules_dir(dir.path()).display(),
                    options.config
                );
                if let Some(policy) = &options.routing {
                    let file = dir.path().join("routing.yaml");
                    std::fs::write(&file, policy).expect("write routing policy");
                    config.push_str(&format!("routing:\n  file: {}\n", file.display()));
                }
                std::fs::write(&path, config).expect("write config");
                path
            }
        };
        for (name, yaml) in &options.rules {
            std::fs::write(rules_dir(dir.path()).join(name), yaml).expect("write rule file");
        }
        let mut cmd = command(dir.path());
        cmd.args(["run", "-c"])
            .arg(&config_path)
            .args(["--log-format", "json"])
            .env("ATALAYA__HTTP__LISTEN", "127.0.0.1:0")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn atalaya");

        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, mut addr_rx) = mpsc::unbounded_channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let log_sink = Arc::clone(&logs);
        let logged = Arc::new(Notify::new());
        let log_notify = Arc::clone(&logged);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "HTTP API listening."
                {
                    let _ = addr_tx.send(v["address"].as_str().unwrap_or("").to_owned());
                }
                log_sink.lock().unwrap().push(line);
                log_notify.notify_waiters();
            }
        });
        let (out_tx, stdout_rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        match options.stdout {
            StdoutMode::Read => {
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let _ = out_tx.send(line);
                    }
                });
            }
            // Keep the pipe open and unread for the life of the test.
            StdoutMode::Unread => std::mem::forget(stdout),
            StdoutMode::Closed => drop(stdout),
        }
        let addr = match tokio::time::timeout(PATIENCE, addr_rx.recv()).await {
            Ok(Some(addr)) => addr.parse().expect("listening address"),
            _ => panic!(
                "atalaya did not start listening; logs:\n{}",
                logs.lock().unwrap().join("\n")
            ),
        };
        Self {
            child,
            addr,
            dir,
            logs,
            logged,
            stdout: stdout_rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next console line, within [`PATIENCE`].
    pub async fn console_line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.stdout.recv())
            .await
            .expect("a console line in time")
            .expect("stdout open")
    }

    /// `GET path`, its body as JSON (no token).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::get(self.url(path))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// `POST path` with `body` (no token); the answer's status.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .status()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("running") as i32;
        kill(Pid::from_raw(pid), signal).expect("kill");
    }

    /// Waits for the process to exit, within [`PATIENCE`].
    pub async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("atalaya exits in time")
            .expect("wait")
    }

    /// Waits (within [`PATIENCE`]) until `count` log lines contain every one of `needles`.
    pub async fn wait_for_logs(&self, needles: &[&str], count: usize) {
        let found = || {
            self.logs
                .lock()
                .unwrap()
                .iter()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count()
                >= count
        };
        let wait = async {
            loop {
                let notified = self.logged.notified();
                if found() {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(PATIENCE, wait).await.is_err() {
            panic!(
                "no log line with {needles:?} (x{count}); logs:\n{}",
                self.logs()
            );
        }
    }

    /// Reads console lines until one contains every one of `needles`; returns it.
    pub async fn console_until(&mut self, needles: &[&str]) -> String {
        loop {
            let line = self.console_line().await;
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }

    /// Waits (within [`PATIENCE`]) until `/readyz` says ready and every connection it
    /// reports (brokers, Kubernetes) is up.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let ready = async {
            loop {
                if let Ok(r) = client.get(self.url("/readyz")).send().await
                    && r.status().is_success()
                    && let Ok(body) = r.json::<serde_json::Value>().await
                    && body["connections"]
                        .as_object()
                        .is_some_and(|c| c.values().all(|up| up == true))
                {
                    return;
                }
                // Readiness comes from another process; polling it is bounded by PATIENCE.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(PATIENCE, ready).await.is_err() {
            panic!("atalaya never became ready; logs:\n{}", self.logs());
        }
    }

    /// Waits (within [`PATIENCE`]) until the sample `name{labels}` satisfies `test`; returns
    /// the metrics text then. Metrics come from another process: polling is the only way.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        labels: &str,
        test: impl Fn(f64) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let metrics = self.metrics().await;
            if sample(&metrics, name, labels).is_some_and(&test) {
                return metrics;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{name}{labels} never got there; metrics:\n{metrics}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every console line still to come, until the process's stdout closes.
    pub async fn drain_console(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout(PATIENCE, self.stdout.recv()).await {
            lines.push(line);
        }
        lines
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

/// The rules directory of a test instance (created empty).
pub fn rules_dir(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    rules
}

/// `atalaya_connector_errors_total{connector="http",stage=…}`.
pub fn http_errors(metrics: &str, stage: &str) -> Option<f64> {
    sample(
        metrics,
        "atalaya_connector_errors_total",
        &format!(r#"{{connector="http",stage="{stage}"}}"#),
    )
}

/// `atalaya_bus_events_published_total`.
pub fn published(metrics: &str) -> Option<f64> {
    sample(metrics, "atalaya_bus_events_published_total", "")
}
