//! The holdfast vault engine.
//!
//! It knows the vault format — chunking, ids, compression, encryption, packs, index, trees,
//! recovery-point manifests — and nothing of the CLI, plans or sources. Data flows one way:
//! chunker → compress → encrypt → pack → storage backend ([`holdfast_storage::Storage`]).
//! The format is specified in `docs/format.md`.
//!
//! The API is what callers need: opening, unlocking and creating a vault ([`Vault`]),
//! recovery points, trees, the writer, sessions, protection, verify, copy, prune and repair.
//! The ciphers, the pack layout, garbage-collection notices and the wire codec are private
//! (the `internals` feature opens them to the fuzz targets and benchmarks).

pub mod chunker;
pub mod config;
pub mod copy;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod crypto;
#[cfg(not(feature = "internals"))]
mod crypto;
pub mod error;
pub mod evidence;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod gc;
#[cfg(not(feature = "internals"))]
mod gc;
pub mod id;
pub mod identity;
pub mod index;
pub mod keys;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod pack;
#[cfg(not(feature = "internals"))]
mod pack;
pub mod point;
pub mod protect;
pub mod prune;
pub mod repair;
pub mod session;
pub mod tree;
pub mod trust;
pub mod vault;
pub mod verify;
pub mod walk;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod wire;
#[cfg(not(feature = "internals"))]
mod wire;
pub mod writer;

pub use crypto::random_bytes;
pub use error::{Error, ErrorKind, Result};
pub use id::Id;
pub use pack::BlobType;
pub use vault::{KeylessVault, Origin, Vault};

/// The binary encoding of every stored structure (docs/format.md 3: little-endian integers,
/// length-prefixed byte strings), for local files written in the same style (the file cache).
pub mod encoding {
    pub use crate::wire::{Reader, WireError, Writer};
}

/// The format's building blocks — ciphers, packs, garbage-collection notices, the wire codec —
/// for the fuzz targets, the benchmarks and tests that forge stored objects. Not an API: it
/// changes with the format. Enabled by the `internals` feature.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::{crypto, gc, pack, wire};
}
