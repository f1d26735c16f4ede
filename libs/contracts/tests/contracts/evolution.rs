//! Guarantee 6: schemas evolve compatibly. Each schema in `schemas/` must
//! read data written with its previous committed version (BACKWARD), so a
//! breaking change fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `None` when `new` can read everything `old` wrote, else why not.
fn backward_problem(old: &str, new: &str) -> Option<String> {
    let old = Schema::parse_str(old).expect("old schema parses");
    let new = Schema::parse_str(new).expect("new schema parses");
    match SchemaCompatibility::can_read(&old, &new) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some("an enum symbol or union branch was removed".into()),
        Err(e) => Some(e.to_string()),
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").current_dir(root()).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The version of `path` before its current one: HEAD's if the working tree
/// changed it, else the one before the last commit that touched it.
fn previous_version(path: &str) -> Option<String> {
    let current = std::fs::read_to_string(root().join(path)).ok()?;
    if let Some(head) = git(&["show", &format!("HEAD:{path}")])
        && head != current
    {
        return Some(head);
    }
    let commits = git(&["log", "--format=%H", "-n", "2", "--", path])?;
    let previous = commits.lines().nth(1)?;
    git(&["show", &format!("{previous}:{path}")])
}

#[test]
fn every_schema_reads_data_written_with_its_previous_version() {
    let mut checked = 0;
    for schema in orderflow_contracts::all_schemas() {
        let path = format!("schemas/{}", schema.path);
        let on_disk = std::fs::read_to_string(root().join(&path)).expect("schema file exists");
        assert_eq!(on_disk, schema.text, "{path} is the text this build embeds");
        if let Some(previous) = previous_version(&path) {
            if let Some(problem) = backward_problem(&previous, &on_disk) {
                panic!("{path} breaks BACKWARD compatibility with its previous version: {problem}");
            }
            checked += 1;
        }
    }
    eprintln!("{checked} schemas had an earlier version to compare with");
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
