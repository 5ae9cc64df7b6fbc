//! Plain S3 objects under a bucket/prefix, for S3 buckets as a *source* of recovery points
//! and a restore target (not a vault): list, stat with content type and user metadata,
//! ranged reads, and writes with that metadata.

use std::collections::BTreeMap;
use std::io::Read;

use crate::s3::S3Storage;
use crate::url::S3Options;
use crate::{ErrorKind, Result, StorageError};

/// An object's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `x-amz-meta-*` (names without the prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    /// ETag as the server reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Last modification, Unix seconds.
    #[serde(default)]
    pub last_modified: i64,
}

/// The objects under `s3://bucket/prefix`.
pub struct S3Bucket {
    inner: S3Storage,
}

impl S3Bucket {
    /// Open (nothing is contacted yet).
    pub fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<Self> {
        Ok(S3Bucket {
            inner: S3Storage::open(bucket, prefix, opts)?,
        })
    }

    /// `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        crate::Storage::location(&self.inner)
    }

    /// Every object key (relative to the prefix) with its size, sorted.
    pub fn list(&self) -> Result<Vec<(String, u64)>> {
        let (op, rt) = self.inner.parts();
        let entries = rt
            .block_on(async { op.list_with("").recursive(true).await })
            .map_err(|e| self.inner.err("list", "", e))?;
        let mut out: Vec<(String, u64)> = entries
            .into_iter()
            .filter(|e| !e.metadata().is_dir())
            .map(|e| (e.path().to_string(), e.metadata().content_length()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// An object's metadata.
    pub fn stat(&self, key: &str) -> Result<ObjectMeta> {
        let (op, rt) = self.inner.parts();
        let m = rt
            .block_on(op.stat(key))
            .map_err(|e| self.inner.err("stat", key, e))?;
        Ok(ObjectMeta {
            size: m.content_length(),
            content_type: m.content_type().map(str::to_string),
            user_metadata: m
                .user_metadata()
                .map(|u| {
                    u.into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            etag: m.etag().map(str::to_string),
            last_modified: m
                .last_modified()
                .map(|t| t.into_inner().as_second())
                .unwrap_or(0),
        })
    }

    /// A reader of an object's bytes (8 MiB ranged requests).
    pub fn reader(&self, key: &str, size: u64) -> ObjectReader<'_> {
        ObjectReader {
            bucket: self,
            key: key.to_string(),
            size,
            pos: 0,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// Write an object with its content type and user metadata (overwrites: this is a
    /// restore target, not a vault).
    pub fn write(&self, key: &str, data: Vec<u8>, meta: &ObjectMeta) -> Result<()> {
        let (op, rt) = self.inner.parts();
        rt.block_on(async {
            let mut w = op.write_with(key, data);
            if let Some(ct) = &meta.content_type {
                w = w.content_type(ct);
            }
            if !meta.user_metadata.is_empty() {
                w = w.user_metadata(meta.user_metadata.clone());
            }
            w.await
        })
        .map(|_| ())
        .map_err(|e| self.inner.err("write", key, e))
    }
}

/// Reads an object in ranges.
pub struct ObjectReader<'a> {
    bucket: &'a S3Bucket,
    key: String,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    at: usize,
}

const RANGE: u64 = 8 << 20;

impl Read for ObjectReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let len = RANGE.min(self.size - self.pos);
            let (op, rt) = self.bucket.inner.parts();
            let key = self.key.clone();
            let (start, end) = (self.pos, self.pos + len);
            let bytes = rt
                .block_on(async move { op.read_with(&key).range(start..end).await })
                .map_err(|e| std::io::Error::other(self.bucket.inner.err("read", &self.key, e)))?;
            self.buf = bytes.to_vec();
            self.at = 0;
            if self.buf.is_empty() {
                return Err(std::io::Error::other(StorageError::new(
                    ErrorKind::Permanent,
                    "read",
                    self.key.clone(),
                    self.bucket.location(),
                    "object shorter than listed",
                )));
            }
            self.pos += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
