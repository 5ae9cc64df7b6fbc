//! Evidence records in a vault (`evidence/<name>`, docs/format.md 11.5): stored signed by the
//! owner and sealed to the public key; listed with what could not be read or did not verify.

use holdfast_storage::{ErrorKind as SK, Handle, Kind};

use super::{Damage, Vault};
use crate::crypto;
use crate::error::{Error, Result};
use crate::evidence::{self, Evidence};
use crate::id::Id;

/// A stored evidence record: its id and content.
pub type EvidenceEntry = (Id, Evidence);

impl Vault {
    /// Sign (owner key), seal and store an evidence record; returns its id. Needs a full key.
    pub fn save_evidence(&self, e: &Evidence) -> Result<Id> {
        let owner = self.keys.owner_signing().ok_or_else(|| Error::KeyDenied {
            operation: "recording evidence".into(),
        })?;
        let json = serde_json::to_vec(e)
            .map_err(|err| Error::Internal(format!("evidence record: {err}")))?;
        let plain = evidence::seal(&json, &self.keys.vault_id, &owner);
        let sealed = crypto::seal_to(&self.keys.public_key(), evidence::AAD, &plain);
        let id = Id::of_stored(&sealed);
        match self
            .storage
            .create(&Handle::new(Kind::Evidence, id.to_hex()), &sealed)
        {
            Ok(()) => Ok(id),
            Err(err) if err.kind == SK::AlreadyExists => Ok(id),
            Err(err) => Err(err.into()),
        }
    }

    /// Read one evidence record; one that does not open or verify is damage.
    pub fn load_evidence(&self, id: &Id) -> Result<Evidence> {
        let secret = self.require_full("reading evidence")?;
        let owner = self.owner_vk.as_ref().ok_or_else(|| Error::KeyDenied {
            operation: "reading evidence".into(),
        })?;
        let h = Handle::new(Kind::Evidence, id.to_hex());
        let data = self.storage.read(&h)?;
        if Id::of_stored(&data) != *id {
            return Err(Error::damaged(h.path(), "content does not match its name"));
        }
        let plain = crypto::open_sealed(secret, evidence::AAD, &data)
            .map_err(|e| Error::damaged(h.path(), e))?;
        let json = evidence::open(&plain, &self.keys.vault_id, owner)
            .map_err(|e| Error::damaged(h.path(), e))?;
        serde_json::from_slice(json).map_err(|e| Error::damaged(h.path(), e))
    }

    /// The ids of the stored evidence records (nothing is read or opened).
    pub fn evidence_ids(&self) -> Result<Vec<Id>> {
        Ok(self
            .storage
            .list(Kind::Evidence)?
            .iter()
            .filter_map(|o| Id::from_hex(&o.name))
            .collect())
    }

    /// Every evidence record, oldest first, and the objects that could not be read or did
    /// not verify.
    pub fn list_evidence(&self) -> Result<(Vec<EvidenceEntry>, Vec<Damage>)> {
        self.require_full("listing evidence")?;
        let mut out = Vec::new();
        let mut damage = Vec::new();
        for id in self.evidence_ids()? {
            match self.load_evidence(&id) {
                Ok(e) => out.push((id, e)),
                Err(e @ Error::Storage(_)) if e.retryable() => return Err(e),
                Err(e) => damage.push(Damage {
                    object: format!("evidence/{}", id.to_hex()),
                    reason: e.to_string(),
                }),
            }
        }
        out.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        Ok((out, damage))
    }
}
