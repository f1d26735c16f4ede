//! Guarantee 6: schemas evolve compatibly. Events are replayed from the
//! beginning of their topics, so each schema in `schemas/` must read data
//! written with *every* version of it ever committed, not only the last one
//! (BACKWARD_TRANSITIVE); a change that breaks any of them fails the build.
//!
//! The versions come from git history. Without that history (a shallow
//! clone, no git, not a repository) the check cannot be made, and it fails
//! saying so rather than passing on the versions it happens to see.

use std::path::{Path, PathBuf};
use std::process::Command;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `None` when `new` can read everything `old` wrote, else why not.
fn backward_problem(old: &str, new: &str) -> Option<String> {
    let old = match Schema::parse_str(old) {
        Ok(schema) => schema,
        Err(e) => return Some(format!("that version does not parse: {e}")),
    };
    let new = Schema::parse_str(new).expect("new schema parses");
    match SchemaCompatibility::can_read(&old, &new) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some("an enum symbol or union branch was removed".into()),
        Err(e) => Some(e.to_string()),
    }
}

/// Runs git in `repo`; the error says what went wrong (git missing, or its
/// own message).
fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .current_dir(repo)
        // A test run from a git hook inherits these; `repo` decides here.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .args(args)
        .output()
        .map_err(|e| format!("git cannot be run ({e}); install git"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether `repo` holds the whole history; if not, why and what to do.
fn require_full_history(repo: &Path) -> Result<(), String> {
    let why = |problem: String| {
        format!(
            "the schema evolution check compares every schema with every committed version of it and needs \
             the full git history of the checkout, but {problem}. Run the tests from a complete git clone \
             (for a shallow one: `git fetch --unshallow`)."
        )
    };
    match git(repo, &["rev-parse", "--is-shallow-repository"]).map_err(why)?.trim() {
        "false" => Ok(()),
        "true" => Err(why(format!("{} is a shallow clone: earlier versions are missing", repo.display()))),
        other => Err(why(format!("git answered {other:?} to `rev-parse --is-shallow-repository`"))),
    }
}

/// One committed version of a schema file.
#[derive(Debug)]
struct Version {
    /// The (oldest) commit that wrote this text, as `<hash> <subject>`.
    commit: String,
    blob: String,
}

/// Every distinct version of `path` in the history of HEAD, oldest first,
/// following renames.
fn committed_versions(repo: &Path, path: &str) -> Result<Vec<Version>, String> {
    let log = git(repo, &["log", "--follow", "--no-abbrev", "--raw", "--format=commit %H %s", "--", path])?;
    let mut versions: Vec<Version> = Vec::new();
    let mut commit = String::new();
    for line in log.lines() {
        if let Some(c) = line.strip_prefix("commit ") {
            commit = c.to_owned();
        } else if let Some(raw) = line.strip_prefix(':') {
            // `:<old mode> <new mode> <old blob> <new blob> <status>\t<path>...`
            let fields: Vec<&str> = raw.split('\t').next().unwrap_or_default().split(' ').collect();
            let Some(blob) = fields.get(3) else { return Err(format!("cannot read git's raw line {line:?}")) };
            if blob.bytes().all(|b| b == b'0') {
                continue; // the file was deleted in this commit
            }
            // The log runs newest first: a text seen again is older than we thought.
            match versions.iter_mut().find(|v| v.blob == *blob) {
                Some(seen) => seen.commit.clone_from(&commit),
                None => versions.push(Version { commit: commit.clone(), blob: (*blob).to_owned() }),
            }
        }
    }
    // HEAD's text is among them unless a merge produced it (a merge shows no
    // diff in the log); check it either way.
    if let Ok(head) = git(repo, &["rev-parse", "--verify", "--quiet", &format!("HEAD:{path}")]) {
        let head = head.trim();
        if !versions.iter().any(|v| v.blob == head) {
            versions.insert(0, Version { commit: "HEAD".into(), blob: head.to_owned() });
        }
    }
    versions.reverse();
    Ok(versions)
}

/// What is wrong with `path`'s working-tree text against its history: one
/// line per committed version it cannot read, naming file and commit.
fn transitive_problems(repo: &Path, path: &str) -> Result<Vec<String>, String> {
    let current = std::fs::read_to_string(repo.join(path)).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut problems = Vec::new();
    for version in committed_versions(repo, path)? {
        let old = git(repo, &["cat-file", "blob", &version.blob])?;
        if let Some(problem) = backward_problem(&old, &current) {
            problems.push(format!(
                "{path} cannot read data written with its version of commit {}: {problem}",
                version.commit
            ));
        }
    }
    Ok(problems)
}

#[test]
fn every_schema_reads_data_written_with_every_committed_version() {
    let repo = root();
    if let Err(why) = require_full_history(&repo) {
        panic!("{why}");
    }
    let mut problems = Vec::new();
    let mut compared = 0;
    for schema in orderflow_contracts::all_schemas() {
        let path = format!("schemas/{}", schema.path);
        let on_disk = std::fs::read_to_string(repo.join(&path)).expect("schema file exists");
        assert_eq!(on_disk, schema.text, "{path} is the text this build embeds");
        compared += committed_versions(&repo, &path).unwrap_or_else(|e| panic!("history of {path}: {e}")).len();
        problems.extend(transitive_problems(&repo, &path).unwrap_or_else(|e| panic!("history of {path}: {e}")));
    }
    assert!(
        problems.is_empty(),
        "schemas break BACKWARD_TRANSITIVE compatibility (events are replayed from the beginning, so every \
         committed version must stay readable):\n{}",
        problems.join("\n")
    );
    eprintln!("compared with {compared} committed schema versions");
}

#[test]
fn every_file_in_schemas_is_a_contract() {
    let known: Vec<String> = orderflow_contracts::all_schemas().iter().map(|s| s.path.to_owned()).collect();
    let mut stack = vec![root().join("schemas")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read schemas/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "avsc") {
                let relative =
                    path.strip_prefix(root().join("schemas")).expect("below schemas/").to_string_lossy().into_owned();
                assert!(known.contains(&relative), "{relative} is not registered by the contracts crate");
            }
        }
    }
}

#[test]
fn the_check_catches_a_breaking_change() {
    let v1 = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}"#;
    let added_optional = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"},{"name":"n","type":["null","long"],"default":null}]}"#;
    let added_required =
        r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}"#;
    let retyped = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}"#;
    assert_eq!(backward_problem(v1, added_optional), None);
    assert!(backward_problem(v1, added_required).is_some());
    assert!(backward_problem(v1, retyped).is_some());
}

/// A throwaway git repository, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("orderflow-evolution-{}", orderflow_testkit::unique_id()));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        let scratch = Self(dir);
        scratch.git(&["init", "--quiet"]);
        scratch
    }

    fn git(&self, args: &[&str]) -> String {
        let mut all = vec!["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"];
        all.extend(args);
        git(&self.0, &all).unwrap_or_else(|e| panic!("{e}"))
    }

    fn write(&self, path: &str, text: &str) {
        let file = self.0.join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    fn commit(&self, path: &str, text: &str, message: &str) -> String {
        self.write(path, text);
        self.git(&["add", path]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const V1: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}"#;
/// Reads v1 (`n` has a default).
const V2: &str =
    r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"},{"name":"n","type":"long","default":0}]}"#;
/// Reads v2 (which always writes `n`), but not v1 (which never did).
const V3: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}"#;

#[test]
fn the_check_catches_a_change_that_breaks_only_an_older_version() {
    // Each step is compatible with the one before it…
    assert_eq!(backward_problem(V1, V2), None);
    assert_eq!(backward_problem(V2, V3), None);
    assert!(backward_problem(V1, V3).is_some());

    // …and the check still finds v3 unable to read v1, whether v3 is
    // committed or only in the working tree.
    let repo = Scratch::new();
    let path = "schemas/E.avsc";
    let first = repo.commit(path, V1, "v1");
    repo.commit(path, V2, "v2: n with a default");
    assert_eq!(transitive_problems(&repo.0, path).expect("history"), Vec::<String>::new());

    repo.write(path, V3);
    let problems = transitive_problems(&repo.0, path).expect("history");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{path} cannot read data written with its version of commit {first} v1:")),
        "{}",
        problems[0]
    );

    repo.commit(path, V3, "v3: n required");
    let problems = transitive_problems(&repo.0, path).expect("history");
    assert_eq!(problems.len(), 1, "committed, v3 still breaks v1: {problems:?}");
    assert!(problems[0].contains(&first), "{}", problems[0]);
}

#[test]
fn the_check_follows_a_renamed_schema_file() {
    let repo = Scratch::new();
    let first = repo.commit("schemas/old/E.avsc", V1, "v1");
    repo.git(&["mv", "schemas/old/E.avsc", "schemas/E.avsc"]);
    repo.git(&["commit", "--quiet", "-m", "move"]);
    repo.write("schemas/E.avsc", V3);
    let problems = transitive_problems(&repo.0, "schemas/E.avsc").expect("history");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains(&first), "{}", problems[0]);
}

#[test]
fn missing_history_fails_the_check_and_says_what_to_do() {
    let repo = Scratch::new();
    repo.commit("schemas/E.avsc", V1, "v1");
    repo.commit("schemas/E.avsc", V2, "v2");
    assert_eq!(require_full_history(&repo.0), Ok(()));

    // A shallow clone sees only its last commit: it must not pass for lack of v1.
    let clone = Scratch::new();
    let source = format!("file://{}", repo.0.display());
    git(&clone.0, &["clone", "--quiet", "--depth", "1", &source, "shallow"]).expect("shallow clone");
    let why = require_full_history(&clone.0.join("shallow")).expect_err("a shallow clone is refused");
    assert!(why.contains("shallow clone") && why.contains("git fetch --unshallow"), "{why}");

    // Not a repository at all.
    let plain = std::env::temp_dir().join(format!("orderflow-evolution-{}", orderflow_testkit::unique_id()));
    std::fs::create_dir_all(&plain).expect("mkdir");
    let why = require_full_history(&plain);
    let _ = std::fs::remove_dir_all(&plain);
    let why = why.expect_err("no repository is refused");
    assert!(why.contains("not a git repository") && why.contains("complete git clone"), "{why}");
}
