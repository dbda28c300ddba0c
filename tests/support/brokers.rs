//! Real brokers for end-to-end tests: mosquitto and nats-server processes on free loopback
//! ports, with their own data directories, killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; a race with another process is possible but
/// unlikely on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `port` accepts connections: the broker is up. Waiting on another process is
/// the one place a poll is the right tool; it is bounded.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs a broker process and reaps it.
fn stop(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A mosquitto broker.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts anonymous mosquitto with persistence in `dir`.
    pub fn start(dir: &Path) -> Self {
        let mut broker = Self {
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        broker.restart();
        broker
    }

    /// Starts (again) on the same port with the same persistence directory.
    pub fn restart(&mut self) {
        let config = self.dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "user root\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\n",
                self.port,
                self.dir.display()
            ),
        )
        .expect("mosquitto.conf");
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        stop(&mut self.child);
    }

    /// Publishes with `mosquitto_pub`.
    pub fn publish(&self, topic: &str, payload: &str, qos: u8) {
        let status = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-q",
                &qos.to_string(),
            ])
            .args(["-t", topic, "-m", payload])
            .status()
            .expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed");
    }

    /// Subscribes with `mosquitto_sub` and returns the first `count` messages (`topic payload`).
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
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A nats-server with JetStream.
pub struct NatsServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start(dir: &Path) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn restart(&mut self) {
        let child = Command::new("/usr/sbin/nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("jetstream"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn kill(&mut self) {
        stop(&mut self.child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
