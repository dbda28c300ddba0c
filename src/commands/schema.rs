//! `atalaya schema`: the JSON Schema of rule files or rule test files, for editors.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{SchemaArgs, SchemaKind};

pub fn run(args: SchemaArgs) -> ExitCode {
    let schema = match args.kind {
        SchemaKind::Rules => atalaya_rules::model::rule_file_schema(),
        SchemaKind::Tests => atalaya_rules::testing::test_file_schema(),
    };
    let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    // A closed pipe (`| head`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{text}");
    ExitCode::SUCCESS
}
