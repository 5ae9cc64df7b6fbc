//! The holdfast vault engine.
//!
//! It knows the vault format — chunking, ids, compression, encryption, packs, index, trees,
//! recovery-point manifests — and nothing of the CLI, plans or sources. Data flows one way:
//! chunker → compress → encrypt → pack → storage backend ([`holdfast_storage::Storage`]).
//! The format is specified in `docs/format.md`.

pub mod chunker;
pub mod config;
pub mod copy;
pub mod crypto;
pub mod error;
pub mod gc;
pub mod id;
pub mod identity;
pub mod index;
pub mod keys;
pub mod pack;
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
pub mod wire;
pub mod writer;

pub use error::{Error, ErrorKind, Result};
pub use id::Id;
pub use vault::{KeylessVault, Origin, Vault};
