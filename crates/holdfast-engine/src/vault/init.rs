//! Creating a vault and migrating an older format version.

use super::*;

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
}
