//! The deployment manifests against the binary: every kustomize overlay builds and validates
//! against the Kubernetes schemas (offline, `kubernetes-validate`); the config each overlay
//! mounts is accepted by `atalaya check` together with its rules and routing files, at the
//! paths the Deployment mounts them; ports, probe paths and the metrics endpoint are the ones
//! the binary serves; the Prometheus rules pass `promtool` and, like the Grafana dashboard,
//! name only metrics the code defines; the Dockerfile agrees with the Deployment; what
//! kube-prometheus-stack and Argo CD need is on the objects they read; the Prometheus config
//! in docs/routing.md pushes alerts with the token. The test reads both sides, so they
//! cannot drift apart.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use atalaya_test_kit::copy_dir;
use atalaya_test_kit::yaml::to_json;
use serde_json::{Map, Value};
use support::{Atalaya, Options};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn overlays() -> Vec<PathBuf> {
    let dir = repo().join("deploy/kustomize/overlays");
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kustomize/overlays")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    overlays.sort();
    assert!(overlays.len() >= 2, "overlays: {overlays:?}");
    overlays
}

/// Runs a tool the test script installs; a missing one fails with how to get it.
fn tool(name: &str, install: &str) -> Command {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([repo().join("target/tools/venv/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    match found {
        Some(path) => Command::new(path),
        None => panic!("`{name}` not found: {install} (scripts/test does this)"),
    }
}

fn kustomize(overlay: &Path) -> String {
    let out = tool("kubectl", "kubectl with kustomize v5 is needed")
        .arg("kustomize")
        .arg(overlay)
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}:\n{}",
        overlay.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 manifests")
}

/// YAML (one or many documents) as JSON values.
fn documents(text: &str) -> Vec<Value> {
    yaml_rust2::YamlLoader::load_from_str(text)
        .expect("valid YAML")
        .iter()
        .map(to_json)
        .filter(|v| !v.is_null())
        .collect()
}

/// atalaya's workload: its Deployment (one replica) or StatefulSet (`ha` overlay).
fn workload(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            (d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
                && d["metadata"]["name"] == "atalaya"
        })
        .collect();
    assert_eq!(found.len(), 1, "one atalaya Deployment or StatefulSet");
    found[0]
}

/// The object of `kind` named `name`.
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = find(docs, kind);
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

/// The names of every metric the code defines (`"atalaya_…"` literals in the sources).
fn metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["src", "bus/src", "rules/src", "connectors/src"]
        .iter()
        .map(|d| repo().join(d))
        .collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split('"').skip(1).step_by(2) {
                if part.starts_with("atalaya_")
                    && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    names.insert(part.to_owned());
                }
            }
        }
    }
    names
}

/// `atalaya_…` names used in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("atalaya_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_overlay_builds_and_validates_against_the_kubernetes_schemas() {
    for overlay in overlays() {
        let manifests = kustomize(&overlay);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &manifests).unwrap();
        let out = tool(
            "kubernetes-validate",
            "pip install kubernetes-validate into target/tools/venv",
        )
        .args(["--strict", "--quiet", "-k", "1.31"])
        .arg(file.path())
        .output()
        .expect("kubernetes-validate");
        let report = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}:\n{report}", overlay.display());
        // Only the Prometheus Operator's kinds have no schema here; they are checked below.
        for line in report
            .lines()
            .filter(|l| l.contains("Couldn't find schema"))
        {
            assert!(
                line.contains("monitoring.coreos.com"),
                "{}: {line}",
                overlay.display()
            );
        }
    }
}

/// The pod's view of an overlay: its config, mounted files, ports and probes.
struct Pod {
    docs: Vec<Value>,
    container: Value,
    /// mountPath → the volume's source (`configMap`, `secret`, `persistentVolumeClaim`…).
    mounts: Vec<(String, Value)>,
    config_path: String,
}

impl Pod {
    fn of(overlay: &Path) -> Self {
        let docs = documents(&kustomize(overlay));
        let deployment = workload(&docs).clone();
        let spec = &deployment["spec"]["template"]["spec"];
        // A StatefulSet's claim templates are volumes of its pods too.
        let mut volumes = spec["volumes"].as_array().unwrap().clone();
        for template in deployment["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = template["metadata"]["name"].clone();
            volumes.push(serde_json::json!({
                "name": name,
                "persistentVolumeClaim": {"claimName": name, "template": true},
            }));
        }
        let container = spec["containers"][0].clone();
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let config_path = args
            .windows(2)
            .find(|w| w[0] == "--config" || w[0] == "-c")
            .map(|w| w[1].to_owned())
            .expect("--config in the container args");
        let mounts = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let volume = volumes
                    .iter()
                    .find(|v| v["name"] == m["name"])
                    .expect("a volume for every mount");
                (m["mountPath"].as_str().unwrap().to_owned(), volume.clone())
            })
            .collect();
        Self {
            docs,
            container,
            mounts,
            config_path,
        }
    }

    /// The volume mounted at `dir`.
    fn volume_at(&self, dir: &str) -> &Value {
        &self
            .mounts
            .iter()
            .find(|(path, _)| path == dir)
            .unwrap_or_else(|| panic!("nothing is mounted at {dir}"))
            .1
    }

    /// The data of the ConfigMap mounted at `dir` (generated names carry a hash suffix).
    fn config_map_at(&self, dir: &str) -> &Map<String, Value> {
        let name = self.volume_at(dir)["configMap"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{dir} is not a ConfigMap"));
        find(&self.docs, "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("ConfigMap {name} is not in the manifests"))["data"]
            .as_object()
            .unwrap()
    }

    /// Writes every mounted ConfigMap and a fake file for every secret key the config names
    /// under `root`, as the kubelet would lay them out; returns the config's path there.
    fn materialize(&self, root: &Path) -> PathBuf {
        let config_dir = parent(&self.config_path);
        let config = self.config_map_at(config_dir)[file_name(&self.config_path)]
            .as_str()
            .unwrap()
            .to_owned();
        for (dir, volume) in &self.mounts {
            let target = root.join(dir.trim_start_matches('/'));
            std::fs::create_dir_all(&target).unwrap();
            if volume.get("configMap").is_some() {
                for (name, text) in self.config_map_at(dir) {
                    std::fs::write(target.join(name), text.as_str().unwrap()).unwrap();
                }
            }
        }
        // Every absolute path in the config now points under `root`; secret files it names
        // get a fake secret, as if the Secret were there.
        let mut config = config;
        for (dir, _) in &self.mounts {
            config = config.replace(dir, &format!("{}{dir}", root.display()));
        }
        for line in config.lines() {
            if let Some((key, value)) = line.trim().split_once(':')
                && key.ends_with("_file")
            {
                let path = PathBuf::from(value.trim());
                assert!(
                    path.starts_with(root),
                    "{key} names {path:?}, which is not mounted"
                );
                std::fs::write(&path, "fake-secret-for-the-test\n").unwrap();
            }
        }
        let path = root.join(self.config_path.trim_start_matches('/'));
        std::fs::write(&path, config).unwrap();
        path
    }

    fn config(&self) -> Value {
        let text = self.config_map_at(parent(&self.config_path))[file_name(&self.config_path)]
            .as_str()
            .unwrap()
            .to_owned();
        documents(&text).remove(0)
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("/", |(dir, _)| dir)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

#[test]
fn config_rules_and_routing_mounted_by_each_overlay_pass_check() {
    for overlay in overlays() {
        let pod = Pod::of(&overlay);
        let config = pod.config();
        // The paths the config names are where the Deployment mounts things.
        let rules = config["rules"]["dir"].as_str().expect("rules.dir");
        assert!(pod.volume_at(rules).get("configMap").is_some(), "{rules}");
        let routing = config["routing"]["file"].as_str().expect("routing.file");
        assert!(
            pod.config_map_at(parent(routing))
                .contains_key(file_name(routing)),
            "{routing}"
        );
        let state = config["state"]["dir"].as_str().expect("state.dir");
        assert!(
            pod.volume_at(state).get("persistentVolumeClaim").is_some(),
            "the state lives on the volume"
        );

        // Every secret file the config or the routing policy names is in the mounted Secret.
        let secret_dirs: Vec<&str> = pod
            .mounts
            .iter()
            .filter(|(_, v)| v.get("secret").is_some())
            .map(|(dir, _)| dir.as_str())
            .collect();
        let routing_text = pod.config_map_at(parent(routing))[file_name(routing)]
            .as_str()
            .unwrap()
            .to_owned();
        let config_text = pod.config_map_at(parent(&pod.config_path))[file_name(&pod.config_path)]
            .as_str()
            .unwrap()
            .to_owned();
        for line in config_text.lines().chain(routing_text.lines()) {
            let line = line.trim().trim_start_matches("- ");
            if let Some((key, value)) = line.split_once(':')
                && key.ends_with("_file")
                && !key.starts_with('#')
            {
                let value = value.split('#').next().unwrap().trim();
                assert!(
                    secret_dirs
                        .iter()
                        .any(|d| value.starts_with(&format!("{d}/"))),
                    "{}: {key} names {value}, outside the mounted Secret",
                    overlay.display()
                );
            }
        }

        let root = tempfile::tempdir().unwrap();
        let config_file = pod.materialize(root.path());
        let out = support::std_command(root.path())
            .arg("check")
            .arg(&config_file)
            .arg(root.path().join(rules.trim_start_matches('/')))
            .output()
            .expect("atalaya check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: atalaya check said:\n{stdout}",
            overlay.display()
        );
        assert!(stdout.contains("ok: routing"), "{stdout}");
    }
}

#[test]
fn ports_match_between_config_container_and_service() {
    for overlay in overlays() {
        let pod = Pod::of(&overlay);
        let listen = pod.config()["http"]["listen"]
            .as_str()
            .expect("http.listen")
            .to_owned();
        let port: u16 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
        let container_port = &pod.container["ports"][0];
        assert_eq!(container_port["containerPort"], port, "{listen}");
        let port_name = container_port["name"].as_str().unwrap();
        let service = named(&pod.docs, "Service", "atalaya");
        assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(
                pod.container[probe]["httpGet"]["port"], port_name,
                "{probe}"
            );
        }
        for monitor in find(&pod.docs, "ServiceMonitor") {
            assert_eq!(
                monitor["spec"]["endpoints"][0]["port"],
                service["spec"]["ports"][0]["name"]
            );
        }
        for policy in find(&pod.docs, "NetworkPolicy") {
            assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], port);
        }
    }
}

#[tokio::test]
async fn the_minimal_overlay_serves_its_probe_paths() {
    let overlay = repo().join("deploy/kustomize/overlays/minimal");
    let pod = Pod::of(&overlay);
    let root = tempfile::tempdir().unwrap();
    let config_file = pod.materialize(root.path());
    let atalaya = Atalaya::start_in(
        root,
        Options {
            config_file: Some(config_file),
            ..Options::default()
        },
    )
    .await;
    atalaya.wait_ready().await;
    let mut paths: Vec<String> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .map(|p| {
            pod.container[*p]["httpGet"]["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    paths.extend(find(&pod.docs, "ServiceMonitor").iter().map(|m| {
        m["spec"]["endpoints"][0]["path"]
            .as_str()
            .unwrap()
            .to_owned()
    }));
    paths.push("/metrics".to_owned());
    for path in paths {
        let response = reqwest::get(atalaya.url(&path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[test]
fn the_pod_runs_locked_down_and_the_role_only_reads() {
    for overlay in overlays() {
        let pod = Pod::of(&overlay);
        let security = &pod.container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        let deployment = workload(&pod.docs);
        let spec = &deployment["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(spec["runAsNonRoot"], true);
        assert_eq!(spec["seccompProfile"]["type"], "RuntimeDefault");
        for role in find(&pod.docs, "ClusterRole") {
            for rule in role["rules"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    assert!(
                        ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                        "{rule}"
                    );
                }
                for resource in rule["resources"].as_array().unwrap() {
                    assert!(
                        ["nodes", "pods", "events", "leases"].contains(&resource.as_str().unwrap()),
                        "{rule}"
                    );
                }
            }
        }
    }
    // The image runs as the same user, on the same port.
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let pod = Pod::of(&repo().join("deploy/kustomize/overlays/minimal"));
    let user = &workload(&pod.docs)["spec"]["template"]["spec"]["securityContext"]["runAsUser"];
    assert!(
        dockerfile.contains(&format!("\nUSER {user}:")),
        "Dockerfile USER differs from runAsUser {user}"
    );
    let port = &pod.container["ports"][0]["containerPort"];
    assert!(dockerfile.contains(&format!("\nEXPOSE {port}\n")));
}

#[test]
fn prometheus_rules_and_the_dashboard_use_metrics_the_code_defines() {
    let known = metric_names();
    let rule_file = repo().join("deploy/kustomize/components/prometheus-rule/prometheusrule.yaml");
    let rule = documents(&std::fs::read_to_string(&rule_file).unwrap()).remove(0);
    let groups = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        groups.path(),
        serde_json::to_string(&serde_json::json!({"groups": rule["spec"]["groups"]})).unwrap(),
    )
    .unwrap();
    let out = tool("promtool", "apt-get install -y prometheus")
        .args(["check", "rules"])
        .arg(groups.path())
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );
    let mut used = Vec::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            used.extend(names_in(r["expr"].as_str().unwrap()));
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/dashboards/atalaya.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(names_in(target["expr"].as_str().unwrap()));
        }
    }
    assert!(used.len() > 20, "{used:?}");
    let unknown: Vec<&String> = used.iter().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "metrics the code does not define: {unknown:?}"
    );
}

#[test]
fn rule_files_in_the_manifests_are_the_example_pack_s() {
    // Kustomize cannot reach outside its folder, so the manifests carry copies of the example
    // rules (tested by `atalaya test examples/rules`); they must not drift apart.
    let examples = repo().join("examples/rules");
    let mut checked = 0;
    for dir in [
        "deploy/kustomize/base/rules",
        "deploy/kustomize/overlays/homelab/rules",
    ] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let body = |p: &Path| -> String {
                let text = std::fs::read_to_string(p).unwrap();
                // The first line points editors at the schema, relative to the file.
                text.split_once('\n')
                    .map_or(text.clone(), |(_, rest)| rest.to_owned())
            };
            let example = examples.join(path.file_name().unwrap());
            assert!(example.is_file(), "{} has no example", path.display());
            assert_eq!(body(&path), body(&example), "{} differs", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 5);
}

#[test]
fn every_overlay_guards_its_api_with_a_token_and_a_narrow_network_policy() {
    for overlay in overlays() {
        let pod = Pod::of(&overlay);
        let config = pod.config();
        assert!(
            config["http"]["token_file"].as_str().is_some(),
            "{}: http.token_file is not set; atalaya refuses an open API",
            overlay.display()
        );
        let policy = one(&pod.docs, "NetworkPolicy");
        for rule in policy["spec"]["ingress"].as_array().unwrap() {
            let from = rule["from"].as_array().map_or(0, Vec::len);
            assert!(
                from > 0,
                "{}: an ingress rule admits every namespace",
                overlay.display()
            );
        }
    }
}

/// The PrometheusRule's groups as a Prometheus rule file (JSON is YAML) at `path`.
fn write_prometheus_rules(path: &Path) -> Vec<String> {
    let file = repo().join("deploy/kustomize/components/prometheus-rule/prometheusrule.yaml");
    let rule = documents(&std::fs::read_to_string(&file).unwrap()).remove(0);
    let groups = &rule["spec"]["groups"];
    std::fs::write(
        path,
        serde_json::to_string(&serde_json::json!({ "groups": groups })).unwrap(),
    )
    .unwrap();
    groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_shipped_alert_passes_its_promtool_unit_tests() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = write_prometheus_rules(&dir.path().join("rules.yaml"));
    let tests_file = "deploy/kustomize/components/prometheus-rule/prometheusrule.test.yaml";
    let text = std::fs::read_to_string(repo().join(tests_file)).unwrap();
    std::fs::write(dir.path().join("tests.yaml"), &text).unwrap();
    let out = tool("promtool", "apt-get install -y prometheus")
        .args(["test", "rules", "tests.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );
    // Every alert is tested firing (a case expecting it) and quiet (a case expecting none).
    let tests = documents(&text).remove(0);
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for alert in &alerts {
        let of_alert = || cases.iter().filter(|c| c["alertname"] == alert.as_str());
        assert!(
            of_alert().any(|c| !c["exp_alerts"].as_array().unwrap().is_empty()),
            "{alert}: no promtool test expects it to fire ({tests_file})"
        );
        assert!(
            of_alert().any(|c| c["exp_alerts"].as_array().unwrap().is_empty()),
            "{alert}: no promtool test expects it quiet ({tests_file})"
        );
    }
}

/// A GET on Prometheus's HTTP API, answered `data`.
async fn prometheus_api(base: &str, path: &str) -> Value {
    let body: Value = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["data"].clone()
}

/// A real Prometheus on a free loopback port, reading `prometheus.yml` in `dir` (its data
/// there too); returns the process (killed on drop) and its base URL.
fn start_prometheus(dir: &Path) -> (tokio::process::Child, String) {
    let port = atalaya_test_kit::free_port();
    let prometheus =
        tokio::process::Command::from(tool("prometheus", "apt-get install -y prometheus"))
            .arg("--config.file=prometheus.yml")
            // Alerts evaluated before the notifier knows its targets are dropped, and sent again
            // only after this delay (1m by default).
            .arg("--rules.alert.resend-delay=1s")
            .arg("--storage.tsdb.path=data")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus");
    (prometheus, format!("http://127.0.0.1:{port}"))
}

/// A real Prometheus scrapes a healthy atalaya (an MQTT broker connected, a routing policy
/// with a receiver) every second and evaluates the shipped alerts every second: none may even
/// be pending, and every metric an alert reads must be there from the start.
#[tokio::test]
async fn a_real_prometheus_sees_a_healthy_install_and_no_shipped_alert_fires() {
    use atalaya_test_kit::mosquitto::Mosquitto;

    let broker = Mosquitto::started().await;
    let atalaya = Atalaya::start_with(Options {
        config: format!(
            "mqtt:\n  host: 127.0.0.1\n  port: {}\n  subscriptions:\n    - topic: home/#\n",
            broker.port
        ),
        routing: Some(
            "route:\n  receiver: family\nreceivers:\n  - name: family\n    webhook_configs:\n      - url: http://127.0.0.1:9/hook\n"
                .to_owned(),
        ),
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;

    let dir = tempfile::tempdir().unwrap();
    let alerts = write_prometheus_rules(&dir.path().join("rules.yaml"));
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: atalaya\n    static_configs: [{{targets: ['{}']}}]\n",
            atalaya.addr
        ),
    )
    .unwrap();
    let (mut prometheus, base) = start_prometheus(dir.path());

    // Scraped with the broker connected, then the alerts evaluated on that scrape.
    let scraped = tokio::time::timeout(atalaya_test_kit::PATIENCE, async {
        loop {
            if let Ok(response) = reqwest::get(format!(
                "{base}/api/v1/query?query=atalaya_connector_connected"
            ))
            .await
                && let Ok(body) = response.json::<Value>().await
                && body["data"]["result"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|s| s["metric"]["connector"] == "mqtt" && s["value"][1] == "1")
                })
            {
                return std::time::SystemTime::now();
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("Prometheus scrapes atalaya with MQTT connected");
    let evaluated_after = |groups: &Value| {
        groups["groups"].as_array().unwrap().iter().all(|g| {
            g["lastEvaluation"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| {
                    std::time::SystemTime::from(t) > scraped + std::time::Duration::from_secs(1)
                })
        })
    };
    tokio::time::timeout(atalaya_test_kit::PATIENCE, async {
        while !evaluated_after(&prometheus_api(&base, "/api/v1/rules").await) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("Prometheus evaluates the rules after that scrape");

    let firing = prometheus_api(&base, "/api/v1/alerts").await;
    assert_eq!(
        firing["alerts"].as_array().map(Vec::len),
        Some(0),
        "a healthy install has alerts pending or firing: {firing}"
    );

    // Every metric the alerts read is there at the start, but the failures counted by reason
    // (born with the failure; the alert compares them with `sent`, which is there).
    let metrics = atalaya.metrics().await;
    let rules: Value = prometheus_api(&base, "/api/v1/rules").await;
    let mut read = BTreeSet::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let query = rule["query"].as_str().unwrap();
            read.extend(
                query
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("atalaya_") || w.starts_with("process_"))
                    .map(str::to_owned),
            );
        }
    }
    read.remove("atalaya_notifications_failed_total");
    assert!(read.len() >= 7, "{read:?}");
    for name in &read {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "{name} has no series at start; alerts: {alerts:?}"
        );
    }
    assert!(
        !metrics.contains("atalaya_connector_connected{connector=\"http\"}"),
        "the HTTP API has no connection to report"
    );
    prometheus.kill().await.ok();
}

/// kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules by its
/// `release` label: the homelab overlay carries it on both (the `kube-prometheus-stack`
/// component), and changing the one value the component documents renames it on both.
#[test]
fn the_service_monitor_and_the_prometheus_rule_carry_kube_prometheus_stack_s_release_label() {
    let release_labels = |overlay: &Path| -> Vec<(String, Value)> {
        let docs = documents(&kustomize(overlay));
        ["ServiceMonitor", "PrometheusRule"]
            .iter()
            .map(|kind| {
                (
                    (*kind).to_owned(),
                    one(&docs, kind)["metadata"]["labels"]["release"].clone(),
                )
            })
            .collect()
    };
    let homelab = repo().join("deploy/kustomize/overlays/homelab");
    for (kind, release) in release_labels(&homelab) {
        assert_eq!(release, "kube-prometheus-stack", "{kind} in {homelab:?}");
    }

    // Another release name, as the component's comment says to set it.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("deploy/kustomize"), copy.path());
    let component = copy
        .path()
        .join("components/kube-prometheus-stack/kustomization.yaml");
    let text = std::fs::read_to_string(&component).unwrap();
    assert_eq!(
        text.matches("release: kube-prometheus-stack").count(),
        1,
        "the release name is written once: {text}"
    );
    std::fs::write(
        &component,
        text.replace("release: kube-prometheus-stack", "release: prom"),
    )
    .unwrap();
    for (kind, release) in release_labels(&copy.path().join("overlays/homelab")) {
        assert_eq!(release, "prom", "{kind}");
    }
}

/// The Argo CD Application prunes and, when deleted, deletes what it synced (its finalizer):
/// the state volume and the namespace holding it are exempt in every overlay.
#[test]
fn argo_cd_neither_prunes_nor_deletes_the_state_volume() {
    let application =
        documents(&std::fs::read_to_string(repo().join("deploy/argocd/application.yaml")).unwrap())
            .remove(0);
    assert_eq!(
        application["spec"]["syncPolicy"]["automated"]["prune"], true,
        "the Application prunes: what this test guards against"
    );
    for overlay in overlays() {
        let pod = Pod::of(&overlay);
        let state = &pod.volume_at("/var/lib/atalaya")["persistentVolumeClaim"];
        let claim = state["claimName"]
            .as_str()
            .expect("the state volume is a claim")
            .to_owned();
        if state["template"] == true {
            // A StatefulSet's claims are made by Kubernetes, not synced by Argo CD (so never
            // pruned); they must outlive the StatefulSet and a scale-down.
            let policy = &workload(&pod.docs)["spec"]["persistentVolumeClaimRetentionPolicy"];
            assert_eq!(policy["whenDeleted"], "Retain", "{}", overlay.display());
            assert_eq!(policy["whenScaled"], "Retain", "{}", overlay.display());
            continue;
        }
        let pvc = find(&pod.docs, "PersistentVolumeClaim")
            .into_iter()
            .find(|p| p["metadata"]["name"] == claim.as_str())
            .unwrap_or_else(|| panic!("{}: no PVC {claim}", overlay.display()));
        let namespace = one(&pod.docs, "Namespace");
        assert_eq!(
            namespace["metadata"]["name"], pvc["metadata"]["namespace"],
            "the PVC lives in the namespace the manifests create"
        );
        for object in [pvc, namespace] {
            let options: BTreeSet<&str> =
                object["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .collect();
            for option in ["Prune=false", "Delete=false"] {
                assert!(
                    options.contains(option),
                    "{}: {} {} lacks the Argo CD sync option {option}: {options:?}",
                    overlay.display(),
                    object["kind"],
                    object["metadata"]["name"]
                );
            }
        }
    }
}

/// The YAML code block of `markdown` whose first line is `first_line`, parsed.
fn code_block(markdown: &str, first_line: &str) -> Value {
    let mut blocks = markdown.split("```yaml\n").skip(1);
    let block = blocks
        .find(|b| b.starts_with(first_line))
        .unwrap_or_else(|| panic!("no ```yaml block starting with {first_line:?}"));
    let text = block.split("```").next().unwrap();
    documents(text).remove(0)
}

/// The Prometheus config docs/routing.md gives for sending alerts to atalaya is valid
/// (`promtool check config`), names the Service the manifests create, carries the API token,
/// agrees with the kube-prometheus-stack values beside it, and works: a real Prometheus
/// with it pushes a firing alert into an atalaya that requires the token, with no 401.
#[tokio::test]
async fn the_prometheus_config_in_the_routing_docs_pushes_alerts_with_the_token() {
    let docs = std::fs::read_to_string(repo().join("docs/routing.md")).unwrap();
    let config = code_block(&docs, "# prometheus.yml");
    let alertmanager = config["alerting"]["alertmanagers"][0].clone();

    // Its target is the Service, at its port, in the namespace the manifests put it.
    let manifests = documents(&kustomize(
        &repo().join("deploy/kustomize/overlays/homelab"),
    ));
    let service = one(&manifests, "Service");
    let target = format!(
        "{}.{}.svc:{}",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    assert_eq!(
        alertmanager["static_configs"][0]["targets"],
        serde_json::json!([target])
    );
    assert_eq!(alertmanager["authorization"]["type"], "Bearer");
    let credentials = alertmanager["authorization"]["credentials_file"]
        .as_str()
        .expect("authorization.credentials_file")
        .to_owned();

    // The chart's values say the same, and mount the Secret where the file is read.
    let values = code_block(&docs, "# kube-prometheus-stack values");
    let spec = &values["prometheus"]["prometheusSpec"];
    assert_eq!(spec["additionalAlertManagerConfigs"][0], alertmanager);
    let mounted = spec["secrets"].as_array().unwrap().iter().any(|s| {
        credentials.starts_with(&format!("/etc/prometheus/secrets/{}/", s.as_str().unwrap()))
    });
    assert!(mounted, "{credentials} is in none of {}", spec["secrets"]);

    let dir = tempfile::tempdir().unwrap();
    let check = dir.path().join("check.yml");
    std::fs::write(&check, serde_json::to_string(&config).unwrap()).unwrap();
    let out = tool("promtool", "apt-get install -y prometheus")
        .args(["check", "config"])
        .arg(&check)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );

    // The same entry, pointed at a test instance and at a file with its (fake) token.
    let token = "fake-token-for-the-prometheus-test";
    let atalaya = Atalaya::start_with(Options {
        env: vec![("ATALAYA__HTTP__TOKEN".to_owned(), token.to_owned())],
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    std::fs::write(dir.path().join("http-token"), format!("{token}\n")).unwrap();
    let mut entry = alertmanager.clone();
    entry["static_configs"][0]["targets"] = serde_json::json!([atalaya.addr.to_string()]);
    entry["authorization"]["credentials_file"] =
        Value::from(dir.path().join("http-token").display().to_string());
    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n  - name: t\n    rules:\n      - alert: PrometheusSaysHello\n        expr: vector(1)\n        labels: {severity: info}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        serde_json::to_string(&serde_json::json!({
            "global": {"evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "alerting": {"alertmanagers": [entry]},
        }))
        .unwrap(),
    )
    .unwrap();
    let (mut prometheus, base) = start_prometheus(dir.path());

    let client = reqwest::Client::new();
    let received = tokio::time::timeout(atalaya_test_kit::PATIENCE, async {
        loop {
            // Prometheus pushes from another process: polling is the only way to see it.
            let alerts: Value = client
                .get(atalaya.url("/api/v1/alerts"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(alert) = alerts
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == "PrometheusSaysHello")
            {
                return alert.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    let metrics = atalaya.metrics().await;
    let refused = support::http_errors(&metrics, "auth");
    let received = received.unwrap_or_else(|_| {
        panic!(
            "Prometheus's alert never reached atalaya; requests refused for the token: {refused:?}"
        )
    });
    assert_eq!(received["status"]["state"], "active", "{received}");
    // Refused pushes as Prometheus counts them: atalaya's own count of refused requests
    // would also count strays from other tests' processes to a reused port.
    let prometheus_metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let total = |family: &str| -> f64 {
        prometheus_metrics
            .lines()
            .filter(|l| l.starts_with(family))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        total("prometheus_notifications_sent_total") > 0.0,
        "{prometheus_metrics}"
    );
    let push_errors = total("prometheus_notifications_errors_total");
    assert_eq!(
        push_errors, 0.0,
        "a push failed (atalaya refused {refused:?} requests for their token)"
    );
    prometheus.kill().await.ok();
}

/// The `ha` overlay: three replicas, one per node, two kept through a drain, each named by
/// its pod; a three-node NATS cluster beside them; the config's `ha:` on those servers.
#[test]
fn the_ha_overlay_runs_three_replicas_on_separate_nodes_beside_a_nats_cluster() {
    let overlay = repo().join("deploy/kustomize/overlays/ha");
    let pod = Pod::of(&overlay);
    let sts = workload(&pod.docs);
    assert_eq!(sts["kind"], "StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    let anti = &sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    let env = pod.container["env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "POD_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name")
    );
    let pdb = named(&pod.docs, "PodDisruptionBudget", "atalaya");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    assert!(find(&pod.docs, "Deployment").is_empty());

    let nats = named(&pod.docs, "StatefulSet", "nats");
    assert_eq!(nats["spec"]["replicas"], 3);
    assert_eq!(nats["metadata"]["namespace"], "atalaya");
    let config = pod.config();
    let servers = config["ha"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    for (i, server) in servers.iter().enumerate() {
        assert!(
            server
                .as_str()
                .unwrap()
                .starts_with(&format!("nats://nats-{i}.nats-cluster.atalaya.svc:")),
            "{server}"
        );
    }
    assert_eq!(config["ha"]["nats_replicas"], 3);
}
