//! Opening, creating and reading a vault: keys, config, index, recovery points, blobs.

mod points;

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

impl KeylessVault {
    /// Read the config at a location; [`Error::NoVault`] if there is none. A vault of the
    /// previous format version is refused with the command that converts it.
    pub fn open(storage: Arc<dyn Storage>) -> Result<KeylessVault> {
        let v = Self::open_any(storage)?;
        if config::MIGRATABLE_VERSIONS.contains(&v.config.version) {
            return Err(Error::Unsupported(format!(
                "the vault at {} has format version {} (this holdfast uses {}): run `holdfast \
                 migrate` with the full key to convert it, after stopping every older holdfast \
                 that uses it",
                v.storage.location(),
                v.config.version,
                config::FORMAT_VERSION
            )));
        }
        Ok(v)
    }

    /// [`KeylessVault::open`], accepting the previous format version too (for `migrate`).
    pub fn open_any(storage: Arc<dyn Storage>) -> Result<KeylessVault> {
        match read_config(&storage)? {
            Some((config, mac)) => Ok(KeylessVault {
                storage,
                config,
                mac,
            }),
            None => Err(Error::NoVault {
                location: storage.location(),
            }),
        }
    }

    /// The config (unauthenticated until unlocked).
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// Unlock with a passphrase: try every key object.
    pub fn unlock_passphrase(self, passphrase: &[u8]) -> Result<Vault> {
        let list = self.storage.list(Kind::Key)?;
        let mut damaged = None;
        for obj in list {
            let h = Handle::new(Kind::Key, &obj.name);
            let data = self.storage.read(&h)?;
            if Id::of_stored(&data).to_hex() != obj.name {
                damaged = Some(h.path());
                continue;
            }
            match keys::open_key_object(&data, passphrase) {
                // A key left by an interrupted `init` of another vault: keep looking.
                Ok(m) if m.vault_id != self.config.vault_id => continue,
                Ok(m) => return self.finish(m, Some(obj.name)),
                Err(OpenKeyError::Crypto(_)) => continue,
                Err(OpenKeyError::Wire(e)) => {
                    damaged = Some(format!("{}: {e}", h.path()));
                }
            }
        }
        match damaged {
            Some(d) => Err(Error::damaged(
                d,
                "key object does not match its name; the passphrase may be right",
            )),
            None => Err(Error::WrongKey {
                location: self.storage.location(),
            }),
        }
    }

    /// Unlock with key material from a key file.
    pub fn unlock_material(self, m: KeyMaterial) -> Result<Vault> {
        self.finish(m, None)
    }

    fn finish(self, keys: KeyMaterial, key_id: Option<String>) -> Result<Vault> {
        if keys.vault_id != self.config.vault_id {
            return Err(Error::WrongKey {
                location: self.storage.location(),
            });
        }
        if !self
            .config
            .mac_ok(&config::mac_key(&keys.index_key.0), &self.mac)
        {
            return Err(Error::damaged("config", "authentication failed (altered)"));
        }
        Ok(Vault {
            storage: self.storage,
            config: self.config,
            owner_vk: keys.owner_verifying_key(),
            keys,
            key_id,
            index: RwLock::new(Index::default()),
            pack_keys: Mutex::new(HashMap::new()),
            state_dir: None,
        })
    }
}

impl Vault {
    /// Create a new vault with one passphrase key and default parameters.
    pub fn init(
        storage: Arc<dyn Storage>,
        passphrase: &[u8],
        kdf: KdfParams,
        origin: &Origin,
    ) -> Result<Vault> {
        Self::init_with(storage, passphrase, kdf, origin, |_| {})
    }

    /// Create a new vault, letting `tune` change the default parameters (chunk and pack sizes,
    /// compression) before they are fixed in the config.
    pub fn init_with(
        storage: Arc<dyn Storage>,
        passphrase: &[u8],
        kdf: KdfParams,
        origin: &Origin,
        tune: impl FnOnce(&mut VaultConfig),
    ) -> Result<Vault> {
        if read_config(&storage)?.is_some() {
            return Err(Error::VaultExists {
                location: storage.location(),
            });
        }
        storage.prepare()?;
        let vault_id: [u8; 16] = crypto::random_bytes();
        let mut config = VaultConfig::new(vault_id, origin.now);
        tune(&mut config);
        config
            .validate()
            .map_err(|e| Error::Input(format!("vault parameters: {e}")))?;
        let keys = KeyMaterial::generate(vault_id);
        let obj = keys::seal_key_object(
            &keys,
            passphrase,
            kdf,
            origin.now,
            &origin.host,
            &origin.user,
        )
        .map_err(|e| Error::Input(e.0))?;
        let key_id = Id::of_stored(&obj).to_hex();
        // Key first, config last: a vault is only "there" once it can be opened.
        create_idempotent(&*storage, &Handle::new(Kind::Key, &key_id), &obj)?;
        let cfg = config.encode(&config::mac_key(&keys.index_key.0));
        match storage.create(&Handle::config(), &cfg) {
            Ok(()) => {}
            Err(e) if e.kind == SK::AlreadyExists => {
                // Our own write, retried after a lost response, or another vault's?
                match storage.read(&Handle::config()) {
                    Ok(existing) if existing == cfg => {}
                    Ok(_) => {
                        let _ = storage.delete(&Handle::new(Kind::Key, &key_id));
                        return Err(Error::VaultExists {
                            location: storage.location(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Vault {
            storage,
            config,
            owner_vk: keys.owner_verifying_key(),
            keys,
            key_id: Some(key_id),
            index: RwLock::new(Index::default()),
            pack_keys: Mutex::new(HashMap::new()),
            state_dir: None,
        })
    }

    /// Convert a vault of format version 2 or 3 to version 4 (full key; docs/format.md 16).
    ///
    /// From version 2: the objects of both versions have the same bytes except session
    /// markers, which version 3 authenticates (13.2.1); so every session still open is first
    /// declared abandoned (a version-2 backup still running then fails at its commit claim and
    /// stores nothing). Refuses while a version-2 session has claimed commit without ending (a
    /// backup writing its manifest right now).
    ///
    /// To version 4 (signed manifests, 11.4): a protection record notes the time from which
    /// unsigned points are no longer trusted (13.5) — the points already there stay trusted.
    ///
    /// Last, the config is rewritten with the new version number — the only object holdfast
    /// ever overwrites. Returns whether anything changed.
    pub fn migrate(&self) -> Result<bool> {
        let secret = self.require_full("migrate")?;
        if self.config.version == config::FORMAT_VERSION {
            return Ok(false);
        }
        for st in crate::session::list(&*self.storage)?.values() {
            if st.ended || self.config.version != 2 {
                continue;
            }
            let claim = Handle::new(
                Kind::Session,
                crate::session::object_name(&st.sid, crate::session::CLAIM),
            );
            if st.claimed && self.storage.read(&claim)? == b"commit" {
                return Err(Error::Locked(format!(
                    "session {} is committing a recovery point; run migrate again when it has \
                     ended",
                    &st.sid
                )));
            }
            // Without its (version-2) start key the session cannot be shown to hold a
            // commit claim, so this always takes or keeps the slot: it can never commit.
            crate::session::abandon(&*self.storage, secret, &st.sid, None)?;
        }
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let by = format!("holdfast migrate (format {})", self.config.version);
        crate::protect::update(self, &by, now, |cur| {
            let mut next = cur.clone();
            // A rerun after a crash keeps the first time: unsigned points that arrived since
            // may come from an old writer still running, or from a forger.
            next.unsigned_before_ns = Some(cur.unsigned_before_ns.unwrap_or(now));
            Ok((
                next,
                "format 4: unsigned points stored from now on are not trusted".into(),
            ))
        })?;
        let mut cfg = self.config.clone();
        cfg.version = config::FORMAT_VERSION;
        let bytes = cfg.encode_for(&self.keys.index_key);
        self.storage.replace(&Handle::config(), &bytes)?;
        Ok(true)
    }

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

    /// Read all index objects into memory. Damaged index objects are skipped and returned.
    ///
    /// Packs condemned by a garbage-collection notice are demoted (writers do not
    /// deduplicate against them). The notices are listed **before** the index objects: a
    /// backup that started its session first and then misses a notice is one the pruner
    /// sees (docs/format.md 13.2).
    pub fn load_index(&self) -> Result<Vec<Damage>> {
        self.load_index_with(&std::collections::HashSet::new())
    }

    /// [`Vault::load_index`], demoting `extra` packs too (used by repacking).
    pub fn load_index_with(&self, extra: &std::collections::HashSet<Id>) -> Result<Vec<Damage>> {
        let mut condemned = crate::gc::condemned_packs(self)?;
        condemned.extend(extra.iter().copied());
        let mut attempt = 0;
        let (objects, damage) = loop {
            let (objects, damage, vanished) = self.read_index_objects()?;
            // An index object that vanished between listing and reading was replaced by a
            // prune's consolidated one: list again.
            if vanished && attempt < 3 {
                attempt += 1;
                continue;
            }
            break (objects, damage);
        };
        let mut idx = self.index.write();
        *idx = Index::default();
        let mut demoted = Vec::new();
        for (name, packs) in objects {
            let (d, n): (Vec<_>, Vec<_>) =
                packs.into_iter().partition(|p| condemned.contains(&p.id));
            idx.add(n);
            demoted.extend(d);
            idx.objects.push(name);
        }
        idx.add_demoted(demoted);
        Ok(damage)
    }

    /// Read and decode every index object: (name, packs) pairs, damage, and whether an
    /// object vanished between listing and reading.
    #[allow(clippy::type_complexity)]
    pub fn read_index_objects(
        &self,
    ) -> Result<(Vec<(String, Vec<index::IndexedPack>)>, Vec<Damage>, bool)> {
        let list = self.storage.list(Kind::Index)?;
        let key = &self.keys.index_key;
        let loaded: Vec<std::result::Result<(String, Vec<index::IndexedPack>), (Damage, bool)>> =
            list.par_iter()
                .map(|o| {
                    let h = Handle::new(Kind::Index, &o.name);
                    let data = match self.storage.read(&h) {
                        Ok(d) => d,
                        Err(e) if e.kind == SK::NotFound => {
                            return Err((
                                Damage {
                                    object: h.path(),
                                    reason: "vanished".into(),
                                },
                                true,
                            ));
                        }
                        Err(e) => {
                            return Err((
                                Damage {
                                    object: h.path(),
                                    reason: e.to_string(),
                                },
                                false,
                            ));
                        }
                    };
                    if Id::of_stored(&data).to_hex() != o.name {
                        return Err((
                            Damage {
                                object: h.path(),
                                reason: "content does not match its name".into(),
                            },
                            false,
                        ));
                    }
                    index::decode(&data, key)
                        .map(|p| (o.name.clone(), p))
                        .map_err(|e| {
                            (
                                Damage {
                                    object: h.path(),
                                    reason: e.to_string(),
                                },
                                false,
                            )
                        })
                })
                .collect();
        let mut objects = Vec::new();
        let mut damage = Vec::new();
        let mut vanished = false;
        for r in loaded {
            match r {
                Ok(o) => objects.push(o),
                Err((d, v)) => {
                    vanished |= v;
                    damage.push(d);
                }
            }
        }
        Ok((objects, damage, vanished))
    }

    /// The in-memory index.
    pub fn index(&self) -> parking_lot::RwLockReadGuard<'_, Index> {
        self.index.read()
    }

    pub(crate) fn index_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Index> {
        self.index.write()
    }

    fn pack_key(&self, pack: &Id, wrapped: &[u8; crypto::WRAPPED_LEN]) -> Result<Arc<DataKey>> {
        // Keyed by the wrapped key too: two index records of one pack may carry different
        // wrapped keys (one of them forged), and only the right one may be cached.
        let k = (*pack, *wrapped);
        if let Some(dk) = self.pack_keys.lock().get(&k) {
            return Ok(dk.clone());
        }
        let secret = self.require_full("reading stored data")?;
        let dk = Arc::new(crypto::unwrap(secret, wrapped).map_err(|_| {
            Error::damaged(
                Handle::new(Kind::Pack, pack.to_hex()).path(),
                "wrapped key does not open",
            )
        })?);
        self.pack_keys.lock().insert(k, dk.clone());
        Ok(dk)
    }

    /// Read, decrypt, decompress and authenticate one blob (full key only).
    ///
    /// Every location the index knows is tried in turn (not condemned first): a location
    /// that is missing, damaged or forged (an index entry written by a write-only key for
    /// bytes that are not the blob) fails authentication and the next one is read. The
    /// error of the first location is returned when none authenticates.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let locations: Vec<(Id, [u8; crypto::WRAPPED_LEN], pack::PackEntry)> = {
            let idx = self.index.read();
            idx.locations(id)
                .into_iter()
                .map(|l| {
                    let p = &idx.packs[l.pack as usize];
                    (p.id, p.wrapped, l.entry)
                })
                .collect()
        };
        if locations.is_empty() {
            return Err(Error::damaged(
                format!("blob {}", id.short()),
                "not in any index (missing)",
            ));
        }
        self.require_full("reading stored data")?;
        let mut first_err = None;
        for (pack_id, wrapped, entry) in locations {
            match self.read_blob_at(id, &pack_id, &wrapped, &entry) {
                Ok(plain) => return Ok(plain),
                Err(e) if e.retryable() => return Err(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| Error::damaged(format!("blob {}", id.short()), "missing")))
    }

    /// Read and authenticate a blob at one given location (full key only): the stored bytes
    /// must decrypt under the pack key with the entry's offset, type and id, decompress to
    /// `raw_len` bytes and hash to `id`.
    pub fn read_blob_at(
        &self,
        id: &Id,
        pack_id: &Id,
        wrapped: &[u8; crypto::WRAPPED_LEN],
        entry: &pack::PackEntry,
    ) -> Result<Vec<u8>> {
        self.require_full("reading stored data")?;
        let h = Handle::new(Kind::Pack, pack_id.to_hex());
        let stored = self
            .storage
            .read_range(&h, entry.offset as u64, entry.length as u64)
            .map_err(|e| {
                if matches!(e.kind, SK::NotFound | SK::Permanent) {
                    Error::damaged(h.path(), e.message)
                } else {
                    e.into()
                }
            })?;
        let dk = self.pack_key(pack_id, wrapped)?;
        let plain = pack::open_blob(&dk, entry, stored)
            .map_err(|e| Error::damaged(format!("{} (blob {})", h.path(), id.short()), e))?;
        if entry.id != *id || self.blob_id(&plain) != *id {
            return Err(Error::damaged(
                format!("{} (blob {})", h.path(), id.short()),
                "content does not match its id",
            ));
        }
        Ok(plain)
    }

    /// Whether a blob authenticates at the given location (a damaged or forged location
    /// answers `Ok(false)`; storage that cannot be reached is an error).
    pub fn authenticates_at(&self, loc: &crate::index::BlobLocation) -> Result<bool> {
        let (pack_id, wrapped) = {
            let idx = self.index.read();
            let p = &idx.packs[loc.pack as usize];
            (p.id, p.wrapped)
        };
        match self.read_blob_at(&loc.entry.id, &pack_id, &wrapped, &loc.entry) {
            Ok(_) => Ok(true),
            Err(e) if e.retryable() => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// The packs in storage (listed now) with their sizes.
    pub fn stored_packs(&self) -> Result<HashMap<Id, u64>> {
        Ok(self
            .storage
            .list(Kind::Pack)?
            .into_iter()
            .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size)))
            .collect())
    }

    /// Read a pack's header with two range reads (trailer, then header): its wrapped key and
    /// entries. `Ok(None)` when the pack is gone or its header does not authenticate or
    /// decode (such a pack cannot serve any point).
    #[allow(clippy::type_complexity)]
    pub fn read_pack_header(
        &self,
        id: &Id,
        size: u64,
    ) -> Result<Option<([u8; crypto::WRAPPED_LEN], Vec<pack::PackEntry>)>> {
        let h = Handle::new(Kind::Pack, id.to_hex());
        let soft = |e: holdfast_storage::StorageError| -> Result<Option<_>> {
            if matches!(e.kind, SK::NotFound | SK::Permanent) {
                Ok(None)
            } else {
                Err(e.into())
            }
        };
        if size < 8 {
            return Ok(None);
        }
        let trailer = match self.storage.read_range(&h, size - 8, 8) {
            Ok(t) => t,
            Err(e) => return soft(e),
        };
        if trailer.len() != 8 || &trailer[4..] != pack::TRAILER_MAGIC {
            return Ok(None);
        }
        let hlen = u64::from(u32::from_le_bytes([
            trailer[0], trailer[1], trailer[2], trailer[3],
        ]));
        if hlen > size - 8 {
            return Ok(None);
        }
        let area = size - 8 - hlen;
        let sealed = match self.storage.read_range(&h, area, hlen) {
            Ok(b) => b,
            Err(e) => return soft(e),
        };
        let Ok(plain) = self.keys.index_key.open(pack::HEADER_AAD, &sealed) else {
            return Ok(None);
        };
        Ok(pack::parse_header(&plain, area as usize).ok())
    }

    /// Read and decode a tree.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let data = self.read_blob(id)?;
        Tree::decode(&data).map_err(|e| Error::damaged(format!("tree {}", id.short()), e))
    }

    /// The key objects' public headers.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for o in self.storage.list(Kind::Key)? {
            let h = Handle::new(Kind::Key, &o.name);
            let data = self.storage.read(&h)?;
            out.push(
                keys::key_object_info(&o.name, &data).map_err(|e| Error::damaged(h.path(), e))?,
            );
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Add a passphrase key for the same material (full key only).
    pub fn add_key(
        &self,
        passphrase: &[u8],
        kdf: KdfParams,
        origin: &Origin,
        label: &str,
    ) -> Result<String> {
        self.require_full("adding a key")?;
        let obj =
            keys::seal_key_object(&self.keys, passphrase, kdf, origin.now, &origin.host, label)
                .map_err(|e| Error::Input(e.0))?;
        let id = Id::of_stored(&obj).to_hex();
        create_idempotent(&*self.storage, &Handle::new(Kind::Key, &id), &obj)?;
        Ok(id)
    }

    /// Remove a key object by id prefix. Refuses to remove the last key or the key in use.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        self.require_full("removing a key")?;
        let keys = self.list_keys()?;
        let matches: Vec<_> = keys.iter().filter(|k| k.id.starts_with(prefix)).collect();
        let k = match matches.len() {
            0 => return Err(Error::NotFound(format!("no key matches {prefix:?}"))),
            1 => matches[0],
            _ => {
                return Err(Error::Input(format!(
                    "{prefix:?} matches several keys; give more characters"
                )));
            }
        };
        if Some(k.id.as_str()) == self.key_id.as_deref() {
            return Err(Error::Input(
                "refusing to remove the key in use; open the vault with another key first".into(),
            ));
        }
        if keys.len() < 2 {
            return Err(Error::Input("refusing to remove the last key".into()));
        }
        self.storage.delete(&Handle::new(Kind::Key, &k.id))?;
        Ok(k.id.clone())
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

    /// Fail unless a blob type matches (helper for walkers).
    pub fn blob_type(&self, id: &Id) -> Option<BlobType> {
        self.index.read().get(id).map(|(_, e)| e.ty)
    }
}
