//! The local-folder backend (the embedded default).
//!
//! Objects are plain files under the vault folder. Writes go through [`crate::durable`]:
//! temporary file, fsync, hard link (create-only, fails if the name exists), fsync of the
//! folder. A crash leaves at most a `.tmp-*` file, which listings ignore.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::{ErrorKind, Handle, Kind, ObjectInfo, Result, Storage, StorageError, durable};

/// A vault in a local folder.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: PathBuf) -> Self {
        LocalStorage { root }
    }

    fn err(&self, op: &'static str, object: &str, e: &io::Error) -> StorageError {
        let kind = match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                ErrorKind::Transient
            }
            _ => ErrorKind::Permanent,
        };
        StorageError::new(kind, op, object, self.location(), e.to_string())
    }
}

/// A file's modification time, Unix nanoseconds.
fn mtime_ns(m: &fs::Metadata) -> Option<i64> {
    let t = m.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        let path = handle.path();
        let dest = self.root.join(&path);
        if let Some(parent) = dest.parent()
            && !parent.exists()
        {
            fs::create_dir_all(parent).map_err(|e| self.err("create", &path, &e))?;
            if let Some(grand) = parent.parent() {
                durable::sync_dir(grand).map_err(|e| self.err("create", &path, &e))?;
            }
        }
        durable::create_new(&dest, data).map_err(|e| self.err("create", &path, &e))
    }

    fn replace(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        let path = handle.path();
        let dest = self.root.join(&path);
        durable::replace(&dest, data).map_err(|e| self.err("replace", &path, &e))
    }

    fn read(&self, handle: &Handle) -> Result<Vec<u8>> {
        let path = handle.path();
        fs::read(self.root.join(&path)).map_err(|e| self.err("read", &path, &e))
    }

    fn read_range(&self, handle: &Handle, offset: u64, length: u64) -> Result<Vec<u8>> {
        let path = handle.path();
        let mut f =
            fs::File::open(self.root.join(&path)).map_err(|e| self.err("read", &path, &e))?;
        let len = usize::try_from(length).map_err(|_| {
            StorageError::new(
                ErrorKind::Permanent,
                "read",
                &path,
                self.location(),
                "range too large",
            )
        })?;
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| self.err("read", &path, &e))?;
        f.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                StorageError::new(
                    ErrorKind::Permanent,
                    "read",
                    &path,
                    self.location(),
                    format!(
                        "object is shorter than {} bytes (truncated)",
                        offset + length
                    ),
                )
            } else {
                self.err("read", &path, &e)
            }
        })?;
        Ok(buf)
    }

    fn size(&self, handle: &Handle) -> Result<u64> {
        let path = handle.path();
        fs::metadata(self.root.join(&path))
            .map(|m| m.len())
            .map_err(|e| self.err("stat", &path, &e))
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        if kind == Kind::Config {
            match fs::metadata(self.root.join("config")) {
                Ok(m) => out.push(ObjectInfo {
                    name: "config".into(),
                    size: m.len(),
                    modified_ns: mtime_ns(&m),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err("list", "config", &e)),
            }
            return Ok(out);
        }
        let dir = self.root.join(kind.dir());
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("list", kind.dir(), &e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| self.err("list", kind.dir(), &e))?;
                let ft = match ent.file_type() {
                    Ok(ft) => ft,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(self.err("list", kind.dir(), &e)),
                };
                if ft.is_dir() {
                    if kind == Kind::Pack {
                        dirs.push(ent.path());
                    }
                    continue;
                }
                let name = ent.file_name().to_string_lossy().into_owned();
                if let Some(name) = crate::name_from_listed(kind, &name) {
                    let m = match ent.metadata() {
                        Ok(m) => m,
                        // Deleted since the directory was read: not in the listing.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(self.err("list", kind.dir(), &e)),
                    };
                    out.push(ObjectInfo {
                        name,
                        size: m.len(),
                        modified_ns: mtime_ns(&m),
                    });
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, handle: &Handle) -> Result<()> {
        let path = handle.path();
        match fs::remove_file(self.root.join(&path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", &path, &e)),
        }
    }

    fn location_exists(&self) -> Result<bool> {
        match fs::metadata(&self.root) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err("stat", "", &e)),
        }
    }

    fn prepare(&self) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| self.err("create", "", &e))?;
        for k in [Kind::Key, Kind::Pack, Kind::Index, Kind::Point] {
            fs::create_dir_all(self.root.join(k.dir()))
                .map_err(|e| self.err("create", k.dir(), &e))?;
        }
        durable::sync_dir(&self.root).map_err(|e| self.err("create", "", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_shared_suite() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("vault"));
        crate::testsuite::run(&s);
    }

    /// An object deleted between the directory read and its `stat` is not in the listing,
    /// and not an error (a `forget` next to a `copy` failed the copy with ENOENT).
    #[test]
    fn listing_next_to_deletions_never_fails() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(LocalStorage::new(d.path().join("vault")));
        s.prepare().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let h = Handle::new(Kind::Point, format!("{:064x}", n % 64));
                    let _ = s.create(&h, b"x");
                    let _ = s.delete(&h);
                    n += 1;
                }
            })
        };
        for n in 0..200u64 {
            s.create(
                &Handle::new(Kind::Point, format!("{:064x}", 1000 + n)),
                b"y",
            )
            .unwrap();
        }
        let mut failures = 0;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(1500) {
            if s.list(Kind::Point).is_err() {
                failures += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        assert_eq!(failures, 0, "listings failed next to deletions");
    }
}
