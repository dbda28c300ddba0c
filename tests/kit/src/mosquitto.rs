//! A real mosquitto for one test: free loopback ports (a plain listener, and a TLS one when
//! configured), persistence in its own directory, an optional password file, SIGKILL on drop
//! or on demand, restarts on the same ports and directory; and the `mosquitto_pub` /
//! `mosquitto_sub` command-line clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{PATIENCE, free_port};

/// TLS listener settings: the CA that signs client certificates, the server's certificate.
#[derive(Clone)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require_client_cert: bool,
}

/// A mosquitto process for one test: a plain listener on `port`, and a TLS listener on
/// `tls_port` when configured.
pub struct Mosquitto {
    dir: TempDir,
    pub port: u16,
    pub tls_port: u16,
    pub tls: Option<ServerTls>,
    /// `password_file` of the broker; anonymous clients are refused when set.
    pub password_file: Option<PathBuf>,
    /// More `mosquitto.conf` lines (`max_queued_messages 0`).
    pub settings: Vec<String>,
    child: Option<Child>,
}

impl Mosquitto {
    /// A broker (not started yet) on free ports, persisting into its own directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port: free_port(),
            tls_port: free_port(),
            tls: None,
            password_file: None,
            settings: Vec::new(),
            child: None,
        }
    }

    /// A started broker, anonymous clients allowed.
    pub async fn started() -> Self {
        let mut broker = Self::new();
        broker.start().await;
        broker
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> String {
        let dir = self.dir.path().display();
        // `user root`: mosquitto started as root would otherwise switch to user `mosquitto`,
        // which cannot read this test's private directory (only as root does it switch).
        let mut config = format!(
            "user root\n\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_on_changes true\n\
             autosave_interval 1\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type all\n\
             listener {} 127.0.0.1\n",
            self.port
        );
        match &self.password_file {
            Some(path) => config.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                path.display()
            )),
            None => config.push_str("allow_anonymous true\n"),
        }
        for line in &self.settings {
            config.push_str(line);
            config.push('\n');
        }
        if let Some(tls) = &self.tls {
            config.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                self.tls_port,
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display(),
                tls.require_client_cert,
            ));
        }
        config
    }

    /// Starts (or restarts) the broker with the current settings, and waits until it accepts
    /// connections.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let config_path = self.dir.path().join("mosquitto.conf");
        std::fs::write(&config_path, self.config()).expect("write mosquitto.conf");
        // Startup errors (a bad config line) go to stderr, before the log file is open.
        let stderr = std::fs::File::create(self.dir.path().join("mosquitto.stderr"))
            .expect("create mosquitto.stderr");
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        self.wait_until_accepting(self.port).await;
        if self.tls.is_some() {
            self.wait_until_accepting(self.tls_port).await;
        }
    }

    /// Waiting on an external process: bounded retries with short sleeps.
    async fn wait_until_accepting(&mut self, port: u16) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("mosquitto exited with {status}:\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mosquitto does not accept connections on {port}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no goodbye to clients, nothing saved beyond what autosave already wrote.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts the broker again, same ports, settings and persistence directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.start().await;
    }

    /// The broker's log file, then what it wrote on stderr.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "{}{}",
            read("mosquitto.log").unwrap_or_default(),
            read("mosquitto.stderr").unwrap_or_default()
        )
    }

    /// Publishes with `mosquitto_pub` on the plain listener; panics if it fails.
    pub fn publish(&self, topic: &str, payload: &str, qos: u8) {
        assert!(
            mosquitto_pub(self.port, topic, payload, qos),
            "mosquitto_pub failed"
        );
    }

    /// Publishes at QoS 1 over MQTT 5 with user properties; panics if it fails.
    pub fn publish_v5(&self, topic: &str, payload: &str, user_properties: &[(&str, &str)]) {
        let mut command = Command::new("mosquitto_pub");
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-V",
                "mqttv5",
            ])
            .args(["-t", topic, "-m", payload, "-q", "1"]);
        for (name, value) in user_properties {
            command.args(["-D", "publish", "user-property", name, value]);
        }
        let published = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(published, "mosquitto_pub -V mqttv5 failed");
    }

    /// Publishes a retained message (the broker keeps it and replays it to every new
    /// subscription); panics if it fails.
    pub fn publish_retained(&self, topic: &str, payload: &str) {
        let published = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-m", payload, "-q", "1", "-r"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(published, "mosquitto_pub -r failed");
    }

    /// Subscribes with `mosquitto_sub` (QoS 1, `topic payload` per line on its stdout) until
    /// `count` messages arrived, or 30 s passed.
    pub fn subscribe(&self, topic: &str, count: usize) -> Child {
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-v",
                "-q",
                "1",
            ])
            .args(["-t", topic, "-C", &count.to_string(), "-W", "30"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub")
    }

    /// [`subscribe`](Self::subscribe), returning once the broker has the subscription (its
    /// log says so), so that nothing published afterwards can be missed.
    pub async fn subscribed(&self, topic: &str, count: usize) -> Child {
        let before = self.subscriptions_logged(topic);
        let child = self.subscribe(topic, count);
        self.wait_for_subscription(topic, before).await;
        child
    }

    /// What the broker retains under `filter` now: topic → payload. A subscriber asks for the
    /// retained messages and for a marker topic; the marker, published once the broker has
    /// the subscription, comes after every retained message, so nothing is missed and
    /// nothing is waited for longer than needed.
    pub async fn retained(&self, filter: &str) -> std::collections::BTreeMap<String, String> {
        let marker = format!("kit/retained-marker/{}", free_port());
        let before = self.subscriptions_logged(&marker);
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-v", "-q", "1", "--retained-only", "-W", "30"])
            .args(["-t", filter, "-t", &marker])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub");
        self.wait_for_subscription(&marker, before).await;
        self.publish(&marker, "end", 1);
        let output = tokio::task::spawn_blocking(|| child.wait_with_output())
            .await
            .expect("mosquitto_sub thread")
            .expect("mosquitto_sub output");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(topic, payload)| (topic.to_owned(), payload.to_owned()))
            .collect()
    }

    /// How many times the broker logged a QoS 1 subscription to `topic`.
    fn subscriptions_logged(&self, topic: &str) -> usize {
        let line = format!("\t{topic} (QoS 1)");
        std::fs::read_to_string(self.dir.path().join("mosquitto.log"))
            .unwrap_or_default()
            .matches(line.as_str())
            .count()
    }

    /// Waits until the broker logged one more subscription to `topic` than `before`.
    async fn wait_for_subscription(&self, topic: &str, before: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.subscriptions_logged(topic) <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the broker never logged the subscription to {topic}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes a password file with one user (through `mosquitto_passwd`), for the next start.
    pub fn set_password(&mut self, user: &str, password: &str) {
        let path = self.dir.path().join("passwords");
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg("-c")
            .arg(&path)
            .arg(user)
            .arg(password)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mosquitto_passwd");
        assert!(status.success(), "mosquitto_passwd failed");
        self.password_file = Some(path);
    }
}

/// What a `mosquitto_sub` child (from [`Mosquitto::subscribe`]) printed, once it has its
/// messages and has ended.
pub async fn printed(mut child: Child) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout
                .read_to_string(&mut out)
                .expect("mosquitto_sub output");
        }
        child.wait().expect("mosquitto_sub");
        out
    })
    .await
    .expect("mosquitto_sub thread")
}

/// Publishes through `mosquitto_pub` on a fresh connection to the broker on `port` (blocking;
/// for a publisher thread). True once the broker accepted it (QoS 1: acknowledged it).
pub fn mosquitto_pub(port: u16, topic: &str, payload: &str, qos: u8) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", topic, "-m", payload, "-q", &qos.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Default for Mosquitto {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
