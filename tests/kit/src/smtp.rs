//! A real SMTP server process for one test (Debian's python3-aiosmtpd, run by `smtpd.py`
//! beside this file) on a free loopback port, storing what it receives in a Maildir that the
//! tests read back.
//!
//! # Layout
//! - this file: [`Smtpd`], and reading the Maildir.
//! - `smtpd.py`: the server (STARTTLS or implicit TLS, optional AUTH, headers saying
//!   whether the session was encrypted and who logged in).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::PATIENCE as WAIT;

/// How the server is secured.
pub enum ServerTls<'a> {
    None,
    /// STARTTLS offered and required before MAIL.
    StartTls {
        cert: &'a Path,
        key: &'a Path,
    },
    /// TLS from the first byte.
    Implicit {
        cert: &'a Path,
        key: &'a Path,
    },
}

/// An aiosmtpd process for one test.
pub struct Smtpd {
    dir: TempDir,
    pub port: u16,
    child: Child,
}

impl Smtpd {
    /// Starts the server; with `auth`, that login and password are required.
    pub async fn start(tls: ServerTls<'_>, auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/smtpd.py");
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--maildir")
            .arg(dir.path().join("Maildir"));
        match tls {
            ServerTls::None => {}
            ServerTls::StartTls { cert, key } => {
                command.arg("--tls").arg(cert).arg(key);
            }
            ServerTls::Implicit { cert, key } => {
                command.arg("--tls").arg(cert).arg(key).arg("--implicit");
            }
        }
        if let Some((user, password)) = auth {
            let file = dir.path().join("password");
            std::fs::write(&file, password).expect("write the password file");
            command
                .args(["--user", user])
                .arg("--password-file")
                .arg(file);
        }
        let stderr = std::fs::File::create(dir.path().join("smtpd.log")).expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start python3 (apt-get install python3-aiosmtpd)");
        let mut server = Self { dir, port, child };
        server.wait_until_accepting().await;
        server
    }

    /// Waiting on an outside process: bounded retries with short sleeps.
    async fn wait_until_accepting(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("smtpd.py exited with {status}:\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "smtpd.py does not accept connections:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtpd.log")).unwrap_or_default()
    }

    /// Every mail delivered so far, decoded by the server, oldest first.
    pub fn decoded(&self) -> Vec<serde_json::Value> {
        let dir = self.dir.path().join("decoded");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
            .collect()
    }

    /// Every mail delivered so far as stored in the Maildir (`new/`), oldest first.
    pub fn mails(&self) -> Vec<String> {
        let new = self.dir.path().join("Maildir/new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| {
                        let time = e
                            .metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(std::time::UNIX_EPOCH);
                        (time, e.path())
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| std::fs::read_to_string(path).expect("read a mail"))
            .collect()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of header `name` in a mail (unfolded), if present.
pub fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\n\n").next().unwrap_or_default();
    let mut value: Option<String> = None;
    let prefix = format!("{}:", name.to_ascii_lowercase());
    for line in head.lines() {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if line.to_ascii_lowercase().starts_with(&prefix) {
            value = Some(line[prefix.len()..].trim().to_owned());
        }
    }
    value
}
