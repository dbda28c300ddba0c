//! Home Assistant MQTT discovery: atalaya as one device, with a `binary_sensor` (device class
//! `problem`) per rule and a sensor counting firing alerts.
//!
//! With `silence_buttons`, each rule also has a `button` that silences its alerts (matcher
//! `alertname=<rule>`) for an hour, created by `Home Assistant`.
//!
//! Device-based discovery: one retained config at
//! `<discovery_prefix>/device/<device_id>/config` holding the device (`dev`), the origin
//! (`o`) and every entity (`cmps`), each with a `unique_id` and a `default_entity_id`
//! (`binary_sensor.<device_id>_<rule>`; Home Assistant no longer honours `object_id`).
//! Availability is the connection's status topic (`online`, and `offline` as its last will).
//! Each rule's state (`ON`/`OFF`) and attributes (the firing alerts' labels, summary, since,
//! silenced) are retained under `<state_prefix>/rule/<rule>/`; the count under
//! `<state_prefix>/firing`.
//!
//! Entities of rules that are gone (removed by a reload, or while atalaya was down: the
//! broker replays the retained config at start) are removed the way Home Assistant asks: the
//! config is published once with each removed entity reduced to its platform (`{"p":
//! "binary_sensor"}`), then without it. When Home Assistant announces itself
//! (`<discovery_prefix>/status` = `online`) everything is published again.
//!
//! A rule whose name makes no entity id (nothing left of `[a-z0-9_]` after lowercasing, or
//! the same id as an earlier rule) gets no entity; this is logged once.
//!
//! Sans-IO: the [`keeper`](super::keeper) feeds it the rules and alerts and publishes what
//! it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tracing::warn;

use super::keeper::AlertSnapshot;
use super::state_topics::Retain;

/// `mqtt.homeassistant`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryConfig {
    /// Home Assistant's discovery prefix. Default `homeassistant`.
    pub discovery_prefix: String,
    /// The device's id in topics, unique ids and entity ids. Default: the client id as an id.
    pub device_id: String,
    /// Shown in Home Assistant. Default `atalaya`.
    pub device_name: String,
    /// Where entity states are retained. Default `atalaya/ha`.
    pub state_prefix: String,
    /// A button per rule that silences its alerts for an hour. Default false: whoever may
    /// publish to the broker could silence alerts with it.
    pub silence_buttons: bool,
}

impl DiscoveryConfig {
    /// Defaults for a connection with `client_id`.
    pub fn new(client_id: &str) -> Self {
        let device_id = entity_slug(client_id).unwrap_or_else(|| "atalaya".to_owned());
        Self {
            discovery_prefix: "homeassistant".to_owned(),
            device_id,
            device_name: "atalaya".to_owned(),
            state_prefix: "atalaya/ha".to_owned(),
            silence_buttons: false,
        }
    }

    /// Every problem: the key under `mqtt.homeassistant`, and what is wrong with its value.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if entity_slug(&self.device_id).as_deref() != Some(self.device_id.as_str()) {
            problems.push((
                "device_id",
                format!(
                    "`{}`: use lowercase letters, digits and `_`",
                    self.device_id
                ),
            ));
        }
        for (key, topic) in [
            ("discovery_prefix", &self.discovery_prefix),
            ("state_prefix", &self.state_prefix),
        ] {
            if atalaya_bus::Subject::parse(topic).is_err() {
                problems.push((
                    key,
                    format!("`{topic}` is not a topic atalaya can publish to"),
                ));
            }
        }
        problems
    }

    /// `<discovery_prefix>/device/<device_id>/config`.
    pub fn config_topic(&self) -> String {
        format!("{}/device/{}/config", self.discovery_prefix, self.device_id)
    }

    /// Home Assistant's birth and last will: `<discovery_prefix>/status`.
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// Where the silence buttons publish: `<state_prefix>/rule/<rule>/silence`.
    pub fn silence_pattern(&self) -> String {
        format!("{}/rule/+rule/silence", self.state_prefix)
    }
}

/// The entity id part of a name: lowercase, every run of other characters one `_`, no `_`
/// at either end. `None` when nothing is left.
pub fn entity_slug(name: &str) -> Option<String> {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
    }
    while slug.ends_with('_') {
        slug.pop();
    }
    (!slug.is_empty()).then_some(slug)
}

const FIRING_COMPONENT: &str = "firing_alerts";
/// Where Home Assistant points users of the origin (`o.url`).
const ORIGIN_URL: &str = "https://github.com/atalaya-dev/atalaya";
/// The most alerts listed in a rule's attributes (Home Assistant keeps attributes small).
const MAX_LISTED: usize = 10;

/// What is published to Home Assistant, and what it already has.
pub struct Discovery {
    config: DiscoveryConfig,
    /// The availability topic (the connection's status topic), if any.
    availability: Option<String>,
    version: String,
    /// Component id → platform, as last published by this process.
    published: Option<BTreeMap<String, String>>,
    /// Component ids in a config the broker sent back (retained at start, or an echo).
    seen: BTreeMap<String, String>,
    /// The last payload of each state topic.
    states: HashMap<String, Vec<u8>>,
    /// Rule names already logged as making no entity.
    warned: BTreeSet<String>,
    /// `(slug, name)` of the rules last published.
    rules: Vec<(String, String)>,
}

impl Discovery {
    pub fn new(config: DiscoveryConfig, availability: Option<String>, version: &str) -> Self {
        Self {
            config,
            availability,
            version: version.to_owned(),
            published: None,
            seen: BTreeMap::new(),
            states: HashMap::new(),
            warned: BTreeSet::new(),
            rules: Vec::new(),
        }
    }

    pub fn config(&self) -> &DiscoveryConfig {
        &self.config
    }

    /// A message on a tapped topic: the device config coming back, or Home Assistant's birth.
    /// `false` when it is neither.
    pub fn tapped(&mut self, topic: &str, payload: &[u8]) -> bool {
        if topic == self.config.birth_topic() {
            if payload == b"online" {
                // Home Assistant (re)started: it has nothing until told again.
                self.forget();
            }
            return true;
        }
        if topic != self.config.config_topic() {
            return false;
        }
        let config: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        if let Some(cmps) = config.get("cmps").and_then(Value::as_object) {
            for (id, component) in cmps {
                // A component reduced to its platform is a removal (ours coming back), not
                // an entity.
                let removal = component.as_object().is_some_and(|c| c.len() == 1);
                let platform = component.get("p").and_then(Value::as_str);
                if let Some(platform) = platform.filter(|_| !removal) {
                    self.seen.insert(id.clone(), platform.to_owned());
                }
            }
        }
        true
    }

    /// Forgets what was published, so the next [`publish`](Self::publish) sends it all.
    pub fn forget(&mut self) {
        self.published = None;
        self.states.clear();
    }

    /// What to publish for the rules and alerts of `snapshot`: the config when the entities
    /// changed (after a removal config when some are gone), then each state that changed.
    pub fn publish(&mut self, snapshot: &AlertSnapshot) -> Vec<Retain> {
        let rules = self.entities(&snapshot.rules);
        let mut out = Vec::new();
        let buttons = self.config.silence_buttons;
        let components: BTreeMap<String, String> = rules
            .iter()
            .map(|(slug, _)| (format!("rule_{slug}"), "binary_sensor".to_owned()))
            .chain(
                rules
                    .iter()
                    .filter(|_| buttons)
                    .map(|(slug, _)| (format!("silence_{slug}"), "button".to_owned())),
            )
            .chain([(FIRING_COMPONENT.to_owned(), "sensor".to_owned())])
            .collect();
        let gone: BTreeMap<String, String> = self
            .seen
            .iter()
            .chain(self.published.iter().flatten())
            .filter(|(id, _)| !components.contains_key(*id))
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect();
        if self.published.as_ref() != Some(&components) || !gone.is_empty() {
            let mut config = self.device_config(&rules);
            if !gone.is_empty() {
                let mut removal = config.clone();
                for (id, platform) in &gone {
                    removal["cmps"][id] = json!({ "p": platform });
                }
                out.push(self.retain(self.config.config_topic(), &removal));
            }
            // Home Assistant's own copy of each state may be stale: send them all again.
            self.states.clear();
            out.push(self.retain(self.config.config_topic(), &config.take()));
            self.published = Some(components.clone());
            self.seen = components;
        }
        for (slug, name) in &rules {
            let alerts: Vec<_> = snapshot
                .alerts
                .iter()
                .filter(|a| a.firing && a.rule.as_deref() == Some(name.as_str()))
                .collect();
            let base = format!("{}/rule/{slug}", self.config.state_prefix);
            let on = if alerts.is_empty() { "OFF" } else { "ON" };
            self.state(&mut out, format!("{base}/state"), on.as_bytes().to_vec());
            let listed: Vec<Value> = alerts
                .iter()
                .take(MAX_LISTED)
                .map(|a| {
                    json!({
                        "labels": a.labels,
                        "summary": a.summary,
                        "since": a.starts_at.to_string(),
                        "silenced": a.silenced,
                    })
                })
                .collect();
            let attributes = json!({
                "firing": alerts.len(),
                "silenced": !alerts.is_empty() && alerts.iter().all(|a| a.silenced),
                "since": alerts.iter().map(|a| a.starts_at).min().map(|t| t.to_string()),
                "summary": alerts.iter().find_map(|a| a.summary.clone()),
                "alerts": listed,
            });
            self.state(
                &mut out,
                format!("{base}/attributes"),
                serde_json::to_vec(&attributes).unwrap_or_default(),
            );
        }
        let firing = snapshot.alerts.iter().filter(|a| a.firing).count();
        self.state(
            &mut out,
            format!("{}/firing", self.config.state_prefix),
            firing.to_string().into_bytes(),
        );
        self.rules = rules;
        out
    }

    /// The rule whose silence button was pressed, if `topic` is one (and buttons are on).
    pub fn pressed(&self, topic: &str) -> Option<&str> {
        if !self.config.silence_buttons {
            return None;
        }
        let slug = topic
            .strip_prefix(&self.config.state_prefix)?
            .strip_prefix("/rule/")?
            .strip_suffix("/silence")?;
        self.rules
            .iter()
            .find(|(s, _)| s == slug)
            .map(|(_, name)| name.as_str())
    }

    /// `(slug, name)` of every rule that makes an entity, in order, once each.
    fn entities(&mut self, names: &[String]) -> Vec<(String, String)> {
        let mut slugs = BTreeSet::new();
        let mut rules = Vec::new();
        for name in names {
            match entity_slug(name) {
                Some(slug) if slugs.insert(slug.clone()) => rules.push((slug, name.clone())),
                Some(_) if rules.iter().any(|(_, n)| n == name) => {}
                slug => {
                    if self.warned.insert(name.clone()) {
                        warn!(
                            rule = %name,
                            entity = ?slug,
                            "This rule gets no Home Assistant entity: its name makes no entity id, or the same one as another rule's."
                        );
                    }
                }
            }
        }
        rules
    }

    fn device_config(&self, rules: &[(String, String)]) -> Value {
        let device = &self.config.device_id;
        let mut cmps = serde_json::Map::new();
        for (slug, name) in rules {
            let base = format!("{}/rule/{slug}", self.config.state_prefix);
            cmps.insert(
                format!("rule_{slug}"),
                json!({
                    "p": "binary_sensor",
                    "name": name,
                    "unique_id": format!("{device}_rule_{slug}"),
                    "default_entity_id": format!("binary_sensor.{device}_{slug}"),
                    "device_class": "problem",
                    "state_topic": format!("{base}/state"),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "json_attributes_topic": format!("{base}/attributes"),
                }),
            );
        }
        for (slug, name) in rules.iter().filter(|_| self.config.silence_buttons) {
            cmps.insert(
                format!("silence_{slug}"),
                json!({
                    "p": "button",
                    "name": format!("Silence {name} for 1 h"),
                    "unique_id": format!("{device}_silence_{slug}"),
                    "default_entity_id": format!("button.{device}_silence_{slug}"),
                    "command_topic": format!("{}/rule/{slug}/silence", self.config.state_prefix),
                    "payload_press": "PRESS",
                    "icon": "mdi:bell-off",
                }),
            );
        }
        cmps.insert(
            FIRING_COMPONENT.to_owned(),
            json!({
                "p": "sensor",
                "name": "Firing alerts",
                "unique_id": format!("{device}_{FIRING_COMPONENT}"),
                "default_entity_id": format!("sensor.{device}_{FIRING_COMPONENT}"),
                "state_topic": format!("{}/firing", self.config.state_prefix),
                "state_class": "measurement",
                "icon": "mdi:alert",
            }),
        );
        let mut config = json!({
            "dev": {
                "ids": [device],
                "name": self.config.device_name,
                "mf": "atalaya",
                "mdl": "atalaya",
                "sw": self.version,
            },
            "o": {
                "name": "atalaya",
                "sw": self.version,
                "url": ORIGIN_URL,
            },
            "cmps": cmps,
            "qos": 1,
        });
        if let Some(topic) = &self.availability {
            config["availability_topic"] = json!(topic);
            config["payload_available"] = json!(super::options::ONLINE);
            config["payload_not_available"] = json!(super::options::OFFLINE);
        }
        config
    }

    fn retain(&self, topic: String, value: &Value) -> Retain {
        Retain {
            topic,
            payload: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// A state publish, only when it differs from the last one.
    fn state(&mut self, out: &mut Vec<Retain>, topic: String, payload: Vec<u8>) {
        if self.states.get(&topic) != Some(&payload) {
            self.states.insert(topic.clone(), payload.clone());
            out.push(Retain { topic, payload });
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::mqtt::keeper::HeldAlert;

    fn snapshot(rules: &[&str], firing: &[(&str, bool)]) -> AlertSnapshot {
        AlertSnapshot {
            rules: rules.iter().map(|r| (*r).to_owned()).collect(),
            alerts: firing
                .iter()
                .enumerate()
                .map(|(i, (rule, silenced))| HeldAlert {
                    fingerprint: format!("f{i}"),
                    rule: Some((*rule).to_owned()),
                    firing: true,
                    silenced: *silenced,
                    labels: [("alertname".to_owned(), (*rule).to_owned())].into(),
                    summary: Some(format!("{rule} is on")),
                    starts_at: Timestamp::UNIX_EPOCH,
                })
                .collect(),
        }
    }

    fn discovery() -> Discovery {
        Discovery::new(
            DiscoveryConfig::new("atalaya"),
            Some("atalaya/status".to_owned()),
            "1.2.3",
        )
    }

    fn topics(out: &[Retain]) -> Vec<&str> {
        out.iter().map(|r| r.topic.as_str()).collect()
    }

    fn json_of(r: &Retain) -> Value {
        serde_json::from_slice(&r.payload).unwrap()
    }

    #[test]
    fn slugs_are_entity_ids() {
        assert_eq!(
            entity_slug("Freezer warm!").as_deref(),
            Some("freezer_warm")
        );
        assert_eq!(entity_slug("node-lost").as_deref(), Some("node_lost"));
        assert_eq!(entity_slug("__x__").as_deref(), Some("x"));
        assert_eq!(entity_slug("¿?"), None);
        assert_eq!(DiscoveryConfig::new("atalaya-2").device_id, "atalaya_2");
        let mut bad = DiscoveryConfig::new("a");
        bad.device_id = "Bad Id".to_owned();
        bad.state_prefix = "a/+".to_owned();
        assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
    }

    #[test]
    fn the_device_config_then_states_only_as_they_change() {
        let mut d = discovery();
        let out = d.publish(&snapshot(
            &["freezer_warm", "node_lost"],
            &[("node_lost", false)],
        ));
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/atalaya/config",
                "atalaya/ha/rule/freezer_warm/state",
                "atalaya/ha/rule/freezer_warm/attributes",
                "atalaya/ha/rule/node_lost/state",
                "atalaya/ha/rule/node_lost/attributes",
                "atalaya/ha/firing",
            ]
        );
        let config = json_of(&out[0]);
        let sensor = &config["cmps"]["rule_node_lost"];
        assert_eq!(sensor["p"], "binary_sensor");
        assert_eq!(
            sensor["default_entity_id"],
            "binary_sensor.atalaya_node_lost"
        );
        assert_eq!(sensor["device_class"], "problem");
        assert!(sensor.get("object_id").is_none());
        assert_eq!(config["availability_topic"], "atalaya/status");
        assert_eq!(out[3].payload, b"ON");
        assert_eq!(json_of(&out[4])["summary"], "node_lost is on");
        assert_eq!(out[5].payload, b"1");

        let out = d.publish(&snapshot(
            &["freezer_warm", "node_lost"],
            &[("node_lost", true)],
        ));
        assert_eq!(topics(&out), ["atalaya/ha/rule/node_lost/attributes"]);
        assert_eq!(json_of(&out[0])["silenced"], true);
        assert!(
            d.publish(&snapshot(
                &["freezer_warm", "node_lost"],
                &[("node_lost", true)]
            ))
            .is_empty()
        );

        // Home Assistant restarted: everything again.
        assert!(d.tapped("homeassistant/status", b"online"));
        let out = d.publish(&snapshot(
            &["freezer_warm", "node_lost"],
            &[("node_lost", true)],
        ));
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn gone_rules_are_removed_once_with_their_platform_only() {
        let mut d = discovery();
        // What an earlier run left retained.
        let earlier = serde_json::to_vec(&json!({"cmps": {
            "rule_old": {"p": "binary_sensor", "unique_id": "atalaya_rule_old"},
            "firing_alerts": {"p": "sensor", "unique_id": "atalaya_firing_alerts"},
        }}))
        .unwrap();
        assert!(d.tapped("homeassistant/device/atalaya/config", &earlier));
        let out = d.publish(&snapshot(&["new"], &[]));
        assert_eq!(out[0].topic, "homeassistant/device/atalaya/config");
        assert_eq!(
            json_of(&out[0])["cmps"]["rule_old"],
            json!({"p": "binary_sensor"})
        );
        assert!(json_of(&out[0])["cmps"]["rule_new"]["unique_id"].is_string());
        // The echo of the removal is no entity to remove again.
        let removal = out[0].payload.clone();
        assert!(d.tapped("homeassistant/device/atalaya/config", &removal));
        assert_eq!(out[1].topic, "homeassistant/device/atalaya/config");
        assert!(json_of(&out[1])["cmps"].get("rule_old").is_none());
        // The echo of the clean config changes nothing.
        let clean = out[1].payload.clone();
        assert!(d.tapped("homeassistant/device/atalaya/config", &clean));
        assert!(d.publish(&snapshot(&["new"], &[])).is_empty());
        // A reload removes a rule.
        let out = d.publish(&snapshot(&[], &[]));
        assert_eq!(
            json_of(&out[0])["cmps"]["rule_new"],
            json!({"p": "binary_sensor"})
        );
        assert_eq!(json_of(&out[1])["cmps"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn silence_buttons_when_asked() {
        let mut d = discovery();
        let out = d.publish(&snapshot(&["node-lost"], &[]));
        assert!(json_of(&out[0])["cmps"].get("silence_node_lost").is_none());
        assert_eq!(
            d.pressed("atalaya/ha/rule/node_lost/silence"),
            None,
            "off by default"
        );
        let mut config = DiscoveryConfig::new("atalaya");
        config.silence_buttons = true;
        let mut d = Discovery::new(config, None, "1");
        let out = d.publish(&snapshot(&["node-lost"], &[]));
        let button = &json_of(&out[0])["cmps"]["silence_node_lost"];
        assert_eq!(button["p"], "button");
        assert_eq!(button["command_topic"], "atalaya/ha/rule/node_lost/silence");
        assert_eq!(
            d.pressed("atalaya/ha/rule/node_lost/silence"),
            Some("node-lost")
        );
        assert_eq!(d.pressed("atalaya/ha/rule/other/silence"), None);
        assert_eq!(d.pressed("atalaya/ha/rule/node_lost/state"), None);
    }

    #[test]
    fn rules_without_an_entity_id_are_skipped() {
        let mut d = discovery();
        let out = d.publish(&snapshot(&["¿?", "a-b", "a_b", "ok"], &[]));
        let config = json_of(&out[0]);
        let ids: Vec<&String> = config["cmps"].as_object().unwrap().keys().collect();
        assert_eq!(ids, ["firing_alerts", "rule_a_b", "rule_ok"]);
        assert_eq!(
            config["cmps"]["rule_a_b"]["name"], "a-b",
            "the first keeps it"
        );
    }
}
