//! The `files` source: directory trees with metadata, symlinks and hard links.
//!
//! Paths are stored as absolute paths (like restic): backing up `/srv/app/data` yields trees
//! `srv` → `app` → `data`, and a restore to `--target T` recreates `T/srv/app/data`.
//! Directories are archived in parallel (rayon), files whose stamp matches the local cache are
//! not read, and unreadable items are recorded as errors while everything else is saved.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pattern::PathMatcher;
use holdfast_engine::BlobType;
use holdfast_engine::point::Summary;
use holdfast_engine::tree::{Node, NodeKind, Tree};
use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Id, Result};
use parking_lot::Mutex;
use rayon::prelude::*;

use crate::cache::{FileCache, FileStamp};
use crate::meta::{self, Names};
use crate::{Captured, Progress, Source};

/// Exclusion patterns: a pattern with a `/` matches the whole absolute path, one without
/// matches any path component's name.
#[derive(Debug, Clone)]
pub struct Excludes(PathMatcher);

impl Excludes {
    /// Build from glob patterns.
    pub fn new(patterns: &[String]) -> Result<Self> {
        PathMatcher::new(patterns, "exclude").map(Excludes)
    }

    /// Whether `path` (with file name `name`) is excluded.
    pub fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.0.matches(path, name)
    }
}

/// The files source.
pub struct FilesSource {
    paths: Vec<PathBuf>,
    excludes: Excludes,
    cache: Option<FileCache>,
}

struct Run<'a, 'w> {
    w: &'a BlobWriter<'w>,
    excludes: &'a Excludes,
    cache: Option<&'a FileCache>,
    names: Names,
    errors: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    progress: Progress<'a>,
    new: AtomicU64,
    changed: AtomicU64,
    unchanged: AtomicU64,
    dirs: AtomicU64,
    read: AtomicU64,
    total: AtomicU64,
}

/// A directory of the absolute-path skeleton above the given paths.
#[derive(Default)]
struct Skeleton {
    children: BTreeMap<Vec<u8>, (PathBuf, Option<Skeleton>)>, // None: a given path (archived whole)
}

impl FilesSource {
    /// Back up `paths` (made absolute), skipping `excludes`, with an optional cache.
    pub fn new(paths: &[PathBuf], excludes: Excludes, cache: Option<FileCache>) -> Result<Self> {
        let mut abs = Vec::new();
        for p in paths {
            let a = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
            // Normalise `.` and `..` lexically, like `realpath -s`.
            let mut n = PathBuf::from("/");
            for c in a.components() {
                match c {
                    Component::ParentDir => {
                        n.pop();
                    }
                    Component::Normal(s) => n.push(s),
                    _ => {}
                }
            }
            fs::symlink_metadata(&n).map_err(|e| Error::io(&n, e))?;
            abs.push(n);
        }
        if abs.is_empty() {
            return Err(Error::Input(
                "nothing to back up: give at least one path".into(),
            ));
        }
        Ok(FilesSource {
            paths: abs,
            excludes,
            cache,
        })
    }

    fn skeleton(&self) -> Skeleton {
        let mut root = Skeleton::default();
        for p in &self.paths {
            let comps: Vec<&std::ffi::OsStr> = p
                .components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s),
                    _ => None,
                })
                .collect();
            let mut node = &mut root;
            let mut cur = PathBuf::from("/");
            if comps.is_empty() {
                // backing up "/" itself: every child of / is a given path
                if let Ok(rd) = fs::read_dir("/") {
                    for e in rd.flatten() {
                        root.children
                            .insert(e.file_name().as_bytes().to_vec(), (e.path(), None));
                    }
                }
                continue;
            }
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let last = i + 1 == comps.len();
                let entry = node
                    .children
                    .entry(c.as_bytes().to_vec())
                    .or_insert_with(|| (cur.clone(), Some(Skeleton::default())));
                if last {
                    entry.1 = None;
                    break;
                }
                match &mut entry.1 {
                    Some(s) => node = s,
                    None => break, // an ancestor is archived whole already
                }
            }
        }
        root
    }
}

impl Source for FilesSource {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn paths(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.display().to_string()).collect()
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let run = Run {
            w,
            excludes: &self.excludes,
            cache: self.cache.as_ref(),
            names: Names::default(),
            errors: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            progress,
            new: AtomicU64::new(0),
            changed: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            read: AtomicU64::new(0),
            total: AtomicU64::new(0),
        };
        let root = run.skeleton_tree(&self.skeleton())?;
        if let Some(c) = &self.cache
            && let Err(e) = c.save()
        {
            run.warnings
                .lock()
                .push(format!("could not save the file cache: {e}"));
        }
        let mut errors = run.errors.into_inner();
        errors.sort();
        Ok(Captured {
            root,
            summary: Summary {
                files_new: run.new.into_inner(),
                files_changed: run.changed.into_inner(),
                files_unchanged: run.unchanged.into_inner(),
                dirs: run.dirs.into_inner(),
                bytes_read: run.read.into_inner(),
                total_size: run.total.into_inner(),
                ..Summary::default()
            },
            errors,
            warnings: run.warnings.into_inner(),
            facts: BTreeMap::new(),
        })
    }
}

impl Run<'_, '_> {
    fn error(&self, path: &Path, what: impl std::fmt::Display) {
        self.errors
            .lock()
            .push(format!("{}: {what}", path.display()));
    }

    fn store_tree(&self, mut tree: Tree) -> Result<Id> {
        let data = tree.encode();
        Ok(self.w.add(BlobType::Tree, &data)?.0)
    }

    fn skeleton_tree(&self, sk: &Skeleton) -> Result<Id> {
        let nodes: Vec<Option<Node>> = sk
            .children
            .par_iter()
            .map(|(name, (path, sub))| -> Result<Option<Node>> {
                match sub {
                    None => self.archive(path, name.clone()),
                    Some(s) => {
                        let m = match fs::symlink_metadata(path) {
                            Ok(m) => m,
                            Err(e) => {
                                self.error(path, e);
                                return Ok(None);
                            }
                        };
                        let subtree = self.skeleton_tree(s)?;
                        Ok(Some(meta::node(
                            name.clone(),
                            &m,
                            NodeKind::Dir { subtree },
                            &self.names,
                        )))
                    }
                }
            })
            .collect::<Result<_>>()?;
        self.store_tree(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })
    }

    /// Archive one path; `None` if it is skipped (excluded, unreadable, special file).
    fn archive(&self, path: &Path, name: Vec<u8>) -> Result<Option<Node>> {
        if self.excludes.excluded(path, &name) {
            return Ok(None);
        }
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let ft = m.file_type();
        if ft.is_dir() {
            let rd = match fs::read_dir(path) {
                Ok(rd) => rd,
                Err(e) => {
                    self.error(path, e);
                    return Ok(None);
                }
            };
            let mut children: Vec<(Vec<u8>, PathBuf)> = Vec::new();
            for ent in rd {
                match ent {
                    Ok(ent) => children.push((ent.file_name().as_bytes().to_vec(), ent.path())),
                    Err(e) => self.error(path, e),
                }
            }
            children.sort();
            let nodes: Vec<Option<Node>> = children
                .par_iter()
                .map(|(n, p)| self.archive(p, n.clone()))
                .collect::<Result<_>>()?;
            let subtree = self.store_tree(Tree {
                nodes: nodes.into_iter().flatten().collect(),
            })?;
            self.dirs.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(meta::node(
                name,
                &m,
                NodeKind::Dir { subtree },
                &self.names,
            )));
        }
        if ft.is_symlink() {
            return match fs::read_link(path) {
                Ok(t) => Ok(Some(meta::node(
                    name,
                    &m,
                    NodeKind::Symlink {
                        target: t.as_os_str().as_bytes().to_vec(),
                    },
                    &self.names,
                ))),
                Err(e) => {
                    self.error(path, e);
                    Ok(None)
                }
            };
        }
        if !ft.is_file() {
            self.warnings.lock().push(format!(
                "{}: skipped (socket, device or fifo)",
                path.display()
            ));
            return Ok(None);
        }
        let stamp = FileStamp {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
        };
        let key = path.as_os_str().as_bytes();
        self.total.fetch_add(m.len(), Ordering::Relaxed);
        if let Some(cache) = self.cache {
            if let Some(ids) = cache.lookup(key, &stamp)
                && ids.iter().all(|id| self.w.known(id))
            {
                let ids = ids.to_vec();
                cache.record(key.to_vec(), stamp, ids.clone());
                self.unchanged.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(meta::node(
                    name,
                    &m,
                    NodeKind::File {
                        size: m.len(),
                        content: ids,
                    },
                    &self.names,
                )));
            }
            if cache.knows(key) {
                self.changed.fetch_add(1, Ordering::Relaxed);
            } else {
                self.new.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.new.fetch_add(1, Ordering::Relaxed);
        }
        let f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let io_err = |e: std::io::Error| Error::io(path, e);
        match crate::content::store_stream(self.w, f, Some(m.len()), self.progress, &io_err) {
            Ok((ids, n)) => {
                self.read.fetch_add(n, Ordering::Relaxed);
                if let Some(cache) = self.cache {
                    cache.record(key.to_vec(), stamp, ids.clone());
                }
                Ok(Some(meta::node(
                    name,
                    &m,
                    NodeKind::File {
                        size: n,
                        content: ids,
                    },
                    &self.names,
                )))
            }
            Err(Error::Io { source, .. }) => {
                self.error(path, source);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
