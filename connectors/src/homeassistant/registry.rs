//! Home Assistant's entity, device and area registries, kept to label events with where an
//! entity is (`area`) and what it belongs to (`device`, `device_name`).
//!
//! Fetched after login (`config/entity_registry/list` and its device and area siblings) and
//! again, a moment later, after Home Assistant says one changed (`entity_registry_updated`,
//! …). They are admin commands: with a token of a user who is not an administrator they are
//! refused, and events simply go without these labels.

use std::collections::HashMap;

use atalaya_bus::event::{Labels, MAX_LABEL_VALUE_BYTES};
use serde::Deserialize;
use serde_json::Value;

/// One of the three registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RegistryKind {
    Entity,
    Device,
    Area,
}

impl RegistryKind {
    pub const ALL: [Self; 3] = [Self::Entity, Self::Device, Self::Area];

    /// The command listing it.
    pub fn list_command(self) -> &'static str {
        match self {
            Self::Entity => "config/entity_registry/list",
            Self::Device => "config/device_registry/list",
            Self::Area => "config/area_registry/list",
        }
    }

    /// The event Home Assistant fires when it changes.
    pub fn updated_event(self) -> &'static str {
        match self {
            Self::Entity => "entity_registry_updated",
            Self::Device => "device_registry_updated",
            Self::Area => "area_registry_updated",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Device => "device",
            Self::Area => "area",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct EntityEntry {
    entity_id: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    area_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct DeviceEntry {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_by_user: Option<String>,
    #[serde(default)]
    area_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct AreaEntry {
    area_id: String,
    #[serde(default)]
    name: Option<String>,
}

/// What the registries say about entities, by id.
#[derive(Debug, Default)]
pub(crate) struct Registries {
    entities: HashMap<String, EntityEntry>,
    devices: HashMap<String, DeviceEntry>,
    /// Area id → its name.
    areas: HashMap<String, String>,
}

impl Registries {
    /// Replaces one registry with a list command's `result`. An entry that does not read is
    /// left out; a result that is not a list is an error (and the old registry stays).
    /// Returns how many entries were kept.
    pub fn replace(&mut self, kind: RegistryKind, result: Value) -> Result<usize, String> {
        let Value::Array(items) = result else {
            return Err(format!("the {} registry is not a list", kind.name()));
        };
        fn entries<T: for<'de> Deserialize<'de>>(items: Vec<Value>) -> Vec<T> {
            items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect()
        }
        let kept = match kind {
            RegistryKind::Entity => {
                self.entities = entries::<EntityEntry>(items)
                    .into_iter()
                    .map(|e| (e.entity_id.clone(), e))
                    .collect();
                self.entities.len()
            }
            RegistryKind::Device => {
                self.devices = entries::<DeviceEntry>(items)
                    .into_iter()
                    .map(|d| (d.id.clone(), d))
                    .collect();
                self.devices.len()
            }
            RegistryKind::Area => {
                self.areas = entries::<AreaEntry>(items)
                    .into_iter()
                    .map(|a| {
                        let name = a.name.unwrap_or_else(|| a.area_id.clone());
                        (a.area_id, name)
                    })
                    .collect();
                self.areas.len()
            }
        };
        Ok(kept)
    }

    /// Adds `area`, `device` and `device_name` for `entity_id`, as far as known: the
    /// entity's own area, else its device's; an area's name, else its id; a device's name
    /// as its user set it, else as its integration did. Values too long for a label are left
    /// out.
    pub fn label(&self, entity_id: &str, labels: &mut Labels) {
        let Some(entity) = self.entities.get(entity_id) else {
            return;
        };
        let device = entity
            .device_id
            .as_ref()
            .and_then(|id| self.devices.get(id));
        let area_id = entity
            .area_id
            .as_ref()
            .or_else(|| device.and_then(|d| d.area_id.as_ref()));
        let mut put = |name: &str, value: &str| {
            if !value.is_empty() && value.len() <= MAX_LABEL_VALUE_BYTES {
                labels.insert(name.to_owned(), value.to_owned());
            }
        };
        if let Some(area_id) = area_id {
            put("area", self.areas.get(area_id).unwrap_or(area_id));
        }
        if let Some(device_id) = &entity.device_id {
            put("device", device_id);
        }
        if let Some(name) = device.and_then(|d| d.name_by_user.as_ref().or(d.name.as_ref())) {
            put("device_name", name);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn registries() -> Registries {
        let mut r = Registries::default();
        r.replace(
            RegistryKind::Entity,
            json!([
                {"entity_id": "sensor.freezer_temperature", "device_id": "dev1", "area_id": null, "platform": "zha"},
                {"entity_id": "binary_sensor.front_door", "device_id": "dev2", "area_id": "hall"},
                {"entity_id": "sun.sun"},
                {"no_entity_id": true},
            ]),
        )
        .unwrap();
        r.replace(
            RegistryKind::Device,
            json!([
                {"id": "dev1", "name": "TS0201", "name_by_user": "Freezer sensor", "area_id": "kitchen"},
                {"id": "dev2", "name": "Door contact", "name_by_user": null, "area_id": "kitchen"},
            ]),
        )
        .unwrap();
        r.replace(
            RegistryKind::Area,
            json!([{"area_id": "kitchen", "name": "Kitchen"}]),
        )
        .unwrap();
        r
    }

    fn labels(r: &Registries, entity_id: &str) -> Vec<(String, String)> {
        let mut labels = Labels::new();
        r.label(entity_id, &mut labels);
        labels.into_iter().collect()
    }

    #[test]
    fn areas_come_from_the_entity_or_its_device_and_names_from_the_user_first() {
        let r = registries();
        assert_eq!(
            labels(&r, "sensor.freezer_temperature"),
            [
                ("area".to_owned(), "Kitchen".to_owned()),
                ("device".to_owned(), "dev1".to_owned()),
                ("device_name".to_owned(), "Freezer sensor".to_owned()),
            ]
        );
        // Its own area ("hall", unnamed in the area registry) wins over the device's.
        assert_eq!(
            labels(&r, "binary_sensor.front_door"),
            [
                ("area".to_owned(), "hall".to_owned()),
                ("device".to_owned(), "dev2".to_owned()),
                ("device_name".to_owned(), "Door contact".to_owned()),
            ]
        );
        assert!(labels(&r, "sun.sun").is_empty());
        assert!(labels(&r, "light.unknown").is_empty());
    }

    #[test]
    fn a_result_that_is_not_a_list_keeps_the_registry() {
        let mut r = registries();
        assert!(r.replace(RegistryKind::Area, json!({"oops": 1})).is_err());
        assert_eq!(labels(&r, "sensor.freezer_temperature")[0].1, "Kitchen");
        assert_eq!(r.replace(RegistryKind::Area, json!([])).unwrap(), 0);
        assert_eq!(labels(&r, "sensor.freezer_temperature")[0].1, "kitchen");
    }

    /// Any JSON: a string, a number, an object with the registries' keys, lists of them.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            // Few distinct ids, so entities, devices and areas refer to each other.
            "[ab]{1,2}".prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 48, 6, |inner| {
            let key = prop_oneof![
                Just("entity_id".to_owned()),
                Just("device_id".to_owned()),
                Just("area_id".to_owned()),
                Just("id".to_owned()),
                Just("name".to_owned()),
                Just("name_by_user".to_owned()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever a registry list answers, it is kept or refused, and labelling never
        /// panics.
        #[test]
        fn any_registry_is_kept_or_refused(entities in any_json(), devices in any_json(), areas in any_json(), entity in "[ab]{1,2}") {
            let mut r = Registries::default();
            let _ = r.replace(RegistryKind::Entity, entities);
            let _ = r.replace(RegistryKind::Device, devices);
            let _ = r.replace(RegistryKind::Area, areas);
            let mut labels = Labels::new();
            r.label(&entity, &mut labels);
            prop_assert!(atalaya_bus::event::validate_labels(&labels).is_ok());
        }
    }
}
