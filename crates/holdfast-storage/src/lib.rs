//! The storage abstraction of holdfast.
//!
//! A vault is stored as a flat set of objects addressed by `(kind, name)`. This crate knows
//! nothing of the vault format: it moves opaque bytes. Encryption, compression, caching and
//! retries are layered above or around it.
//!
//! # Contract of [`Storage`]
//!
//! Every implementation must pass [`testsuite::run`]. It guarantees:
//!
//! * **Create-only.** [`Storage::create`] never overwrites: if an object with that handle
//!   already exists it returns an error of kind [`ErrorKind::AlreadyExists`] and leaves the
//!   stored object untouched. There is no rename and no update.
//! * **Atomic.** A reader sees either no object or the whole object as it was created — never a
//!   prefix. A crash during `create` leaves either nothing or the whole object.
//! * **Durable.** When `create` returns `Ok`, the object survives a crash of the process and of
//!   the machine (local: data and directory entry are fsynced).
//! * **Idempotent deletes.** [`Storage::delete`] of a missing object succeeds.
//! * **Linearizable create and list.** An object whose `create` returned before a `list` of
//!   its kind began appears in that listing. (Garbage collection relies on this: a writer's
//!   session marker and a pruner's deletion notice cannot both miss each other.)
//! * **Errors say what they mean.** A missing object is [`ErrorKind::NotFound`]; a condition
//!   that a retry may cure (timeouts, throttling, 5xx) is [`ErrorKind::Transient`]; anything
//!   else is [`ErrorKind::Permanent`] or [`ErrorKind::PermissionDenied`].
//! * **Thread-safe.** All methods take `&self` and may be called from many threads at once.

pub mod durable;
pub mod fault;
pub mod local;
pub mod memory;
pub mod s3;
mod s3_lock;
pub mod s3_objects;
pub mod testsuite;
pub mod url;

use std::fmt;

/// The namespaces of a vault. The storage layer maps each to a folder (or key prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The single `config` object.
    Config,
    /// Key objects (`keys/<name>`).
    Key,
    /// Pack objects (`packs/<first two chars>/<name>`).
    Pack,
    /// Index objects (`index/<name>`).
    Index,
    /// Recovery-point manifests (`points/<name>`).
    Point,
    /// Session markers of running commands (`sessions/<name>`), for safe garbage collection.
    Session,
    /// Deletion notices of garbage collection (`gc/<name>`).
    Notice,
    /// The vault's protection records: vault lock and legal holds (`policy/<name>`; the
    /// folder keeps the name it had before the kind was renamed).
    Protection,
    /// Evidence of proven recoveries: restore-test and drill reports (`evidence/<name>`).
    Evidence,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 9] = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Point,
        Kind::Session,
        Kind::Notice,
        Kind::Protection,
        Kind::Evidence,
    ];

    /// The folder of this kind inside the vault.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Pack => "packs",
            Kind::Index => "index",
            Kind::Point => "points",
            Kind::Session => "sessions",
            Kind::Notice => "gc",
            Kind::Protection => "policy",
            Kind::Evidence => "evidence",
        }
    }
}

/// The address of one stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    /// Which namespace.
    pub kind: Kind,
    /// The object's name in that namespace: lower-case hex, or `config`.
    pub name: String,
}

impl Handle {
    /// A handle for `name` in `kind`.
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Handle {
            kind,
            name: name.into(),
        }
    }

    /// The `config` object.
    pub fn config() -> Self {
        Handle::new(Kind::Config, "config")
    }

    /// The relative path of this object inside the vault root, with `/` separators.
    ///
    /// Packs are fanned out into 256 folders by the first two characters of their name.
    pub fn path(&self) -> String {
        match self.kind {
            Kind::Config => "config".to_string(),
            Kind::Pack => {
                let fan = self.name.get(..2).unwrap_or("00");
                format!("packs/{fan}/{}", self.name)
            }
            k => format!("{}/{}", k.dir(), self.name),
        }
    }

    /// Whether `name` is a valid object name (what backends accept from listings).
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (or the vault location) does not exist.
    NotFound,
    /// `create` found an object with that handle already.
    AlreadyExists,
    /// The credentials do not allow this operation.
    PermissionDenied,
    /// A retry may succeed (timeout, connection refused, throttling, server error).
    Transient,
    /// Anything else; retrying will not help.
    Permanent,
}

/// An error from a storage backend: which operation on which object, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {object} on {location}: {message}")]
pub struct StorageError {
    /// Classification of the failure.
    pub kind: ErrorKind,
    /// The operation (`create`, `read`, `list`, …).
    pub op: &'static str,
    /// The object path, or the folder for listings.
    pub object: String,
    /// The backend location (`/srv/vault`, `s3://bucket/prefix`).
    pub location: String,
    /// The cause, in words.
    pub message: String,
}

impl StorageError {
    /// Build an error.
    pub fn new(
        kind: ErrorKind,
        op: &'static str,
        object: impl Into<String>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        StorageError {
            kind,
            op,
            object: object.into(),
            location: location.into(),
            message: message.into(),
        }
    }

    /// Whether the object was missing.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether a retry may help.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, StorageError>;

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name within its kind.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When the storage wrote it, Unix nanoseconds, if the backend reports it (local: the
    /// file's mtime; S3: `Last-Modified`). A writer with create-only credentials cannot
    /// choose it.
    pub modified_ns: Option<i64>,
}

/// The storage of one vault: opaque, create-only objects addressed by [`Handle`].
///
/// See the crate documentation for the full contract.
pub trait Storage: Send + Sync {
    /// A human-readable location, used in error messages (`/srv/vault`, `s3://b/p`).
    fn location(&self) -> String;

    /// Store a new object atomically and durably. Fails with
    /// [`ErrorKind::AlreadyExists`] if the handle exists; never overwrites.
    fn create(&self, handle: &Handle, data: &[u8]) -> Result<()>;

    /// Read a whole object.
    fn read(&self, handle: &Handle) -> Result<Vec<u8>>;

    /// Read `length` bytes at `offset`. Reading past the end is an error of kind
    /// [`ErrorKind::Permanent`] naming the object (a truncated object).
    fn read_range(&self, handle: &Handle, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// The size of an object.
    fn size(&self, handle: &Handle) -> Result<u64>;

    /// All objects of a kind with their sizes, in no particular order.
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>>;

    /// Remove an object. Removing a missing object succeeds.
    fn delete(&self, handle: &Handle) -> Result<()>;

    /// Atomically replace an object's bytes (or create it): a reader sees the old or the new
    /// bytes, never a mix, and the new bytes are durable when this returns. The format uses
    /// this for exactly one object — `config`, when `holdfast migrate` moves a vault to a new
    /// format version; every other object is create-only.
    fn replace(&self, handle: &Handle, data: &[u8]) -> Result<()>;

    /// Whether the vault location exists at all (a folder, a bucket). Used to tell
    /// "no vault here" from "empty vault".
    fn location_exists(&self) -> Result<bool>;

    /// Make the location ready for a new vault (create the folder). Idempotent.
    fn prepare(&self) -> Result<()>;

    /// Whether the storage itself can refuse deletion until a date (S3 Object Lock on the
    /// bucket). Backends without such a feature answer `false`.
    fn retention_supported(&self) -> Result<bool> {
        Ok(false)
    }

    /// Protect an existing object from deletion and overwrite, by the storage itself, until
    /// `until` (Unix seconds). Never shortens an existing retention: a later date than the
    /// requested one is left as is. Idempotent.
    fn retain(&self, handle: &Handle, mode: RetentionMode, until: i64) -> Result<()> {
        let _ = (mode, until);
        Err(StorageError::new(
            ErrorKind::Permanent,
            "retain",
            handle.path(),
            self.location(),
            "this storage has no object retention",
        ))
    }

    /// Make the storage apply `mode` retention for `days` to every object created from now on
    /// (S3: the bucket's default Object Lock retention; it covers the whole bucket).
    fn set_default_retention(&self, mode: RetentionMode, days: u32) -> Result<()> {
        let _ = (mode, days);
        Err(StorageError::new(
            ErrorKind::Permanent,
            "retain",
            "",
            self.location(),
            "this storage has no object retention",
        ))
    }
}

/// Storage-enforced retention modes (as in S3 Object Lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    /// Users with a special permission may shorten or remove the retention.
    Governance,
    /// Nobody, not even the account root, can shorten or remove it.
    Compliance,
}

impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn create(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        (**self).create(handle, data)
    }
    fn read(&self, handle: &Handle) -> Result<Vec<u8>> {
        (**self).read(handle)
    }
    fn read_range(&self, handle: &Handle, offset: u64, length: u64) -> Result<Vec<u8>> {
        (**self).read_range(handle, offset, length)
    }
    fn size(&self, handle: &Handle) -> Result<u64> {
        (**self).size(handle)
    }
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        (**self).list(kind)
    }
    fn delete(&self, handle: &Handle) -> Result<()> {
        (**self).delete(handle)
    }
    fn replace(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        (**self).replace(handle, data)
    }
    fn location_exists(&self) -> Result<bool> {
        (**self).location_exists()
    }
    fn prepare(&self) -> Result<()> {
        (**self).prepare()
    }
    fn retention_supported(&self) -> Result<bool> {
        (**self).retention_supported()
    }
    fn retain(&self, handle: &Handle, mode: RetentionMode, until: i64) -> Result<()> {
        (**self).retain(handle, mode, until)
    }
    fn set_default_retention(&self, mode: RetentionMode, days: u32) -> Result<()> {
        (**self).set_default_retention(mode, days)
    }
}

/// Parse a listed path relative to a kind's folder into an object name, ignoring anything that
/// is not a valid object (temporary files, folders, foreign files).
pub(crate) fn name_from_listed(kind: Kind, rel: &str) -> Option<String> {
    let name = rel.rsplit('/').next()?;
    if kind == Kind::Config {
        return (name == "config").then(|| name.to_string());
    }
    Handle::valid_name(name).then(|| name.to_string())
}
