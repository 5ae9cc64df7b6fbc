//! The S3 backend, through OpenDAL (AWS S3, MinIO, Ceph, R2, moto…).
//!
//! OpenDAL is async; this backend owns a small Tokio runtime and blocks on it, so the rest of
//! holdfast stays synchronous. Create-only writes use `If-None-Match: *` (conditional create);
//! a server that refuses the condition makes `create` fail rather than overwrite.

use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{Operator, services};

use crate::url::S3Options;
use crate::{ErrorKind, Handle, Kind, ObjectInfo, Result, Storage, StorageError};

/// A vault under `s3://bucket/prefix`.
pub struct S3Storage {
    op: Operator,
    rt: tokio::runtime::Runtime,
    location: String,
    endpoint: String,
    prefix: String,
    lock: crate::s3_lock::LockClient,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl S3Storage {
    /// Open a bucket/prefix. Credentials come from `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; nothing is contacted yet.
    pub fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<Self> {
        opendal::install_default();
        let location = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let cfg_err =
            |m: String| StorageError::new(ErrorKind::Permanent, "open", "", location.clone(), m);
        let region = opts
            .region
            .clone()
            .or_else(|| env(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
            .unwrap_or_else(|| "us-east-1".into());
        let mut b = services::S3::default()
            .bucket(bucket)
            .root(&format!("/{prefix}"))
            .region(&region)
            // Content-MD5 on every PUT: integrity in transit, and required by buckets with a
            // default Object Lock retention.
            .checksum_algorithm("md5")
            .disable_config_load()
            .disable_ec2_metadata();
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]));
        if let Some(ep) = &endpoint {
            b = b.endpoint(ep);
        }
        let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        if opts.virtual_host_style {
            b = b.enable_virtual_host_style();
        }
        let id = opts
            .access_key_id
            .clone()
            .or_else(|| env(&["AWS_ACCESS_KEY_ID"]));
        let secret = opts
            .secret_access_key
            .clone()
            .or_else(|| env(&["AWS_SECRET_ACCESS_KEY"]));
        let credential = match (&id, &secret) {
            (Some(id), Some(secret)) => Some(reqsign_aws_v4::Credential {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: env(&["AWS_SESSION_TOKEN"]),
                expires_in: None,
            }),
            _ => None,
        };
        match (id, secret) {
            (Some(id), Some(secret)) => {
                b = b.access_key_id(&id).secret_access_key(&secret);
                if let Some(tok) = env(&["AWS_SESSION_TOKEN"]) {
                    b = b.session_token(&tok);
                }
            }
            _ => b = b.skip_signature(),
        }
        let op = Operator::new(b)
            .map_err(|e| cfg_err(e.to_string()))?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(60)),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(4)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter(),
            );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("holdfast-s3")
            .build()
            .map_err(|e| cfg_err(format!("cannot start the I/O runtime: {e}")))?;
        let lock = crate::s3_lock::LockClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| cfg_err(e.to_string()))?,
            signer: reqsign_aws_v4::RequestSigner::new("s3", &region),
            credential,
            endpoint: endpoint.clone(),
            bucket: bucket.to_string(),
            location: location.clone(),
        };
        Ok(S3Storage {
            op,
            rt,
            location,
            endpoint,
            prefix: prefix.trim_matches('/').to_string(),
            lock,
        })
    }

    /// The operator and runtime (for [`crate::s3_objects`]).
    pub(crate) fn parts(&self) -> (&Operator, &tokio::runtime::Runtime) {
        (&self.op, &self.rt)
    }

    pub(crate) fn err(&self, op: &'static str, object: &str, e: opendal::Error) -> StorageError {
        use opendal::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists | K::ConditionNotMatch => ErrorKind::AlreadyExists,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::RateLimited => ErrorKind::Transient,
            _ if e.is_temporary() => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        let full = e.to_string();
        if full.contains("send http request") || full.contains("error sending request") {
            return StorageError::new(
                ErrorKind::Transient,
                op,
                object,
                self.location.clone(),
                format!(
                    "cannot reach the endpoint {} ({})",
                    self.endpoint,
                    concise(&full)
                ),
            );
        }
        let kind = if full.contains("NoSuchBucket") {
            ErrorKind::NotFound
        } else {
            kind
        };
        StorageError::new(kind, op, object, self.location.clone(), concise(&full))
    }

    fn list_dir(&self, dir: &str, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let entries = self
            .rt
            .block_on(async { self.op.list_with(dir).recursive(true).await })
            .map_err(|e| self.err("list", dir, e))?;
        let mut out = Vec::new();
        for ent in entries {
            if ent.metadata().is_dir() {
                continue;
            }
            if let Some(name) = crate::name_from_listed(kind, ent.path()) {
                out.push(ObjectInfo {
                    name,
                    size: ent.metadata().content_length(),
                    modified_ns: ent
                        .metadata()
                        .last_modified()
                        .and_then(|t| i64::try_from(t.into_inner().as_nanosecond()).ok()),
                });
            }
        }
        Ok(out)
    }
}

/// OpenDAL's messages carry a full request dump; keep the S3 error code and message, or the
/// part before the context.
fn concise(full: &str) -> String {
    let pick = |key: &str| {
        full.split(key)
            .nth(1)
            .and_then(|r| r.split('"').nth(1))
            .map(str::to_string)
    };
    if let (Some(code), Some(msg)) = (pick("code: "), pick("message: ")) {
        return format!("{code}: {msg}");
    }
    let head = full.split(", context:").next().unwrap_or(full);
    let mut out = head.to_string();
    if let Some(src) = full.rsplit(" => ").next().filter(|s| *s != full) {
        out.push_str(": ");
        out.push_str(src.lines().next().unwrap_or(""));
    }
    out
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        let path = handle.path();
        let res = self.rt.block_on(async {
            self.op
                .write_with(&path, data.to_vec())
                .if_not_exists(true)
                .await
        });
        match res {
            Ok(_) => Ok(()),
            Err(e) => Err(self.err("create", &path, e)),
        }
    }

    fn replace(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        // A plain PUT: atomic on S3 (readers see the old or the new object). With Object
        // Lock the bucket is versioned and the old, retained version stays.
        let path = handle.path();
        self.rt
            .block_on(self.op.write(&path, data.to_vec()))
            .map(|_| ())
            .map_err(|e| self.err("replace", &path, e))
    }

    fn read(&self, handle: &Handle) -> Result<Vec<u8>> {
        let path = handle.path();
        self.rt
            .block_on(self.op.read(&path))
            .map(|b| b.to_vec())
            .map_err(|e| self.err("read", &path, e))
    }

    fn read_range(&self, handle: &Handle, offset: u64, length: u64) -> Result<Vec<u8>> {
        let path = handle.path();
        if length == 0 {
            return Ok(Vec::new());
        }
        let end = offset.checked_add(length).ok_or_else(|| {
            StorageError::new(
                ErrorKind::Permanent,
                "read",
                &path,
                self.location(),
                "range overflows",
            )
        })?;
        let data = self
            .rt
            .block_on(async { self.op.read_with(&path).range(offset..end).await })
            .map(|b| b.to_vec())
            .map_err(|e| self.err("read", &path, e))?;
        if data.len() as u64 != length {
            return Err(StorageError::new(
                ErrorKind::Permanent,
                "read",
                &path,
                self.location(),
                format!("object is shorter than {end} bytes (truncated)"),
            ));
        }
        Ok(data)
    }

    fn size(&self, handle: &Handle) -> Result<u64> {
        let path = handle.path();
        self.rt
            .block_on(self.op.stat(&path))
            .map(|m| m.content_length())
            .map_err(|e| self.err("stat", &path, e))
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        if kind == Kind::Config {
            return match self.size(&Handle::config()) {
                Ok(size) => Ok(vec![ObjectInfo {
                    name: "config".into(),
                    size,
                    modified_ns: None,
                }]),
                Err(e) if e.is_not_found() => Ok(vec![]),
                Err(e) => Err(e),
            };
        }
        self.list_dir(&format!("{}/", kind.dir()), kind)
    }

    fn delete(&self, handle: &Handle) -> Result<()> {
        let path = handle.path();
        match self.rt.block_on(self.op.delete(&path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", &path, e)),
        }
    }

    fn location_exists(&self) -> Result<bool> {
        // A bucket that answers a listing exists; a missing bucket is NotFound.
        match self
            .rt
            .block_on(async { self.op.list_with("").limit(1).await })
        {
            Ok(_) => Ok(true),
            Err(e) => match self.err("list", "", e) {
                e if e.kind == ErrorKind::NotFound => Ok(false),
                e => Err(e),
            },
        }
    }

    fn retention_supported(&self) -> Result<bool> {
        self.rt.block_on(self.lock.enabled())
    }

    fn retain(&self, handle: &Handle, mode: crate::RetentionMode, until: i64) -> Result<()> {
        let key = if self.prefix.is_empty() {
            handle.path()
        } else {
            format!("{}/{}", self.prefix, handle.path())
        };
        self.rt.block_on(self.lock.retain(&key, mode, until))
    }

    fn set_default_retention(&self, mode: crate::RetentionMode, days: u32) -> Result<()> {
        self.rt.block_on(self.lock.set_default(mode, days))
    }

    fn prepare(&self) -> Result<()> {
        // Buckets are created by their owner, not by holdfast; just check we can reach it.
        if self.location_exists()? {
            Ok(())
        } else {
            Err(StorageError::new(
                ErrorKind::NotFound,
                "open",
                "",
                self.location(),
                "the bucket does not exist; create it first",
            ))
        }
    }
}
