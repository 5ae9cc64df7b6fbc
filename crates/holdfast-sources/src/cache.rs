//! The local cache of unchanged files.
//!
//! For every file of the last backup of a resource on this host it records size, mtime,
//! ctime, inode and the content chunk ids. A file whose metadata still match — and whose
//! chunks the vault still holds — is not read again. The cache lives on the backing-up host
//! (it works with a write-only key, which cannot read earlier trees) and holds no file
//! content, only names and chunk ids. Losing it costs time, never correctness.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use holdfast_engine::Id;
use holdfast_engine::encoding::{Reader, WireError, Writer};
use parking_lot::Mutex;

/// What identifies an unchanged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// Size.
    pub size: u64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// Change time, ns.
    pub ctime_ns: i64,
    /// Inode.
    pub ino: u64,
}

/// Cached files by absolute path.
type Entries = HashMap<Vec<u8>, (FileStamp, Vec<Id>)>;

/// A cache file: the previous state and the one being built.
pub struct FileCache {
    path: PathBuf,
    old: Entries,
    new: Mutex<Entries>,
}

const MAGIC: &[u8; 5] = b"HFFC\x01";

fn decode(data: &[u8]) -> Result<Entries, WireError> {
    let mut r = Reader::new(data);
    if r.take(5)? != MAGIC {
        return Err(WireError("not a holdfast file cache".into()));
    }
    let n = r.count(4 + 32 + 4)?;
    let mut m = HashMap::with_capacity(n);
    for _ in 0..n {
        let path = r.bytes32()?.to_vec();
        let stamp = FileStamp {
            size: r.u64()?,
            mtime_ns: r.i64()?,
            ctime_ns: r.i64()?,
            ino: r.u64()?,
        };
        let c = r.count(32)?;
        let mut ids = Vec::with_capacity(c);
        for _ in 0..c {
            ids.push(Id(r.array()?));
        }
        m.insert(path, (stamp, ids));
    }
    r.finish()?;
    Ok(m)
}

impl FileCache {
    /// Load the cache at `path` (an unreadable or damaged cache starts empty).
    pub fn load(path: PathBuf) -> Self {
        let old = std::fs::read(&path)
            .ok()
            .and_then(|d| decode(&d).ok())
            .unwrap_or_default();
        FileCache {
            path,
            old,
            new: Mutex::new(HashMap::new()),
        }
    }

    /// Where a resource's cache lives under `dir` for vault `vault_id`.
    pub fn path_for(dir: &Path, vault_id: &str, resource: &str) -> PathBuf {
        let h = blake3::hash(resource.as_bytes()).to_hex();
        dir.join(vault_id).join(format!("files-{}", &h[..16]))
    }

    /// The cached chunks of `path` if its stamp is unchanged.
    pub fn lookup(&self, path: &[u8], stamp: &FileStamp) -> Option<&[Id]> {
        self.old
            .get(path)
            .filter(|(s, _)| s == stamp)
            .map(|(_, ids)| ids.as_slice())
    }

    /// Whether `path` was in the previous backup.
    pub fn knows(&self, path: &[u8]) -> bool {
        self.old.contains_key(path)
    }

    /// Record a file of this backup.
    pub fn record(&self, path: Vec<u8>, stamp: FileStamp, ids: Vec<Id>) {
        self.new.lock().insert(path, (stamp, ids));
    }

    /// Write the new state durably, replacing the old.
    pub fn save(&self) -> std::io::Result<()> {
        let new = self.new.lock();
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.u32(new.len() as u32);
        for (p, (s, ids)) in new.iter() {
            w.bytes32(p);
            w.u64(s.size);
            w.i64(s.mtime_ns);
            w.i64(s.ctime_ns);
            w.u64(s.ino);
            w.u32(ids.len() as u32);
            for id in ids {
                w.raw(&id.0);
            }
        }
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        holdfast_storage::durable::replace(&self.path, &w.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = FileCache::path_for(d.path(), "v", "r");
        let c = FileCache::load(p.clone());
        let st = FileStamp {
            size: 1,
            mtime_ns: 2,
            ctime_ns: 3,
            ino: 4,
        };
        c.record(b"/a".to_vec(), st.clone(), vec![Id([1; 32])]);
        c.save().unwrap();
        let c2 = FileCache::load(p);
        assert_eq!(c2.lookup(b"/a", &st).unwrap(), &[Id([1; 32])]);
        assert!(c2.lookup(b"/a", &FileStamp { size: 2, ..st }).is_none());
        assert!(c2.knows(b"/a"));
    }
}
