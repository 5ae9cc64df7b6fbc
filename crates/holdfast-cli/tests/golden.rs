//! Vaults written by earlier releases stay readable: every vault checked in under
//! `tests/golden/vN/` (made by the release of format version N) is opened by this build,
//! migrated first if its version needs it, verified with every byte read, and every point
//! restored and compared, entry by entry, with the listing recorded when it was made
//! (`expected.txt`). A format change that breaks old vaults fails here.
//!
//! A new format version adds a directory; the old ones stay. To make one (release build of
//! the new version, once, then commit it):
//!
//! ```sh
//! HOLDFAST_GOLDEN_MAKE=1 cargo test -p holdfast-cli --test golden -- --ignored make_golden_vault
//! ```

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::*;
use holdfast_engine::config::{FORMAT_VERSION, MIGRATABLE_VERSIONS};

const PASSPHRASE: &str = "golden vault";

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// An `Env` over a copy of a golden vault (the test writes locks and markers into it).
fn env_over(src: &Path) -> Env {
    let mut env = Env::new();
    copy_dir(src.join("vault").as_path(), Path::new(&env.vault));
    env.extra_env
        .push(("HOLDFAST_PASSPHRASE".into(), PASSPHRASE.into()));
    env
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dst = to.join(rel);
        if e.file_type().is_dir() {
            fs::create_dir_all(&dst).unwrap();
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// One line per entry below `root`, sorted by path: the path (bytes escaped), its type,
/// permission bits, mtime (ns) and content (BLAKE3 and size, or the link target); a path
/// that shares its inode with an earlier one says so.
fn listing(root: &Path) -> String {
    let mut out = Vec::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    let mut entries: Vec<walkdir::DirEntry> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()));
    for e in entries {
        let rel = e.path().strip_prefix(root).unwrap();
        let name = rel.as_os_str().as_bytes().escape_ascii().to_string();
        let md = fs::symlink_metadata(e.path()).unwrap();
        let perm = md.permissions().mode() & 0o7777;
        let mtime = if md.file_type().is_symlink() {
            // Symlink mtimes are restored too, but not every file system keeps them.
            String::new()
        } else {
            format!(" mtime={}.{:09}", md.mtime(), md.mtime_nsec())
        };
        let what = if md.file_type().is_symlink() {
            let t = fs::read_link(e.path()).unwrap();
            format!("symlink -> {}", t.as_os_str().as_bytes().escape_ascii())
        } else if md.is_dir() {
            format!("dir {perm:o}{mtime}")
        } else if md.nlink() > 1
            && let Some(first) = inodes.get(&(md.dev(), md.ino()))
        {
            format!("hardlink to {first}")
        } else {
            if md.nlink() > 1 {
                inodes.insert((md.dev(), md.ino()), name.clone());
            }
            let data = fs::read(e.path()).unwrap();
            format!(
                "file {perm:o}{mtime} size={} blake3={}",
                data.len(),
                blake3::hash(&data).to_hex()
            )
        };
        out.push(format!("{name}: {what}"));
    }
    out.join("\n") + "\n"
}

/// The tree backed up as the first point.
fn first_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::create_dir_all(root.join("var/lib/app/empty")).unwrap();
    fs::create_dir_all(root.join("home/ana/.ssh")).unwrap();
    let mut text = String::new();
    for i in 0..90_000 {
        text.push_str(&format!(
            "{i:08} a line of an application log, row {}\n",
            i % 97
        ));
    }
    fs::write(root.join("var/lib/app/log.txt"), &text).unwrap();
    fs::write(root.join("etc/app/app.conf"), b"listen = 127.0.0.1:8080\n").unwrap();
    fs::write(root.join("etc/app/empty.conf"), b"").unwrap();
    fs::write(root.join("home/ana/.ssh/id_ed25519"), b"not a real key\n").unwrap();
    fs::write(root.join("home/ana/notes ümlaut & space.txt"), b"notes\n").unwrap();
    let raw = std::ffi::OsStr::from_bytes(b"home/ana/bad-\xff-name");
    fs::write(root.join(raw), b"a name that is not UTF-8\n").unwrap();
    fs::hard_link(
        root.join("etc/app/app.conf"),
        root.join("etc/app/app.conf.link"),
    )
    .unwrap();
    symlink("app/app.conf", root.join("etc/current.conf")).unwrap();
    symlink("/nonexistent/target", root.join("etc/dangling")).unwrap();
    for (p, mode) in [
        ("home/ana/.ssh/id_ed25519", 0o600),
        ("home/ana/.ssh", 0o700),
        ("etc/app/app.conf", 0o640),
        ("var/lib/app/log.txt", 0o444),
    ] {
        fs::set_permissions(root.join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    set_mtimes(root, 1_700_000_000);
}

/// The edits between the first and the second point.
fn second_tree(root: &Path) {
    let log = root.join("var/lib/app/log.txt");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    let mut text = fs::read(&log).unwrap();
    text.extend_from_slice(b"one more line after the first backup\n");
    fs::write(&log, text).unwrap();
    fs::write(root.join("etc/app/added.conf"), b"added = true\n").unwrap();
    fs::remove_file(root.join("home/ana/notes ümlaut & space.txt")).unwrap();
    set_mtimes(root, 1_700_100_000);
}

fn set_mtimes(root: &Path, base: i64) {
    let mut n = 0u32;
    for e in walkdir::WalkDir::new(root).contents_first(true) {
        let e = e.unwrap();
        n += 1;
        set_mtime(e.path(), base + i64::from(n) * 60, 100_000_000 + n);
    }
}

const STREAM: &[u8] =
    b"-- a database dump\ncreate table t (id int);\ninsert into t values (1), (2);\n";

/// Make `tests/golden/v{FORMAT_VERSION}` with this build: two file points (the second
/// incremental, tagged), a stream point, and the listing each restore must reproduce.
#[test]
#[ignore = "makes a golden vault; run once per format version (see the module docs)"]
fn make_golden_vault() {
    if std::env::var_os("HOLDFAST_GOLDEN_MAKE").is_none() {
        return;
    }
    let dir = golden_root().join(format!("v{FORMAT_VERSION}"));
    assert!(
        !dir.exists(),
        "{} exists: golden vaults are never remade",
        dir.display()
    );
    fs::create_dir_all(&dir).unwrap();
    let mut env = Env::new();
    env.vault = dir.join("vault").display().to_string();
    env.extra_env
        .push(("HOLDFAST_PASSPHRASE".into(), PASSPHRASE.into()));
    env.init();
    let src = env.path("src");
    first_tree(&src);
    let mut expected = BTreeMap::new();
    let p1 = env.json(&["backup", src.to_str().unwrap(), "--resource", "app"]);
    expected.insert(p1["point"].as_str().unwrap().to_string(), listing(&src));
    second_tree(&src);
    let p2 = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--resource",
        "app",
        "--tag",
        "second",
    ]);
    expected.insert(p2["point"].as_str().unwrap().to_string(), listing(&src));
    let mut c = env.cmd();
    c.args([
        "--json",
        "backup",
        "--stdin",
        "--stdin-name",
        "dump.sql",
        "--resource",
        "db",
    ])
    .write_stdin(STREAM);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let p3: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    expected.insert(
        p3["point"].as_str().unwrap().to_string(),
        format!("stream dump.sql blake3={}\n", blake3::hash(STREAM).to_hex()),
    );
    let mut text = String::new();
    for (point, list) in &expected {
        text.push_str(&format!("== {point}\n{list}"));
    }
    fs::write(dir.join("expected.txt"), text).unwrap();
}

/// `expected.txt`: point id -> the listing of its restore.
fn expected(dir: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut out = BTreeMap::new();
    for part in text.split("== ").filter(|s| !s.is_empty()) {
        let (id, list) = part.split_once('\n').unwrap();
        out.insert(id.to_string(), list.to_string());
    }
    out
}

#[test]
fn every_golden_vault_is_read_by_this_build() {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(golden_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let v = p.file_name()?.to_str()?.strip_prefix('v')?.parse().ok()?;
            Some((v, p))
        })
        .collect();
    versions.sort();
    assert!(
        versions.iter().any(|(v, _)| *v == FORMAT_VERSION),
        "no golden vault of the current format version {FORMAT_VERSION}: make one (tests/golden.rs)"
    );
    for (version, dir) in versions {
        let env = env_over(&dir);
        if MIGRATABLE_VERSIONS.contains(&version) {
            env.ok(&["migrate"]);
        }
        let v = env.json(&["verify", "--read-data"]);
        assert_eq!(v["ok"], true, "v{version}: {v}");
        let want = expected(&dir);
        let points = env.json(&["points"]);
        let points = points.as_array().unwrap();
        assert_eq!(points.len(), want.len(), "v{version}: {points:?}");
        for p in points {
            let id = p["id"].as_str().unwrap();
            let list = want
                .get(id)
                .unwrap_or_else(|| panic!("v{version}: point {id} is not in expected.txt"));
            let got = if p["source"]["kind"] == "stdin" {
                let o = env.run(&["dump", id, "dump.sql"]);
                assert!(o.status.success(), "v{version}: {}", stderr(&o));
                format!(
                    "stream dump.sql blake3={}\n",
                    blake3::hash(&o.stdout).to_hex()
                )
            } else {
                let target = env.path(&format!("restore-{id}"));
                env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
                let src = p["paths"][0].as_str().unwrap();
                listing(&restored(&target, Path::new(src)))
            };
            assert_eq!(&got, list, "v{version}: the restore of {id} differs");
        }
    }
}
