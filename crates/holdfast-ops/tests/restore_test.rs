//! Restore tests on the memory store: a good point passes with its built-in check and the
//! user's checks; wrong data fails the check that sees it (and only that one); the scratch
//! target is gone afterwards, whatever happened.

use std::path::Path;

use holdfast_engine::Vault;
use holdfast_ops::backup::SourceSpec;
use holdfast_ops::restore::{RestoreRequest, RestoreTarget};
use holdfast_ops::restore_test::{
    self, Check, RestoreTestReport, RestoreTestRequest, SCRATCH_PREFIX, Select,
};

mod common;
use common::{backup_source, new_vault, with_ctx};

fn files_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/empty")).unwrap();
    std::fs::write(root.join("a.txt"), b"alpha\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("sub/big.bin"), big).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
}

/// [`files_tree`] in `dir/src`, backed up as resource `docs` into a new vault.
fn files_point(dir: &Path) -> (Vault, String) {
    files_tree(&dir.join("src"));
    let (_, vault) = new_vault();
    let source = SourceSpec::Files {
        paths: vec![dir.join("src")],
        excludes: vec![],
        no_cache: true,
    };
    let point = backup_source(&vault, source, "docs");
    (vault, point)
}

fn sqlite_db(path: &Path, orders: u32) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, total REAL);
         CREATE TABLE IF NOT EXISTS \"odd \"\"name\"(x);
         CREATE INDEX IF NOT EXISTS orders_total ON orders(total);",
    )
    .unwrap();
    for i in 0..orders {
        c.execute(
            "INSERT INTO orders(total) VALUES (?1)",
            [f64::from(i) * 1.5],
        )
        .unwrap();
    }
}

fn request(resource: &str, checks: Vec<Check>, scratch: &Path) -> RestoreTestRequest {
    RestoreTestRequest {
        resource: resource.into(),
        select: Select::Latest,
        checks,
        max_rto_seconds: Some(600),
        rpo_seconds: Some(86_400),
        scratch_dir: Some(scratch.to_path_buf()),
        test: Some("nightly".into()),
    }
}

fn run(vault: &Vault, req: &RestoreTestRequest) -> RestoreTestReport {
    with_ctx(|c| restore_test::run(c, vault, req)).unwrap()
}

fn scratch_is_empty(scratch: &Path) {
    let left: Vec<_> = std::fs::read_dir(scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

fn check<'a>(r: &'a RestoreTestReport, name: &str) -> &'a restore_test::CheckResult {
    r.checks
        .iter()
        .find(|c| c.check.starts_with(name))
        .unwrap_or_else(|| panic!("no check {name}: {r:#?}"))
}

#[test]
fn a_files_point_passes_with_every_file_read_back_and_the_scratch_folder_removed() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (vault, point) = files_point(dir.path());
    let checks = vec![Check::Command(
        "test -f \"$HOLDFAST_RESTORE_DIR\"/*/sub/big.bin || test -n \"$(find \"$HOLDFAST_RESTORE_DIR\" -name big.bin)\"".into(),
    )];
    let r = run(&vault, &request("docs", checks, scratch.path()));
    assert!(r.passed, "{r:#?}");
    assert_eq!(r.point, point);
    assert_eq!(r.kind, "files");
    let files = check(&r, "files");
    assert!(files.passed);
    assert!(
        files.detail.contains("3000006 bytes") && files.detail.contains("1 links"),
        "{}",
        files.detail
    );
    assert!(check(&r, "command").passed, "{r:#?}");
    let names: Vec<&str> = r.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["select", "restore", "checks", "cleanup"]);
    let restore_s = r.phases[1].seconds;
    assert!(
        r.rto_seconds >= restore_s && r.rto_met && r.rpo_met,
        "{r:#?}"
    );
    assert!(r.rpo_seconds >= 0.0 && r.rpo_seconds < 600.0, "{r:#?}");
    scratch_is_empty(scratch.path());
}

#[test]
fn the_files_comparison_names_every_kind_of_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, point) = files_point(dir.path());
    let (_, m) = vault.find_point(&point).unwrap();
    let out = dir.path().join("out");
    let req = RestoreRequest {
        point: point.clone(),
        target: RestoreTarget::Dir {
            path: out.clone(),
            includes: vec![],
        },
    };
    with_ctx(|c| holdfast_ops::restore::restore(c, &vault, &req)).unwrap();
    let clean = restore_test::compare_tree(&vault, &m.root, &out).unwrap();
    assert!(clean.mismatches.is_empty(), "{:?}", clean.mismatches);
    assert_eq!((clean.files, clean.links), (2, 1));
    // The restored tree sits under the source's absolute path; find the copies.
    let big = walk_find(&out, "big.bin");
    let base = big.parent().unwrap().parent().unwrap().to_path_buf();
    let mut data = std::fs::read(&big).unwrap();
    data[2_000_000] ^= 1;
    std::fs::write(&big, &data).unwrap();
    std::fs::write(base.join("a.txt"), b"alpha!\n").unwrap();
    std::fs::remove_file(base.join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", base.join("link")).unwrap();
    std::fs::remove_dir(base.join("sub/empty")).unwrap();
    let found = restore_test::compare_tree(&vault, &m.root, &out).unwrap();
    let all = found.mismatches.join("\n");
    assert_eq!(found.mismatches.len(), 4, "{all}");
    assert!(
        all.contains("big.bin: chunk") && all.contains("differs"),
        "{all}"
    );
    assert!(all.contains("a.txt: 7 bytes, the point has 6"), "{all}");
    assert!(all.contains("link: link target differs"), "{all}");
    assert!(all.contains("empty: directory missing"), "{all}");
}

fn walk_find(dir: &Path, name: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == name) {
            return p;
        }
        if p.is_dir() && !p.is_symlink() {
            let found = walk_find(&p, name);
            if found.as_os_str() != "" {
                return found;
            }
        }
    }
    std::path::PathBuf::new()
}

#[test]
fn a_sqlite_point_passes_its_sql_row_count_and_command_checks() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.sqlite");
    sqlite_db(&db, 25);
    let (_, vault) = new_vault();
    let point = backup_source(&vault, SourceSpec::Sqlite { path: db.clone() }, "app-db");
    let (_, m) = vault.find_point(&point).unwrap();
    assert_eq!(
        m.source.facts.get("row_counts").map(String::as_str),
        Some("{\"odd \\\"name\":0,\"orders\":25}")
    );
    assert_eq!(
        m.source.facts.get("schema_blake3").map(String::len),
        Some(64)
    );
    let checks = vec![
        Check::Sql("select count(*) = 25 from orders".into()),
        Check::RowCounts("match".into()),
        Check::Command(
            "sqlite_ok() { test -s \"$HOLDFAST_RESTORE_DB\"; }; sqlite_ok && echo fine".into(),
        ),
    ];
    let r = run(&vault, &request("app-db", checks, scratch.path()));
    assert!(r.passed, "{r:#?}");
    assert_eq!(check(&r, "integrity_check").detail, "ok");
    assert_eq!(check(&r, "sql:").detail, "returned 1");
    assert_eq!(
        check(&r, "row_counts").detail,
        "2 tables, 25 rows, as at backup"
    );
    assert_eq!(check(&r, "command:").detail, "fine");
    scratch_is_empty(scratch.path());
}

#[test]
fn wrong_data_fails_exactly_the_check_that_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.sqlite");
    sqlite_db(&db, 10);
    let (_, vault) = new_vault();
    let point = backup_source(&vault, SourceSpec::Sqlite { path: db.clone() }, "app-db");
    // A point whose recorded counts are not what its dump holds: as if the source had changed
    // between the facts and the dump.
    let (_, mut m) = vault.find_point(&point).unwrap();
    m.source.facts.insert(
        "row_counts".into(),
        "{\"odd \\\"name\":0,\"orders\":11}".into(),
    );
    m.time_ns += 1;
    vault.save_point(&m).unwrap();
    let cases: [(Check, &str, &str); 3] = [
        (
            Check::RowCounts("match".into()),
            "row_counts",
            "orders: 10 rows, 11 at backup",
        ),
        (
            Check::Sql("select count(*) > 10 from orders".into()),
            "sql:",
            "returned 0, not true",
        ),
        (
            Check::Command("echo broken >&2; exit 1".into()),
            "command:",
            "exit status: 1: broken",
        ),
    ];
    for (c, name, detail) in cases {
        let r = run(&vault, &request("app-db", vec![c], scratch.path()));
        assert!(!r.passed, "{r:#?}");
        let failed: Vec<&str> = r.failed().map(|c| c.check.as_str()).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].starts_with(name), "{failed:?}");
        assert_eq!(check(&r, name).detail, detail);
        assert!(check(&r, "integrity_check").passed);
        scratch_is_empty(scratch.path());
    }
    // The oldest point's facts are its own: it passes.
    let mut req = request(
        "app-db",
        vec![Check::RowCounts("match".into())],
        scratch.path(),
    );
    req.select = Select::Oldest;
    let r = run(&vault, &req);
    assert!(r.passed && r.point == point, "{r:#?}");
}

#[test]
fn a_test_past_its_rto_fails_and_one_without_points_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.sqlite");
    sqlite_db(&db, 3);
    let (_, vault) = new_vault();
    backup_source(&vault, SourceSpec::Sqlite { path: db }, "app-db");
    let mut req = request(
        "app-db",
        vec![Check::Command("sleep 1.2".into())],
        scratch.path(),
    );
    req.max_rto_seconds = Some(1);
    let r = run(&vault, &req);
    assert!(!r.rto_met && !r.passed && r.rto_seconds > 1.0, "{r:#?}");
    assert!(r.checks.iter().all(|c| c.passed), "{r:#?}");
    let e = with_ctx(|c| restore_test::run(c, &vault, &request("nope", vec![], scratch.path())))
        .unwrap_err();
    assert_eq!(e.kind(), holdfast_engine::ErrorKind::NotFound);
    scratch_is_empty(scratch.path());
}

#[test]
fn scratch_folders_of_dead_tests_are_swept_and_live_ones_kept() {
    let scratch = tempfile::tempdir().unwrap();
    let dead = scratch.path().join(format!("{SCRATCH_PREFIX}4000000-abc"));
    let live = scratch
        .path()
        .join(format!("{SCRATCH_PREFIX}{}-def", std::process::id()));
    let other = scratch.path().join("someone-elses");
    for d in [&dead, &live, &other] {
        std::fs::create_dir_all(d.join("restored/x")).unwrap();
    }
    restore_test::sweep_leftovers(scratch.path());
    assert!(!dead.exists() && live.exists() && other.exists());
}

#[test]
fn every_test_leaves_owner_signed_evidence_in_the_vault_it_tested() {
    use holdfast_ops::evidence::{self, EvidenceRequest};
    use holdfast_storage::{Handle, Kind, Storage};
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    files_tree(&dir.path().join("src"));
    let (mem, vault) = new_vault();
    let source = SourceSpec::Files {
        paths: vec![dir.path().join("src")],
        excludes: vec![],
        no_cache: true,
    };
    let point = backup_source(&vault, source, "docs");
    let ok = run(&vault, &request("docs", vec![], scratch.path()));
    let bad = run(
        &vault,
        &request(
            "docs",
            vec![Check::Command("exit 1".into())],
            scratch.path(),
        ),
    );
    assert!(ok.passed && !bad.passed);
    let l = evidence::list(&vault, &EvidenceRequest::default()).unwrap();
    assert!(l.damage.is_empty(), "{:?}", l.damage);
    let ids: Vec<&str> = l.evidence.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            ok.evidence.as_deref().unwrap(),
            bad.evidence.as_deref().unwrap()
        ]
    );
    let e = &l.evidence[1];
    assert_eq!(
        (e.kind.as_str(), e.name.as_deref(), e.resource.as_str()),
        ("restore_test", Some("nightly"), "docs")
    );
    assert_eq!(e.point, point);
    assert!(!e.passed && l.evidence[0].passed);
    let (_, full) = evidence::show(&vault, &e.id[..10]).unwrap();
    assert_eq!(full.report["checks"][1]["check"], "command: exit 1");
    assert_eq!(full.rto_seconds, bad.rto_seconds);
    let last = evidence::list(
        &vault,
        &EvidenceRequest {
            last: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(last.evidence.len(), 1);
    assert_eq!(last.evidence[0].id, e.id);

    // A record of another vault put into this one, and a flipped byte: damage, never proof.
    let (_, other) = new_vault();
    let foreign = evidence::record_restore_test(&other, Some("x"), &ok).unwrap();
    let h = Handle::new(Kind::Evidence, foreign.to_hex());
    let bytes = other.storage().read(&h).unwrap();
    mem.create(&h, &bytes).unwrap();
    let h_ok = Handle::new(Kind::Evidence, ok.evidence.clone().unwrap());
    assert!(mem.tamper(&h_ok, |b| b[40] ^= 1));
    let l = evidence::list(&vault, &EvidenceRequest::default()).unwrap();
    assert_eq!(l.evidence.len(), 1, "{:?}", l.evidence);
    assert_eq!(l.damage.len(), 2, "{:?}", l.damage);
    // Ids are hex prefixes of at least 4 digits.
    assert!(evidence::show(&vault, "zz").is_err());
    assert!(evidence::show(&vault, &e.id[..3]).is_err());
}
