//! The file-system restore target: recreate a point's tree under a target folder,
//! byte-identical, with mode, owner (when run as root), mtime (ns), symlinks and hard links.
//!
//! A file whose data is damaged is not left half-written: it is removed and reported, and
//! every other file is still restored.
//!
//! The target may already hold entries, put there by anyone: nothing found in it is followed.
//! Every path is reached from an open directory descriptor of the target, one component at a
//! time (`openat` with `O_NOFOLLOW`), every entry is created relative to its folder's
//! descriptor (`O_EXCL`, `mkdirat`, `symlinkat`, `linkat`), an existing entry in the way is
//! removed with `unlinkat` (which removes a link, never what it points to), and metadata is set
//! on the restored object itself (`fchmod`/`fchown`/`futimens` on files and folders,
//! `AT_SYMLINK_NOFOLLOW` for symlinks).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::pattern::PathMatcher;
use holdfast_engine::tree::{Node, NodeKind};
use holdfast_engine::walk::{self, Visit};
use holdfast_engine::{Error, Id, Result, Vault};
use parking_lot::{Condvar, Mutex};
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;

/// Outcome of a restore.
#[derive(
    Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
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

/// Which paths to restore: all, or those matching include globs. A pattern with `/` matches
/// the path from the point's root (`/srv/app/*.conf`), one without matches the file name.
pub struct Includes(PathMatcher);

impl Includes {
    /// Build from patterns (empty: everything).
    pub fn new(patterns: &[String]) -> Result<Self> {
        PathMatcher::new(patterns, "include").map(Includes)
    }

    /// Whether everything is restored (no patterns).
    fn everything(&self) -> bool {
        self.0.is_empty()
    }

    fn matches(&self, rel: &[u8], name: &[u8]) -> bool {
        if self.everything() {
            return true;
        }
        let mut full = b"/".to_vec();
        full.extend_from_slice(rel);
        self.0
            .matches(Path::new(std::ffi::OsStr::from_bytes(&full)), name)
    }
}

/// Opening a folder of the target: never through a symlink, never a device or FIFO.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Creating a file: only a new one, never through a symlink.
const FILE_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Folders and files are created private; their stored mode is set once they are complete.
const PRIVATE_DIR: Mode = Mode::RWXU;
const PRIVATE_FILE: Mode = Mode::RUSR.union(Mode::WUSR);

/// A name the tree format allows: one path component (tree decoding already refuses others;
/// checked again because `openat` would walk a `/` or `..`, following links on the way).
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

/// Open the real folder `name` in `dir`; a symlink (or anything but a folder) is an error.
fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
}

/// Remove the entry `name` of `dir` that is in the way: a file, a symlink (the link itself)
/// or an empty folder. A non-empty folder is an error.
fn remove_entry(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Err(Errno::ISDIR) => rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR),
        r => r,
    }
}

/// Open the folder `name` in `dir`, creating it if missing. An existing real folder is
/// reused; anything else there (a symlink, a file) is removed and replaced.
fn ensure_dir(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, PRIVATE_DIR) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    match open_dir(dir, name) {
        Err(Errno::LOOP | Errno::NOTDIR) => {
            remove_entry(dir, name)?;
            rustix::fs::mkdirat(dir, name, PRIVATE_DIR)?;
            open_dir(dir, name)
        }
        r => r,
    }
}

/// Create the file `name` in `dir` for writing; whatever was there is removed first.
fn create_file(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, FILE_FLAGS, PRIVATE_FILE) {
        Err(Errno::EXIST) => {
            remove_entry(dir, name)?;
            rustix::fs::openat(dir, name, FILE_FLAGS, PRIVATE_FILE)
        }
        r => r,
    }
}

/// Create the symlink `name` in `dir`; whatever was there is removed first.
fn create_symlink(dir: BorrowedFd<'_>, name: &[u8], target: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::symlinkat(target, dir, name) {
        Err(Errno::EXIST) => {
            remove_entry(dir, name)?;
            rustix::fs::symlinkat(target, dir, name)
        }
        r => r,
    }
}

/// Hard-link `from_name` of `from` as `name` in `dir`; whatever was there is removed first.
fn create_hard_link(
    from: BorrowedFd<'_>,
    from_name: &[u8],
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> rustix::io::Result<()> {
    let link = || rustix::fs::linkat(from, from_name, dir, name, AtFlags::empty());
    match link() {
        Err(Errno::EXIST) => {
            remove_entry(dir, name)?;
            link()
        }
        r => r,
    }
}

fn times(n: &Node) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: n.mtime_sec,
        tv_nsec: n.mtime_nsec.min(999_999_999).into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn owner(n: &Node) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (
        Some(rustix::fs::Uid::from_raw_unchecked(n.uid)),
        Some(rustix::fs::Gid::from_raw_unchecked(n.gid)),
    )
}

/// Owner (as root), mode and mtime of an open file or folder, set on the object itself.
fn set_meta(fd: BorrowedFd<'_>, n: &Node, is_root: bool) -> rustix::io::Result<()> {
    if is_root {
        let (u, g) = owner(n);
        rustix::fs::fchown(fd, u, g)?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(n.mode & 0o7777))?;
    rustix::fs::futimens(fd, &times(n))
}

/// Owner (as root) and mtime of the symlink `name` in `dir`, never of what it points to.
fn set_symlink_meta(
    dir: BorrowedFd<'_>,
    name: &[u8],
    n: &Node,
    is_root: bool,
) -> rustix::io::Result<()> {
    if is_root {
        let (u, g) = owner(n);
        rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    rustix::fs::utimensat(dir, name, &times(n), AtFlags::SYMLINK_NOFOLLOW)
}

/// A folder of the point, in walk (pre-)order.
struct DirRec {
    /// Index of the parent folder; `None` for the target itself.
    parent: Option<usize>,
    /// Number of folders above it (0 under the target).
    depth: usize,
    rel: Vec<u8>,
    node: Node,
    /// Creating or opening it failed during the walk (and was reported).
    failed: bool,
}

/// One folder on the walk's current path: its descriptor once it exists in the target (with
/// include patterns, folders are created only when an included item needs them).
struct Level {
    idx: usize,
    fd: Option<Arc<OwnedFd>>,
    failed: bool,
}

struct FileJob {
    /// The folder the file goes into.
    dir: Arc<OwnedFd>,
    rel: Vec<u8>,
    node: Node,
    /// Set when this file is the first of a hard-link group and was restored.
    restored: Option<Arc<AtomicBool>>,
}

/// The first file of a hard-link group: where it is and whether it was restored.
struct FirstLink {
    dir: Option<usize>,
    name: Vec<u8>,
    rel: String,
    restored: Arc<AtomicBool>,
}

struct HardLink {
    dir: Option<usize>,
    name: Vec<u8>,
    rel: Vec<u8>,
    key: (u64, u64),
}

/// Bounds the file jobs queued or running, and with them the folder descriptors they hold.
/// A walker that finds it full sleeps until half of it has drained, then refills it in one go
/// (waking it per finished job would cost a wake-up per file).
struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
    max: usize,
}

#[derive(Default)]
struct GateState {
    busy: usize,
    waiting: bool,
}

impl Gate {
    fn new(max: usize) -> Self {
        Gate {
            state: Mutex::new(GateState::default()),
            freed: Condvar::new(),
            max,
        }
    }

    fn enter(&self) -> GateGuard<'_> {
        let mut st = self.state.lock();
        if st.busy >= self.max {
            if rayon::current_thread_index().is_some() {
                // Called on a pool thread: run queued jobs here rather than block the pool.
                while st.busy >= self.max {
                    drop(st);
                    if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                        std::thread::yield_now();
                    }
                    st = self.state.lock();
                }
            } else {
                st.waiting = true;
                while st.waiting {
                    self.freed.wait(&mut st);
                }
            }
        }
        st.busy += 1;
        GateGuard(self)
    }
}

/// Leaves the gate when dropped (also if the job panics).
struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.busy -= 1;
        if st.waiting && st.busy <= self.0.max / 2 {
            st.waiting = false;
            self.0.freed.notify_one();
        }
    }
}

/// Opens folders of the point in the target again after the walk, by index, keeping the
/// descriptors of the last folder's path open (callers go roughly in walk order).
struct Cursor<'a> {
    dirs: &'a [DirRec],
    root: &'a OwnedFd,
    path: Vec<(usize, OwnedFd)>,
}

impl<'a> Cursor<'a> {
    fn new(dirs: &'a [DirRec], root: &'a OwnedFd) -> Self {
        Cursor {
            dirs,
            root,
            path: Vec::new(),
        }
    }

    fn open(&mut self, idx: Option<usize>) -> rustix::io::Result<BorrowedFd<'_>> {
        let Some(idx) = idx else {
            return Ok(self.root.as_fd());
        };
        let mut chain = vec![idx];
        while let Some(p) = self.dirs[*chain.last().expect("not empty")].parent {
            chain.push(p);
        }
        chain.reverse();
        let common = self
            .path
            .iter()
            .zip(&chain)
            .take_while(|(a, b)| a.0 == **b)
            .count();
        self.path.truncate(common);
        for &i in &chain[common..] {
            let parent = self.path.last().map_or(self.root.as_fd(), |l| l.1.as_fd());
            let fd = open_dir(parent, &self.dirs[i].node.name)?;
            self.path.push((i, fd));
        }
        Ok(self.path.last().expect("opened").1.as_fd())
    }
}

/// What file jobs report back.
#[derive(Default)]
struct Shared {
    files: AtomicU64,
    bytes: AtomicU64,
    damaged: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
    /// A failure that ends the restore (storage that may come back); later jobs do nothing.
    fatal: Mutex<Option<Error>>,
    abort: AtomicBool,
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
    // The target itself is the caller's choice and may be reached through a link; nothing
    // below it is.
    let root_fd = Arc::new(
        rustix::fs::open(
            target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(target, e.into()))?,
    );
    let at = |rel: &[u8]| target.join(std::ffi::OsStr::from_bytes(rel));
    let is_root = nix::unistd::geteuid().is_root();
    let mut report = RestoreReport::default();
    let mut dirs: Vec<DirRec> = Vec::new();
    let mut stack: Vec<Level> = Vec::new();
    let mut hard: Vec<HardLink> = Vec::new();
    let mut first_link: HashMap<(u64, u64), FirstLink> = HashMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut damaged: Vec<String> = Vec::new();
    let shared = Shared::default();
    let gate = Gate::new((rayon::current_num_threads() * 32).clamp(64, 256));

    // The folder an item at the walk's current position goes into, created (and any folder
    // above it) if it does not exist yet. `None` if that failed (reported once per folder).
    let ensure_parent = |stack: &mut Vec<Level>,
                         dirs: &mut Vec<DirRec>,
                         errors: &mut Vec<String>|
     -> Option<Arc<OwnedFd>> {
        let first_missing = stack.iter().position(|l| l.fd.is_none());
        if let Some(from) = first_missing {
            for i in from..stack.len() {
                if stack[i].failed {
                    return None;
                }
                let parent = if i == 0 {
                    root_fd.clone()
                } else {
                    stack[i - 1].fd.clone().expect("created above")
                };
                let d = &mut dirs[stack[i].idx];
                match ensure_dir(parent.as_fd(), &d.node.name) {
                    Ok(fd) => stack[i].fd = Some(Arc::new(fd)),
                    Err(e) => {
                        errors.push(format!(
                            "{}: {}",
                            at(&d.rel).display(),
                            std::io::Error::from(e)
                        ));
                        d.failed = true;
                        stack[i].failed = true;
                        return None;
                    }
                }
            }
        }
        Some(
            stack
                .last()
                .map_or_else(|| root_fd.clone(), |l| l.fd.clone().expect("created")),
        )
    };

    let walked = rayon::in_place_scope(|scope| {
        walk::walk(vault, root, &mut |v| {
            if shared.abort.load(Ordering::Relaxed) {
                return false;
            }
            match v {
                Visit::Node(rel, n) => {
                    if !valid_name(&n.name) {
                        errors.push(format!(
                            "{}: invalid name, not restored",
                            String::from_utf8_lossy(rel)
                        ));
                        if matches!(n.kind, NodeKind::Dir { .. }) {
                            // Keep the stack in step with the walk's Leave.
                            dirs.push(DirRec {
                                parent: stack.last().map(|l| l.idx),
                                depth: stack.len(),
                                rel: rel.to_vec(),
                                node: n.clone(),
                                failed: true,
                            });
                            stack.push(Level {
                                idx: dirs.len() - 1,
                                fd: None,
                                failed: true,
                            });
                        }
                        return false;
                    }
                    match &n.kind {
                        NodeKind::Dir { .. } => {
                            dirs.push(DirRec {
                                parent: stack.last().map(|l| l.idx),
                                depth: stack.len(),
                                rel: rel.to_vec(),
                                node: n.clone(),
                                failed: false,
                            });
                            stack.push(Level {
                                idx: dirs.len() - 1,
                                fd: None,
                                failed: false,
                            });
                            // With include patterns, folders are created only where an
                            // included item needs them; their metadata is applied if they
                            // exist at the end.
                            if includes.everything()
                                && ensure_parent(&mut stack, &mut dirs, &mut errors).is_none()
                            {
                                return false;
                            }
                        }
                        NodeKind::File { .. } if includes.matches(rel, &n.name) => {
                            let Some(dir) = ensure_parent(&mut stack, &mut dirs, &mut errors)
                            else {
                                return true;
                            };
                            let mut restored = None;
                            if let Some(key) = n.hardlink {
                                if first_link.contains_key(&key) {
                                    hard.push(HardLink {
                                        dir: stack.last().map(|l| l.idx),
                                        name: n.name.clone(),
                                        rel: rel.to_vec(),
                                        key,
                                    });
                                    return true;
                                }
                                let flag = Arc::new(AtomicBool::new(false));
                                first_link.insert(
                                    key,
                                    FirstLink {
                                        dir: stack.last().map(|l| l.idx),
                                        name: n.name.clone(),
                                        rel: String::from_utf8_lossy(rel).into_owned(),
                                        restored: flag.clone(),
                                    },
                                );
                                restored = Some(flag);
                            }
                            let job = FileJob {
                                dir,
                                rel: rel.to_vec(),
                                node: n.clone(),
                                restored,
                            };
                            let guard = gate.enter();
                            let shared = &shared;
                            scope.spawn(move |_| {
                                run_file_job(vault, job, is_root, target, shared, progress);
                                drop(guard);
                            });
                        }
                        NodeKind::Symlink { target: t } if includes.matches(rel, &n.name) => {
                            let Some(dir) = ensure_parent(&mut stack, &mut dirs, &mut errors)
                            else {
                                return true;
                            };
                            match create_symlink(dir.as_fd(), &n.name, t)
                                .and_then(|()| set_symlink_meta(dir.as_fd(), &n.name, n, is_root))
                            {
                                Ok(()) => report.symlinks += 1,
                                Err(e) => errors.push(format!(
                                    "{}: {}",
                                    at(rel).display(),
                                    std::io::Error::from(e)
                                )),
                            }
                        }
                        _ => {}
                    }
                }
                Visit::Leave(..) => {
                    stack.pop();
                }
                Visit::Damaged(rel, e) => {
                    damaged.push(format!("{}/ ({e})", String::from_utf8_lossy(rel)))
                }
            }
            true
        })
    });
    drop(stack);
    if let Some(e) = shared.fatal.into_inner() {
        return Err(e);
    }
    walked?;
    report.files = shared.files.into_inner();
    report.bytes = shared.bytes.into_inner();
    damaged.extend(shared.damaged.into_inner());
    errors.extend(shared.errors.into_inner());

    // Hard links, once every file is complete; their folders were created by the walk.
    let mut to = Cursor::new(&dirs, &root_fd);
    let mut from = Cursor::new(&dirs, &root_fd);
    for h in &hard {
        let src = &first_link[&h.key];
        if !src.restored.load(Ordering::Relaxed) {
            damaged.push(format!(
                "{} (hard link to damaged {})",
                String::from_utf8_lossy(&h.rel),
                src.rel
            ));
            continue;
        }
        let r = match (from.open(src.dir), to.open(h.dir)) {
            (Ok(f), Ok(t)) => create_hard_link(f, &src.name, t, &h.name),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match r {
            Ok(()) => report.files += 1,
            Err(e) => errors.push(format!(
                "{}: {}",
                at(&h.rel).display(),
                std::io::Error::from(e)
            )),
        }
    }
    drop((to, from));

    // Folders last, each after everything in it (post-order), so their mtimes are not
    // disturbed by their contents and a read-only mode does not stop their restore. Only the
    // descriptors along the current path are open.
    let mut path: Vec<(usize, Option<OwnedFd>)> = Vec::new();
    let mut finish = |(i, fd): (usize, Option<OwnedFd>), errors: &mut Vec<String>| {
        if let Some(fd) = fd {
            report.dirs += 1;
            if let Err(e) = set_meta(fd.as_fd(), &dirs[i].node, is_root) {
                errors.push(format!(
                    "{}: {}",
                    at(&dirs[i].rel).display(),
                    std::io::Error::from(e)
                ));
            }
        }
    };
    for (i, d) in dirs.iter().enumerate() {
        while path.len() > d.depth {
            finish(path.pop().expect("deeper"), &mut errors);
        }
        let parent = match path.last() {
            None => Some(root_fd.as_fd()),
            Some((_, fd)) => fd.as_ref().map(|f| f.as_fd()),
        };
        let fd = match parent {
            Some(p) if !d.failed => match open_dir(p, &d.node.name) {
                Ok(fd) => Some(fd),
                // Not restored (include patterns), or not a real folder: left alone.
                Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => None,
                Err(e) => {
                    errors.push(format!(
                        "{}: {}",
                        at(&d.rel).display(),
                        std::io::Error::from(e)
                    ));
                    None
                }
            },
            _ => None,
        };
        path.push((i, fd));
    }
    while let Some(l) = path.pop() {
        finish(l, &mut errors);
    }

    damaged.sort();
    report.damaged = damaged;
    report.errors = errors;
    Ok(report)
}

fn run_file_job(
    vault: &Vault,
    job: FileJob,
    is_root: bool,
    target: &Path,
    shared: &Shared,
    progress: &(dyn Fn(u64) + Sync),
) {
    if shared.abort.load(Ordering::Relaxed) {
        return;
    }
    match restore_file(vault, &job, is_root, target, &shared.bytes, progress) {
        Ok(()) => {
            shared.files.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = &job.restored {
                r.store(true, Ordering::Relaxed);
            }
        }
        Err(e @ Error::Damaged { .. }) => {
            // Not left half-written. The name is removed in the folder it was created in.
            let _ = rustix::fs::unlinkat(job.dir.as_fd(), &job.node.name, AtFlags::empty());
            shared
                .damaged
                .lock()
                .push(format!("{} ({e})", String::from_utf8_lossy(&job.rel)));
        }
        Err(e @ Error::Storage(_)) if e.retryable() => {
            shared.abort.store(true, Ordering::Relaxed);
            shared.fatal.lock().get_or_insert(e);
        }
        Err(e) => shared.errors.lock().push(format!(
            "{}: {e}",
            target.join(std::ffi::OsStr::from_bytes(&job.rel)).display()
        )),
    }
}

fn restore_file(
    vault: &Vault,
    job: &FileJob,
    is_root: bool,
    target: &Path,
    bytes: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let NodeKind::File { content, .. } = &job.node.kind else {
        return Ok(());
    };
    let path = || target.join(std::ffi::OsStr::from_bytes(&job.rel));
    let fd =
        create_file(job.dir.as_fd(), &job.node.name).map_err(|e| Error::io(path(), e.into()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, fs::File::from(fd));
    for id in content {
        let data = vault.read_blob(id)?;
        out.write_all(&data).map_err(|e| Error::io(path(), e))?;
        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        progress(data.len() as u64);
    }
    let f = out
        .into_inner()
        .map_err(|e| Error::io(path(), e.into_error()))?;
    set_meta(f.as_fd(), &job.node, is_root).map_err(|e| Error::io(path(), e.into()))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::path::PathBuf;
    use std::sync::Arc;

    use holdfast_engine::keys::KdfParams;
    use holdfast_engine::writer::with_writer;
    use holdfast_engine::{Origin, Vault};
    use holdfast_storage::memory::MemoryStorage;

    use super::*;
    use crate::Source;
    use crate::files::{Excludes, FilesSource};

    /// Whatever a write, unlink, chmod, chown or utime would change, for every path under
    /// `root` (itself included).
    fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(p) = todo.pop() {
            let m = p.symlink_metadata().unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {:?}", fs::read_link(&p).unwrap())
            } else if m.is_file() {
                format!("{:?}", fs::read(&p).unwrap())
            } else {
                for e in fs::read_dir(&p).unwrap() {
                    todo.push(e.unwrap().path());
                }
                "dir".into()
            };
            let m = (
                m.mode(),
                m.uid(),
                m.ino(),
                m.nlink(),
                m.mtime_nsec(),
                m.ctime_nsec(),
            );
            out.insert(p, format!("{m:?} {what}"));
        }
        out
    }

    fn vault() -> Vault {
        let kdf = KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        };
        let origin = Origin {
            host: "h".into(),
            user: "u".into(),
            now: 0,
        };
        Vault::init(Arc::new(MemoryStorage::new()), b"pw", kdf, &origin).unwrap()
    }

    fn backup(v: &Vault, src: &Path) -> Id {
        let s = FilesSource::new(&[src.to_path_buf()], Excludes::new(&[]).unwrap(), None).unwrap();
        with_writer(v, 2, |w| s.capture(w, &|_| {})).unwrap().0.root
    }

    #[test]
    fn planted_links_in_the_target_are_replaced_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let (src, outside, target) = (
            d.path().join("src"),
            d.path().join("out"),
            d.path().join("t"),
        );
        fs::create_dir_all(src.join("data/sub")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("data/sub/evil.txt"), b"restored").unwrap();
        fs::write(src.join("data/file"), b"file").unwrap();
        symlink("file", src.join("data/link")).unwrap();
        fs::set_permissions(src.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::write(outside.join("evil.txt"), b"outside").unwrap();
        fs::write(outside.join("victim"), b"victim").unwrap();

        let v = vault();
        let root = backup(&v, &src);
        let r = target.join(src.strip_prefix("/").unwrap());
        fs::create_dir_all(r.join("data")).unwrap();
        symlink(&outside, r.join("data/sub")).unwrap();
        symlink(outside.join("victim"), r.join("data/file")).unwrap();
        symlink(outside.join("victim"), r.join("data/link")).unwrap();
        symlink(outside.join("dir"), r.join("empty")).unwrap();
        let before = snapshot(&outside);

        let rep = restore(&v, &root, &target, &Includes::new(&[]).unwrap(), &|_| {}).unwrap();
        assert!(rep.errors.is_empty() && rep.damaged.is_empty(), "{rep:?}");
        assert_eq!(
            snapshot(&outside),
            before,
            "something outside the target changed"
        );
        holdfast_testkit::assert_same_tree(&src, &r);

        // With include patterns, the needed folder replaces the link; others are left alone.
        let t2 = d.path().join("t2");
        let r2 = t2.join(src.strip_prefix("/").unwrap());
        fs::create_dir_all(r2.join("data")).unwrap();
        symlink(&outside, r2.join("data/sub")).unwrap();
        symlink(outside.join("dir"), r2.join("empty")).unwrap();
        let inc = Includes::new(&["evil.txt".to_string()]).unwrap();
        let rep = restore(&v, &root, &t2, &inc, &|_| {}).unwrap();
        assert!(rep.errors.is_empty() && rep.files == 1, "{rep:?}");
        assert_eq!(
            snapshot(&outside),
            before,
            "something outside the target changed"
        );
        assert_eq!(fs::read(r2.join("data/sub/evil.txt")).unwrap(), b"restored");
        assert!(r2.join("data/sub").symlink_metadata().unwrap().is_dir());
        assert!(
            r2.join("empty")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn helpers_replace_what_is_in_the_way_and_keep_real_folders() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("out");
        fs::create_dir_all(outside.join("keep")).unwrap();
        fs::write(outside.join("victim"), b"victim").unwrap();
        let t = d.path().join("t");
        fs::create_dir_all(t.join("real")).unwrap();
        fs::write(t.join("real/old"), b"old").unwrap();
        symlink(&outside, t.join("dirlink")).unwrap();
        symlink(outside.join("victim"), t.join("filelink")).unwrap();
        fs::create_dir(t.join("emptydir")).unwrap();
        let before = snapshot(&outside);
        let root = rustix::fs::open(&t, DIR_FLAGS, Mode::empty()).unwrap();
        let root = root.as_fd();

        assert!(matches!(
            open_dir(root, b"dirlink"),
            Err(Errno::LOOP | Errno::NOTDIR)
        ));
        ensure_dir(root, b"real").unwrap();
        assert_eq!(
            fs::read(t.join("real/old")).unwrap(),
            b"old",
            "a real folder is reused"
        );
        let sub = ensure_dir(root, b"dirlink").unwrap();
        assert!(t.join("dirlink").symlink_metadata().unwrap().is_dir());
        ensure_dir(root, b"filelink").unwrap();
        assert!(t.join("filelink").symlink_metadata().unwrap().is_dir());
        drop(create_file(sub.as_fd(), b"f").unwrap());
        assert!(t.join("dirlink/f").is_file());
        symlink(outside.join("victim"), t.join("real/f")).unwrap();
        let fd = create_file(ensure_dir(root, b"real").unwrap().as_fd(), b"f").unwrap();
        set_meta(
            fd.as_fd(),
            &Node {
                name: b"f".to_vec(),
                kind: NodeKind::File {
                    size: 0,
                    content: vec![],
                },
                mode: 0o100600,
                uid: 0,
                gid: 0,
                user: String::new(),
                group: String::new(),
                mtime_sec: 1,
                mtime_nsec: 2,
                hardlink: None,
            },
            false,
        )
        .unwrap();
        assert_eq!(t.join("real/f").symlink_metadata().unwrap().mtime_nsec(), 2);
        create_file(root, b"emptydir").unwrap();
        assert!(t.join("emptydir").symlink_metadata().unwrap().is_file());
        create_symlink(root, b"emptydir", b"x").unwrap();
        assert_eq!(fs::read_link(t.join("emptydir")).unwrap(), Path::new("x"));
        assert_eq!(snapshot(&outside), before);
        assert!(!valid_name(b"..") && !valid_name(b"a/b") && !valid_name(b"") && valid_name(b"a"));
    }
}
