use atalaya_connectors::notifiers::integration_kinds;
use std::path::Path;
use std::time::Duration;

use atalaya_bus::Labels;

use super::*;
use atalaya_bus::delivery::integration::IntegrationSettings;
use atalaya_connectors::mqtt::MqttPublishConfig;
use atalaya_connectors::nats::NatsPublishConfig;
use atalaya_connectors::webhook::WebhookConfig;

fn parse(text: &str) -> RoutingPolicy {
    parse_policy(text, Path::new("policy.yaml"), &integration_kinds()).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{}", errors.join("\n"))
    })
}

/// Every error, as `line:col: message`.
fn errors(text: &str) -> Vec<String> {
    match parse_policy(text, Path::new("policy.yaml"), &integration_kinds()) {
        Ok(_) => panic!("the policy compiled"),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let text = e.to_string();
                text.trim_start_matches("policy.yaml:")
                    .trim_start()
                    .to_owned()
            })
            .collect(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const HOUSE: &str = r#"
global:
  resolve_timeout: 5m
  smtp_smarthost: localhost:25
  http_config:
    follow_redirects: true
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"', 'room=~"kitchen|hall"']
      receiver: pager
      group_by: ['...']
      continue: true
      mute_time_intervals: [night]
    - match:
        team: ops
      match_re:
        room: "garage|shed"
      repeat_interval: 1h
      active_time_intervals: [working-hours]
      routes:
        - matchers: ["severity=info, alertname!=Watchdog"]
          receiver: ops
          group_by: []
receivers:
  - name: default
  - name: pager
    webhook_configs:
      - url: http://127.0.0.1:9/hook
      - url_file: secrets/hook-url
        send_resolved: false
        max_alerts: 10
        timeout: 3s
    console_configs:
      - {}
    mqtt_configs:
      - {}
      - topic: home/alerts
        state_topic_prefix: ""
        send_resolved: false
        clear_resolved_after: 10m
    nats_configs:
      - subject: alerts.house
  - name: ops
    nats_configs:
      - {}
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity=~"warning|info"]
    equal: [room]
  - source_match: {alertname: Fire}
    target_match_re: {room: ".+"}
time_intervals:
  - name: working-hours
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: "09:00", end_time: "17:00"}]
        location: Europe/Madrid
mute_time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "00:00", end_time: "07:00"}]
        days_of_month: [1, '-3:-1']
        months: ['january:march', 12]
        years: ['2020:2030']
"#;

#[test]
fn compiles_an_alertmanager_style_policy() {
    let policy = parse(HOUSE);
    let root = &policy.tree.root;
    assert_eq!(root.id, "{}");
    assert_eq!(root.receiver, "default");
    assert_eq!(root.group_by, GroupBy::Labels(vec!["alertname".to_owned()]));
    assert_eq!(root.group_wait, Duration::from_secs(10));
    assert_eq!(root.group_interval, Duration::from_secs(300));
    assert_eq!(root.repeat_interval, Duration::from_secs(4 * 3600));

    let pager = &root.routes[0];
    assert_eq!(pager.id, r#"{}/{room=~"kitchen|hall",severity="critical"}"#);
    assert_eq!(pager.group_by, GroupBy::All);
    assert_eq!(pager.group_wait, Duration::from_secs(10));
    assert!(pager.continue_matching);
    assert_eq!(pager.mute_time_intervals, ["night"]);

    let ops_parent = &root.routes[1];
    assert_eq!(ops_parent.id, r#"{}/{room=~"garage|shed",team="ops"}"#);
    assert_eq!(ops_parent.receiver, "default");
    assert_eq!(ops_parent.repeat_interval, Duration::from_secs(3600));
    assert_eq!(ops_parent.active_time_intervals, ["working-hours"]);

    let ops = &ops_parent.routes[0];
    assert_eq!(
        ops.id,
        r#"{}/{room=~"garage|shed",team="ops"}/{alertname!="Watchdog",severity="info"}"#
    );
    assert_eq!(ops.receiver, "ops");
    // Inherited: timings and (`group_by: []` is unset in Alertmanager) grouping; not the
    // parent's time intervals.
    assert_eq!(ops.repeat_interval, Duration::from_secs(3600));
    assert_eq!(ops.group_by, GroupBy::Labels(vec!["alertname".to_owned()]));
    assert!(ops.active_time_intervals.is_empty());

    let alert = labels(&[
        ("severity", "critical"),
        ("room", "kitchen"),
        ("team", "ops"),
    ]);
    assert_eq!(policy.tree.receivers_line(&alert), "pager");
    let alert = labels(&[("room", "garage"), ("team", "ops")]);
    assert_eq!(policy.tree.receivers_line(&alert), "default");
    let alert = labels(&[("severity", "info"), ("room", "shed"), ("team", "ops")]);
    assert_eq!(policy.tree.receivers_line(&alert), "ops");
}

/// Asserts that `integration` is of `kind`, with `send_resolved` and these settings.
pub(super) fn check<T: IntegrationSettings + PartialEq>(
    integration: &Integration,
    kind: &str,
    send_resolved: bool,
    settings: T,
) {
    assert_eq!(
        (integration.kind, integration.send_resolved),
        (kind, send_resolved),
        "{integration:?}"
    );
    assert_eq!(
        integration.settings::<T>(),
        Some(&settings),
        "{integration:?}"
    );
}

#[test]
fn receivers_get_alertmanager_and_atalaya_defaults() {
    let policy = parse(HOUSE);
    assert!(policy.receiver("default").unwrap().integrations.is_empty());
    let pager = &policy.receiver("pager").unwrap().integrations;
    assert_eq!(pager.len(), 6);
    check(
        &pager[0],
        "webhook",
        true,
        WebhookConfig {
            url: Some("http://127.0.0.1:9/hook".to_owned()),
            url_file: None,
            max_alerts: 0,
            timeout: Duration::from_secs(10),
        },
    );
    check(
        &pager[1],
        "webhook",
        false,
        WebhookConfig {
            url: None,
            url_file: Some("secrets/hook-url".into()),
            max_alerts: 10,
            timeout: Duration::from_secs(3),
        },
    );
    check(&pager[2], "console", true, ());
    check(
        &pager[3],
        "mqtt",
        true,
        MqttPublishConfig {
            topic: "atalaya/notifications".to_owned(),
            state_topic_prefix: "atalaya/alerts".to_owned(),
            clear_resolved_after: Duration::from_secs(3600),
        },
    );
    check(
        &pager[4],
        "mqtt",
        false,
        MqttPublishConfig {
            topic: "home/alerts".to_owned(),
            state_topic_prefix: String::new(),
            clear_resolved_after: Duration::from_secs(600),
        },
    );
    check(
        &pager[5],
        "nats",
        true,
        NatsPublishConfig {
            subject: "alerts.house".to_owned(),
        },
    );
    let ops = &policy.receiver("ops").unwrap().integrations;
    assert_eq!(ops.len(), 1);
    check(
        &ops[0],
        "nats",
        true,
        NatsPublishConfig {
            subject: "atalaya.notifications".to_owned(),
        },
    );
}

#[test]
fn load_reads_url_files_next_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, HOUSE).unwrap();
    let policy = load_policy(&path, &integration_kinds()).unwrap();
    let webhook = policy.receiver("pager").unwrap().integrations[1]
        .settings::<WebhookConfig>()
        .expect("a webhook");
    assert_eq!(
        webhook.url_file.as_deref(),
        Some(dir.path().join("secrets/hook-url").as_path())
    );
    let missing = load_policy(&dir.path().join("nope.yaml"), &integration_kinds()).unwrap_err();
    assert!(missing[0].message.contains("cannot read"), "{missing:?}");
}

#[test]
fn inhibit_rules_and_time_intervals_compile() {
    let policy = parse(HOUSE);
    let [critical, fire] = policy.inhibit_rules.as_slice() else {
        panic!("{:?}", policy.inhibit_rules);
    };
    assert_eq!(critical.equal, ["room"]);
    assert!(
        critical
            .source
            .matches(&labels(&[("severity", "critical")]))
    );
    assert!(critical.target.matches(&labels(&[("severity", "info")])));
    assert!(
        !critical
            .target
            .matches(&labels(&[("severity", "critical")]))
    );
    assert!(fire.source.matches(&labels(&[("alertname", "Fire")])));
    assert!(!fire.target.matches(&labels(&[])));

    let working = &policy.time_intervals["working-hours"];
    // Monday 2026-01-05 08:30 UTC is 09:30 in Madrid.
    assert!(working.contains("2026-01-05T08:30:00Z".parse().unwrap()));
    assert!(!working.contains("2026-01-05T07:30:00Z".parse().unwrap()));
    let night = &policy.time_intervals["night"];
    assert!(night.contains("2026-01-01T03:00:00Z".parse().unwrap()));
    assert!(night.contains("2026-12-30T03:00:00Z".parse().unwrap()));
    assert!(!night.contains("2026-12-15T03:00:00Z".parse().unwrap()));
    assert!(!night.contains("2026-05-01T03:00:00Z".parse().unwrap()));
}

#[test]
fn the_console_default_sends_everything_to_the_console() {
    let policy = RoutingPolicy::console_default();
    let root = &policy.tree.root;
    assert_eq!(root.id, "{}");
    assert_eq!(root.group_by, GroupBy::Labels(vec!["alertname".to_owned()]));
    assert_eq!(root.group_wait, Duration::from_secs(30));
    assert_eq!(root.group_interval, Duration::from_secs(300));
    assert_eq!(root.repeat_interval, Duration::from_secs(4 * 3600));
    assert_eq!(
        policy.tree.receivers_line(&labels(&[("a", "b")])),
        "console"
    );
    let console = &policy.receiver("console").unwrap().integrations;
    assert_eq!(console.len(), 1);
    check(&console[0], "console", true, ());
}

#[test]
fn every_error_is_reported_at_its_place() {
    let text = r#"
global:
  resolve_timeout: 5 fortnights
  smtp_smarthostt: x
route:
  receiver: defualt
  group_wiat: 10s
  routes:
    - matchers: ['severity="critical"', 'room=~"(kitchen"']
      receiver: nobody
      group_interval: 0s
      mute_time_intervals: [nigth]
    - match_re: {room: "(hall"}
      repeat_interval: 1h1h
      group_by: [room, room]
receivers:
  - name: default
    slack_configs: [{}]
    opsgenie_configs: [{}]
  - name: default
  - webhook_configs: [{url: "ftp://x"}]
templates: ['*.tmpl']
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "07:00", end_time: "25:00"}]
        weekdays: [funday]
"#;
    assert_eq!(
        errors(text),
        [
            "3:20: resolve_timeout: `5 fortnights`: `5` has no unit; write it like `30s`, `5m`, \
             `1h30m` or `1d`: whole numbers with units y, w, d, h, m, s, ms, largest first",
            "4:3: unknown key `smtp_smarthostt`; did you mean `smtp_smarthost`?",
            "6:13: unknown receiver `defualt`; define it under `receivers:`; did you mean \
             `default`?",
            "7:3: unknown key `group_wiat`; did you mean `group_wait`?",
            "9:48: matchers: invalid regular expression `(kitchen`: unclosed group",
            "10:17: unknown receiver `nobody`; define it under `receivers:`",
            "11:23: group_interval cannot be zero",
            "12:29: mute_time_intervals: unknown time interval `nigth`; define it under \
             `time_intervals:`; did you mean `night`?",
            "13:24: match_re: invalid regular expression `(hall`: unclosed group",
            "14:24: repeat_interval: `1h1h`: unit `h` repeated or out of order; write it like \
             `30s`, `5m`, `1h30m` or `1d`: whole numbers with units y, w, d, h, m, s, ms, \
             largest first",
            "15:24: group_by: `room` is listed twice",
            "18:5: receiver `default`: `slack_configs` is not supported by atalaya; supported: \
             webhook_configs, telegram_configs, email_configs, console_configs, mqtt_configs, \
             nats_configs, ntfy_configs, gotify_configs, matrix_configs, discord_configs, \
             pushover_configs",
            "19:5: receiver `default`: `opsgenie_configs` is not supported by atalaya; \
             supported: webhook_configs, telegram_configs, email_configs, console_configs, mqtt_configs, \
             nats_configs, ntfy_configs, gotify_configs, matrix_configs, discord_configs, \
             pushover_configs",
            "20:11: duplicate receiver name `default`; first defined at 17:11",
            "21:5: a receiver needs a `name`",
            "21:29: receiver: the webhook `url` must be an http:// or https:// URL with a host",
            "22:1: templates: Go templates are not used by atalaya; remove this key",
            "26:49: time interval `night`: end_time: `25:00` is not a time of day; write it as \
             `HH:MM`, 00:00 to 24:00",
            "27:20: time interval `night`: weekdays: `funday` is not a weekday; write \
             `monday`, … `sunday`",
        ]
    );
}

#[test]
fn the_root_route_takes_every_alert() {
    let text = r#"
route:
  matchers: [a=b]
  continue: true
  mute_time_intervals: [x]
receivers: [{name: r}]
time_intervals: [{name: x}]
"#;
    assert_eq!(
        errors(text),
        [
            "3:3: the root route needs a `receiver:`: where alerts no other route takes go",
            "3:3: the root route cannot have matchers: it takes every alert",
            "4:3: the root route cannot have `continue`: it has no siblings",
            "5:3: the root route cannot have time intervals",
        ]
    );
}

#[test]
fn shapes_are_checked() {
    assert_eq!(
        errors(""),
        ["1:1: the routing policy is empty; it needs `route:` and `receivers:`"]
    );
    assert_eq!(
        errors("- a"),
        ["1:1: expected a mapping with `route:` and `receivers:`, found a list"]
    );
    assert_eq!(
        errors("receivers: []\nroutes: {}\n"),
        [
            "1:1: missing `route:`, the root of the route tree (at least `receiver:`)",
            "2:1: unknown key `routes`; did you mean `route`?",
        ]
    );
    assert_eq!(
        errors("route: {receiver: r}\nreceivers: [{name: r}]\n---\nroute: {}\n"),
        ["4:1: a routing policy is one YAML document; remove the `---` and what follows"]
    );
    assert_eq!(
        errors("route: {receiver: r, routes: {a: b}}\nreceivers: [{name: r}]\n"),
        ["1:30: `routes` must be a list, found a mapping"]
    );
    let syntax = errors("route: [\n");
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].starts_with("2:1: "), "{syntax:?}");
}

#[test]
fn integrations_are_checked() {
    let text = r#"
route: {receiver: r}
receivers:
  - name: r
    webhook_configs:
      - {url: "https://h/x", url_file: /f}
      - {}
      - {url: "https://h/x", http_config: {}}
      - {url: "https://h/x", timeout: 0s, max_alerts: -1}
    mqtt_configs:
      - topic: "home/+/alerts"
    nats_configs:
      - subject: "alerts.>"
    console_configs:
      - send_resolved: maybe
"#;
    assert_eq!(
        errors(text),
        [
            "6:30: receiver `r`: give a webhook `url` or `url_file`, not both",
            "7:9: receiver `r`: a webhook needs `url` (or `url_file`, a file holding it)",
            "8:30: receiver `r`: webhook `http_config` is not supported by atalaya yet (no \
             authentication, TLS or proxy settings); put a token in the URL, written in a \
             file named by `url_file`",
            "9:39: timeout cannot be zero",
            "9:55: receiver `r`: webhook `max_alerts` must be 0 (every alert) or more",
            "11:16: receiver `r`: MQTT `topic` `home/+/alerts` cannot be published to: it \
             must be non-empty, without the wildcards `+` and `#`",
            "13:18: receiver `r`: NATS `subject` `alerts.>` cannot be published to: it must \
             be dot-separated tokens, without spaces or the wildcards `*` and `>`",
            "15:24: expected a boolean, found a string",
        ]
    );
}

#[test]
fn time_intervals_are_checked() {
    let text = r#"
route: {receiver: r}
receivers: [{name: r}]
mute_time_intervals:
  - name: a
    time_intervals:
      - times: [{start_time: "08:00"}, {start_time: "09:00", end_time: "08:00"}]
        location: Europe/Madird
        days_of_month: ['-1:5']
        months: [13]
time_intervals:
  - name: a
  - time_intervals: []
"#;
    assert_eq!(
        errors(text),
        [
            "7:17: time interval `a`: both `start_time` and `end_time` are needed",
            "7:40: time interval `a`: start time 09:00 must be before end time 08:00",
            "8:19: time interval `a`: unknown location `Europe/Madird`: expected an IANA time \
             zone name such as `Europe/Madrid`, or `UTC`",
            "9:25: time interval `a`: days_of_month: `-1:5`: the end day must be negative \
             when the start day is",
            "10:18: time interval `a`: months: `13` is not a month; write `january`, … \
             `december` or 1 to 12",
            "12:11: duplicate time interval name `a`; first defined at 5:11",
            "13:5: time_intervals: a time interval needs a `name`",
        ]
    );
}

#[test]
fn inhibit_rules_are_checked() {
    let text = r#"
route: {receiver: r}
receivers: [{name: r}]
inhibit_rules:
  - source_matchers: ['a="b" c']
    target_match: {"bad-name": x}
    equal: [room, "no way"]
    source: {}
"#;
    assert_eq!(
        errors(text),
        [
            "5:30: source_matchers: unexpected `c` after the closing quote; escape a quote \
             inside the value as `\\\"`",
            "6:20: target_match: `bad-name` is not a label name: use a letter or `_`, then \
             letters, digits or `_` (at most 128 bytes)",
            "7:19: equal: `no way` is not a label name",
            "8:5: unknown key `source`; expected one of `name`, `source_matchers`, \
             `source_match`, `source_match_re`, `target_matchers`, `target_match`, \
             `target_match_re`, `equal`",
        ]
    );
}

#[test]
fn an_alertmanager_configuration_says_what_to_change() {
    // Alertmanager's doc/examples/simple.yml, shortened.
    let text = r#"
global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'alertmanager@example.org'
templates:
  - '/etc/alertmanager/template/*.tmpl'
route:
  group_by: ['alertname', 'cluster', 'service']
  receiver: team-X-mails
  routes:
    - matchers:
        - service=~"foo1|foo2|baz"
      receiver: team-X-pager
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, cluster, service]
receivers:
  - name: 'team-X-mails'
    email_configs:
      - to: 'team-X+alerts@example.org'
  - name: 'team-X-pager'
    pagerduty_configs:
      - service_key: <team-X-key>
"#;
    assert_eq!(
        errors(text),
        [
            "5:1: templates: Go templates are not used by atalaya; remove this key",
            "23:5: receiver `team-X-pager`: `pagerduty_configs` is not supported by atalaya; \
             supported: webhook_configs, telegram_configs, email_configs, console_configs, mqtt_configs, \
             nats_configs, ntfy_configs, gotify_configs, matrix_configs, discord_configs, \
             pushover_configs",
        ]
    );
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    /// Lines of policy files, to be shuffled and indented at random.
    const LINES: &[&str] = &[
        "route:",
        "receiver: r",
        "routes:",
        "- matchers: ['a=~\"(\"', 'b!=c']",
        "- match: {a: b}",
        "match_re: {a: '['}",
        "continue: true",
        "group_by: ['...', a]",
        "group_wait: 1x",
        "receivers:",
        "- name: r",
        "webhook_configs: [{url_file: f}]",
        "mqtt_configs: [{}]",
        "time_intervals:",
        "- name: t",
        "- times: [{start_time: '24:00', end_time: '00:00'}]",
        "days_of_month: ['-31:-32', 0]",
        "location: Nowhere/Land",
        "inhibit_rules:",
        "- equal: [a]",
        "mute_time_intervals: [t]",
        "- {}",
        "- ~",
        "[1, 2]",
    ];

    proptest! {
        #[test]
        fn any_arrangement_compiles_or_errs(
            lines in proptest::collection::vec((0..LINES.len(), 0usize..4), 0..16)
        ) {
            let text: String = lines
                .iter()
                .map(|(line, indent)| format!("{}{}\n", "  ".repeat(*indent), LINES[*line]))
                .collect();
            if let Err(errors) = parse_policy(&text, Path::new("p.yaml"), &integration_kinds()) {
                prop_assert!(!errors.is_empty());
            }
        }
    }
}

#[test]
fn timings_take_the_duration_grammar_of_rule_files() {
    let policy = parse(
        "route:\n  receiver: r\n  group_wait: 30 seconds\n  group_interval: 1h 30m\n  repeat_interval: 1d\nreceivers:\n  - name: r\n",
    );
    let root = &policy.tree.root;
    assert_eq!(root.group_wait, Duration::from_secs(30));
    assert_eq!(root.group_interval, Duration::from_secs(5400));
    assert_eq!(root.repeat_interval, Duration::from_secs(86_400));
    let errors = errors("route:\n  receiver: r\n  group_wait: soon\nreceivers:\n  - name: r\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("group_wait: `soon` is not a duration"),
        "{errors:?}"
    );
}
