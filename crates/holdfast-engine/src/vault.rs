//! Opening, creating and reading a vault: keys, config, index, recovery points, blobs.
//!
//! One step per file under `vault/`: `open` (config, then the key), `init` (create, migrate),
//! `load_index`, `read` (blobs, pack headers, trees), `key_objects` (list, add, remove) and
//! `points` (list, find, save). This file holds the two types and their accessors.

mod evidence;
pub use evidence::EvidenceEntry;
mod init;
mod key_objects;
mod load_index;
mod open;
mod points;
mod read;

use std::collections::HashMap;
use std::sync::Arc;

use holdfast_storage::{ErrorKind as SK, Handle, Kind, Storage};
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;

use crate::chunker::ChunkParams;
use crate::config::{self, VaultConfig};
use crate::crypto::{self, DataKey, SecretKey};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{self, Index};
use crate::keys::{self, KdfParams, KeyInfo, KeyKind, KeyMaterial, OpenKeyError};
use crate::pack::{self, BlobType};
use crate::point::Manifest;
use crate::tree::Tree;

/// A cached pack data key is found by pack name and wrapped key.
type PackKeyId = (Id, [u8; crypto::WRAPPED_LEN]);

/// A vault whose config has been read but whose key is not open yet: it can say what it is
/// (format version, parameters), not what it holds. `unlock_*` turns it into a [`Vault`].
/// (Not to be confused with the vault lock, a protection record.)
pub struct KeylessVault {
    storage: Arc<dyn Storage>,
    config: VaultConfig,
    mac: [u8; 32],
}

/// An unlocked vault.
pub struct Vault {
    storage: Arc<dyn Storage>,
    config: VaultConfig,
    keys: KeyMaterial,
    /// The owner's verifying key (full keys): point signatures are checked against it.
    owner_vk: Option<ed25519_dalek::VerifyingKey>,
    key_id: Option<String>,
    index: RwLock<Index>,
    pack_keys: Mutex<HashMap<PackKeyId, Arc<DataKey>>>,
    state_dir: Option<std::path::PathBuf>,
}

/// Who and when, for objects that record it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
    /// Unix seconds.
    pub now: i64,
}

/// A recovery point: its id and manifest.
pub type PointEntry = (Id, Manifest);

/// Damage found while loading: the object and why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Damage {
    /// Object path.
    pub object: String,
    /// Cause.
    pub reason: String,
}

fn read_config(storage: &Arc<dyn Storage>) -> Result<Option<(VaultConfig, [u8; 32])>> {
    match storage.read(&Handle::config()) {
        Ok(b) => VaultConfig::decode(&b).map(Some).map_err(|e| {
            if e.0.contains("format version") {
                Error::Unsupported(format!("the vault at {} has {}", storage.location(), e.0))
            } else {
                Error::damaged("config", e)
            }
        }),
        Err(e) if e.kind == SK::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Create a content-addressed object: finding it already there (a retried write whose
/// response was lost, or another host writing the same bytes) is success when the stored
/// bytes are the same.
pub(crate) fn create_idempotent(storage: &dyn Storage, h: &Handle, data: &[u8]) -> Result<()> {
    match storage.create(h, data) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == SK::AlreadyExists => {
            if storage.read(h)? == data {
                Ok(())
            } else {
                Err(Error::damaged(
                    h.path(),
                    "an object with this name but other content exists",
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}

impl Vault {
    /// Keep local state about this vault under `dir/<vault id>/` (the newest protection
    /// record seen, so that a rollback of the vault lock is reported: docs/format.md 13.4).
    pub fn set_state_dir(&mut self, dir: std::path::PathBuf) {
        self.state_dir = Some(dir.join(self.config.id_hex()));
    }

    /// The local state folder of this vault, if one was set.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir.as_deref()
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The config.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The key material in use.
    pub fn key_material(&self) -> &KeyMaterial {
        &self.keys
    }

    /// The key object that opened the vault, if a passphrase did.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Full or write-only.
    pub fn key_kind(&self) -> KeyKind {
        self.keys.kind()
    }

    /// Fail with [`Error::KeyDenied`] unless the key is a full key.
    pub fn require_full(&self, operation: &str) -> Result<&SecretKey> {
        self.keys.secret.as_ref().ok_or_else(|| Error::KeyDenied {
            operation: operation.to_string(),
        })
    }

    /// Chunking parameters.
    pub fn chunk_params(&self) -> ChunkParams {
        ChunkParams::new(&self.config, self.keys.chunker_seed)
    }

    /// The id of a blob's plaintext: BLAKE3 keyed with the vault's id key.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.keys.id_key, data).as_bytes())
    }

    /// Start a session (before loading the index; see [`crate::session`]).
    pub fn start_session(
        &self,
        info: &crate::session::SessionInfo,
    ) -> Result<crate::session::Session> {
        if !self.keys.can_sign() {
            return Err(Error::NoWriterIdentity);
        }
        crate::session::Session::start(self.storage.clone(), &self.keys.public_key(), info)
    }
}
