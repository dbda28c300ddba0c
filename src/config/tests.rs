//! Configuration loading, end to end from YAML text and environment to `Config`.
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
#[cfg(feature = "kubernetes")]
use atalaya_connectors::kubernetes::config::EventsApi;
#[cfg(feature = "mqtt")]
use atalaya_connectors::mqtt::config::Protocol;

fn file(text: &str) -> (tempfile::TempDir, ConfigSource) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atalaya.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, ConfigSource::File(path))
}

fn env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn errors(source: &ConfigSource, vars: &[(&str, &str)]) -> Vec<String> {
    let dir = match source {
        ConfigSource::File(p) => format!("{}/", p.parent().unwrap().display()),
        ConfigSource::Defaults => String::new(),
    };
    load(source, env(vars))
        .unwrap_err()
        .iter()
        .map(|e| e.to_string().replace(&dir, ""))
        .collect()
}

#[test]
fn defaults_need_no_file() {
    let config = load(&ConfigSource::Defaults, env(&[])).unwrap();
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:9470");
    assert_eq!(config.state.dir, PathBuf::from("./data"));
    assert!(config.http.token.is_none());
    assert!(config.receivers.console.enabled);
}

#[test]
fn file_values_and_environment_overrides() {
    let (_dir, source) = file(
        "http:\n  listen: 0.0.0.0:9000\n  publish_timeout: 2s\nbus:\n  capacity: 16\nlog:\n  format: json\n",
    );
    let config = load(
        &source,
        env(&[
            ("ATALAYA__HTTP__LISTEN", "127.0.0.1:9100"),
            ("ATALAYA__HTTP__TOKEN", "00123"),
            ("ATALAYA__RECEIVERS__CONSOLE__EVENTS", "false"),
            ("ATALAYA_TOKEN", "not ours: single underscore"),
        ]),
    )
    .unwrap();
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(config.http.publish_timeout, Duration::from_secs(2));
    assert_eq!(config.bus.capacity, 16);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.http.token.unwrap().expose(), "00123");
    assert!(!config.receivers.console.events);
}

#[test]
fn every_mistake_is_reported_at_once_with_its_place() {
    let (_dir, source) = file(
        "http:\n  listen: 9470\n  max_body_byte: 10\nbus:\n  capacity: -1\nshutdown:\n  timeout: 10\nlogs: {}\n",
    );
    assert_eq!(
        errors(&source, &[("ATALAYA__LOG__FORMAT", "xml")]),
        [
            "atalaya.yaml:2:11: http.listen: `9470` is not an address; write IP:PORT such as `127.0.0.1:9470` or `[::]:9470`",
            "atalaya.yaml:3:3: http.max_body_byte: unknown key `max_body_byte`; did you mean `max_body_bytes`?",
            "atalaya.yaml:5:13: bus.capacity: -1 is out of range (1 to 1048576)",
            "atalaya.yaml:7:12: shutdown.timeout: expected a duration with a unit such as `5s` or `2m`, found an integer",
            "atalaya.yaml:8:1: logs: unknown key `logs`; did you mean `log`?",
            "environment variable ATALAYA__LOG__FORMAT: log.format: `xml` is not a log format; use `text` or `json`",
        ]
    );
}

#[test]
fn secrets_come_from_files_or_environment_only() {
    let (_dir, source) = file("http:\n  token: hunter2\n");
    let errs = errors(&source, &[]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .starts_with("atalaya.yaml:2:3: http.token: secrets are not read from the config file")
    );
    assert!(!errs[0].contains("hunter2"));

    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "s3cret\n").unwrap();
    let (_d, source) = file(&format!("http:\n  token_file: {}\n", token_path.display()));
    let config = load(&source, env(&[])).unwrap();
    assert_eq!(config.http.token.unwrap().expose(), "s3cret");

    let (_d, source) = file("http:\n  token_file: /nonexistent/token\n");
    let errs = errors(&source, &[]);
    assert!(
        errs[0].starts_with("atalaya.yaml:2:15: http.token_file: cannot read /nonexistent/token"),
        "{errs:?}"
    );
}

#[test]
fn opened_reads_need_a_token_for_writes() {
    let (_d, source) = file("http:\n  anonymous_read: true\n");
    let errs = errors(&source, &[]);
    assert!(
        errs[0]
            .starts_with("atalaya.yaml:2:19: http.anonymous_read: opens reads beside http.token"),
        "{errs:?}"
    );
    let (_d, source) = file("http:\n  web_anonymous_read: true\n");
    let errs = errors(&source, &[]);
    assert!(
        errs[0].starts_with(
            "atalaya.yaml:2:23: http.web_anonymous_read: opens reads beside http.token"
        ),
        "{errs:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let read = dir.path().join("read");
    std::fs::write(&read, "fake-read\n").unwrap();
    let (_d, source) = file(&format!("http:\n  read_token_file: {}\n", read.display()));
    let errs = errors(&source, &[]);
    assert!(
        errs[0].contains("http.read_token_file: opens reads beside http.token"),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_and_wrong_shapes() {
    let (_dir, source) = file("http:\n  listen: [1,\n");
    let errs = errors(&source, &[]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("atalaya.yaml:3:1: invalid YAML"),
        "{errs:?}"
    );

    let (_dir, source) = file("http: 5\n");
    assert_eq!(
        errors(&source, &[]),
        ["atalaya.yaml:1:7: http: expected a mapping of keys, found an integer"]
    );

    let (_dir, source) = file("");
    assert!(
        load(&source, env(&[])).is_ok(),
        "an empty file means defaults"
    );
}

#[test]
fn only_yaml_files() {
    let err = load(&ConfigSource::File("atalaya.toml".into()), env(&[])).unwrap_err();
    assert_eq!(
        err[0].to_string(),
        "atalaya.toml: not a YAML file: config files end in .yaml or .yml"
    );
}

#[test]
fn broker_sections() {
    let (_dir, source) = file(
        "mqtt:\n  host: 127.0.0.1\n  port: 1884\n  username: atalaya\n  subscriptions:\n    - topic: zigbee2mqtt/+device\n    - topic: tasmota/#\n      qos: 0\nnats:\n  servers: [nats://127.0.0.1:4222]\n  subscriptions:\n    - subject: jobs/>\n      queue_group: atalaya\n  jetstream:\n    - stream: EVENTS\n      durable: atalaya\n      ack_wait: 10s\n",
    );
    let config = load(&source, env(&[("ATALAYA__MQTT__PASSWORD", "fake-pass")])).unwrap();
    let mqtt = config.mqtt.unwrap();
    assert_eq!((mqtt.host.as_str(), mqtt.port), ("127.0.0.1", 1884));
    assert_eq!(mqtt.password.unwrap().expose(), "fake-pass");
    assert_eq!(mqtt.subscriptions.len(), 2);
    assert_eq!(mqtt.subscriptions[1].qos, 0);
    assert_eq!(mqtt.discovery, None, "Home Assistant discovery is opt-in");
    assert_eq!(mqtt.protocol, Protocol::V311);
    let nats = config.nats.unwrap();
    assert_eq!(
        nats.subscriptions[0].queue_group.as_deref(),
        Some("atalaya")
    );
    assert_eq!(nats.jetstream[0].ack_wait, Duration::from_secs(10));
}

#[test]
fn broker_section_mistakes_are_positioned() {
    let (_dir, source) = file(
        "mqtt:\n  port: 99999\n  subscriptions:\n    - topic: a/#/b\n      qso: 1\n  password: inline\n",
    );
    assert_eq!(
        errors(&source, &[]),
        [
            "atalaya.yaml:1:1: mqtt: `host` is required",
            "atalaya.yaml:2:9: mqtt.port: 99999 is out of range (1 to 65535)",
            "atalaya.yaml:4:14: mqtt.subscriptions[0].topic: `a/#/b`: `#` must be the last token of the pattern",
            "atalaya.yaml:5:7: mqtt.subscriptions[0].qso: unknown key `qso`; did you mean `qos`?",
            "atalaya.yaml:6:3: mqtt.password: secrets are not read from the config file (it lives in Git): use mqtt.password_file or the ATALAYA__MQTT__PASSWORD environment variable",
        ]
    );
}

#[test]
fn mqtt_5() {
    let (_dir, source) = file("mqtt:\n  host: broker\n  protocol: 5\n  session_expiry: 2d\n");
    let mqtt = load(&source, env(&[])).unwrap().mqtt.unwrap();
    assert_eq!(mqtt.protocol, Protocol::V5);
    assert_eq!(mqtt.session_expiry, Duration::from_secs(2 * 86_400));
    let (_dir, source) = file("mqtt:\n  host: broker\n  protocol: 3\n");
    assert_eq!(
        errors(&source, &[]),
        ["atalaya.yaml:3:13: mqtt.protocol: `3` is not an MQTT version: use 3.1.1 or 5"]
    );
}

#[test]
fn home_assistant_discovery_section() {
    let (_dir, source) = file(
        "mqtt:\n  host: broker\n  client_id: atalaya-2\n  homeassistant:\n    discovery: true\n    device_name: Casa\n",
    );
    let discovery = load(&source, env(&[]))
        .unwrap()
        .mqtt
        .unwrap()
        .discovery
        .unwrap();
    assert_eq!(discovery.device_id, "atalaya_2", "from the client id");
    assert_eq!(discovery.device_name, "Casa");
    assert_eq!(
        discovery.config_topic(),
        "homeassistant/device/atalaya_2/config"
    );
    let (_dir, source) = file(
        "mqtt:\n  host: broker\n  homeassistant:\n    discovery: true\n    device_id: Mi Casa\n    state_prefix: a/+/b\n    discover: true\n",
    );
    assert_eq!(
        errors(&source, &[]),
        [
            "atalaya.yaml:5:16: mqtt.homeassistant.device_id: `Mi Casa`: use lowercase letters, digits and `_`",
            "atalaya.yaml:6:19: mqtt.homeassistant.state_prefix: `a/+/b` is not a topic atalaya can publish to",
            "atalaya.yaml:7:5: mqtt.homeassistant.discover: unknown key `discover`; did you mean `discovery`?",
        ]
    );
}

#[test]
fn kubernetes_section() {
    let (_dir, source) = file(
        "kubernetes:\n  context: home\n  namespaces: [media, home]\n  watches:\n    events: false\n  events:\n    apis: [v1]\n    exclude_reasons: [\"Failed*\"]\n    involved_kinds: [Pod]\n  pods:\n    pending_after: 10m\n  leases:\n    stale_after: 30s\n  reconnect: {min: 2s, max: 30s}\n",
    );
    let k = load(&source, env(&[])).unwrap().kubernetes.unwrap();
    assert_eq!(k.context.as_deref(), Some("home"));
    assert_eq!(k.namespaces, ["media", "home"]);
    assert!(k.watches.nodes && k.watches.leases && k.watches.pods && !k.watches.events);
    assert_eq!(k.events.apis, [EventsApi::Core]);
    assert_eq!(k.events.types, ["Warning"]);
    assert_eq!(k.events.exclude_reasons, ["Failed*"]);
    assert_eq!(k.events.involved_kinds, ["Pod"]);
    assert_eq!(k.pods.pending_after, Duration::from_secs(600));
    assert_eq!(k.leases.stale_after, Some(Duration::from_secs(30)));
    assert_eq!(
        k.reconnect,
        (Duration::from_secs(2), Duration::from_secs(30))
    );
    assert!(!k.required_for_ready);

    let (_dir, source) = file("kubernetes: {}\n");
    let k = load(&source, env(&[])).unwrap().kubernetes.unwrap();
    assert!(k.kubeconfig.is_none() && k.namespaces.is_empty() && k.leases.stale_after.is_none());
    assert_eq!(k.events.apis, [EventsApi::Core, EventsApi::EventsV1]);
    assert!(
        load(&ConfigSource::Defaults, env(&[]))
            .unwrap()
            .kubernetes
            .is_none()
    );
}

#[test]
fn kubernetes_section_mistakes_are_positioned() {
    let (_dir, source) = file(
        "kubernetes:\n  namespaces: media\n  watches:\n    node: false\n  pods:\n    pending_after: 5\n  events:\n    types: [Warning, \"\"]\n",
    );
    let (_dir2, all_off) =
        file("kubernetes:\n  watches: {nodes: false, leases: false, pods: false, events: false}\n");
    let (_dir3, apis) = file("kubernetes:\n  events:\n    apis: [v1, events/v1]\n");
    let (_dir4, no_api) = file("kubernetes:\n  events:\n    apis: []\n");
    assert_eq!(
        errors(&apis, &[]),
        [
            "atalaya.yaml:3:11: kubernetes.events.apis: unknown Events API \"events/v1\"; expected v1 or events.k8s.io/v1"
        ]
    );
    assert_eq!(
        errors(&no_api, &[]),
        ["atalaya.yaml:3:11: kubernetes.events.apis: name at least one API (v1, events.k8s.io/v1)"]
    );
    assert_eq!(
        errors(&all_off, &[]),
        [
            "atalaya.yaml:2:3: kubernetes.watches: every watch is off; remove `kubernetes:` to turn the bridge off"
        ]
    );
    assert_eq!(
        errors(&source, &[]),
        [
            "atalaya.yaml:2:15: kubernetes.namespaces: expected a list of strings, such as [a, b]",
            "atalaya.yaml:4:5: kubernetes.watches.node: unknown key `node`; did you mean `nodes`?",
            "atalaya.yaml:6:20: kubernetes.pods.pending_after: expected a duration with a unit such as `5s` or `2m`, found an integer",
            "atalaya.yaml:8:12: kubernetes.events.types: an item of the list is empty",
        ]
    );
}

#[cfg(feature = "homeassistant")]
#[test]
fn homeassistant_section() {
    let (dir, source) = file(
        "homeassistant:\n  url: https://ha.example.org\n  token_file: token\n  entities: [ha/sensor/>, ha/binary_sensor/+door]\n  reconnect: {min: 2s, max: 30s}\n  heartbeat: 10s\n  max_frame_bytes: 65536\n  required_for_ready: true\n  tls:\n    ca_file: ca.pem\n",
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "abc.def\n").unwrap();
    // Relative paths are taken from where atalaya runs; the test names the file fully.
    let text = std::fs::read_to_string(match &source {
        ConfigSource::File(p) => p,
        ConfigSource::Defaults => unreachable!(),
    })
    .unwrap()
    .replace(
        "token_file: token",
        &format!("token_file: {}", token.display()),
    );
    let (_dir, source) = file(&text);
    let h = load(&source, env(&[])).unwrap().homeassistant.unwrap();
    assert_eq!(h.endpoint.url, "wss://ha.example.org:443/api/websocket");
    assert_eq!(h.endpoint.source, "homeassistant://ha.example.org:443");
    assert_eq!(h.token.expose(), "abc.def");
    assert_eq!(h.token_file.as_deref(), Some(token.as_path()));
    let patterns: Vec<&str> = h.entities.iter().map(|p| p.as_str()).collect();
    assert_eq!(patterns, ["ha/sensor/>", "ha/binary_sensor/+door"]);
    assert_eq!(
        (h.reconnect_min, h.reconnect_max, h.heartbeat),
        (
            Duration::from_secs(2),
            Duration::from_secs(30),
            Duration::from_secs(10)
        )
    );
    assert_eq!(h.max_frame_bytes, 65536);
    assert!(h.required_for_ready);
    assert_eq!(
        h.tls.unwrap().ca_file.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );

    // The token from the environment; defaults for the rest.
    let (_dir, source) = file("homeassistant:\n  url: ws://127.0.0.1:8123/api/websocket\n");
    let h = load(
        &source,
        env(&[("ATALAYA__HOMEASSISTANT__TOKEN", "from-env")]),
    )
    .unwrap()
    .homeassistant
    .unwrap();
    assert_eq!(h.token.expose(), "from-env");
    assert!(h.token_file.is_none() && h.entities.is_empty() && h.tls.is_none());
    assert_eq!(h.max_frame_bytes, 4 << 20);
    assert_eq!(h.heartbeat, Duration::from_secs(30));
    assert!(!h.required_for_ready);
}

#[cfg(feature = "homeassistant")]
#[test]
fn homeassistant_section_mistakes_are_positioned_and_never_show_the_token() {
    let (_dir, source) = file(
        "homeassistant:\n  url: homeassistant.local:8123\n  token: s3cr3t-inline\n  entities: [ha/sensor/#/x]\n  heartbeat: 5\n  max_frame_bytes: 12\n  reconect: {}\n",
    );
    let all = errors(&source, &[]);
    assert_eq!(
        all,
        [
            "atalaya.yaml:2:8: homeassistant.url: `homeassistant.local:8123` is not a URL; write ws://homeassistant.local:8123/api/websocket or http://homeassistant.local:8123",
            "atalaya.yaml:3:3: homeassistant.token: secrets are not read from the config file (it lives in Git): use homeassistant.token_file or the ATALAYA__HOMEASSISTANT__TOKEN environment variable",
            "atalaya.yaml:4:13: homeassistant.entities: `ha/sensor/#/x`: `#` must be the last token of the pattern",
            "atalaya.yaml:5:14: homeassistant.heartbeat: expected a duration with a unit such as `5s` or `2m`, found an integer",
            "atalaya.yaml:6:20: homeassistant.max_frame_bytes: 12 is out of range (1024 to 268435456)",
            "atalaya.yaml:7:3: homeassistant.reconect: unknown key `reconect`; did you mean `reconnect`?",
        ]
    );
    assert!(!all.concat().contains("s3cr3t-inline"));
    let (_dir, source) = file("homeassistant:\n  url: http://ha:8123\n");
    assert_eq!(
        errors(&source, &[]),
        [
            "atalaya.yaml:1:1: homeassistant: a long-lived access token is required: set token_file, or ATALAYA__HOMEASSISTANT__TOKEN"
        ]
    );
}

/// A bare word that is no level would be a `tracing` target — and silence every other log
/// line, errors included: refused, with the level it probably meant.
#[test]
fn log_levels_that_would_silence_everything_are_refused() {
    for (level, expected) in [
        (
            "verbose",
            "`verbose` is not a log level; a level is one of trace, debug, info, warn, error, off (or a filter such as `info,atalaya=debug`)",
        ),
        (
            "warnings",
            "`warnings` is not a log level; did you mean `warn`?; a level is one of trace, debug, info, warn, error, off (or a filter such as `info,atalaya=debug`)",
        ),
        (
            "info,debg",
            "`debg` is not a log level; did you mean `debug`?; a level is one of trace, debug, info, warn, error, off (or a filter such as `info,atalaya=debug`)",
        ),
    ] {
        let (_dir, source) = file(&format!("log:\n  level: {level}\n"));
        assert_eq!(
            errors(&source, &[]),
            [format!("atalaya.yaml:2:10: log.level: {expected}")],
            "{level}"
        );
    }
    for level in ["WARN", "off", "info,atalaya=debug", "atalaya::outbox=trace"] {
        let (_dir, source) = file(&format!("log:\n  level: \"{level}\"\n"));
        assert_eq!(load(&source, env(&[])).unwrap().log.level, level);
    }
}

/// Every mapping of `schema/config.schema.json` with its path in the file: `[]` stands for
/// an item of a list.
fn schema_mappings(
    schema: &serde_json::Value,
    path: Vec<String>,
    out: &mut Vec<(Vec<String>, std::collections::BTreeSet<String>)>,
) {
    if let Some(properties) = schema["properties"].as_object() {
        out.push((path.clone(), properties.keys().cloned().collect()));
        for (key, property) in properties {
            let mut inner = path.clone();
            inner.push(key.clone());
            schema_mappings(property, inner.clone(), out);
            if property["items"].is_object() {
                inner.push("[]".to_owned());
                schema_mappings(&property["items"], inner, out);
            }
        }
    }
}

/// The JSON Schema editors use for `atalaya.yaml` names exactly the keys the loader reads,
/// mapping by mapping (asked of the loader itself: an unknown key's error lists the known
/// ones). Secrets given inline are left out of the schema on purpose: the file may not hold
/// them.
#[test]
fn the_config_schema_names_every_key_the_loader_reads() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/config.schema.json")).unwrap();
    let mut mappings = Vec::new();
    schema_mappings(&schema, Vec::new(), &mut mappings);
    assert!(mappings.len() > 20, "{mappings:?}");
    let environment_only = ["token", "read_token", "password", "nkey_seed"];
    for (path, in_schema) in mappings {
        let mut document = serde_json::json!({ "zzzzzzzz": 1 });
        for key in path.iter().rev() {
            document = if key == "[]" {
                serde_json::json!([document])
            } else {
                serde_json::json!({ key: document })
            };
        }
        // JSON is YAML.
        let (_dir, source) = file(&document.to_string());
        let errors = errors(&source, &[]);
        let unknown = errors
            .iter()
            .find(|e| e.contains("unknown key `zzzzzzzz`; known keys: "))
            .unwrap_or_else(|| panic!("{path:?}: {errors:?}"));
        let known: std::collections::BTreeSet<String> = unknown
            .split("known keys: ")
            .nth(1)
            .unwrap()
            .split(", ")
            .filter(|k| !environment_only.contains(k))
            .map(str::to_owned)
            .collect();
        assert_eq!(in_schema, known, "{path:?}");
    }
}

#[cfg(feature = "nats")]
#[test]
fn ha_is_off_by_default_and_its_section_is_checked() {
    let config = load(&ConfigSource::Defaults, env(&[])).unwrap();
    assert!(config.ha.is_none(), "one replica, no NATS, by default");

    let (_dir, source) = file(
        "ha:\n  servers: [nats://127.0.0.1:4222]\n  cluster: home\n  replica: atalaya-1\n  token_file: /nonexistent/token\n",
    );
    let found = errors(&source, &[]);
    assert!(found.iter().any(|e| e.contains("token_file")), "{found:?}");

    let (_dir, source) =
        file("ha:\n  servers: [nats://127.0.0.1:4222]\n  cluster: home\n  replica: atalaya-1\n");
    let ha = load(&source, env(&[])).unwrap().ha.expect("ha: on");
    assert_eq!(ha.cluster, "home");
    assert_eq!(ha.replica, "atalaya-1");
    assert_eq!(ha.lease_ttl, Duration::from_secs(15));
    assert_eq!(ha.renew_interval, Duration::from_secs(5));

    let (_dir, source) = file(
        "ha:\n  servers: [nats://127.0.0.1:4222]\n  cluster: \"my home\"\n  lease_ttl: 10s\n  renew_interval: 6s\n  bukcet: x\n",
    );
    let errors = errors(&source, &[]);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("ha.cluster")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("renew at least twice")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("did you mean `bucket`")),
        "{errors:?}"
    );
}
