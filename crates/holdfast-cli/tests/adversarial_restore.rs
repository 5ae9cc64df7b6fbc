//! Restoring into a target that someone prepared: symbolic links planted where the point has
//! folders, files, symlinks and hard links must never be followed. Nothing outside the target
//! may be created, removed, written, chmod-ed or have its times changed, and the target must
//! end up holding the real restored tree.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::*;
use filetime::FileTime;

/// Everything about every path under `root` (itself included) that a write, an unlink and
/// re-create, a chmod, a chown or a utime would change. ctime moves on any of them, even a
/// chmod to the same mode; reading does not move it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let what = if m.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(e.path()).unwrap())
        } else if m.is_file() {
            format!("{:?}", fs::read(e.path()).unwrap())
        } else {
            "dir".into()
        };
        out.insert(
            e.path().to_path_buf(),
            format!(
                "mode {:o} owner {}:{} ino {} nlink {} mtime {}.{} ctime {}.{} {what}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.ino(),
                m.nlink(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ),
        );
    }
    out
}

fn assert_untouched(before: &BTreeMap<PathBuf, String>, root: &Path) {
    let after = snapshot(root);
    let paths = |m: &BTreeMap<PathBuf, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        paths(before),
        paths(&after),
        "paths outside the target were created or removed"
    );
    for (p, b) in before {
        assert_eq!(b, &after[p], "{} was changed", p.display());
    }
}

fn mtime(p: &Path, sec: i64) {
    let t = FileTime::from_unix_time(sec, 987_654_321);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// The source: a folder `data/sub` with `evil.txt`, a file, a symlink and a hard-link pair in
/// `data`, a 0700 folder with a 0600 file, an empty 0750 folder; fixed mtimes everywhere.
fn make_source(src: &Path) {
    fs::create_dir_all(src.join("data/sub")).unwrap();
    fs::create_dir_all(src.join("private")).unwrap();
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::write(src.join("data/sub/evil.txt"), b"restored evil.txt\n").unwrap();
    fs::write(src.join("data/file"), b"restored data/file\n").unwrap();
    fs::write(src.join("data/hard1"), b"hard-linked content\n").unwrap();
    fs::hard_link(src.join("data/hard1"), src.join("data/hard2")).unwrap();
    symlink("file", src.join("data/link")).unwrap();
    fs::write(src.join("private/key"), b"secret key\n").unwrap();
    fs::set_permissions(src.join("data/file"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(src.join("private/key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(src.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(src.join("empty"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(src.join("data/sub"), fs::Permissions::from_mode(0o711)).unwrap();
    let mut n = 0;
    for e in walkdir::WalkDir::new(src).contents_first(true) {
        n += 1;
        mtime(e.unwrap().path(), 1_500_000_000 + n * 1000);
    }
}

/// Things outside the target that planted links point at, with known content, modes and times.
fn make_outside(outside: &Path) {
    fs::create_dir_all(outside.join("victim_dir")).unwrap();
    fs::create_dir_all(outside.join("private_dir")).unwrap();
    fs::write(outside.join("evil.txt"), b"original, must survive\n").unwrap();
    fs::write(outside.join("victim"), b"victim content\n").unwrap();
    fs::write(outside.join("victim_dir/inside"), b"inside\n").unwrap();
    fs::set_permissions(outside.join("evil.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(outside.join("victim"), fs::Permissions::from_mode(0o604)).unwrap();
    fs::set_permissions(
        outside.join("victim_dir"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(
        outside.join("private_dir"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for e in walkdir::WalkDir::new(outside).contents_first(true) {
        mtime(e.unwrap().path(), 1_234_567_890);
    }
}

/// `../` enough times to climb from `dir` to `ancestor`, then `rest`.
fn relative_up(dir: &Path, ancestor: &Path, rest: &str) -> PathBuf {
    let depth = dir.strip_prefix(ancestor).unwrap().components().count();
    let mut p = PathBuf::new();
    for _ in 0..depth {
        p.push("..");
    }
    p.join(rest)
}

/// Plant links in the restore target where the point has folders, a file, a symlink and a hard
/// link, all pointing outside.
fn plant(r: &Path, root: &Path, outside: &Path) {
    fs::create_dir_all(r.join("data")).unwrap();
    // A relative folder link, the attack of the issue: data/sub -> ../…/outside.
    symlink(
        relative_up(&r.join("data"), root, "outside"),
        r.join("data/sub"),
    )
    .unwrap();
    // A file link where the point has a file.
    symlink(outside.join("victim"), r.join("data/file")).unwrap();
    // Links where the point has a symlink and the second name of a hard link.
    symlink(outside.join("victim"), r.join("data/link")).unwrap();
    symlink(outside.join("victim"), r.join("data/hard2")).unwrap();
    // Folder links where the point has a 0700 folder with a file, and an empty 0750 folder
    // (whose mode and mtime the restore sets).
    symlink(outside.join("private_dir"), r.join("private")).unwrap();
    symlink(outside.join("victim_dir"), r.join("empty")).unwrap();
}

#[test]
fn restore_never_follows_links_planted_in_the_target() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);

    let outside = env.path("outside");
    make_outside(&outside);
    let target = env.path("target");
    let r = restored(&target, &src);
    plant(&r, env.dir.path(), &outside);
    assert_eq!(
        fs::read(r.join("data/sub/evil.txt")).unwrap(),
        b"original, must survive\n",
        "the planted link leads outside"
    );
    let before = snapshot(&outside);

    let out = env.json(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    assert_eq!(out["damaged"], serde_json::json!([]), "{out}");
    assert_untouched(&before, &outside);
    assert!(!target.join("outside").exists());
    for p in ["data/sub", "private", "empty"] {
        assert!(
            r.join(p).symlink_metadata().unwrap().is_dir(),
            "{p} is a real folder now"
        );
    }
    assert_same_tree(&src, &r);

    // Restoring again over the restored tree replaces what is there, still without touching
    // anything outside.
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_untouched(&before, &outside);
    assert_same_tree(&src, &r);
}

#[test]
fn restore_with_includes_never_follows_links_planted_in_the_target() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);

    let outside = env.path("outside");
    make_outside(&outside);
    let target = env.path("target");
    let r = restored(&target, &src);
    plant(&r, env.dir.path(), &outside);
    let before = snapshot(&outside);

    // Only evil.txt and key are wanted: their folders are created where needed (replacing the
    // planted links), the other folders only get their metadata if they exist, and a planted
    // link in place of one of them is not followed.
    let out = env.json(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "evil.txt",
        "--include",
        "key",
    ]);
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    assert_eq!(out["files"], 2, "{out}");
    assert_untouched(&before, &outside);
    let sub = r.join("data/sub");
    assert!(sub.symlink_metadata().unwrap().is_dir());
    assert_eq!(
        fs::read(sub.join("evil.txt")).unwrap(),
        b"restored evil.txt\n"
    );
    let m = sub.symlink_metadata().unwrap();
    assert_eq!(m.mode() & 0o7777, 0o711);
    let private = r.join("private");
    assert_eq!(private.symlink_metadata().unwrap().mode() & 0o7777, 0o700);
    assert_eq!(fs::read(private.join("key")).unwrap(), b"secret key\n");
    assert!(
        r.join("empty")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink(),
        "a folder no included file needs is left alone"
    );
}
