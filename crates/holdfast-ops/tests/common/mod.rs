//! What the operation tests share: a vault on a new memory store with fast key derivation, an
//! operation context that drops progress, and a backup of any source.
#![allow(dead_code)]

use std::sync::Arc;

use holdfast_engine::keys::KdfParams;
use holdfast_engine::{Origin, Vault};
use holdfast_ops::backup::{BackupRequest, SourceSpec};
use holdfast_ops::{Cancel, Context, Silent};
use holdfast_storage::memory::MemoryStorage;
use holdfast_storage::url::S3Options;

/// The passphrase of every test vault.
pub const PASS: &[u8] = b"fault tests";

/// Weak key derivation (tests only).
pub fn kdf() -> KdfParams {
    KdfParams {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    }
}

/// A fixed writer.
pub fn origin() -> Origin {
    Origin {
        host: "test".into(),
        user: "test".into(),
        now: 1_767_571_200,
    }
}

/// Run `f` with a context whose sink drops everything.
pub fn with_ctx<T>(f: impl FnOnce(&Context<'_>) -> T) -> T {
    let cancel = Cancel::default();
    let s3 = S3Options::default();
    let ctx = Context {
        sink: &Silent,
        cancel: &cancel,
        s3: &s3,
    };
    f(&ctx)
}

/// A new vault on a new memory store, its index loaded.
pub fn new_vault() -> (Arc<MemoryStorage>, Vault) {
    let mem: Arc<MemoryStorage> = Arc::new(MemoryStorage::new());
    let vault = Vault::init(mem.clone(), PASS, kdf(), &origin()).unwrap();
    vault.load_index().unwrap();
    (mem, vault)
}

/// Back up `source` as resource `resource` inside a session; the point's id.
pub fn backup_source(vault: &Vault, source: SourceSpec, resource: &str) -> String {
    let session = holdfast_ops::session::start(vault, "backup", true).unwrap();
    let req = BackupRequest {
        source,
        resource: Some(resource.into()),
        tags: vec![],
        time_ns: None,
        host: None,
    };
    let r = with_ctx(|c| holdfast_ops::backup::backup(c, vault, session.as_ref(), &req)).unwrap();
    if let Some(s) = session {
        s.end();
    }
    r.point
}
