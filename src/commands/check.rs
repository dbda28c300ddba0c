//! `atalaya check`: validate config files, routing policy files, rule directories and rule
//! test files, as a pre-commit hook or in the CI of the rules repository. Every error is
//! printed as `file:line:col: message`.

use atalaya_connectors::notifiers::integration_kinds;
use std::collections::HashSet;
use std::path::Path;

use crate::cli::CheckArgs;
use crate::config::{self, ConfigSource};

/// Checks everything named (or what `run` would load); returns the number of errors. An
/// error is printed (and counted) once, however many files lead to it (the rules several
/// test files name).
pub fn run(args: CheckArgs) -> usize {
    let mut reported = Reported::default();
    if args.paths.is_empty() {
        let source = ConfigSource::resolve(None);
        let mut errors = check_config(&source);
        if let Ok(config) = config::load(&source, None)
            && let Some(dir) = crate::service::rules_dir(&config)
        {
            errors += check_rules(&dir, &mut reported);
        }
        return errors;
    }
    let mut errors = 0;
    for path in args.paths {
        if path.is_dir() {
            errors += check_rules(&path, &mut reported);
        } else if atalaya_rules::files::is_test_file(&path) {
            errors += check_test_file(&path, &mut reported);
        } else if is_routing_file(&path) {
            errors += check_routing(&path);
        } else {
            errors += check_config(&ConfigSource::File(path));
        }
    }
    errors
}

/// Whether `path` holds a routing policy (a top-level `route:`) rather than a config.
fn is_routing_file(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    atalaya_rules::yaml::parse_documents(&text)
        .ok()
        .and_then(|docs| docs.into_iter().next())
        .is_some_and(|doc| doc.get("route").is_some())
}

/// Checks a config file, and the routing file it names.
fn check_config(source: &ConfigSource) -> usize {
    match config::load(source, None) {
        Ok(config) => {
            println!("ok: config {source}");
            config.routing.file.as_deref().map_or(0, check_routing)
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            errors.len()
        }
    }
}

/// Errors already printed.
#[derive(Default)]
struct Reported(HashSet<String>);

impl Reported {
    /// Prints the errors not printed before; returns how many that was.
    fn print(&mut self, errors: impl IntoIterator<Item = String>) -> usize {
        let mut new = 0;
        for e in errors {
            // `./rules.yaml` (a directory named `.`) and `rules.yaml` (named by a test file
            // beside it) are one file.
            let mut key = e.as_str();
            while let Some(rest) = key.strip_prefix("./") {
                key = rest;
            }
            if self.0.insert(key.to_owned()) {
                println!("{e}");
                new += 1;
            }
        }
        new
    }
}

/// The rules of a directory, and its test files (`*.test.yaml`).
fn check_rules(dir: &Path, reported: &mut Reported) -> usize {
    let mut errors = match atalaya_rules::compile::load_rules(dir) {
        Ok(set) => {
            println!("ok: {} rule(s) in {}", set.rules.len(), dir.display());
            0
        }
        Err(errors) => reported.print(errors.iter().map(ToString::to_string)),
    };
    for test in atalaya_rules::testing::discover_tests(dir) {
        errors += check_test_file(&test, reported);
    }
    errors
}

fn check_routing(path: &Path) -> usize {
    match atalaya_rules::routing::config::load_policy(path, &integration_kinds()) {
        Ok(policy) => {
            println!(
                "ok: routing {} ({} receiver(s))",
                path.display(),
                policy.receivers.len()
            );
            0
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            errors.len()
        }
    }
}

/// A rule test file (`*.test.yaml`): its shape, the rules it names, and each test's events
/// and times, without running it. Whether its expectations hold is `atalaya test`'s
/// question.
fn check_test_file(path: &Path, reported: &mut Reported) -> usize {
    match atalaya_rules::testing::load_test_file(path) {
        Ok(file) => {
            println!("ok: test file {} ({} test(s))", path.display(), file.len());
            0
        }
        Err(errors) => reported.print(errors),
    }
}
