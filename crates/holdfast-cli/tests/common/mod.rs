//! Helpers for the end-to-end tests: run the real `holdfast` binary in a clean environment
//! and build source trees with every kind of metadata.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use filetime::FileTime;

#[allow(unused_imports)]
pub use holdfast_testkit::{Moto, assert_same_tree, random_bytes};

pub mod daemon;
pub mod forge;

/// A scratch area with a vault location and a cache folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub vault: String,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault").display().to_string();
        Env {
            dir,
            vault,
            extra_env: vec![],
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A `tmp` folder of this env that its commands use as `TMPDIR` (so a test sees what
    /// they leave there).
    #[allow(dead_code)]
    pub fn private_tmpdir(&mut self) -> PathBuf {
        let tmp = self.path("tmp");
        fs::create_dir_all(&tmp).unwrap();
        self.extra_env
            .push(("TMPDIR".into(), tmp.display().to_string()));
        tmp
    }

    /// A `holdfast` command with this env's vault, passphrase and cache; nothing inherited
    /// from the caller's HOLDFAST_* variables.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("holdfast"));
        for (k, _) in std::env::vars() {
            if k.starts_with("HOLDFAST_") || k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("HOLDFAST_VAULT", &self.vault)
            .env("HOLDFAST_PASSPHRASE", "correct horse")
            .env("HOLDFAST_KDF_MEMORY_KIB", "8192")
            .env("HOLDFAST_CACHE_DIR", self.dir.path().join("cache"));
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// [`Env::std_cmd`] as an `assert_cmd` command.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "holdfast {args:?} failed ({:?}):\n{}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run with `--json` and parse stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Run with `--json` and parse stdout, whatever the exit status.
    pub fn json_any(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = self.run(&a);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("holdfast {a:?}: {e}\n{}", stderr(&o)))
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    /// All files of the local vault.
    pub fn vault_files(&self) -> Vec<PathBuf> {
        walkdir::WalkDir::new(&self.vault)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect()
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn set_mtime(p: &Path, sec: i64, nsec: u32) {
    filetime::set_symlink_file_times(
        p,
        FileTime::from_unix_time(sec, nsec),
        FileTime::from_unix_time(sec, nsec),
    )
    .unwrap();
}

/// A source tree with files of several sizes, modes, nanosecond mtimes, nested and empty
/// folders, symlinks (relative and dangling), hard links and a non-UTF-8 name.
pub fn make_tree(root: &Path, big: bool) {
    fs::create_dir_all(root.join("docs/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    fs::write(root.join("docs/readme.txt"), b"hello holdfast\n").unwrap();
    fs::write(root.join("docs/empty-file"), b"").unwrap();
    fs::write(root.join("docs/nested/text.md"), "line\n".repeat(20000)).unwrap();
    fs::write(
        root.join("docs/nested/deeper/random.bin"),
        random_bytes(1, 3 << 20),
    )
    .unwrap();
    fs::write(root.join("private/key.pem"), b"-----BEGIN SOMETHING-----\n").unwrap();
    fs::write(root.join("name with spaces & ümlauts.txt"), b"x").unwrap();
    let raw = std::ffi::OsStr::from_encoded_bytes_unchecked_safe(b"bad-\xff-name");
    fs::write(root.join(raw), b"non-utf8 name").unwrap();
    if big {
        let mut v = random_bytes(2, 10 << 20);
        v.extend(std::iter::repeat_n(b'a', 8 << 20));
        fs::write(root.join("big.bin"), v).unwrap();
    }
    fs::hard_link(
        root.join("docs/readme.txt"),
        root.join("readme-hardlink.txt"),
    )
    .unwrap();
    symlink("docs/readme.txt", root.join("link-to-readme")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    fs::set_permissions(
        root.join("private/key.pem"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(
        root.join("docs/nested/text.md"),
        fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(
        root.join("docs/readme.txt"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(
            &root.join("private/key.pem"),
            Some(1234.into()),
            Some(5678.into()),
        )
        .unwrap();
    }
    // mtimes last, deepest first, with nanoseconds
    let mut n = 0u32;
    for e in walkdir::WalkDir::new(root).contents_first(true) {
        let e = e.unwrap();
        n += 1;
        set_mtime(e.path(), 1_600_000_000 + n as i64 * 1000, 123_456_789 + n);
    }
}

/// Extension trait so tests can build a non-UTF-8 name without unsafe code.
pub trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

/// Where a restore of `src` into `target` puts it (points keep absolute paths).
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// The environment that points holdfast at a moto S3 server.
pub fn s3_vars(moto: &Moto) -> Vec<(String, String)> {
    vec![
        ("HOLDFAST_S3_ENDPOINT".into(), moto.endpoint.clone()),
        (
            "AWS_ACCESS_KEY_ID".into(),
            holdfast_testkit::ACCESS_KEY.into(),
        ),
        ("AWS_SECRET_ACCESS_KEY".into(), "secret".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// Flip one bit of the byte at `at` (modulo the length) of a file; flipping it again repairs.
pub fn flip(path: &Path, at: usize) {
    let mut d = std::fs::read(path).unwrap();
    let i = at % d.len();
    d[i] ^= 0x10;
    std::fs::write(path, d).unwrap();
}

/// Every stored object file under `dir` of a local vault, smallest first.
pub fn objects(vault: &str, dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(Path::new(vault).join(dir))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    v.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    v
}

/// Write `files` files of `size` pseudo-random bytes (seeded) into `dir`.
pub fn write_gen(dir: &Path, seed: u64, files: usize, size: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("f{i}.bin")),
            random_bytes(seed * 1000 + i as u64, size),
        )
        .unwrap();
    }
}

/// Start `holdfast --json backup DIR` and freeze it (SIGSTOP) once its session exists (it has
/// then loaded, or is loading, the index). Returns the child and the new session's id.
pub fn frozen_backup(env: &Env, dir: &Path) -> (std::process::Child, String) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let sessions = Path::new(&env.vault).join("sessions");
    let listed = || -> std::collections::BTreeSet<String> {
        fs::read_dir(&sessions)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|n| n[..32].to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = listed();
    let child = env
        .std_cmd()
        .args(["--json", "backup", dir.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let sid = loop {
        if let Some(s) = listed().difference(&before).next() {
            break s.clone();
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP).unwrap();
    (child, sid)
}

/// Let a [`frozen_backup`] go on and wait for it.
pub fn resume(child: std::process::Child) -> Output {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT).unwrap();
    child.wait_with_output().unwrap()
}

/// Back up "bait" data and forget it (a prune will condemn its packs), and return a
/// directory holding the bait's files (so a backup of it deduplicates against the condemned
/// packs) plus `large_mib` MiB of new data (so that backup runs long enough to interfere
/// with).
pub fn bait(env: &Env, large_mib: usize) -> PathBuf {
    let bait = env.path("bait");
    write_gen(&bait, 4242, 4, 1_000_000);
    let b = env.json(&["backup", bait.to_str().unwrap()]);
    env.ok(&["forget", &b["point"].as_str().unwrap()[..16]]);
    let d = env.path("big");
    fs::create_dir_all(&d).unwrap();
    for f in fs::read_dir(&bait).unwrap() {
        let f = f.unwrap().path();
        fs::copy(&f, d.join(f.file_name().unwrap())).unwrap();
    }
    fs::write(d.join("zz-large.bin"), random_bytes(99, large_mib << 20)).unwrap();
    d
}

/// A SQLite database at `path` with table `orders` and `rows` more rows in it.
#[allow(dead_code)]
pub fn sqlite_db(path: &Path, rows: u32) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, total REAL);")
        .unwrap();
    for i in 0..rows {
        c.execute("INSERT INTO orders(total) VALUES (?1)", [f64::from(i)])
            .unwrap();
    }
}

/// What restores and restore tests left in the temporary folder `tmp` (`holdfast-*`).
#[allow(dead_code)]
pub fn scratch_left(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("holdfast-"))
        .collect()
}

/// The command lines (arguments joined by spaces) of running processes that `keep` accepts.
#[allow(dead_code)]
pub fn processes(keep: impl Fn(&str) -> bool) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string();
            keep(&c).then_some(c)
        })
        .collect()
}
