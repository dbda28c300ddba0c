//! What atalaya leaves retained on a real mosquitto tells the truth: alert state topics end
//! resolved and are cleared (also one-shot alerts, also without resolved notifications, also
//! what an earlier run left behind), and Home Assistant discovery describes the rules loaded
//! — checked against Home Assistant's documented schema — removing entities of rules that are
//! gone and publishing again when Home Assistant announces itself.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use atalaya_test_kit::ha_discovery;
use atalaya_test_kit::mosquitto::{Mosquitto, printed};
use serde_json::{Value, json};
use support::{Atalaya, Options, PATIENCE};

const RULES: &str = r#"rules:
  - name: water_leak
    subject: zigbee2mqtt/+device
    condition: has(data.water_leak) && data.water_leak == true
    annotations:
      summary: "Water at {{ labels.device }}"
  - name: doorbell
    subject: doorbell/+door
    condition: has(data.pressed) && data.pressed == true
    one_shot: true
"#;

fn mqtt_config(broker: &Mosquitto, more: &str) -> String {
    format!(
        "mqtt:\n  host: 127.0.0.1\n  port: {}\n  client_id: atalaya-test\n  reconnect: {{min: 100ms, max: 1s}}\n  subscriptions:\n    - topic: zigbee2mqtt/+device\n    - topic: doorbell/+door\n{more}",
        broker.port
    )
}

/// Polls what the broker retains under `filter` until `done` holds; panics with it when it
/// never does.
async fn retained_until(
    broker: &Mosquitto,
    filter: &str,
    what: &str,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let retained: BTreeMap<String, Value> = broker
            .retained(filter)
            .await
            .into_iter()
            .map(|(topic, payload)| {
                let value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
                (topic, value)
            })
            .collect();
        if done(&retained) {
            return retained;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: never so; retained under {filter}: {retained:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The state topic of the alert whose `alertname` is `rule`, with its state.
fn state_of<'a>(retained: &'a BTreeMap<String, Value>, rule: &str) -> Option<(&'a str, &'a Value)> {
    retained
        .iter()
        .find(|(_, state)| state["labels"]["alertname"] == rule)
        .map(|(topic, state)| (topic.as_str(), state))
}

/// What a `mosquitto_sub -v` child printed, as `(topic, payload)`.
async fn lines_of(child: std::process::Child) -> Vec<(String, String)> {
    printed(child)
        .await
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, p)| (t.to_owned(), p.to_owned()))
        .collect()
}

#[tokio::test]
async fn alert_state_topics_end_resolved_and_are_cleared_and_leftovers_are_fixed_at_start() {
    let broker = Mosquitto::started().await;
    // What an earlier run left: an alert shown firing that is no longer held (its rule was
    // removed while atalaya was down), and a state resolved long ago.
    broker.publish_retained(
        "ha/alerts/00000000000000aa",
        r#"{"status":"firing","labels":{"alertname":"gone"},"startsAt":"2026-01-01T00:00:00Z","endsAt":null}"#,
    );
    broker.publish_retained(
        "ha/alerts/00000000000000bb",
        r#"{"status":"resolved","labels":{"alertname":"old"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T00:10:00Z"}"#,
    );
    // No resolved notifications: the state topics must end resolved all the same.
    let routing = "route:\n  receiver: ha\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: ha\n    mqtt_configs:\n      - topic: home/notifications\n        state_topic_prefix: ha/alerts\n        send_resolved: false\n        clear_resolved_after: 3s\n";
    let atalaya = Atalaya::start_with(Options {
        config: mqtt_config(&broker, ""),
        rules: vec![("home.yaml", RULES.to_owned())],
        routing: Some(routing.to_owned()),
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    retained_until(&broker, "ha/alerts/#", "the leftovers cleared", |r| {
        r.is_empty()
    })
    .await;

    // A leak fires, and its state is retained firing...
    broker.publish("zigbee2mqtt/leak_kitchen", r#"{"water_leak": true}"#, 1);
    let retained = retained_until(&broker, "ha/alerts/#", "the leak firing", |r| {
        state_of(r, "water_leak").is_some_and(|(_, s)| s["status"] == "firing")
    })
    .await;
    let (topic, state) = state_of(&retained, "water_leak").unwrap();
    let topic = topic.to_owned();
    assert_eq!(state["labels"]["device"], "leak_kitchen");
    // ... it ends: resolved (no resolved notification is sent to this receiver), then gone.
    broker.publish("zigbee2mqtt/leak_kitchen", r#"{"water_leak": false}"#, 1);
    let retained = retained_until(&broker, "ha/alerts/#", "the leak resolved", |r| {
        r.get(&topic).is_some_and(|s| s["status"] == "resolved")
    })
    .await;
    assert!(retained[&topic]["endsAt"].is_string(), "{retained:#?}");
    retained_until(&broker, "ha/alerts/#", "the leak cleared", |r| {
        !r.contains_key(&topic)
    })
    .await;

    // A one-shot alert is news once: what stays retained is resolved, then cleared.
    let notifications = broker.subscribed("home/notifications", 1).await;
    broker.publish("doorbell/front", r#"{"pressed": true}"#, 1);
    let told = lines_of(notifications).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let retained = broker
        .retained("ha/alerts/#")
        .await
        .into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap()))
        .collect::<BTreeMap<String, Value>>();
    // Published firing, then at once resolved; cleared 3 s later (possibly already).
    if let Some((_, state)) = state_of(&retained, "doorbell") {
        assert_eq!(state["status"], "resolved", "{retained:#?}");
        assert_eq!(state["endsAt"], state["startsAt"], "{retained:#?}");
    }
    retained_until(&broker, "ha/alerts/#", "the doorbell cleared", |r| {
        state_of(r, "doorbell").is_none()
    })
    .await;
}

#[tokio::test]
async fn home_assistant_discovery_shows_each_rule_and_removes_gone_ones() {
    let broker = Mosquitto::started().await;
    let config_topic = "homeassistant/device/atalaya_test/config";
    // An earlier run's device config, with the entity of a rule since removed.
    let earlier = json!({
        "dev": {"ids": ["atalaya_test"], "name": "atalaya"},
        "o": {"name": "atalaya"},
        "cmps": {
            "rule_gone": {"p": "binary_sensor", "unique_id": "atalaya_test_rule_gone", "state_topic": "atalaya/ha/rule/gone/state"},
            "firing_alerts": {"p": "sensor", "unique_id": "atalaya_test_firing_alerts", "state_topic": "atalaya/ha/firing"},
        },
    });
    broker.publish_retained(config_topic, &earlier.to_string());
    // The retained one, the removal, the clean config.
    let configs = broker.subscribed(config_topic, 3).await;
    let rules = RULES.replace("name: doorbell", "name: Door-Bell");
    let atalaya = Atalaya::start_with(Options {
        config: mqtt_config(
            &broker,
            "  homeassistant:\n    discovery: true\n    silence_buttons: true\n",
        ),
        rules: vec![("home.yaml", rules)],
        ..Options::default()
    })
    .await;
    atalaya.wait_ready().await;
    let configs = lines_of(configs).await;
    assert_eq!(configs.len(), 3, "{configs:#?}");
    let removal: Value = serde_json::from_str(&configs[1].1).unwrap();
    let clean: Value = serde_json::from_str(&configs[2].1).unwrap();
    for config in [&removal, &clean] {
        let problems = ha_discovery::problems(config_topic, config);
        assert!(problems.is_empty(), "{problems:#?}\n{config:#}");
    }
    assert_eq!(removal["cmps"]["rule_gone"], json!({"p": "binary_sensor"}));
    let mut entities: Vec<&String> = clean["cmps"].as_object().unwrap().keys().collect();
    entities.sort();
    assert_eq!(
        entities,
        [
            "firing_alerts",
            "rule_door_bell",
            "rule_water_leak",
            "silence_door_bell",
            "silence_water_leak"
        ]
    );
    let leak = &clean["cmps"]["rule_water_leak"];
    assert_eq!(
        leak["default_entity_id"],
        "binary_sensor.atalaya_test_water_leak"
    );
    assert_eq!(leak["device_class"], "problem");
    assert_eq!(clean["cmps"]["rule_door_bell"]["name"], "Door-Bell");
    assert_eq!(clean["availability_topic"], "atalaya/status");
    let retained = broker.retained("atalaya/status").await;
    assert_eq!(retained["atalaya/status"], "online");

    // States: off, then on with the alert's attributes once the rule fires.
    retained_until(&broker, "atalaya/ha/#", "the states published", |r| {
        r.get("atalaya/ha/rule/water_leak/state") == Some(&json!("OFF"))
            && r.get("atalaya/ha/firing") == Some(&json!(0))
    })
    .await;
    broker.publish("zigbee2mqtt/leak_kitchen", r#"{"water_leak": true}"#, 1);
    let retained = retained_until(&broker, "atalaya/ha/#", "the leak on", |r| {
        r.get("atalaya/ha/rule/water_leak/state") == Some(&json!("ON"))
            && r.get("atalaya/ha/firing") == Some(&json!(1))
    })
    .await;
    let attributes = &retained["atalaya/ha/rule/water_leak/attributes"];
    assert_eq!(attributes["firing"], 1, "{attributes:#}");
    assert_eq!(attributes["summary"], "Water at leak_kitchen");
    assert_eq!(attributes["silenced"], false);
    assert_eq!(attributes["alerts"][0]["labels"]["device"], "leak_kitchen");

    // The silence button: pressed in Home Assistant, the rule's alerts are silenced.
    let button = &clean["cmps"]["silence_water_leak"];
    broker.publish(button["command_topic"].as_str().unwrap(), "PRESS", 1);
    let retained = retained_until(&broker, "atalaya/ha/#", "the leak silenced", |r| {
        r.get("atalaya/ha/rule/water_leak/attributes")
            .is_some_and(|a| a["silenced"] == true)
    })
    .await;
    assert_eq!(
        retained["atalaya/ha/rule/water_leak/state"], "ON",
        "still firing"
    );
    let silences = atalaya.get_json("/api/v2/silences").await;
    assert_eq!(silences[0]["createdBy"], "Home Assistant", "{silences:#}");
    assert_eq!(
        silences[0]["matchers"][0]["value"], "water_leak",
        "{silences:#}"
    );

    // Home Assistant restarts and announces itself: the config comes again (after the
    // retained copy every new subscriber gets).
    let again = broker.subscribed(config_topic, 2).await;
    broker.publish("homeassistant/status", "online", 1);
    let again = lines_of(again).await;
    assert_eq!(again.len(), 2, "{again:#?}");
    assert_eq!(serde_json::from_str::<Value>(&again[1].1).unwrap(), clean);
}
