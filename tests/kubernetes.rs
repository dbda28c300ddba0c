//! End-to-end: the binary with `kubernetes:` in its config, against the test kit's fake API
//! server. A node lost becomes an alert on the
//! console; a permission the service account lacks keeps the service up (and in its Service:
//! `/readyz` 200, reporting the Kubernetes connection down), named in the log and counted
//! until it is granted.

#![cfg(feature = "kubernetes")]

mod support;

use atalaya_test_kit::kubernetes::objects;
use atalaya_test_kit::kubernetes::{FakeApi, Resource};
use jiff::{SignedDuration, Timestamp};
use nix::sys::signal::Signal;
use objects::node;
use support::{Atalaya, CONSOLE_AT_ONCE, Options};

const NODE_RULE: &str = "rules:\n  - name: node_lost\n    subject: k8s/node/+node/ready\n    condition: \"!data.ready\"\n    severity: critical\n    annotations:\n      summary: \"Node {{ labels.node }} is not ready\"\n";

#[tokio::test]
async fn a_lost_node_fires_and_a_refused_permission_leaves_the_service_up_and_reported() {
    let api = FakeApi::start().await;
    api.apply(
        Resource::Nodes,
        node(
            "pi-1",
            "True",
            &[],
            Timestamp::now() - SignedDuration::from_hours(1),
        ),
    );
    api.forbid(Resource::Pods, "list");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: fake\n  user:\n    token: not-a-secret\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n",
            api.url
        ),
    )
    .unwrap();
    let mut atalaya = Atalaya::start_in(
        dir,
        Options {
            config: format!(
                "kubernetes:\n  kubeconfig: {}\n  watches: {{leases: false, events: false}}\n  reconnect: {{min: 50ms, max: 200ms}}\n",
                kubeconfig.display()
            ),
            rules: vec![("nodes.yaml", NODE_RULE.to_owned())],
            routing: Some(CONSOLE_AT_ONCE.to_owned()),
            ..Options::default()
        },
    )
    .await;

    // Pods are refused: logged with the permission, counted, reported — and running, ready
    // for what the Service serves.
    atalaya
        .wait_for_logs(&["Cannot list pods at cluster scope", "rbac.yaml"], 1)
        .await;
    atalaya
        .wait_for_metric(
            "atalaya_connector_errors_total",
            r#"{connector="kubernetes",stage="forbidden"}"#,
            |v| v >= 1.0,
        )
        .await;
    let readyz = reqwest::get(atalaya.url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["connections"]["kubernetes"], false, "{body}");

    // The node watch goes on: a lost node fires.
    api.apply(
        Resource::Nodes,
        node("pi-1", "Unknown", &[], Timestamp::now()),
    );
    let line = atalaya.console_until(&["[firing:", "node_lost"]).await;
    assert!(
        line.contains("node=pi-1") && line.contains("Node pi-1 is not ready"),
        "{line}"
    );

    // Granted: connected.
    api.allow(Resource::Pods);
    atalaya
        .wait_for_metric(
            "atalaya_connector_connected",
            r#"{connector="kubernetes"}"#,
            |v| v == 1.0,
        )
        .await;
    let body: serde_json::Value = reqwest::get(atalaya.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["connections"]["kubernetes"], true, "{body}");
    atalaya.signal(Signal::SIGTERM);
    assert!(atalaya.wait().await.success(), "{}", atalaya.logs());
}

#[tokio::test]
async fn a_kubeconfig_that_cannot_be_read_stops_the_start_with_64_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let port = atalaya_test_kit::free_port();
    let missing = dir.path().join("no-such-kubeconfig");
    let config = dir.path().join("atalaya.yaml");
    std::fs::write(
        &config,
        format!(
            "http:\n  listen: 127.0.0.1:{port}\nstate:\n  dir: {}\nkubernetes:\n  kubeconfig: {}\n",
            dir.path().join("data").display(),
            missing.display()
        ),
    )
    .unwrap();
    let output = support::command(dir.path())
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot load the Kubernetes client configuration from {}",
            missing.display()
        )),
        "{stderr}"
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port was never bound");
}
