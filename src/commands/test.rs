//! `atalaya test`: run rule unit-test files on virtual time.

use std::collections::HashSet;
use std::path::PathBuf;

use atalaya_rules::testing::{discover_tests, run_test_file};

use crate::cli::TestArgs;
use crate::config::{self, ConfigSource};

/// Runs the tests named (files, or directories searched for `*.test.yaml`), or those in the
/// rules directory `run` would use. Returns whether everything passed.
pub fn run(args: TestArgs) -> bool {
    let mut files: Vec<PathBuf> = Vec::new();
    let targets = if args.paths.is_empty() {
        let dir = config::load(&ConfigSource::resolve(None), None)
            .ok()
            .and_then(|c| crate::service::rules_dir(&c));
        dir.into_iter().collect()
    } else {
        args.paths
    };
    for target in targets {
        if target.is_dir() {
            files.extend(discover_tests(&target));
        } else {
            files.push(target);
        }
    }
    if files.is_empty() {
        eprintln!("atalaya test: no test files (*.test.yaml) found");
        return false;
    }
    let (mut passed, mut failed) = (0, 0);
    // Test files naming the same rules would each report the same rule error: it is
    // printed once, and referred to after.
    let mut reported: HashSet<String> = HashSet::new();
    for file in &files {
        match run_test_file(file) {
            Ok(cases) => {
                for case in cases {
                    if case.failures.is_empty() {
                        passed += 1;
                        println!("PASS {}: {}", file.display(), case.name);
                    } else {
                        failed += 1;
                        println!("FAIL {}: {}", file.display(), case.name);
                        for failure in &case.failures {
                            println!("  {failure}");
                        }
                    }
                }
            }
            Err(errors) => {
                failed += 1;
                println!("ERROR {}", file.display());
                let mut repeated = 0;
                for e in errors {
                    if reported.insert(e.clone()) {
                        println!("  {e}");
                    } else {
                        repeated += 1;
                    }
                }
                if repeated > 0 {
                    println!("  ({repeated} error(s) reported above)");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    failed == 0
}
