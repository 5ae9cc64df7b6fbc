//! Opening, creating and reading a vault: keys, config, index, recovery points, blobs.

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
use crate::point::{self, Manifest};
use crate::tree::Tree;

/// A vault whose config has been read but which is not unlocked yet.
pub struct LockedVault {
    storage: Arc<dyn Storage>,
    config: VaultConfig,
    mac: [u8; 32],
}

/// An unlocked vault.
pub struct Vault {
    storage: Arc<dyn Storage>,
    config: VaultConfig,
    keys: KeyMaterial,
    key_id: Option<String>,
    index: RwLock<Index>,
    pack_keys: Mutex<HashMap<Id, Arc<DataKey>>>,
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
#[derive(Debug, Clone, serde::Serialize)]
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

impl LockedVault {
    /// Read the config at a location; [`Error::NoVault`] if there is none.
    pub fn open(storage: Arc<dyn Storage>) -> Result<LockedVault> {
        match read_config(&storage)? {
            Some((config, mac)) => Ok(LockedVault {
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
            keys,
            key_id,
            index: RwLock::new(Index::default()),
            pack_keys: Mutex::new(HashMap::new()),
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
            keys,
            key_id: Some(key_id),
            index: RwLock::new(Index::default()),
            pack_keys: Mutex::new(HashMap::new()),
        })
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
        if let Some(k) = self.pack_keys.lock().get(pack) {
            return Ok(k.clone());
        }
        let secret = self.require_full("reading stored data")?;
        let dk = Arc::new(crypto::unwrap(secret, wrapped).map_err(|_| {
            Error::damaged(
                Handle::new(Kind::Pack, pack.to_hex()).path(),
                "wrapped key does not open",
            )
        })?);
        self.pack_keys.lock().insert(*pack, dk.clone());
        Ok(dk)
    }

    /// Read, decrypt, decompress and authenticate one blob (full key only).
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let (pack_id, wrapped, entry) = {
            let idx = self.index.read();
            let (p, e) = idx.get(id).ok_or_else(|| {
                Error::damaged(format!("blob {}", id.short()), "not in any index (missing)")
            })?;
            (p.id, p.wrapped, e)
        };
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
        let dk = self.pack_key(&pack_id, &wrapped)?;
        let plain = pack::open_blob(&dk, &entry, stored)
            .map_err(|e| Error::damaged(format!("{} (blob {})", h.path(), id.short()), e))?;
        if self.blob_id(&plain) != *id {
            return Err(Error::damaged(
                format!("{} (blob {})", h.path(), id.short()),
                "content does not match its id",
            ));
        }
        Ok(plain)
    }

    /// Read and decode a tree.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let data = self.read_blob(id)?;
        Tree::decode(&data).map_err(|e| Error::damaged(format!("tree {}", id.short()), e))
    }

    /// Seal and store a manifest; returns the point id.
    pub fn save_point(&self, m: &Manifest) -> Result<Id> {
        let sealed = crypto::seal_to(&self.keys.public_key(), point::AAD, &m.to_json());
        let id = Id::of_stored(&sealed);
        match self
            .storage
            .create(&Handle::new(Kind::Point, id.to_hex()), &sealed)
        {
            Ok(()) => Ok(id),
            Err(e) if e.kind == SK::AlreadyExists => Ok(id),
            Err(e) => Err(e.into()),
        }
    }

    /// Read one manifest.
    pub fn load_point(&self, id: &Id) -> Result<Manifest> {
        let secret = self.require_full("reading recovery points")?;
        let h = Handle::new(Kind::Point, id.to_hex());
        let data = self.storage.read(&h)?;
        if Id::of_stored(&data) != *id {
            return Err(Error::damaged(h.path(), "content does not match its name"));
        }
        let plain = crypto::open_sealed(secret, point::AAD, &data)
            .map_err(|e| Error::damaged(h.path(), e))?;
        Manifest::from_json(&plain).map_err(|e| Error::damaged(h.path(), e))
    }

    /// All recovery points, oldest first, and the manifests that could not be read.
    pub fn list_points(&self) -> Result<(Vec<PointEntry>, Vec<Damage>)> {
        self.require_full("listing recovery points")?;
        let list = self.storage.list(Kind::Point)?;
        let res: Vec<_> = list
            .par_iter()
            .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.name.clone())))
            .map(|(id, name)| match self.load_point(&id) {
                Ok(m) => Ok((id, m)),
                Err(e @ Error::Storage(_)) if e.retryable() => Err(Err(e)),
                Err(e) => Err(Ok(Damage {
                    object: format!("points/{name}"),
                    reason: e.to_string(),
                })),
            })
            .collect();
        let mut points = Vec::new();
        let mut damage = Vec::new();
        for r in res {
            match r {
                Ok(p) => points.push(p),
                Err(Ok(d)) => damage.push(d),
                Err(Err(e)) => return Err(e),
            }
        }
        points.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        Ok((points, damage))
    }

    /// Resolve `latest`, `latest:RESOURCE` or an id prefix to one point.
    pub fn find_point(&self, spec: &str) -> Result<(Id, Manifest)> {
        let (points, _) = self.list_points()?;
        if spec == "latest" {
            return points
                .into_iter()
                .last()
                .ok_or_else(|| Error::Input("the vault has no recovery points".into()));
        }
        if let Some(res) = spec.strip_prefix("latest:") {
            return points
                .into_iter()
                .rfind(|(_, m)| m.resource == res)
                .ok_or_else(|| Error::Input(format!("no recovery point of resource {res:?}")));
        }
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Input(format!(
                "{spec:?} is not a point id, `latest` or `latest:RESOURCE`"
            )));
        }
        let mut found: Vec<_> = points
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .collect();
        match found.len() {
            0 => Err(Error::Input(format!("no recovery point matches {spec:?}"))),
            1 => Ok(found.remove(0)),
            n => Err(Error::Input(format!(
                "{spec:?} matches {n} recovery points; give more characters"
            ))),
        }
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
            0 => return Err(Error::Input(format!("no key matches {prefix:?}"))),
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
        crate::session::Session::start(self.storage.clone(), &self.keys.public_key(), info)
    }

    /// Delete a recovery point's manifest (full key; the caller checks locks and holds).
    pub fn delete_point(&self, id: &Id) -> Result<()> {
        self.require_full("forgetting recovery points")?;
        self.storage
            .delete(&Handle::new(Kind::Point, id.to_hex()))
            .map_err(Into::into)
    }

    /// Fail unless a blob type matches (helper for walkers).
    pub fn blob_type(&self, id: &Id) -> Option<BlobType> {
        self.index.read().get(id).map(|(_, e)| e.ty)
    }
}
