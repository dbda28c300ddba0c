//! The CI workflow shipped for a rules repository (`deploy/gitops/rules-ci.yml`), run the
//! way GitHub Actions runs it: its job's `run:` steps, with its environment, shell and
//! working directories, one after the other until one fails, on a copy of the layout it
//! expects (`deploy/kustomize` as `apps/atalaya/`, as docs/gitops.md says to lay it out). The
//! install step is the one step not run: the binary under test is on PATH instead; what it
//! would download is checked against what the release workflow attaches.

use std::path::{Path, PathBuf};
use std::process::Command;

use atalaya_test_kit::copy_dir;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const WORKFLOW: &str = "deploy/gitops/rules-ci.yml";

/// What one step did.
struct StepRun {
    name: String,
    succeeded: bool,
    output: String,
}

fn text(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `env:` of a job or step, as the runner exports it.
fn env_of(yaml: &Yaml) -> Vec<(String, String)> {
    yaml["env"]
        .as_hash()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let (key, value) = (text(k).unwrap(), text(v).expect("a scalar env value"));
            assert!(
                !value.contains("${{"),
                "{key}: expressions are not evaluated here"
            );
            (key, value)
        })
        .collect()
}

/// A copy of `deploy/kustomize` where the workflow expects it, in a checkout of its own.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo().join("deploy/kustomize"),
        &dir.path().join("apps/atalaya"),
    );
    dir
}

/// Runs every job of the workflow in `workspace`, as the runner would; returns the steps
/// run, in order, up to the first that failed.
fn run_workflow(workspace: &Path) -> Vec<StepRun> {
    let text_of_workflow = std::fs::read_to_string(repo().join(WORKFLOW)).unwrap();
    let workflow = YamlLoader::load_from_str(&text_of_workflow)
        .expect("the workflow is YAML")
        .remove(0);
    // The binary under test stands for the install step's download.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_atalaya"), bin.path().join("atalaya")).unwrap();
    let runner_temp = tempfile::tempdir().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.path().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();

    let jobs = workflow["jobs"].as_hash().expect("jobs");
    assert!(!jobs.is_empty());
    let mut runs = Vec::new();
    for (job_name, job) in jobs {
        let defaults = &job["defaults"]["run"];
        assert_eq!(
            defaults["shell"].as_str(),
            Some("bash"),
            "{job_name:?}: this test runs `shell: bash` steps"
        );
        let default_dir = defaults["working-directory"].as_str().unwrap_or(".");
        for step in job["steps"].as_vec().expect("steps") {
            if let Some(action) = step["uses"].as_str() {
                assert!(
                    action.starts_with("actions/checkout@"),
                    "{action}: only the checkout is stood in for (by the copy)"
                );
                continue;
            }
            if step["id"].as_str() == Some("install") {
                continue;
            }
            let name = step["name"].as_str().unwrap_or("(unnamed)").to_owned();
            let script = step["run"].as_str().expect("a run: step").to_owned();
            assert!(
                !script.contains("${{"),
                "{name}: expressions are not evaluated here; use the environment"
            );
            let dir = step["working-directory"].as_str().unwrap_or(default_dir);
            let mut command = Command::new("bash");
            // What `shell: bash` runs on GitHub's runners.
            command
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
                .current_dir(workspace.join(dir));
            for (key, _) in std::env::vars() {
                if key.starts_with("ATALAYA") {
                    command.env_remove(key);
                }
            }
            command
                .env("PATH", &path)
                .env("CI", "true")
                .env("GITHUB_WORKSPACE", workspace)
                .env("RUNNER_TEMP", runner_temp.path())
                .envs(env_of(job))
                .envs(env_of(step));
            let out = command.output().expect("bash");
            let run = StepRun {
                name,
                succeeded: out.status.success(),
                output: String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            };
            let failed = !run.succeeded;
            runs.push(run);
            if failed {
                return runs;
            }
        }
    }
    runs
}

fn report(runs: &[StepRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "--- {} ({}):\n{}",
                r.name,
                if r.succeeded { "ok" } else { "FAILED" },
                r.output
            )
        })
        .collect()
}

/// The rule files of a folder (not their tests).
fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".yaml") && !name.ends_with(".test.yaml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_rules_ci_passes_on_the_layout_it_ships_with_and_checks_every_rule_folder() {
    let workspace = workspace();
    let runs = run_workflow(workspace.path());
    let log = report(&runs);
    assert!(runs.len() >= 2, "{log}");
    assert!(runs.iter().all(|r| r.succeeded), "{log}");

    // Both folders whose rules the pod loads are checked and tested, each rule file with
    // its tests beside it.
    let apps = workspace.path().join("apps/atalaya");
    for folder in ["base/rules", "overlays/homelab/rules"] {
        assert!(
            log.contains(&format!(" rule(s) in {folder}\n")),
            "{folder} is not checked:\n{log}"
        );
        let rules = rule_files(&apps.join(folder));
        assert!(!rules.is_empty(), "{folder}");
        for rule in rules {
            let tests = rule.with_extension("test.yaml");
            assert!(tests.is_file(), "{} has no tests beside it", rule.display());
            let shown = format!("{folder}/{}", tests.file_name().unwrap().to_str().unwrap());
            assert!(
                log.contains(&format!("PASS {shown}: ")),
                "{shown} did not run:\n{log}"
            );
        }
    }
    assert!(
        log.contains("ok: routing overlays/homelab/routing/routing.yaml"),
        "{log}"
    );

    // It runs on the changes it checks.
    let workflow = std::fs::read_to_string(repo().join(WORKFLOW)).unwrap();
    let workflow = &YamlLoader::load_from_str(&workflow).unwrap()[0];
    for event in ["pull_request", "push"] {
        let paths: Vec<&str> = workflow["on"][event]["paths"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert_eq!(paths, ["apps/atalaya/**"], "on.{event}.paths");
    }
}

/// Replaces `from` by `to` in `file`, which must contain it.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_broken_base_rule_fails_the_check_step_with_its_position() {
    let workspace = workspace();
    edit(
        &workspace.path().join("apps/atalaya/base/rules/disk.yaml"),
        "condition: value > 90",
        "condition: value >> 90",
    );
    let runs = run_workflow(workspace.path());
    let log = report(&runs);
    let last = runs.last().unwrap();
    assert!(!last.succeeded, "the broken rule passed:\n{log}");
    assert!(last.name.contains("Check"), "{log}");
    assert!(
        last.output.contains("base/rules/disk.yaml:"),
        "the error names the file:\n{log}"
    );
}

#[test]
fn a_base_rule_its_own_tests_contradict_fails_the_test_step() {
    let workspace = workspace();
    // Valid, but no longer what disk.test.yaml expects (it fires at 91).
    edit(
        &workspace.path().join("apps/atalaya/base/rules/disk.yaml"),
        "condition: value > 90",
        "condition: value > 95",
    );
    let runs = run_workflow(workspace.path());
    let log = report(&runs);
    let last = runs.last().unwrap();
    assert!(!last.succeeded, "the contradicted tests passed:\n{log}");
    assert!(last.name.contains("test"), "{log}");
    assert!(
        last.output.contains("FAIL base/rules/disk.test.yaml"),
        "{log}"
    );
    assert!(runs[..runs.len() - 1].iter().all(|r| r.succeeded), "{log}");
}

/// The value a script assigns to `archive="…"`, with `${NAME}` expanded from `vars`.
fn archive_name(script: &str, vars: &[(&str, &str)]) -> String {
    let start = script.find("archive=\"").expect("archive=\"…\"") + "archive=\"".len();
    let mut name = script[start..].split('"').next().unwrap().to_owned();
    for (key, value) in vars {
        name = name.replace(&format!("${{{key}}}"), value);
    }
    assert!(!name.contains('$'), "unexpanded: {name}");
    name
}

/// The rules CI downloads the release asset the release workflow attaches, for the version
/// the manifests deploy.
#[test]
fn the_rules_ci_downloads_what_the_release_attaches_for_the_deployed_version() {
    let load = |path: &str| {
        YamlLoader::load_from_str(&std::fs::read_to_string(repo().join(path)).unwrap())
            .unwrap()
            .remove(0)
    };
    let ci = load(WORKFLOW);
    let release = load(".github/workflows/release.yml");
    let base = load("deploy/kustomize/base/kustomization.yaml");

    let job = &ci["jobs"]["check"];
    let version = job["env"]["ATALAYA_VERSION"]
        .as_str()
        .expect("ATALAYA_VERSION");
    assert_eq!(
        base["images"][0]["newTag"].as_str(),
        Some(version),
        "the CI's atalaya is the version the manifests run"
    );
    let install = job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some("install"))
        .expect("the install step");
    let downloaded = archive_name(
        install["run"].as_str().unwrap(),
        &[("ATALAYA_VERSION", version)],
    );

    let binaries = &release["jobs"]["binaries"];
    let targets: Vec<&str> = binaries["strategy"]["matrix"]["target"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let target = "x86_64-unknown-linux-musl";
    assert!(targets.contains(&target), "{targets:?}");
    let package = binaries["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("archive=")))
        .expect("the packaging step");
    let tag = format!("v{version}");
    let attached = archive_name(
        package["run"].as_str().unwrap(),
        &[("TAG", &tag), ("TARGET", target)],
    );
    assert_eq!(downloaded, attached);
    assert!(
        package["run"]
            .as_str()
            .unwrap()
            .contains("> \"$archive.sha256\"")
            && install["run"]
                .as_str()
                .unwrap()
                .contains("\"$archive.sha256\""),
        "the checksum file is attached and checked"
    );
}
