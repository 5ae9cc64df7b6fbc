//! Opening a vault: read its config, then open its key (passphrase or key file).

use super::*;

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
