//! The vault's key objects: list, add, remove.

use super::*;

impl Vault {
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
}
