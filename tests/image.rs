//! The container image, built and run without a container engine: `scripts/image` assembles
//! it with buildah (offline, as root) from the binary under test and writes an OCI archive;
//! the test takes the image back out of that archive, mounts its root filesystem, and runs
//! the image's own entrypoint and command in it through `chroot --userspec=<the image's
//! user>` with the image's environment, as a container runtime would (less the namespaces).
//! It proves the image starts as the non-root user on its embedded defaults (the example
//! rules, the state on its volume directory), finds its CA bundle, and is the image
//! `deploy/Dockerfile` describes (user, entrypoint, command, environment, port, volume,
//! files).
//!
//! The binary is the test build (dynamically linked, debug info), so the image carries its
//! loader and libraries too; `scripts/image` without `--binary` builds the static `dist`
//! binary the release image holds, in minutes — too slow for every test run. Its size is in
//! docs/operations.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use atalaya_test_kit::PATIENCE;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program found on PATH or in the system directories (`chroot` lives in /usr/sbin).
fn program(name: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found: {install} (scripts/test does this)"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// buildah on a storage of the test's own; everything in it is removed on drop.
struct Buildah {
    storage: PathBuf,
}

impl Buildah {
    fn command(&self) -> Command {
        let mut command = Command::new(program("buildah", "apt-get install -y buildah"));
        command
            .arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(self.storage.join("run"));
        command
    }

    fn run(&self, args: &[&str]) -> String {
        run(self.command().args(args)).trim().to_owned()
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        // Unmounts and removes the containers, then the images, so the directory can go.
        let _ = self.command().args(["rm", "--all"]).output();
        let _ = self.command().args(["rmi", "--all", "--force"]).output();
    }
}

/// The final stage of deploy/Dockerfile: its instructions, continuation lines joined.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[start + 1..]
        .iter()
        .map(|l| {
            let (instruction, rest) = l.split_once(' ').unwrap();
            (instruction.to_owned(), rest.trim().to_owned())
        })
        .collect()
}

/// The image config deploy/Dockerfile's final stage sets, in the OCI config's terms.
fn dockerfile_config() -> Value {
    let mut config = serde_json::json!({"Env": []});
    for (instruction, value) in dockerfile_final_stage() {
        match instruction.as_str() {
            "USER" => config["User"] = Value::from(value),
            "WORKDIR" => config["WorkingDir"] = Value::from(value),
            "ENTRYPOINT" | "CMD" => {
                let key = if instruction == "CMD" {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                config[key] = serde_json::from_str(&value).expect("exec form (JSON)");
            }
            "EXPOSE" => config["ExposedPorts"] = Value::from(value),
            "VOLUME" => {
                let paths: Vec<String> = serde_json::from_str(&value).expect("JSON form");
                config["Volumes"] = paths
                    .into_iter()
                    .map(|p| (p, serde_json::json!({})))
                    .collect();
            }
            "ENV" => {
                for pair in value.split_whitespace() {
                    assert!(pair.contains('='), "ENV {pair}: use KEY=value");
                    config["Env"]
                        .as_array_mut()
                        .unwrap()
                        .push(Value::from(pair));
                }
            }
            _ => {}
        }
    }
    config
}

/// Paths the Dockerfile puts in the image's root filesystem (`/rootfs/…` in its build stage).
fn dockerfile_paths() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let mut paths: Vec<String> = text
        .split(|c: char| c.is_whitespace())
        .filter_map(|word| word.strip_prefix("/rootfs/"))
        .map(|p| format!("/{}", p.trim_end_matches('/')))
        .collect();
    paths.sort();
    paths.dedup();
    assert!(paths.len() >= 3, "{paths:?}");
    paths
}

/// A process of the image's binary, run in the image's root through chroot.
struct Contained {
    child: tokio::process::Child,
    /// Every stderr line so far, as they come.
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
}

impl Contained {
    fn start(rootfs: &Path, user: &str, argv: &[String], env: &BTreeMap<String, String>) -> Self {
        let mut child =
            tokio::process::Command::new(program("chroot", "apt-get install coreutils"))
                .arg(format!("--userspec={user}"))
                .arg(rootfs)
                .args(argv)
                .env_clear()
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("chroot");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The next JSON log line with this message (within [`PATIENCE`]), or what was logged
    /// when the process ended or the patience ran out.
    async fn logged(&mut self, message: &str) -> Result<Value, String> {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.recv().await {
                self.log.push(line.clone());
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == message
                {
                    return Some(v);
                }
            }
            None
        })
        .await;
        found
            .ok()
            .flatten()
            .ok_or_else(|| format!("no {message:?}; logged:\n{}", self.log.join("\n")))
    }

    fn uid(&self) -> String {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id().unwrap())).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().to_owned()
    }

    async fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("it stops in time")
            .unwrap()
    }

    async fn exit(mut self) -> (std::process::ExitStatus, String) {
        while let Some(line) = self.lines.recv().await {
            self.log.push(line);
        }
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("it exits in time")
            .unwrap();
        (status, self.log.join("\n"))
    }
}

fn size_of_tree(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| size_of_tree(&e.unwrap().path()))
            .sum()
    } else {
        meta.len()
    }
}

#[tokio::test]
async fn the_image_builds_without_a_container_engine_and_runs_as_its_user_with_its_ca_bundle() {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "buildah builds from scratch offline, and chroot runs, as root only (scripts/test runs as root)"
    );
    let work = tempfile::tempdir().unwrap();
    let buildah = Buildah {
        storage: work.path().join("storage"),
    };
    let archive = work.path().join("atalaya.oci.tar");
    let built = run(Command::new(repo().join("scripts/image"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_atalaya"))
        .arg("--output")
        .arg(&archive)
        .args(["--tag", "localhost/atalaya:test", "--storage"])
        .arg(&buildah.storage));
    eprintln!("{built}");
    assert!(
        built.contains(" unpacked, "),
        "the size is printed: {built}"
    );

    // The image as a runtime gets it: out of the archive.
    let container = buildah.run(&[
        "from",
        "--quiet",
        &format!("oci-archive:{}", archive.display()),
    ]);
    let rootfs = PathBuf::from(buildah.run(&["mount", &container]));
    let inspected: Value =
        serde_json::from_str(&buildah.run(&["inspect", "--type", "container", &container]))
            .unwrap();
    let config = &inspected["OCIv1"]["config"];

    // What deploy/Dockerfile says, the image has.
    let wanted = dockerfile_config();
    for key in ["User", "WorkingDir", "Entrypoint", "Cmd", "Volumes"] {
        assert_eq!(config[key], wanted[key], "{key}: image vs Dockerfile");
    }
    let port = wanted["ExposedPorts"].as_str().unwrap();
    let ports: Vec<&String> = config["ExposedPorts"].as_object().unwrap().keys().collect();
    assert_eq!(ports, [&format!("{port}/tcp")], "ExposedPorts");
    let image_env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for pair in wanted["Env"].as_array().unwrap() {
        assert!(
            image_env.contains(&pair.as_str().unwrap()),
            "Env {pair}: {image_env:?}"
        );
    }
    for path in dockerfile_paths() {
        assert!(
            rootfs.join(path.trim_start_matches('/')).exists(),
            "{path} is missing from the image"
        );
    }
    let user = config["User"].as_str().unwrap().to_owned();
    assert_eq!(user, "65532:65532");
    let state = config["Volumes"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let meta = std::fs::metadata(rootfs.join(state.trim_start_matches('/'))).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        format!("{}:{}", meta.uid(), meta.gid()),
        user,
        "{state} belongs to the user"
    );
    assert_eq!(
        config["WorkingDir"], "/",
        "chroot runs in /, as the image says"
    );

    // The image holds the binary and the little it needs; nothing else.
    let entrypoint: Vec<String> = serde_json::from_value(config["Entrypoint"].clone()).unwrap();
    let cmd: Vec<String> = serde_json::from_value(config["Cmd"].clone()).unwrap();
    let binary = rootfs.join(entrypoint[0].trim_start_matches('/'));
    let libraries: u64 = ["lib", "lib64", "usr/lib"]
        .iter()
        .map(|d| rootfs.join(d))
        .filter(|d| d.exists())
        .map(|d| size_of_tree(&d))
        .sum();
    let total = size_of_tree(&rootfs);
    let rest = total - std::fs::metadata(&binary).unwrap().len() - libraries;
    eprintln!(
        "image root: {:.1} MiB (binary {:.1} MiB, its libraries {:.1} MiB, the rest {:.2} MiB)",
        total as f64 / 1048576.0,
        std::fs::metadata(&binary).unwrap().len() as f64 / 1048576.0,
        libraries as f64 / 1048576.0,
        rest as f64 / 1048576.0
    );
    assert!(rest < 1024 * 1024, "besides the binary, {rest} bytes");

    // Its binary runs as its user.
    let env: BTreeMap<String, String> = image_env
        .iter()
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let version = run(Command::new(program("chroot", "coreutils"))
        .arg(format!("--userspec={user}"))
        .arg(&rootfs)
        .arg(&entrypoint[0])
        .arg("--version")
        .env_clear()
        .envs(&env));
    assert_eq!(
        version.trim(),
        format!("atalaya {}", env!("CARGO_PKG_VERSION"))
    );

    // Its entrypoint and command, on embedded defaults, with its environment (but for the
    // address: loopback only, any port): the example rules load, the state is written on
    // the volume's directory by the user, it answers, and stops cleanly.
    let mut loopback = env.clone();
    loopback.insert("ATALAYA__HTTP__LISTEN".to_owned(), "127.0.0.1:0".to_owned());
    let argv: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    let mut service = Contained::start(&rootfs, &user, &argv, &loopback);
    let rules = service.logged("Rules loaded.").await.unwrap();
    assert_eq!(rules["dir"], "examples/rules", "{rules}");
    assert!(rules["rules"].as_u64().unwrap() > 5, "{rules}");
    let listening = service.logged("HTTP API listening.").await.unwrap();
    assert_eq!(service.uid(), user.split(':').next().unwrap());
    let address = listening["address"].as_str().unwrap();
    let ready = reqwest::get(format!("http://{address}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let event = reqwest::Client::new()
        .post(format!(
            "http://{address}/api/v1/events/zigbee2mqtt/leak_kitchen"
        ))
        .body(r#"{"water_leak": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(event.status(), 202, "{:?}", event.text().await);
    assert!(service.stop().await.success());
    let store = std::fs::read_dir(rootfs.join(state.trim_start_matches('/')))
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_string_lossy().ends_with(".redb"))
        .expect("the state store on the volume's directory");
    assert_eq!(store.metadata().unwrap().uid(), 65532);

    // The CA bundle: MQTT over TLS with no tls.ca_file reads the system's at start (and
    // refuses to start without one). The broker address is a closed loopback port.
    std::fs::write(
        rootfs.join("etc/atalaya-tls.yaml"),
        format!(
            "mqtt:\n  host: 127.0.0.1\n  port: {}\n  tls: {{}}\n",
            atalaya_test_kit::free_port()
        ),
    )
    .unwrap();
    let tls_argv: Vec<String> = [
        entrypoint[0].as_str(),
        "run",
        "-c",
        "/etc/atalaya-tls.yaml",
        "--log-format",
        "json",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut service = Contained::start(&rootfs, &user, &tls_argv, &loopback);
    service.logged("HTTP API listening.").await.unwrap();
    assert!(service.stop().await.success());
    // Without it, the same start fails, naming what is missing: the run above used it.
    let bundle = rootfs.join("etc/ssl/certs/ca-certificates.crt");
    std::fs::rename(&bundle, rootfs.join("etc/ssl/certs/moved-away")).unwrap();
    let (status, log) = Contained::start(&rootfs, &user, &tls_argv, &loopback)
        .exit()
        .await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("no system CA bundle was found"), "{log}");
}
