//! The file-system restore target: recreate a point's tree under a target folder,
//! byte-identical, with mode, owner (when run as root), mtime (ns), symlinks and hard links.
//!
//! A file whose data is damaged is not left half-written: it is removed and reported, and
//! every other file is still restored.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use filetime::FileTime;
use globset::{Glob, GlobSet, GlobSetBuilder};
use holdfast_engine::tree::{Node, NodeKind};
use holdfast_engine::walk::{self, Visit};
use holdfast_engine::{Error, Id, Result, Vault};
use parking_lot::Mutex;
use rayon::prelude::*;

/// Outcome of a restore.
#[derive(Debug, Default, Clone, serde_like::Serialize)]
pub struct RestoreReport {
    /// Files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks restored.
    pub symlinks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files (or directories) that could not be restored because stored data is damaged.
    pub damaged: Vec<String>,
    /// Local errors (permissions, disk full).
    pub errors: Vec<String>,
}

mod serde_like {
    pub use serde::Serialize;
}

/// Which paths to restore: all, or those matching include globs. A pattern with `/` matches
/// the path from the point's root (`/srv/app/*.conf`), one without matches the file name.
pub struct Includes {
    by_path: GlobSet,
    by_name: GlobSet,
    any: bool,
}

impl Includes {
    /// Build from patterns (empty: everything).
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut p = GlobSetBuilder::new();
        let mut n = GlobSetBuilder::new();
        for pat in patterns {
            let g = Glob::new(pat)
                .map_err(|e| Error::Input(format!("bad include pattern {pat:?}: {e}")))?;
            if pat.contains('/') {
                p.add(g)
            } else {
                n.add(g)
            };
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Input(format!("bad include patterns: {e}")))
        };
        Ok(Includes {
            by_path: build(p)?,
            by_name: build(n)?,
            any: patterns.is_empty(),
        })
    }

    fn matches(&self, rel: &[u8], name: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let mut full = b"/".to_vec();
        full.extend_from_slice(rel);
        self.by_path
            .is_match(Path::new(std::ffi::OsStr::from_bytes(&full)))
            || self
                .by_name
                .is_match(Path::new(std::ffi::OsStr::from_bytes(name)))
    }
}

struct FileJob {
    path: PathBuf,
    rel: String,
    node: Node,
}

fn set_meta(path: &Path, n: &Node, is_root: bool, symlink: bool) -> std::io::Result<()> {
    if is_root {
        nix::unistd::fchownat(
            None,
            path,
            Some(n.uid.into()),
            Some(n.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)?;
    }
    let t = FileTime::from_unix_time(n.mtime_sec, n.mtime_nsec);
    if symlink {
        filetime::set_symlink_file_times(path, t, t)
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(n.mode & 0o7777))?;
        filetime::set_file_times(path, t, t)
    }
}

/// Restore the tree `root` into `target`.
pub fn restore(
    vault: &Vault,
    root: &Id,
    target: &Path,
    includes: &Includes,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RestoreReport> {
    vault.require_full("restore")?;
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let is_root = nix::unistd::geteuid().is_root();
    let mut report = RestoreReport::default();
    let mut files: Vec<FileJob> = Vec::new();
    let mut links: Vec<(PathBuf, Node)> = Vec::new();
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    let mut hard: Vec<(PathBuf, String, (u64, u64))> = Vec::new();
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut damaged: Vec<String> = Vec::new();
    walk::walk(vault, root, &mut |v| {
        match v {
            Visit::Node(rel, n) => {
                let path = target.join(std::ffi::OsStr::from_bytes(rel));
                let rel_s = String::from_utf8_lossy(rel).into_owned();
                match &n.kind {
                    NodeKind::Dir { .. } => {
                        // With include patterns, folders are created only where an included
                        // item needs them; their metadata is applied if they exist at the end.
                        if includes.any
                            && let Err(e) = fs::create_dir_all(&path)
                        {
                            errors.push(format!("{}: {e}", path.display()));
                            return false;
                        }
                        dirs.push((path, n.clone()));
                    }
                    NodeKind::File { .. } if includes.matches(rel, &n.name) => {
                        if let Some(key) = n.hardlink {
                            if first_link.contains_key(&key) {
                                hard.push((path, rel_s, key));
                                return true;
                            }
                            first_link.insert(key, files.len());
                        }
                        files.push(FileJob {
                            path,
                            rel: rel_s,
                            node: n.clone(),
                        });
                    }
                    NodeKind::Symlink { .. } if includes.matches(rel, &n.name) => {
                        links.push((path, n.clone()))
                    }
                    _ => {}
                }
            }
            Visit::Leave(..) => {}
            Visit::Damaged(rel, e) => {
                damaged.push(format!("{}/ ({e})", String::from_utf8_lossy(rel)))
            }
        }
        true
    })?;

    let bytes = AtomicU64::new(0);
    let file_damage = Mutex::new(Vec::new());
    let file_errors = Mutex::new(Vec::new());
    let failed: Vec<bool> = files
        .par_iter()
        .map(
            |job| match restore_file(vault, job, is_root, &bytes, progress) {
                Ok(()) => Ok(false),
                Err(e @ Error::Damaged { .. }) => {
                    let _ = fs::remove_file(&job.path);
                    file_damage.lock().push(format!("{} ({e})", job.rel));
                    Ok(true)
                }
                Err(e @ Error::Storage(_)) if e.retryable() => Err(e),
                Err(e) => {
                    file_errors
                        .lock()
                        .push(format!("{}: {e}", job.path.display()));
                    Ok(true)
                }
            },
        )
        .collect::<Result<_>>()?;
    report.files = failed.iter().filter(|f| !**f).count() as u64;
    damaged.extend(file_damage.into_inner());
    errors.extend(file_errors.into_inner());

    for (path, rel, key) in hard {
        let src = &files[first_link[&key]];
        if failed[first_link[&key]] {
            damaged.push(format!("{rel} (hard link to damaged {})", src.rel));
            continue;
        }
        if let Some(parent) = path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let _ = fs::remove_file(&path);
        match fs::hard_link(&src.path, &path) {
            Ok(()) => report.files += 1,
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    for (path, n) in &links {
        let NodeKind::Symlink { target: t } = &n.kind else {
            continue;
        };
        if let Some(parent) = path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let _ = fs::remove_file(path);
        match std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), path)
            .and_then(|_| set_meta(path, n, is_root, true))
        {
            Ok(()) => report.symlinks += 1,
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    // Directories last, deepest first, so their mtimes are not disturbed by their contents.
    for (path, n) in dirs.iter().rev() {
        if !includes.any && !path.exists() {
            continue;
        }
        if includes.any && !path.is_dir() {
            continue;
        }
        if let Err(e) = set_meta(path, n, is_root, false) {
            errors.push(format!("{}: {e}", path.display()));
        }
    }
    report.dirs = dirs.iter().filter(|(p, _)| p.is_dir()).count() as u64;
    report.bytes = bytes.into_inner();
    damaged.sort();
    report.damaged = damaged;
    report.errors = errors;
    Ok(report)
}

fn restore_file(
    vault: &Vault,
    job: &FileJob,
    is_root: bool,
    bytes: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let NodeKind::File { content, .. } = &job.node.kind else {
        return Ok(());
    };
    if let Some(parent) = job.path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let _ = fs::remove_file(&job.path);
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&job.path)
        .map_err(|e| Error::io(&job.path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
    for id in content {
        let data = vault.read_blob(id)?;
        out.write_all(&data).map_err(|e| Error::io(&job.path, e))?;
        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        progress(data.len() as u64);
    }
    out.flush().map_err(|e| Error::io(&job.path, e))?;
    drop(out);
    set_meta(&job.path, &job.node, is_root, false).map_err(|e| Error::io(&job.path, e))
}

/// Write the content of a file node to `out` (for `dump`).
pub fn dump(vault: &Vault, node: &Node, out: &mut dyn Write) -> Result<u64> {
    let NodeKind::File { content, .. } = &node.kind else {
        return Err(Error::Input(format!(
            "{} is not a file",
            String::from_utf8_lossy(&node.name)
        )));
    };
    let mut n = 0;
    for id in content {
        let data = vault.read_blob(id)?;
        out.write_all(&data).map_err(|e| Error::io("<stdout>", e))?;
        n += data.len() as u64;
    }
    Ok(n)
}
