//! Vaults written by earlier releases stay readable: every vault checked in under
//! `tests/golden/vN/` (made by the release of format version N) is opened by this build,
//! migrated first if its version needs it, verified with every byte read, and every point
//! restored and compared, entry by entry, with the listing recorded when it was made
//! (`expected.txt`). A format change that breaks old vaults fails here.
//!
//! A new format version adds a directory; the old ones stay. The maker runs in every build
//! (into a temporary folder, read back at once); to keep its vault as the new version's golden
//! one, run it once with `HOLDFAST_GOLDEN_MAKE=1` and commit the directory:
//!
//! ```sh
//! HOLDFAST_GOLDEN_MAKE=1 cargo test -p holdfast-cli --test golden a_vault_made_now
//! ```

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
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

/// One line per entry below `root` (as [`holdfast_testkit::describe`] sees it), sorted by
/// path bytes: the path (escaped), its type, permission bits, mtime (ns) and content (BLAKE3
/// and size, or the link target); a path that shares its inode with an earlier one says so.
fn listing(root: &Path) -> String {
    let mut entries: Vec<_> = holdfast_testkit::describe(root).into_iter().collect();
    entries.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    let mut first_of_group: HashMap<usize, String> = HashMap::new();
    let mut out = String::new();
    for (rel, e) in entries {
        let name = rel.as_os_str().as_bytes().escape_ascii().to_string();
        let mtime = format!(" mtime={}.{:09}", e.mtime.0, e.mtime.1);
        let what = match e.kind {
            // Symlink mtimes are restored too, but not every file system keeps them.
            'l' => format!("symlink -> {}", e.content.escape_ascii()),
            'd' => format!("dir {:o}{mtime}", e.mode),
            _ => match e
                .link_group
                .map(|g| first_of_group.get(&g).cloned().ok_or(g))
            {
                Some(Ok(first)) => format!("hardlink to {first}"),
                group => {
                    if let Some(Err(g)) = group {
                        first_of_group.insert(g, name.clone());
                    }
                    format!(
                        "file {:o}{mtime} size={} blake3={}",
                        e.mode,
                        e.content.len(),
                        blake3::hash(&e.content).to_hex()
                    )
                }
            },
        };
        out.push_str(&format!("{name}: {what}\n"));
    }
    out
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

/// A golden vault in `dir` made by this build: two file points (the second incremental,
/// tagged), a stream point, and `expected.txt`, the listing each restore must reproduce.
fn make(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
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
        stream_line(STREAM),
    );
    let mut text = String::new();
    for (point, list) in &expected {
        text.push_str(&format!("== {point}\n{list}"));
    }
    fs::write(dir.join("expected.txt"), text).unwrap();
}

/// How a stream point's content is listed.
fn stream_line(data: &[u8]) -> String {
    format!("stream dump.sql blake3={}\n", blake3::hash(data).to_hex())
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

/// Read the golden vault of format `version` in `dir` as a user of this build would: migrate
/// it if its version needs that, verify every byte, restore every point and compare.
fn read_back(version: u32, dir: &Path) {
    let env = env_over(dir);
    if MIGRATABLE_VERSIONS.contains(&version) {
        env.ok(&["migrate"]);
    }
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["ok"], true, "v{version}: {v}");
    let want = expected(dir);
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
        read_back(version, &dir);
    }
}

/// The maker runs in every build: it makes a vault of the current version in a temporary
/// folder and reads it back, so the next format version's golden vault can be made. With
/// `HOLDFAST_GOLDEN_MAKE=1` and no `tests/golden/v{FORMAT_VERSION}` yet, it also keeps that
/// vault there (golden vaults are never remade).
#[test]
fn a_vault_made_now_is_read_back_like_the_golden_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let made = tmp.path().join(format!("v{FORMAT_VERSION}"));
    make(&made);
    read_back(FORMAT_VERSION, &made);
    let golden = golden_root().join(format!("v{FORMAT_VERSION}"));
    if std::env::var_os("HOLDFAST_GOLDEN_MAKE").is_some() && !golden.exists() {
        copy_dir(&made, &golden);
    }
}
