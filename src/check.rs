//! `atalaya check`: validate config files and rule directories, as a pre-commit hook or in
//! the CI of the rules repository. Every error is printed as `file:line:col: message`.

use std::path::Path;

use crate::cli::CheckArgs;
use crate::config::{self, ConfigSource};

/// Checks everything named (or what `run` would load); returns the number of errors.
pub fn run(args: CheckArgs) -> usize {
    if args.paths.is_empty() {
        let source = ConfigSource::resolve(None);
        let mut errors = check_config(&source);
        if let Ok(config) = config::load(&source, None)
            && let Some(dir) = crate::service::rules_dir(&config)
        {
            errors += check_rules(&dir);
        }
        return errors;
    }
    let mut errors = 0;
    for path in args.paths {
        if path.is_dir() {
            errors += check_rules(&path);
        } else {
            errors += check_config(&ConfigSource::File(path));
        }
    }
    errors
}

fn check_config(source: &ConfigSource) -> usize {
    match config::load(source, None) {
        Ok(_) => {
            println!("ok: config {source}");
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

fn check_rules(dir: &Path) -> usize {
    match atalaya_rules::compile::load_rules(dir) {
        Ok(set) => {
            println!("ok: {} rule(s) in {}", set.rules.len(), dir.display());
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
