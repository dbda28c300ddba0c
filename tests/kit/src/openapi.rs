//! A checker of JSON answers against an OpenAPI 2.0 (Swagger) document: the response
//! schema of a path, method and status, with `$ref`, `allOf`, `type`, `required`,
//! `properties`, `additionalProperties`, `items`, `minItems`, `enum` and the `date-time`
//! and `uuid` formats. Strict where Swagger is lenient: a property the schema does not
//! declare is an error, so "the same shapes" means no more and no less.
//!
//! Used with Alertmanager's `api/v2/openapi.yaml`, vendored in `tests/data/alertmanager/`
//! with its licence.

use serde_json::{Map, Value};
use yaml_rust2::YamlLoader;

use crate::yaml::to_json;

pub struct OpenApi {
    document: Value,
}

impl OpenApi {
    /// Reads an OpenAPI 2.0 document (YAML).
    pub fn load(path: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(path).expect("read the OpenAPI document");
        let yaml = YamlLoader::load_from_str(&text).expect("OpenAPI YAML");
        Self {
            document: to_json(&yaml[0]),
        }
    }

    /// Checks `body`, the answer with `status` to `method` on `path` (as the document
    /// writes it, `/silence/{silenceID}`, without the base path). Every problem found, each
    /// with where in the body it is.
    pub fn check(&self, path: &str, method: &str, status: u16, body: &Value) -> Vec<String> {
        let responses = &self.document["paths"][path][method]["responses"];
        let mut response = &responses[status.to_string()];
        if let Some(reference) = response["$ref"].as_str() {
            response = self.resolve(reference);
        }
        if response.is_null() {
            return vec![format!(
                "{method} {path}: no response {status} in the document"
            )];
        }
        let mut problems = Vec::new();
        match response.get("schema") {
            Some(schema) => self.value(schema, body, "$", true, &mut problems),
            None if body.is_null() => {}
            None => problems.push(format!("$: {status} has no body, got {body}")),
        }
        problems
    }

    fn resolve(&self, reference: &str) -> &Value {
        let mut at = &self.document;
        for part in reference.trim_start_matches("#/").split('/') {
            at = &at[part];
        }
        at
    }

    /// The schema with `$ref`s followed.
    fn schema<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(reference) = schema["$ref"].as_str() {
            schema = self.resolve(reference);
        }
        schema
    }

    /// The properties an object schema declares, over its `allOf` parts.
    fn properties<'a>(&'a self, schema: &'a Value, into: &mut Map<String, Value>) {
        let schema = self.schema(schema);
        if let Some(properties) = schema["properties"].as_object() {
            into.extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.properties(part, into);
        }
    }

    /// Checks `value` against `schema`; `strict`: a key the schema does not declare is a
    /// problem (off for one part of an `allOf`, whose object holds the other parts' keys).
    fn value(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        strict: bool,
        problems: &mut Vec<String>,
    ) {
        let schema = self.schema(schema);
        if let Some(parts) = schema["allOf"].as_array() {
            for part in parts {
                self.value(part, value, at, false, problems);
            }
            let mut declared = Map::new();
            self.properties(schema, &mut declared);
            if let Some(object) = value.as_object() {
                for key in object.keys() {
                    if !declared.contains_key(key) {
                        problems.push(format!("{at}: `{key}` is not in the schema"));
                    }
                }
            }
            return;
        }
        let kind = schema["type"].as_str();
        let matches = match kind {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            _ => true,
        };
        if !matches {
            problems.push(format!(
                "{at}: expected {}, got {value}",
                kind.unwrap_or("?")
            ));
            return;
        }
        if let Some(options) = schema["enum"].as_array()
            && !options.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {options:?}"));
        }
        match (schema["format"].as_str(), value.as_str()) {
            (Some("date-time"), Some(text)) if text.parse::<jiff::Timestamp>().is_err() => {
                problems.push(format!("{at}: `{text}` is not a date-time"));
            }
            (Some("uuid"), Some(text)) if !is_uuid(text) => {
                problems.push(format!("{at}: `{text}` is not a UUID"));
            }
            _ => {}
        }
        if let Some(items) = value.as_array() {
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                problems.push(format!("{at}: fewer than {min} items"));
            }
            for (i, item) in items.iter().enumerate() {
                self.value(
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    true,
                    problems,
                );
            }
        }
        if let Some(object) = value.as_object() {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    problems.push(format!("{at}: `{name}` is required"));
                }
            }
            let properties = schema["properties"].as_object();
            for (key, item) in object {
                let at = format!("{at}.{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    &schema["additionalProperties"],
                ) {
                    (Some(property), _) => self.value(property, item, &at, true, problems),
                    (None, extra) if extra.is_object() => {
                        self.value(extra, item, &at, true, problems);
                    }
                    (None, _) if strict && properties.is_some() => {
                        problems.push(format!("{at}: not in the schema"));
                    }
                    (None, _) => {}
                }
            }
        }
    }
}

fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_differs_from_the_document() {
        let spec = OpenApi::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data/alertmanager/openapi.yaml"),
        );
        let good = json!([{
            "labels": {"alertname": "x"}, "annotations": {}, "receivers": [{"name": "r"}],
            "fingerprint": "0123456789abcdef", "startsAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:05:00Z",
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
        }]);
        assert_eq!(
            spec.check("/alerts", "get", 200, &good),
            Vec::<String>::new()
        );
        let mut bad = good.clone();
        let alert = bad[0].as_object_mut().unwrap();
        alert.remove("fingerprint");
        alert.insert("value".into(), json!(3));
        alert.insert(
            "status".into(),
            json!({"state": "firing", "silencedBy": [], "inhibitedBy": []}),
        );
        alert.insert("endsAt".into(), json!("soon"));
        let problems = spec.check("/alerts", "get", 200, &bad);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert_eq!(
            spec.check("/alerts", "get", 400, &json!("bad")),
            Vec::<String>::new()
        );
        assert_eq!(
            spec.check("/alerts", "get", 400, &json!({"error": "bad"}))
                .len(),
            1
        );
    }
}
