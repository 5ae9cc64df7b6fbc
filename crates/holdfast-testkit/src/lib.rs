//! Test support shared by holdfast's test suites: a real S3-compatible server (moto) started
//! on loopback, a comparison of two folder trees with all metadata, and test data.

pub mod mariadb;
pub mod pg;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the suite runs in CI (where skipping a real-server test is a failure).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Find moto's server: `HOLDFAST_MOTO_SERVER`, `.venv-moto/` in the workspace, or PATH.
pub fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HOLDFAST_MOTO_SERVER") {
        return Some(p.into());
    }
    let local = workspace_root().join(".venv-moto/bin/moto_server");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.exists())
    })
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Credentials the tests use (moto checks no signatures; the key id selects the account).
pub const ACCESS_KEY: &str = "testing";
const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// A moto S3 server on loopback, stopped on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Start moto, or `None` (with a message) if it is not installed and not in CI.
    pub fn start() -> Option<Moto> {
        let Some(bin) = moto_binary() else {
            assert!(
                !in_ci(),
                "moto_server not found: .ci/run installs it into .venv-moto"
            );
            eprintln!("SKIP: moto_server not found (run .ci/run or set HOLDFAST_MOTO_SERVER)");
            return None;
        };
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let m = Moto { child, endpoint };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(m)
    }

    /// Create a bucket (moto does not check signatures, so a plain PUT will do).
    pub fn create_bucket(&self, name: &str) {
        let st = Command::new("curl")
            .args([
                "-sf",
                "-H",
                AUTH,
                "-X",
                "PUT",
                &format!("{}/{name}", self.endpoint),
            ])
            .stdout(Stdio::null())
            .status()
            .expect("curl");
        assert!(st.success(), "create bucket {name}");
    }

    /// Run curl against moto with the test credentials' auth header.
    fn curl(&self, args: &[&str]) -> std::process::Output {
        Command::new("curl")
            .arg("-H")
            .arg(AUTH)
            .args(args)
            .output()
            .expect("curl")
    }

    /// Put an object with extra headers (`Content-Type: …`, `x-amz-meta-…: …`).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8], headers: &[&str]) {
        let tmp = std::env::temp_dir().join(format!("holdfast-put-{}", rand::random::<u64>()));
        std::fs::write(&tmp, body).expect("temp body");
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        let data = format!("@{}", tmp.display());
        let mut args: Vec<&str> = vec!["-sf", "-X", "PUT", "--data-binary", &data];
        // moto treats a body without a content type as a form and drops it.
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
        {
            args.extend(["-H", "Content-Type: application/octet-stream"]);
        }
        for h in headers {
            args.push("-H");
            args.push(h);
        }
        args.push(&url);
        let o = self.curl(&args);
        let _ = std::fs::remove_file(&tmp);
        assert!(o.status.success(), "put {key}");
    }

    /// Create a bucket with S3 Object Lock enabled (and therefore versioning).
    pub fn create_locked_bucket(&self, name: &str) {
        let url = format!("{}/{name}", self.endpoint);
        let o = self.curl(&[
            "-sf",
            "-H",
            "x-amz-bucket-object-lock-enabled: true",
            "-X",
            "PUT",
            &url,
        ]);
        assert!(o.status.success(), "create locked bucket {name}");
    }

    /// The version ids of `key` (newest first), through the S3 API.
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<String> {
        let o = self.curl(&[
            "-sf",
            &format!("{}/{bucket}?versions&prefix={key}", self.endpoint),
        ]);
        let body = String::from_utf8_lossy(&o.stdout);
        body.split("<Version>")
            .skip(1)
            .filter(|v| v.contains(&format!("<Key>{key}</Key>")))
            .filter_map(|v| v.split("<VersionId>").nth(1)?.split("</VersionId>").next())
            .map(str::to_string)
            .collect()
    }

    /// Ask the server to delete one version of an object; returns the HTTP status and body.
    pub fn delete_version(&self, bucket: &str, key: &str, version: &str) -> (u16, String) {
        let url = format!("{}/{bucket}/{key}?versionId={version}", self.endpoint);
        let o = self.curl(&["-s", "-X", "DELETE", "-w", "\\n%{http_code}", &url]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// An object's headers as the server reports them (`x-amz-object-lock-*` among them).
    pub fn head(&self, bucket: &str, key: &str) -> String {
        let o = self.curl(&["-sI", &format!("{}/{bucket}/{key}", self.endpoint)]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// List object keys of a bucket with sizes, through the S3 API (independently of holdfast).
    pub fn list_keys(&self, bucket: &str) -> Vec<String> {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-H",
                AUTH,
                &format!("{}/{bucket}?list-type=2&max-keys=100000", self.endpoint),
            ])
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout);
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// Fetch one object's bytes.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        Command::new("curl")
            .args([
                "-sf",
                "-H",
                AUTH,
                &format!("{}/{bucket}/{key}", self.endpoint),
            ])
            .output()
            .expect("curl")
            .stdout
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything about one path that a restore must reproduce.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// `f`, `d` or `l`.
    pub kind: char,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// mtime seconds and nanoseconds (not compared for symlinks on file systems that lack it).
    pub mtime: (i64, i64),
    /// Content hash for files, target for symlinks.
    pub content: Vec<u8>,
    /// Index of the hard-link group (files sharing an inode), if nlink > 1.
    pub link_group: Option<usize>,
}

/// Describe a tree: relative path → entry.
pub fn describe(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut groups: HashMap<(u64, u64), usize> = HashMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.expect("walk");
        let m = e.path().symlink_metadata().expect("lstat");
        let rel = e.path().strip_prefix(root).expect("prefix").to_path_buf();
        let ft = m.file_type();
        let (kind, content) = if ft.is_symlink() {
            (
                'l',
                std::fs::read_link(e.path())
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if ft.is_dir() {
            ('d', vec![])
        } else {
            ('f', std::fs::read(e.path()).expect("read"))
        };
        let link_group = (kind == 'f' && m.nlink() > 1).then(|| {
            let n = groups.len();
            *groups.entry((m.dev(), m.ino())).or_insert(n)
        });
        out.insert(
            rel,
            Entry {
                kind,
                mode: if kind == 'l' { 0 } else { m.mode() & 0o7777 },
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                content,
                link_group,
            },
        );
    }
    out
}

/// Assert that two trees are identical in content and metadata.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = describe(expected);
    let b = describe(actual);
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    assert_eq!(ka, kb, "the trees list different paths");
    for (p, ea) in &a {
        let eb = &b[p];
        assert_eq!(ea.kind, eb.kind, "{}: kind", p.display());
        assert!(ea.content == eb.content, "{}: content differs", p.display());
        assert_eq!(ea.mode, eb.mode, "{}: mode", p.display());
        assert_eq!(ea.mtime, eb.mtime, "{}: mtime", p.display());
        assert_eq!((ea.uid, ea.gid), (eb.uid, eb.gid), "{}: owner", p.display());
        assert_eq!(
            ea.link_group.is_some(),
            eb.link_group.is_some(),
            "{}: hard link",
            p.display()
        );
    }
    // Hard-link groups must partition the same way.
    fn groups(d: &BTreeMap<PathBuf, Entry>) -> Vec<Vec<PathBuf>> {
        let mut g: BTreeMap<usize, Vec<PathBuf>> = BTreeMap::new();
        for (p, e) in d {
            if let Some(i) = e.link_group {
                g.entry(i).or_default().push(p.clone());
            }
        }
        let mut v: Vec<Vec<PathBuf>> = g.into_values().collect();
        v.sort();
        v
    }
    assert_eq!(groups(&a), groups(&b), "hard-link groups differ");
}

/// Pseudo-random bytes from a seed (deterministic, incompressible).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    r.fill_bytes(&mut v);
    v
}
