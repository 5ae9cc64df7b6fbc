//! An S3 bucket (or a prefix of one) as the source of a recovery point: every object is
//! stored as a file at its key's path, and each object's content type, user metadata, ETag
//! and modification time go into a sidecar file, `.holdfast-s3-objects.json`, at the root
//! of the point. Restore writes the objects to a bucket/prefix with their metadata.

use std::collections::BTreeMap;

use holdfast_engine::BlobType;
use holdfast_engine::point::Summary;
use holdfast_engine::tree::{Node, NodeKind, Tree};
use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Id, Result};
use holdfast_storage::s3_objects::{ObjectMeta, S3Bucket};

use crate::{Captured, Progress, Source};

/// The sidecar's file name.
pub const SIDECAR: &str = ".holdfast-s3-objects.json";

/// The objects under a bucket/prefix.
pub struct S3Source {
    bucket: S3Bucket,
}

impl S3Source {
    /// A source over `bucket`.
    pub fn new(bucket: S3Bucket) -> Self {
        S3Source { bucket }
    }
}

#[derive(Default)]
struct Dir {
    files: Vec<Node>,
    dirs: BTreeMap<String, Dir>,
}

impl Dir {
    fn insert(&mut self, parts: &[&str], node: Node) {
        match parts {
            [] | [_] => self.files.push(node),
            [d, rest @ ..] => self
                .dirs
                .entry((*d).to_string())
                .or_default()
                .insert(rest, node),
        }
    }

    fn store(self, w: &BlobWriter<'_>, dirs: &mut u64) -> Result<Id> {
        let mut nodes = self.files;
        for (name, d) in self.dirs {
            let sub = d.store(w, dirs)?;
            *dirs += 1;
            let mut n = crate::stream::file_node(&name, 0, vec![]);
            n.kind = NodeKind::Dir { subtree: sub };
            n.mode = 0o040700;
            nodes.push(n);
        }
        let mut tree = Tree { nodes };
        Ok(w.add(BlobType::Tree, &tree.encode())?.0)
    }
}

/// Whether a key can be a path in a tree (no empty, `.` or `..` components).
pub fn representable(key: &str) -> bool {
    !key.is_empty()
        && key != SIDECAR
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

impl Source for S3Source {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn paths(&self) -> Vec<String> {
        vec![self.bucket.location()]
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let mut root = Dir::default();
        let mut metas: BTreeMap<String, ObjectMeta> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut total = 0u64;
        let listed = self.bucket.list()?;
        for (key, size) in &listed {
            if !representable(key) {
                errors.push(format!("{key:?}: key cannot be stored as a path; skipped"));
                continue;
            }
            let meta = self.bucket.stat(key)?;
            let r = self.bucket.reader(key, *size);
            let io_err = |e: std::io::Error| Error::Input(format!("s3 object {key}: {e}"));
            let (content, n) = crate::content::store_stream(w, r, Some(*size), progress, &io_err)?;
            total += n;
            let parts: Vec<&str> = key.split('/').collect();
            let name = parts.last().copied().unwrap_or(key);
            let mut node = crate::stream::file_node(name, n, content);
            node.mtime_sec = meta.last_modified;
            node.mtime_nsec = 0;
            root.insert(&parts, node);
            metas.insert(key.clone(), meta);
        }
        let json = serde_json::to_vec_pretty(&serde_json::json!({"version": 1, "objects": metas}))
            .map_err(|e| Error::Input(e.to_string()))?;
        let (content, n) = crate::content::store_stream(
            w,
            json.as_slice(),
            Some(json.len() as u64),
            progress,
            &|e| Error::Input(e.to_string()),
        )?;
        root.files
            .push(crate::stream::file_node(SIDECAR, n, content));
        let mut dirs = 0;
        let root_id = root.store(w, &mut dirs)?;
        let mut facts = BTreeMap::new();
        facts.insert("objects".into(), metas.len().to_string());
        Ok(Captured {
            root: root_id,
            summary: Summary {
                files_new: metas.len() as u64,
                dirs,
                bytes_read: total,
                total_size: total,
                ..Summary::default()
            },
            errors,
            facts,
            ..Captured::default()
        })
    }
}

/// The object metadata recorded in a point's sidecar.
pub fn parse_sidecar(data: &[u8]) -> Result<BTreeMap<String, ObjectMeta>> {
    #[derive(serde::Deserialize)]
    struct Side {
        objects: BTreeMap<String, ObjectMeta>,
    }
    serde_json::from_slice::<Side>(data)
        .map(|s| s.objects)
        .map_err(|e| Error::damaged(SIDECAR, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_paths() {
        assert!(representable("a/b/c.txt"));
        assert!(!representable("a//b"));
        assert!(!representable("../x"));
        assert!(!representable("dir/"));
        assert!(!representable(SIDECAR));
    }
}
