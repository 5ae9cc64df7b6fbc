//! Prune, copy, repair and verify on the in-memory store and the fault-injecting wrapper: a
//! simulated crash after every possible number of writes, transient failures, flipped bits
//! and lost index objects. What must hold each time: no kept point is lost, a rerun finishes
//! the job, and verify tells the truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use holdfast_engine::{ErrorKind, Vault};
use holdfast_ops::backup::SourceSpec;
use holdfast_ops::copy::CopySelection;
use holdfast_ops::forget::{ForgetRequest, Selection};
use holdfast_ops::prune::PruneRequest;
use holdfast_ops::restore::{RestoreRequest, RestoreTarget};
use holdfast_ops::verify::{ReadShare, VerifyRequest};
use holdfast_storage::fault::{FaultPlan, FaultyStorage};
use holdfast_storage::memory::MemoryStorage;
use holdfast_storage::{Kind, Storage};
use holdfast_testkit::Entry;

mod common;
use common::{PASS, kdf, new_vault, origin, with_ctx};

fn open(storage: Arc<dyn Storage>) -> holdfast_engine::Result<Vault> {
    let v = holdfast_engine::KeylessVault::open(storage)?.unlock_passphrase(PASS)?;
    v.load_index()?;
    Ok(v)
}

/// A small tree whose content depends on `generation`.
fn tree(root: &Path, generation: u8) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("same.txt"), b"unchanged in every generation\n").unwrap();
    let mut big = Vec::new();
    for i in 0..40_000u32 {
        big.extend_from_slice(format!("{generation} {i}\n").as_bytes());
    }
    std::fs::write(root.join("sub/gen.txt"), big).unwrap();
}

fn backup(vault: &Vault, src: &Path) -> String {
    let source = SourceSpec::Files {
        paths: vec![src.to_path_buf()],
        excludes: vec![],
        no_cache: true,
    };
    common::backup_source(vault, source, "app")
}

/// What `point` restores to under a new folder, as [`holdfast_testkit::describe`] sees it.
fn restored(vault: &Vault, point: &str, into: &Path) -> BTreeMap<PathBuf, Entry> {
    let req = RestoreRequest {
        point: point.into(),
        target: RestoreTarget::Dir {
            path: into.to_path_buf(),
            includes: vec![],
        },
    };
    let r = with_ctx(|c| holdfast_ops::restore::restore(c, vault, &req)).unwrap();
    assert!(!r.partial(), "{r:?}");
    holdfast_testkit::describe(into)
}

fn verify_all(vault: &Vault) -> holdfast_ops::verify::VerifyOutput {
    let req = VerifyRequest {
        read: ReadShare::All,
    };
    with_ctx(|c| holdfast_ops::verify::verify(c, vault, &req)).unwrap()
}

fn prune_req() -> PruneRequest {
    PruneRequest {
        dry_run: false,
        repack_threshold_pct: 0.0,
        max_wait_secs: 0,
        abandon_after_secs: 0,
    }
}

/// [`tree`] of `generation` in `dir/src`.
fn tree_at(dir: &Path, generation: u8) -> PathBuf {
    let src = dir.join("src");
    tree(&src, generation);
    src
}

/// A copy of every object of `m`, as a new store.
fn snapshot(m: &MemoryStorage) -> MemoryStorage {
    let copy = MemoryStorage::new();
    copy.prepare().unwrap();
    for h in m.handles() {
        copy.create(&h, &m.read(&h).unwrap()).unwrap();
    }
    copy
}

/// Three points of one resource, the first two forgotten: what is left for prune to delete.
fn vault_with_forgotten_points(dir: &Path) -> (MemoryStorage, String) {
    let (mem, vault) = new_vault();
    let ids: Vec<String> = (0..3).map(|g| backup(&vault, &tree_at(dir, g))).collect();
    let req = ForgetRequest {
        select: Selection::Ids {
            points: ids[..2].to_vec(),
        },
        dry_run: false,
        bypass_governance: false,
    };
    holdfast_ops::forget::forget(&vault, &req, "test").unwrap();
    (snapshot(&mem), ids[2].clone())
}

#[test]
fn a_prune_that_crashes_after_any_write_loses_no_kept_point_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (base, kept) = vault_with_forgotten_points(dir.path());
    let want = restored(
        &open(Arc::new(snapshot(&base))).unwrap(),
        &kept,
        &dir.path().join("want"),
    );
    // How many writes a whole prune makes.
    let counting = Arc::new(FaultyStorage::new(snapshot(&base), FaultPlan::default()));
    let v = open(counting.clone()).unwrap();
    let full = with_ctx(|c| holdfast_ops::prune::prune(c, &v, &prune_req())).unwrap();
    assert!(full.report.deleted_packs > 0, "{:?}", full.report);
    let writes = counting.writes();
    assert!(writes >= 2, "{writes}");
    eprintln!("a whole prune makes {writes} writes; crashing after each of 0..{writes}");
    for n in 0..writes {
        let faulty = Arc::new(FaultyStorage::new(
            snapshot(&base),
            FaultPlan {
                crash_after_writes: Some(n),
                ..FaultPlan::default()
            },
        ));
        let crashed = open(faulty.clone())
            .and_then(|v| with_ctx(|c| holdfast_ops::prune::prune(c, &v, &prune_req())));
        assert!(
            crashed.is_err(),
            "crash after {n} writes: the prune did not notice"
        );
        // The next process finds what the crashed one left.
        let after: Arc<dyn Storage> = Arc::new(snapshot(faulty.inner()));
        let v = open(after.clone()).unwrap();
        let out = dir.path().join(format!("after-crash-{n}"));
        assert_eq!(restored(&v, &kept, &out), want, "crash after {n} writes");
        // A rerun (with its own session, the crashed one is abandoned) finishes.
        with_ctx(|c| holdfast_ops::prune::prune(c, &v, &prune_req()))
            .unwrap_or_else(|e| panic!("rerun after a crash at write {n}: {e}"));
        let v = open(after).unwrap();
        let check = verify_all(&v);
        assert!(check.ok, "crash after {n} writes: {:?}", check.report);
        let out = dir.path().join(format!("after-rerun-{n}"));
        assert_eq!(restored(&v, &kept, &out), want, "crash after {n} writes");
        let (points, _) = v.list_points().unwrap();
        assert_eq!(points.len(), 1);
    }
}

#[test]
fn a_copy_that_fails_midway_is_retryable_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, src) = new_vault();
    let ids: Vec<String> = (0..2)
        .map(|g| backup(&src, &tree_at(dir.path(), g)))
        .collect();
    let dst_mem: Arc<MemoryStorage> = Arc::new(MemoryStorage::new());
    Vault::init(dst_mem.clone(), PASS, kdf(), &origin()).unwrap();
    let select = CopySelection::Ids {
        points: ids.clone(),
    };
    // The destination stops answering after a few calls: transient, so worth a retry.
    let flaky = Arc::new(FaultyStorage::new(
        snapshot(&dst_mem),
        FaultPlan {
            fail_after_calls: Some(12),
            ..FaultPlan::default()
        },
    ));
    let dst = open(flaky.clone()).unwrap();
    let session = holdfast_ops::session::start(&dst, "copy", true)
        .unwrap()
        .unwrap();
    let e = with_ctx(|c| holdfast_ops::copy::copy(c, &src, &dst, &session, &select))
        .expect_err("the destination failed");
    assert!(e.retryable(), "{e} ({:?})", e.kind());
    assert_eq!(e.kind(), ErrorKind::Unreachable);
    drop(session);
    // The next attempt, on what the failed one left, copies the rest.
    let left: Arc<dyn Storage> = Arc::new(snapshot(flaky.inner()));
    let dst = open(left.clone()).unwrap();
    let session = holdfast_ops::session::start(&dst, "copy", true)
        .unwrap()
        .unwrap();
    let r = with_ctx(|c| holdfast_ops::copy::copy(c, &src, &dst, &session, &select)).unwrap();
    session.end();
    assert_eq!(r.copied.len() + r.already_there.len(), 2, "{r:?}");
    let dst = open(left).unwrap();
    assert!(verify_all(&dst).ok);
    // Every point restores from the copy exactly as from the source.
    let by_time = |v: &Vault| {
        let (mut p, _) = v.list_points().unwrap();
        p.sort_by_key(|(_, m)| m.time_ns);
        p.into_iter().map(|(id, _)| id.to_hex()).collect::<Vec<_>>()
    };
    let (from, to) = (by_time(&src), by_time(&dst));
    assert_eq!(to.len(), 2);
    for (i, (a, b)) in from.iter().zip(&to).enumerate() {
        let x = restored(&src, a, &dir.path().join(format!("src-{i}")));
        let y = restored(&dst, b, &dir.path().join(format!("dst-{i}")));
        assert_eq!(x, y, "point {i}");
        assert!(!x.is_empty());
    }
}

#[test]
fn verify_reads_every_pack_and_names_what_a_flipped_bit_damages() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, vault) = new_vault();
    let id = backup(&vault, &tree_at(dir.path(), 0));
    assert!(verify_all(&open(mem.clone()).unwrap()).ok);
    // Flip one bit in the middle of the largest pack (file data; the trees are in a small
    // pack of their own), behind the store's back.
    let data_pack = mem
        .handles()
        .into_iter()
        .filter(|h| h.kind == Kind::Pack)
        .max_by_key(|h| mem.size(h).unwrap())
        .unwrap();
    assert!(mem.tamper(&data_pack, |b| {
        let i = b.len() / 2;
        b[i] ^= 1;
    }));
    let out = verify_all(&open(mem.clone()).unwrap());
    assert!(!out.ok);
    let affected: Vec<String> = out
        .report
        .affected
        .iter()
        .map(|a| a.point.clone())
        .collect();
    assert!(affected.contains(&id), "{:?}", out.report);
    let paths = &out.report.affected[0].paths;
    assert!(
        paths.iter().any(|p| p.ends_with("sub/gen.txt")),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.ends_with("same.txt")), "{paths:?}");
    // A structure-only verify reads the trees, not file data: it does not see it.
    let v = open(mem.clone()).unwrap();
    let quick = with_ctx(|c| {
        holdfast_ops::verify::verify(
            c,
            &v,
            &VerifyRequest {
                read: ReadShare::None,
            },
        )
    })
    .unwrap();
    assert!(quick.ok, "{:?}", quick.report);
}

#[test]
fn repair_rebuilds_a_lost_index_and_every_point_restores_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, vault) = new_vault();
    let id = backup(&vault, &tree_at(dir.path(), 0));
    let want = restored(&vault, &id, &dir.path().join("want"));
    // Lose every index object.
    let lost: Arc<MemoryStorage> = Arc::new(MemoryStorage::new());
    lost.prepare().unwrap();
    for h in mem.handles().into_iter().filter(|h| h.kind != Kind::Index) {
        lost.create(&h, &mem.read(&h).unwrap()).unwrap();
    }
    let v = open(lost.clone()).unwrap();
    let broken = verify_all(&v);
    assert!(
        !broken.ok && broken.report.index_needs_repair,
        "{:?}",
        broken.report
    );
    let r = holdfast_engine::repair::repair_index(&v, false, &|_| {}).unwrap();
    assert!(r.packs > 0, "{r:?}");
    let v = open(lost).unwrap();
    assert!(verify_all(&v).ok);
    assert_eq!(restored(&v, &id, &dir.path().join("again")), want);
}
