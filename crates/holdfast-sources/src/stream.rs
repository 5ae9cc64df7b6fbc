//! The stream source: standard input (or any reader) stored as one named file. The basis of
//! database dumps and command exports.

use std::io::Read;

use holdfast_engine::BlobType;
use holdfast_engine::point::Summary;
use holdfast_engine::tree::{Node, NodeKind, Tree};
use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Result};
use parking_lot::Mutex;

use crate::{Captured, Progress, Source};

/// A stream stored as the file `name` at the root of the point.
pub struct StreamSource<R> {
    name: String,
    reader: Mutex<Option<R>>,
}

impl<R: Read + Send> StreamSource<R> {
    /// A stream source; `name` must be a plain file name.
    pub fn new(name: &str, reader: R) -> Result<Self> {
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            return Err(Error::Input(format!(
                "the stream name {name:?} must be a plain file name"
            )));
        }
        Ok(StreamSource {
            name: name.to_string(),
            reader: Mutex::new(Some(reader)),
        })
    }
}

/// A regular-file node for a stream stored as `name`, owned by the current user, mode 0600,
/// mtime now.
pub fn file_node(name: &str, size: u64, content: Vec<holdfast_engine::Id>) -> Node {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Node {
        name: name.as_bytes().to_vec(),
        kind: NodeKind::File { size, content },
        mode: 0o100600,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        user: crate::meta::username(),
        group: String::new(),
        mtime_sec: now.as_secs() as i64,
        mtime_nsec: now.subsec_nanos(),
        hardlink: None,
    }
}

impl<R: Read + Send> Source for StreamSource<R> {
    fn kind(&self) -> &'static str {
        "stdin"
    }

    fn paths(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let r = self
            .reader
            .lock()
            .take()
            .ok_or_else(|| Error::Internal("the stream was already read".into()))?;
        let io_err = |e: std::io::Error| Error::io("<stdin>", e);
        let (content, size) = crate::content::store_stream(w, r, None, progress, &io_err)?;
        single_file(w, &self.name, size, content, Default::default())
    }
}

/// A point holding one stored file at its root.
pub fn single_file(
    w: &BlobWriter<'_>,
    name: &str,
    size: u64,
    content: Vec<holdfast_engine::Id>,
    facts: std::collections::BTreeMap<String, String>,
) -> Result<Captured> {
    let mut tree = Tree {
        nodes: vec![file_node(name, size, content)],
    };
    let root = w.add(BlobType::Tree, &tree.encode())?.0;
    Ok(Captured {
        root,
        summary: Summary {
            files_new: 1,
            bytes_read: size,
            total_size: size,
            ..Summary::default()
        },
        facts,
        ..Captured::default()
    })
}
