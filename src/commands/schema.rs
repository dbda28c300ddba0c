//! `atalaya schema`: the JSON Schema of rule files, rule test files, the configuration file
//! or routing files, for editors. The committed copies in `schema/` are checked against
//! these by the tests.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{SchemaArgs, SchemaKind};

pub fn run(args: SchemaArgs) -> ExitCode {
    let schema = match args.kind {
        SchemaKind::Rules => atalaya_rules::model::rule_file_schema(),
        SchemaKind::Tests => atalaya_rules::testing::test_file_schema(),
        SchemaKind::Config => config_schema(),
        SchemaKind::Routing => routing_schema(),
    };
    let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    // A closed pipe (`| head`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{text}");
    ExitCode::SUCCESS
}

/// The configuration file's schema: written by hand (the loader reads keys one by one, with
/// no serde type to derive it from); a test keeps it naming exactly the keys the loader reads.
pub fn config_schema() -> serde_json::Value {
    serde_json::from_str(include_str!("../../schema/config.schema.json")).unwrap_or_default()
}

/// The routing files' schema, with the integration kinds this build delivers.
pub fn routing_schema() -> serde_json::Value {
    let kinds: Vec<&str> = atalaya_connectors::notifiers::integration_kinds()
        .iter()
        .map(|k| k.name)
        .collect();
    atalaya_rules::routing::config::routing_schema(&kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schema/routing.schema.json` is what `atalaya schema routing` prints (with every
    /// connector built in): run `cargo run -- schema routing > schema/routing.schema.json`
    /// after changing the routing keys.
    #[test]
    fn the_committed_routing_schema_is_current() {
        let committed: serde_json::Value =
            serde_json::from_str(include_str!("../../schema/routing.schema.json")).unwrap();
        assert_eq!(
            committed,
            routing_schema(),
            "schema/routing.schema.json is stale: run `cargo run -- schema routing > schema/routing.schema.json`"
        );
    }
}
