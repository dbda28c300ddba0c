//! A real nats-server for one test: a free loopback port, JetStream with a store directory of
//! its own, SIGKILL on drop or on demand, restart on the same port and store; and
//! [`NatsCluster`], several routed into one JetStream cluster.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// A nats-server process for one test.
pub struct NatsServer {
    dir: TempDir,
    port: u16,
    extra_config: String,
    child: Option<Child>,
}

impl NatsServer {
    /// A server (not started yet) on a free port, with `extra_config` appended to its config
    /// file (`authorization { … }`, `tls { … }`).
    pub fn new(extra_config: &str) -> Self {
        // Port 0 picks a free port; it is released for the server to take.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port,
            extra_config: extra_config.to_owned(),
            child: None,
        }
    }

    /// A started server with JetStream and no auth.
    pub async fn started() -> Self {
        Self::started_with("").await
    }

    /// A started server with `extra_config`.
    pub async fn started_with(extra_config: &str) -> Self {
        let mut server = Self::new(extra_config);
        server.start().await;
        server
    }

    /// Replaces the extra config (before [`NatsServer::start`]); for configs that name files
    /// made in [`NatsServer::dir`].
    pub fn set_extra_config(&mut self, extra_config: &str) {
        extra_config.clone_into(&mut self.extra_config);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The directory holding the config, the store and the log: put test files here too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server (same port and store every time) and waits until it accepts
    /// connections.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let store = self.dir().join("store");
        let config = self.dir().join("nats.conf");
        let text = format!(
            "listen: \"127.0.0.1:{}\"\njetstream {{\n  store_dir: \"{}\"\n}}\n{}\n",
            self.port,
            store.display(),
            self.extra_config
        );
        std::fs::write(&config, text).expect("write the nats-server config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("nats.log"))
            .expect("open the nats-server log");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (is it installed?)");
        self.child = Some(child);
        self.wait_until_accepting().await;
    }

    async fn wait_until_accepting(&mut self) {
        // Waiting on an outside process: bounded retries.
        for _ in 0..200 {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("nats-server exited with {status}:\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server does not accept connections:\n{}", self.log());
    }

    /// Kills the server with SIGKILL (no goodbye to clients, no clean store shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects a test client (publisher, subscriber, JetStream admin) to `url`.
pub async fn client(url: &str) -> async_nats::Client {
    async_nats::connect(url)
        .await
        .expect("test client connects")
}

/// A JetStream cluster of nats-server processes on loopback (for replicated streams, R3),
/// each with its own port, cluster port and store; killed when dropped.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// `size` servers routed to each other (not advertising each other to clients, so a
    /// client reaches only the servers it was given — through a proxy, say), started, and
    /// ready once every one accepts
    /// clients (the cluster then elects its JetStream leader by itself; a client asking for
    /// a stream before that gets a retryable error).
    pub async fn started(size: usize) -> Self {
        let cluster_ports: Vec<u16> = (0..size).map(|_| crate::free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in cluster_ports.iter().enumerate() {
            let config = format!(
                "server_name: n{i}\ncluster {{\n  name: atalaya-test\n  listen: \"127.0.0.1:{port}\"\n  no_advertise: true\n  routes: [{}]\n}}\n",
                routes.join(", ")
            );
            let mut node = NatsServer::new(&config);
            node.start().await;
            nodes.push(node);
        }
        Self { nodes }
    }

    /// Every node's client URL, comma-separated, as a client's server list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }
}
