//! Simulated crashes at every write of a backup: the vault must verify clean afterwards, no
//! completed point may be lost, and re-running the backup must complete.

use std::path::Path;
use std::sync::Arc;

use holdfast_engine::keys::KdfParams;
use holdfast_engine::point::{Manifest, SourceInfo, Summary};
use holdfast_engine::verify::{VerifyOptions, verify};
use holdfast_engine::writer::with_writer;
use holdfast_engine::{Id, KeylessVault, Origin, Result, Vault};
use holdfast_sources::Source;
use holdfast_sources::files::{Excludes, FilesSource};
use holdfast_sources::restore::{Includes, restore};
use holdfast_storage::Storage;
use holdfast_storage::fault::{FaultPlan, FaultyStorage};
use holdfast_storage::memory::MemoryStorage;

const PASS: &[u8] = b"pw";

fn kdf() -> KdfParams {
    KdfParams {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    }
}

fn origin() -> Origin {
    Origin {
        host: "h".into(),
        user: "u".into(),
        now: 0,
    }
}

fn backup(vault: &Vault, src: &Path) -> Result<Id> {
    let source = FilesSource::new(&[src.to_path_buf()], Excludes::new(&[])?, None)?;
    let (c, _) = with_writer(vault, 2, |w| source.capture(w, &|_| {}))?;
    vault.save_point(&Manifest {
        version: 1,
        time_ns: 1,
        host: "h".into(),
        user: "u".into(),
        resource: "r".into(),
        tags: vec![],
        paths: source.paths(),
        source: SourceInfo {
            kind: "files".into(),
            facts: Default::default(),
        },
        root: c.root,
        partial: false,
        errors: vec![],
        summary: Summary::default(),
        program: "test".into(),
        copied_from: None,
        stored_ns: None,
        attribution: Default::default(),
    })
}

fn open(s: Arc<dyn Storage>) -> Vault {
    let v = KeylessVault::open(s)
        .unwrap()
        .unlock_passphrase(PASS)
        .unwrap();
    v.load_index().unwrap();
    v
}

fn write_files(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..6u64 {
        std::fs::write(
            dir.join(format!("f{i}")),
            holdfast_testkit::random_bytes(seed * 100 + i, 150_000),
        )
        .unwrap();
    }
    std::fs::write(dir.join("sub/small"), format!("seed {seed}")).unwrap();
}

#[test]
fn a_crash_at_any_write_loses_nothing_completed() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), 1);
    let fresh = || {
        let mem = Arc::new(MemoryStorage::new());
        let v = Vault::init_with(mem.clone(), PASS, kdf(), &origin(), |c| {
            c.pack_target = 64 * 1024;
            c.chunk_min = 16 * 1024;
            c.chunk_avg = 64 * 1024;
            c.chunk_max = 256 * 1024;
        })
        .unwrap();
        let p1 = backup(&v, src.path()).unwrap();
        (mem, p1)
    };
    // How many writes does the second backup make?
    let changed = tempfile::tempdir().unwrap();
    write_files(changed.path(), 2);
    let (mem, _) = fresh();
    let counting = Arc::new(FaultyStorage::new(mem, FaultPlan::default()));
    backup(&open(counting.clone()), changed.path()).unwrap();
    let total = counting.writes();
    assert!(
        total >= 8,
        "the backup should take several writes, took {total}"
    );

    for n in 0..total {
        let (mem, p1) = fresh();
        let faulty = Arc::new(FaultyStorage::new(mem.clone(), FaultPlan::default()));
        let v = open(faulty.clone());
        faulty.set_plan(FaultPlan {
            crash_after_writes: Some(n),
            ..Default::default()
        });
        // Pack boundaries depend on thread scheduling, so a run may need fewer writes than
        // the counting run; then it must have completed within the budget.
        let completed = backup(&v, changed.path()).is_ok();
        if completed {
            assert!(
                faulty.writes() <= n,
                "a backup may only succeed if it fit in {n} writes"
            );
        }
        // After the "restart": the vault verifies clean and the completed point restores.
        let v = open(mem.clone());
        let report = verify(
            &v,
            VerifyOptions {
                read_data: true,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        assert!(
            report.ok(),
            "crash after {n} writes left damage: {report:?}"
        );
        let (points, _) = v.list_points().unwrap();
        assert_eq!(
            points.len(),
            1 + usize::from(completed),
            "crash after {n}: no half point"
        );
        assert!(points.iter().any(|p| p.0 == p1));
        let t = tempfile::tempdir().unwrap();
        let first = points.iter().find(|p| p.0 == p1).expect("p1");
        let r = restore(
            &v,
            &first.1.root,
            t.path(),
            &Includes::new(&[]).unwrap(),
            &|_| {},
        )
        .unwrap();
        assert!(r.damaged.is_empty() && r.errors.is_empty());
        holdfast_testkit::assert_same_tree(
            src.path(),
            &t.path().join(src.path().strip_prefix("/").unwrap()),
        );
        // Re-running completes.
        backup(&v, changed.path()).unwrap();
        assert!(
            verify(
                &v,
                VerifyOptions {
                    read_data: true,
                    ..Default::default()
                },
                &|_| {}
            )
            .unwrap()
            .ok()
        );
    }
}

#[test]
fn transient_storage_failures_fail_the_backup_cleanly() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), 3);
    let mem = Arc::new(MemoryStorage::new());
    Vault::init(mem.clone(), PASS, kdf(), &origin()).unwrap();
    for after in [3usize, 5, 8] {
        let faulty = Arc::new(FaultyStorage::new(mem.clone(), FaultPlan::default()));
        let v = open(faulty.clone());
        faulty.set_plan(FaultPlan {
            fail_after_calls: Some(after),
            ..Default::default()
        });
        let e = backup(&v, src.path()).unwrap_err();
        assert!(e.retryable(), "{e}");
    }
    let v = open(mem);
    assert!(
        verify(
            &v,
            VerifyOptions {
                read_data: true,
                ..Default::default()
            },
            &|_| {}
        )
        .unwrap()
        .ok()
    );
}
