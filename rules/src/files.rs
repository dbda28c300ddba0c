//! Finding rule files and checking that they are well-formed YAML.
//!
//! A rules directory is usually a Kubernetes ConfigMap volume, which looks like this:
//!
//! ```text
//! rules/
//! ├── ..2026_11_22_00_00_00.123/   the real files, one directory per update
//! │   └── alerts.yaml
//! ├── ..data -> ..2026_11_22_00_00_00.123
//! └── alerts.yaml -> ..data/alerts.yaml
//! ```
//!
//! [`discover`] follows symlinks but skips every entry whose name starts with `.`, so each
//! file is found once, under the name the admin gave it. [`load`] reads one file and parses
//! its YAML documents into positioned [`Node`]s; [`load_dir`] does both for a whole directory
//! and reports every broken file at once rather than stopping at the first.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::yaml::{self, Node, NodeKind, YamlError};

pub use crate::yaml::MAX_NESTING_DEPTH;

/// Why a rules directory could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum RuleFilesError {
    /// The directory (or a directory below it) is missing, not a directory, or unreadable.
    #[error("{path}: cannot read the rules directory", path = path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An entry of the directory could not be inspected (for example, no permission).
    #[error("{path}: cannot inspect this entry", path = path.display())]
    Entry {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a rule file (or the directory holding it) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    /// The directory could not be listed, so no file was loaded.
    #[error(transparent)]
    Discover(#[from] RuleFilesError),
    /// The file could not be read.
    #[error("{path}: cannot read the file: {error}", path = path.display())]
    Read { path: PathBuf, error: io::Error },
    /// The file is not UTF-8; the position is that of the first invalid byte.
    #[error("{path}:{line}:{column}: the file is not valid UTF-8", path = path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// The file is not well-formed YAML, or a document is not a mapping or a sequence.
    /// `line` and `column` are 1-based; the column counts characters.
    #[error("{path}:{line}:{column}: {message}", path = path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// One rule file, read and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFile {
    /// The path as discovered (`rules/alerts.yaml`, not the ConfigMap's `..2026…/alerts.yaml`),
    /// so messages name the file the admin knows.
    pub path: PathBuf,
    /// The contents, without a leading byte-order mark, for the rule parser to read.
    pub text: String,
    /// The YAML documents (`---` separated), in order, each a mapping or a list; an empty
    /// document is a null node.
    pub documents: Vec<Node>,
}

/// Every rule file of one directory, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSetFiles {
    /// The directory the files were found under, as given.
    pub dir: PathBuf,
    /// The files, sorted by path.
    pub files: Vec<RuleFile>,
}

/// Every `*.yaml` / `*.yml` file under `dir`, recursively, sorted by path.
///
/// Symlinks are followed, to files and to directories (a directory reached twice, as through a
/// symlink loop, is read once). Entries whose name starts with `.` are skipped: hidden files,
/// and the `..data` and `..<timestamp>` directories of a ConfigMap volume, which hold the same
/// files again. An entry that vanishes while the directory is read, or a symlink to nothing
/// (a key just removed from a ConfigMap leaves one for a moment), is skipped too.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, RuleFilesError> {
    let mut found = Vec::new();
    let mut visited = HashSet::new();
    walk(dir, &mut visited, &mut found)?;
    found.sort();
    Ok(found)
}

/// Adds the rule files under `dir` to `found`; `visited` holds the canonical paths of the
/// directories already read.
fn walk(
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    found: &mut Vec<PathBuf>,
) -> Result<(), RuleFilesError> {
    let read_dir_error = |source| RuleFilesError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let canonical = fs::canonicalize(dir).map_err(read_dir_error)?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        if !entry.file_name().as_encoded_bytes().starts_with(b".") {
            entries.push(entry.path());
        }
    }
    // Sorted, so which path a twice-reachable directory is read under does not depend on
    // the order the filesystem lists entries in.
    entries.sort();
    for path in entries {
        // `fs::metadata` follows symlinks: a link to a file is a file.
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(RuleFilesError::Entry { path, source }),
        };
        if metadata.is_dir() {
            walk(&path, visited, found)?;
        } else if metadata.is_file() && is_yaml(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Whether the file name ends in `.yaml` or `.yml` (any case).
fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"))
}

/// The largest rule, routing or config file read: far above any real one, far below what
/// would hurt a Raspberry Pi.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// Reads a file that must be a regular one (after following symlinks, as Kubernetes
/// ConfigMaps are) of at most `max_bytes`. A named pipe, a device or a directory in its place
/// is an error, not a read that blocks the service forever.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;

    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, a named pipe or a device)",
        )
    };
    if !fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    // Opened without blocking, in case a pipe took the file's place since the check.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // O_NONBLOCK on every Linux architecture atalaya is built for (x86_64, arm64, armv7).
        const O_NONBLOCK: i32 = 0o4000;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} MiB", max_bytes / (1024 * 1024)),
        ));
    }
    Ok(bytes)
}

/// Reads `path` and parses it as YAML whose every document is a mapping or a sequence (or
/// empty).
pub fn load(path: &Path) -> Result<RuleFile, RuleFileError> {
    let bytes = read_regular_file(path, MAX_FILE_BYTES).map_err(|error| RuleFileError::Read {
        path: path.to_owned(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let (line, column) = position_after(valid);
        RuleFileError::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
        }
    })?;
    // yaml_rust2 would read a byte-order mark as part of the first key.
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    };
    let documents = parse_rule_documents(&text).map_err(|error| RuleFileError::Syntax {
        path: path.to_owned(),
        line: error.position.line,
        column: error.position.column,
        message: error.message,
    })?;
    Ok(RuleFile {
        path: path.to_owned(),
        text,
        documents,
    })
}

/// Discovers and loads every rule file under `dir`, returning every error, not the first.
pub fn load_dir(dir: &Path) -> Result<RuleSetFiles, Vec<RuleFileError>> {
    let paths = discover(dir).map_err(|error| vec![RuleFileError::from(error)])?;
    let mut files = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    for path in paths {
        match load(&path) {
            Ok(file) => files.push(file),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(RuleSetFiles {
            dir: dir.to_owned(),
            files,
        })
    } else {
        Err(errors)
    }
}

/// The documents of `text`, each a mapping, a sequence or empty, nested at most
/// [`MAX_NESTING_DEPTH`] deep.
fn parse_rule_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    let documents = yaml::parse_stream(text)?;
    let mut roots = Vec::with_capacity(documents.len());
    for document in documents {
        // An empty document (`---` and nothing else) is harmless: keep it as null.
        let acceptable =
            document.empty || matches!(document.root.kind, NodeKind::Map(_) | NodeKind::Seq(_));
        if !acceptable {
            return Err(YamlError {
                position: document.root.position,
                message: "expected a mapping or a sequence at the top of the document, \
                          found a scalar"
                    .to_owned(),
            });
        }
        roots.push(document.root);
    }
    Ok(roots)
}

/// The 1-based line and column just after `text`, counting characters of valid UTF-8.
fn position_after(text: &[u8]) -> (usize, usize) {
    let line_start = text
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = 1 + text.iter().filter(|&&b| b == b'\n').count();
    // Every character starts with a byte that is not a UTF-8 continuation byte (0b10xx_xxxx).
    let column = 1 + text[line_start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count();
    (line, column)
}

/// Whether `path` names a rule test file rather than a rule file.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.ends_with(".test.yaml")
            || n.ends_with(".test.yml")
            || n.ends_with("_test.yaml")
            || n.ends_with("_test.yml")
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    #[cfg(unix)]
    use std::os::unix::fs::symlink;

    use proptest::prelude::*;
    use tempfile::TempDir;

    use super::*;

    fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
        let path = dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn document_count(text: &str) -> Result<usize, YamlError> {
        parse_rule_documents(text).map(|documents| documents.len())
    }

    fn relative(dir: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn discovers_yaml_files_recursively_sorted_and_ignores_the_rest() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write(dir, "zigbee.yml", "a: 1\n");
        write(dir, "cluster/nodes.yaml", "a: 1\n");
        write(dir, "cluster/disks.YAML", "a: 1\n");
        write(dir, "appliances/washer.yaml", "a: 1\n");
        write(dir, "README.md", "# rules\n");
        write(dir, "notes.txt", "a: 1\n");
        write(dir, "alerts.yaml.bak", "a: 1\n");
        write(dir, ".hidden.yaml", "a: 1\n");
        write(dir, ".git/config.yaml", "a: 1\n");
        let found = discover(dir).unwrap();
        assert_eq!(
            relative(dir, &found),
            [
                "appliances/washer.yaml",
                "cluster/disks.YAML",
                "cluster/nodes.yaml",
                "zigbee.yml"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_configmap_volume_yields_each_file_once_under_its_own_name() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        let stamp = "..2026_11_22_00_00_00.123";
        write(dir, &format!("{stamp}/alerts.yaml"), "a: 1\n");
        write(dir, &format!("{stamp}/cluster.yaml"), "b: 2\n");
        symlink(stamp, dir.join("..data")).unwrap();
        symlink("..data/alerts.yaml", dir.join("alerts.yaml")).unwrap();
        symlink("..data/cluster.yaml", dir.join("cluster.yaml")).unwrap();
        // A key just removed from the ConfigMap: its link dangles until kubelet removes it.
        symlink("..data/removed.yaml", dir.join("removed.yaml")).unwrap();

        let found = discover(dir).unwrap();
        assert_eq!(relative(dir, &found), ["alerts.yaml", "cluster.yaml"]);
        let set = load_dir(dir).unwrap();
        assert_eq!(set.files.len(), 2);
        assert_eq!(set.files[0].path, dir.join("alerts.yaml"));
        assert_eq!(set.files[0].text, "a: 1\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_read_once() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write(dir, "sub/a.yaml", "a: 1\n");
        symlink("..", dir.join("sub/up")).unwrap();
        let found = discover(dir).unwrap();
        assert_eq!(relative(dir, &found), ["sub/a.yaml"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let tmp = TempDir::new().unwrap();
        let missing = tmp.path().join("nope");
        let error = discover(&missing).unwrap_err();
        assert!(matches!(&error, RuleFilesError::ReadDir { path, .. } if *path == missing));
        assert_eq!(
            error.to_string(),
            format!("{}: cannot read the rules directory", missing.display())
        );
        let errors = load_dir(&missing).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with(&missing.display().to_string())
        );
    }

    #[test]
    fn loads_and_counts_documents() {
        let tmp = TempDir::new().unwrap();
        let path = write(
            tmp.path(),
            "a.yaml",
            "# two rules\nname: a\n---\n- name: b\n---\n",
        );
        let file = load(&path).unwrap();
        assert_eq!(file.documents.len(), 3);
        assert_eq!(file.documents[0].get("name").unwrap().position.line, 2);
        assert!(matches!(file.documents[1].kind, NodeKind::Seq(_)));
        assert_eq!(file.documents[2].kind, NodeKind::Null);
        assert_eq!(file.path, path);

        let empty = write(tmp.path(), "empty.yaml", "# nothing yet\n");
        assert_eq!(load(&empty).unwrap().documents, []);
    }

    #[test]
    fn a_syntax_error_points_at_the_line_and_column_an_editor_shows() {
        let tmp = TempDir::new().unwrap();
        // Line 3, column 6 is the `:` that cannot start a mapping inside a plain scalar.
        let path = write(
            tmp.path(),
            "bad.yaml",
            "name: freezer\nsummary: warm\n  for: 5m\n",
        );
        let error = load(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:3:6: mapping values are not allowed in this context",
                path.display()
            )
        );
        assert!(matches!(
            error,
            RuleFileError::Syntax {
                line: 3,
                column: 6,
                ..
            }
        ));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let error = parse_rule_documents("señal: ñandú\n  b: 2\n").unwrap_err();
        assert_eq!((error.position.line, error.position.column), (2, 4));
    }

    #[test]
    fn an_unterminated_quote_is_reported() {
        // The position is that of the opening quote, where the user has to look.
        let error = parse_rule_documents("a: 1\nb: \"open\nc: 2\n").unwrap_err();
        assert_eq!((error.position.line, error.position.column), (2, 4));
        assert!(error.message.contains("quoted scalar"), "{error:?}");
    }

    #[test]
    fn a_bare_scalar_document_is_rejected_with_its_position() {
        let error = parse_rule_documents("a: 1\n---\n  just text\n").unwrap_err();
        assert_eq!((error.position.line, error.position.column), (3, 3));
        assert!(error.message.contains("found a scalar"), "{error:?}");
        assert!(parse_rule_documents("42\n").is_err());
        assert!(parse_rule_documents("null\n").is_err());
        assert!(parse_rule_documents("\"quoted\"\n").is_err());
        assert_eq!(document_count("---\n---\n- a\n"), Ok(2));
    }

    #[test]
    fn a_lone_carriage_return_counts_as_a_line_break() {
        let error = parse_rule_documents("a: 1\r  b: 2\r").unwrap_err();
        assert_eq!(
            (error.position.line, error.position.column),
            (2, 4),
            "{error:?}"
        );
        // Found by proptest: a lone `\r` before a broken flow mapping must not panic.
        assert!(parse_rule_documents("\r{\u{a1}\0").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "- ".repeat(200_000) + "x\n";
        let error = parse_rule_documents(&deep).unwrap_err();
        assert_eq!(error.position.line, 1);
        assert_eq!(error.position.column, 2 * MAX_NESTING_DEPTH + 1);
        assert!(error.message.contains("nested deeper"), "{error:?}");
        let fine = "- ".repeat(MAX_NESTING_DEPTH) + "x\n";
        assert_eq!(document_count(&fine), Ok(1));
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let tmp = TempDir::new().unwrap();
        let path = write(tmp.path(), "bom.yaml", "\u{feff}a: 1\n");
        assert_eq!(load(&path).unwrap().text, "a: 1\n");
    }

    #[test]
    fn non_utf8_is_an_error_with_the_position_of_the_first_bad_byte() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("latin1.yaml");
        fs::write(&path, b"a: 1\nb: caf\xe9\n").unwrap();
        let error = load(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}:2:7: the file is not valid UTF-8", path.display())
        );
        assert_eq!(position_after("é\nñx".as_bytes()), (2, 3));
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("gone.yaml");
        let error = load(&path).unwrap_err();
        assert!(matches!(&error, RuleFileError::Read { path: p, .. } if *p == path));
        assert!(error.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let tmp = TempDir::new().unwrap();
        let pipe = tmp.path().join("pipe.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .unwrap();
        assert!(made.success());
        // Refused at once: opening a pipe with no writer would wait forever.
        let error = load(&pipe).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let big = tmp.path().join("big.yaml");
        fs::write(&big, vec![b'#'; 2 * 1024 * 1024 + 1]).unwrap();
        let error = load(&big).unwrap_err();
        assert!(error.to_string().contains("larger than 2 MiB"), "{error}");
        let link = tmp.path().join("link.yaml");
        fs::write(tmp.path().join("real.yaml"), "rules: []\n").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("real.yaml"), &link).unwrap();
        assert_eq!(read_regular_file(&link, 100).unwrap(), b"rules: []\n");
    }

    #[test]
    fn load_dir_reports_every_broken_file() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write(dir, "a_good.yaml", "a: 1\n");
        let bad_one = write(dir, "b_bad.yaml", "a: [1, 2\n");
        let bad_two = write(dir, "sub/c_bad.yml", "just a scalar\n");
        let bad_three = dir.join("d_latin1.yaml");
        fs::write(&bad_three, b"\xff\n").unwrap();
        let errors = load_dir(dir).unwrap_err();
        let named: Vec<&Path> = errors
            .iter()
            .map(|e| match e {
                RuleFileError::Syntax { path, .. } | RuleFileError::NotUtf8 { path, .. } => {
                    path.as_path()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(named, [&bad_one, &bad_three, &bad_two]);
        assert!(errors[2].to_string().ends_with(
            ":1:1: expected a mapping or a sequence at the top of the document, found a scalar"
        ));
    }

    #[test]
    fn load_dir_returns_the_files_in_order() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        write(dir, "b.yaml", "b: 1\n");
        write(dir, "a.yaml", "a: 1\n---\na: 2\n");
        let set = load_dir(dir).unwrap();
        assert_eq!(set.dir, dir);
        let summary: Vec<(String, usize)> = set
            .files
            .iter()
            .map(|f| (f.text.clone(), f.documents.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a: 1\n---\na: 2\n".to_owned(), 2),
                ("b: 1\n".to_owned(), 1)
            ]
        );
    }

    proptest! {
        #[test]
        fn checking_never_panics_and_positions_are_inside_the_text(text in "(?s).{0,200}") {
            if let Err(error) = parse_rule_documents(&text) {
                prop_assert!(error.position.line >= 1 && error.position.column >= 1);
                // YAML, like editors, also breaks lines at a lone `\r`.
                let breaks = text.matches(['\n', '\r']).count();
                prop_assert!(error.position.line <= breaks + 2, "{error:?}");
            }
        }

        #[test]
        fn checking_yaml_shaped_text_never_panics(
            text in r#"([-:\[\]{}"'&*!|>#, \t\n?]|[a-z]{1,3}){0,60}"#
        ) {
            let _ = parse_rule_documents(&text);
        }
    }
}
