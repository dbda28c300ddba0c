//! A real Alertmanager for one test (Debian's `prometheus-alertmanager`, which
//! `scripts/test` installs): a configuration file, its own storage directory, a free
//! loopback port, clustering off, SIGKILL on drop. Differential tests feed it and atalaya
//! the same alerts and routing file and compare what each answers or sends.

use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use crate::{free_port, wait_for_port};

pub struct Alertmanager {
    dir: TempDir,
    pub port: u16,
    child: Child,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` (an Alertmanager configuration file's text) and
    /// waits until it accepts connections.
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("alertmanager.yml");
        std::fs::write(&file, config).expect("write the Alertmanager configuration");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("a log file");
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "prometheus-alertmanager (apt-get install -y prometheus-alertmanager; \
                 scripts/test does this)",
            );
        wait_for_port(port).await;
        Self { dir, port, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What Alertmanager logged, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
