//! Sources of recovery points and restore targets.
//!
//! Every source turns something to protect into a tree of nodes and content blobs through the
//! engine's [`holdfast_engine::writer::BlobWriter`]; [`Source`] is the one trait they share.
//! This crate holds the `files` source (directory trees, with a local cache of unchanged
//! files) and the `stdin` stream source, and the file-system restore target.

pub mod cache;
pub mod child_env;
pub mod content;
pub mod export;
pub mod files;
pub mod meta;
pub mod my_scratch;
pub mod mysql;
pub mod pattern;
pub mod pg_facts;
pub mod pg_scratch;
pub mod pitr;
pub mod postgres;
pub mod restore;
pub mod s3src;
pub mod sqlite;
pub mod stream;

use holdfast_engine::point::Summary;
use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Id, Result};

/// What a source produced.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Root tree of the point.
    pub root: Id,
    /// Counters (the blob counters are filled in by the caller from the writer).
    pub summary: Summary,
    /// Items that could not be read (the point is then partial).
    pub errors: Vec<String>,
    /// Items skipped on purpose (sockets, devices), for warnings.
    pub warnings: Vec<String>,
    /// Source facts recorded in the manifest.
    pub facts: std::collections::BTreeMap<String, String>,
}

/// Progress reports from a running source: bytes read so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// A thing holdfast can back up.
pub trait Source {
    /// The source kind recorded in the manifest (`files`, `stdin`, …).
    fn kind(&self) -> &'static str;
    /// The paths or names recorded in the manifest.
    fn paths(&self) -> Vec<String>;
    /// Capture the source through `w`.
    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured>;
}
