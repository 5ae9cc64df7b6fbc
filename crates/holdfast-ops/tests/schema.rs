//! The JSON contract is a type: every report and the worker protocol have a JSON Schema
//! generated from their Rust types, checked in under docs/schema/. This test fails when a
//! type changes without its schema (a renamed or removed field is a change of the contract
//! that a reviewer must see); `HOLDFAST_UPDATE_SCHEMA=1` rewrites the files.

use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema")
}

#[test]
fn checked_in_schemas_match_the_types() {
    let update = std::env::var_os("HOLDFAST_UPDATE_SCHEMA").is_some();
    let mut stale = Vec::new();
    for (name, schema) in holdfast_ops::schema::all() {
        let path = dir().join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n";
        if update {
            std::fs::create_dir_all(dir()).expect("docs/schema");
            std::fs::write(&path, &text).expect("write schema");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if old == text => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "these schemas differ from the types (rerun with HOLDFAST_UPDATE_SCHEMA=1 and review \
         the change to the JSON contract): {stale:?}"
    );
}

#[test]
fn every_report_field_the_daemon_reads_is_in_its_schema() {
    // The daemon reads these fields by type (holdfast-daemon runner); renaming one breaks
    // its build. This pins them in the published contract too.
    let all: std::collections::BTreeMap<_, _> = holdfast_ops::schema::all().into_iter().collect();
    let props = |name: &str| -> Vec<String> {
        let v = serde_json::to_value(&all[name]).expect("schema");
        v["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    for (schema, field) in [
        ("backup", "point"),
        ("backup", "time"),
        ("backup", "partial"),
        ("backup", "errors"),
        ("backup", "summary"),
        ("copy", "copied"),
        ("copy", "already_there"),
        ("copy", "stored_added"),
        ("forget", "keep"),
        ("forget", "forget"),
        ("prune", "deleted_packs"),
        ("prune", "freed_bytes"),
        ("verify", "ok"),
        ("verify", "report"),
    ] {
        assert!(
            props(schema).iter().any(|p| p == field),
            "{schema}.json lacks {field}"
        );
    }
}
