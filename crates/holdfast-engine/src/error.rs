//! The engine's public error: what failed, on which object, what to do about it, and whether
//! a retry may help. Lower layers have their own small errors ([`crate::wire::WireError`],
//! [`crate::crypto::CryptoError`], [`holdfast_storage::StorageError`]) that are mapped here.

use holdfast_storage::{ErrorKind as StorageKind, StorageError};

/// The class of an [`Error`], stable for scripts (the CLI maps it to exit codes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No vault at the location.
    NoVault,
    /// A vault already exists at the location (init).
    VaultExists,
    /// The passphrase or key file does not open any key of this vault.
    WrongKey,
    /// The key is valid but does not allow this operation (write-only key).
    KeyDenied,
    /// A stored object failed authentication, is truncated, malformed or missing.
    Damaged,
    /// The storage could not be reached or answered with a transient error.
    Unreachable,
    /// The storage refused the operation (permissions, configuration).
    Storage,
    /// Bad input from the user (a malformed argument, a bad pattern, a conflicting request).
    Input,
    /// What the request names does not exist (no point, key or database matches it).
    NotFound,
    /// A local file could not be read or written.
    Io,
    /// The vault was written by a newer holdfast.
    Unsupported,
    /// A vault lock, a legal hold or another running command forbids the operation.
    Locked,
    /// The run's session was abandoned, claimed or ended by another command (a prune, or a
    /// forged marker): nothing was committed; running it again may succeed.
    Interrupted,
    /// A program a source or target runs (pg_dump, mariadb-dump, an export command, psql)
    /// failed: the database may be down or restarting; running it again may succeed.
    SourceFailed,
    /// holdfast itself went wrong (a broken invariant, a worker thread gone): a bug.
    Internal,
}

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// See [`ErrorKind::NoVault`].
    #[error("no vault at {location}")]
    NoVault {
        /// The location.
        location: String,
    },
    /// See [`ErrorKind::VaultExists`].
    #[error("a vault already exists at {location}")]
    VaultExists {
        /// The location.
        location: String,
    },
    /// See [`ErrorKind::WrongKey`].
    #[error("the passphrase or key file does not open the vault at {location}")]
    WrongKey {
        /// The location.
        location: String,
    },
    /// See [`ErrorKind::KeyDenied`].
    #[error("{operation} needs the full key; this is a write-only (backup-only) key")]
    KeyDenied {
        /// The refused operation.
        operation: String,
    },
    /// A write-only key made before format version 4 has no writer identity, so it cannot
    /// sign the points it would write (a [`ErrorKind::KeyDenied`]).
    #[error(
        "this write-only key has no writer identity, and a format-4 vault stores only signed \
         recovery points"
    )]
    NoWriterIdentity,
    /// A writer identity issued for some resources only was asked to write another (a
    /// [`ErrorKind::KeyDenied`]).
    #[error("this key (writer {writer:?}) may write only {scope}, not resource {resource:?}")]
    OutOfScope {
        /// The writer's label.
        writer: String,
        /// Its resource patterns, joined.
        scope: String,
        /// The refused resource.
        resource: String,
    },
    /// See [`ErrorKind::Damaged`].
    #[error("{object} is damaged: {reason}")]
    Damaged {
        /// The object (`packs/ab/ab12…`, `points/…`, `blob 1a2b…`).
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// A storage error.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// See [`ErrorKind::Input`].
    #[error("{0}")]
    Input(String),
    /// See [`ErrorKind::NotFound`].
    #[error("{0}")]
    NotFound(String),
    /// See [`ErrorKind::Internal`].
    #[error("internal error: {0}")]
    Internal(String),
    /// See [`ErrorKind::Io`].
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// See [`ErrorKind::Unsupported`].
    #[error("{0}")]
    Unsupported(String),
    /// See [`ErrorKind::Locked`].
    #[error("{0}")]
    Locked(String),
    /// See [`ErrorKind::Interrupted`].
    #[error("{0}")]
    Session(String),
    /// See [`ErrorKind::SourceFailed`].
    #[error("{message}")]
    SourceFailed {
        /// The program that failed.
        program: String,
        /// What it was doing, how it ended, and the end of its error output.
        message: String,
    },
}

impl Error {
    /// A damaged-object error.
    pub fn damaged(object: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Damaged {
            object: object.into(),
            reason: reason.to_string(),
        }
    }

    /// A failed source or target program.
    pub fn source_failed(program: impl Into<String>, message: impl Into<String>) -> Self {
        Error::SourceFailed {
            program: program.into(),
            message: message.into(),
        }
    }

    /// A local I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The stable class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoVault { .. } => ErrorKind::NoVault,
            Error::VaultExists { .. } => ErrorKind::VaultExists,
            Error::WrongKey { .. } => ErrorKind::WrongKey,
            Error::KeyDenied { .. } | Error::NoWriterIdentity | Error::OutOfScope { .. } => {
                ErrorKind::KeyDenied
            }
            Error::Damaged { .. } => ErrorKind::Damaged,
            Error::Storage(e) => match e.kind {
                StorageKind::Transient => ErrorKind::Unreachable,
                StorageKind::NotFound => ErrorKind::Damaged,
                _ => ErrorKind::Storage,
            },
            Error::Input(_) => ErrorKind::Input,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Io { .. } => ErrorKind::Io,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Locked(_) => ErrorKind::Locked,
            Error::Session(_) => ErrorKind::Interrupted,
            Error::SourceFailed { .. } => ErrorKind::SourceFailed,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Unreachable | ErrorKind::SourceFailed | ErrorKind::Interrupted
        )
    }
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, Error>;
