//! Garbage-collection notices: the two-phase deletion that lets `prune` run while other
//! hosts back up (docs/format.md, section 13.2).
//!
//! A **notice** (`gc/<name>`, name = BLAKE3 of the stored bytes) lists packs a pruner wants
//! to delete. Its **companion** (`gc/<notice name>00000000`) lists the sessions that were
//! open just after the notice was created. The packs are deleted only once every one of
//! those sessions has ended or been declared abandoned, and only if no recovery point that
//! exists at that moment still needs them.
//!
//! Both objects are encrypted under the index key (write-only hosts read notices, to avoid
//! deduplicating against condemned packs) and authenticated with the policy key, which only
//! full keys hold: a write-only host cannot forge a notice.

use std::collections::HashSet;

use holdfast_storage::{ErrorKind as SK, Handle, Kind, Storage};
use serde::{Deserialize, Serialize};

use crate::crypto::SymKey;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::vault::Vault;

const NOTICE_AAD: &[u8] = b"holdfast v2 gc notice";
const COMPANION_AAD: &[u8] = b"holdfast v2 gc sessions";
/// Suffix of a companion's name.
pub const COMPANION_SUFFIX: &str = "00000000";

/// A notice's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notice {
    /// Notice version, 1.
    pub version: u32,
    /// Condemned packs (64 hex digits each).
    pub packs: Vec<String>,
    /// Host that wrote it (informational).
    pub host: String,
    /// Its time on that host, Unix seconds (informational; nothing depends on it).
    pub created: i64,
}

/// A companion's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Companion {
    /// The notice it belongs to.
    pub notice: String,
    /// Sessions open just after the notice was created.
    pub sessions: Vec<String>,
}

fn mac(key: &SymKey, body: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(&key.0, body).as_bytes()
}

/// Seal a JSON body: `XChaCha(index key) || BLAKE3-keyed MAC(policy key)`.
fn seal(vault: &Vault, aad: &[u8], json: &[u8]) -> Result<Vec<u8>> {
    let pk = vault
        .key_material()
        .policy_key()
        .ok_or_else(|| Error::KeyDenied {
            operation: "prune".into(),
        })?;
    let mut out = vault.key_material().index_key.seal(aad, json);
    let m = mac(&pk, &out);
    out.extend_from_slice(&m);
    Ok(out)
}

/// Open a sealed body; the MAC is checked when the key can (full keys).
fn open(vault: &Vault, aad: &[u8], data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if data.len() < 32 {
        return Err("too short".into());
    }
    let (body, tag) = data.split_at(data.len() - 32);
    if let Some(pk) = vault.key_material().policy_key()
        && mac(&pk, body) != tag
    {
        return Err("does not authenticate (not written by a full key)".into());
    }
    vault
        .key_material()
        .index_key
        .open(aad, body)
        .map_err(|e| e.to_string())
}

/// Write a notice; returns its name.
pub fn write_notice(vault: &Vault, n: &Notice) -> Result<String> {
    let json = serde_json::to_vec(n).map_err(|e| Error::Input(e.to_string()))?;
    let data = seal(vault, NOTICE_AAD, &json)?;
    let name = Id::of_stored(&data).to_hex();
    crate::vault::create_idempotent(&**vault.storage(), &Handle::new(Kind::Notice, &name), &data)?;
    Ok(name)
}

/// Write a notice's companion (if absent).
pub fn write_companion(vault: &Vault, c: &Companion) -> Result<()> {
    let json = serde_json::to_vec(c).map_err(|e| Error::Input(e.to_string()))?;
    let data = seal(vault, COMPANION_AAD, &json)?;
    let h = Handle::new(Kind::Notice, format!("{}{COMPANION_SUFFIX}", c.notice));
    match vault.storage().create(&h, &data) {
        Ok(()) => Ok(()),
        // A companion is written once; a second writer keeps the first (both are safe).
        Err(e) if e.kind == SK::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A notice found in the vault.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its name.
    pub name: String,
    /// Its content.
    pub notice: Notice,
    /// Its companion, if written.
    pub companion: Option<Companion>,
}

/// All readable notices. Unreadable ones are skipped (with a warning): they can only cause
/// fewer deletions.
pub fn list_notices(vault: &Vault) -> Result<Vec<Pending>> {
    let storage = vault.storage();
    let listed = storage.list(Kind::Notice)?;
    let names: HashSet<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    let mut out = Vec::new();
    for o in &listed {
        if o.name.len() != 64 {
            continue;
        }
        let read = |h: Handle, aad: &[u8]| -> Result<Option<Vec<u8>>> {
            match storage.read(&h) {
                Ok(d) => match open(vault, aad, &d) {
                    Ok(p) => Ok(Some(p)),
                    Err(e) => {
                        tracing::warn!("ignoring {}: {e}", h.path());
                        Ok(None)
                    }
                },
                Err(e) if e.kind == SK::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let Some(plain) = read(Handle::new(Kind::Notice, &o.name), NOTICE_AAD)? else {
            continue;
        };
        let Ok(notice) = serde_json::from_slice::<Notice>(&plain) else {
            tracing::warn!("ignoring gc/{}: malformed", o.name);
            continue;
        };
        let cname = format!("{}{COMPANION_SUFFIX}", o.name);
        let companion = if names.contains(cname.as_str()) {
            read(Handle::new(Kind::Notice, &cname), COMPANION_AAD)?
                .and_then(|p| serde_json::from_slice::<Companion>(&p).ok())
                .filter(|c| c.notice == o.name)
        } else {
            None
        };
        out.push(Pending {
            name: o.name.clone(),
            notice,
            companion,
        });
    }
    Ok(out)
}

/// Check every object under `gc/` (for `verify`): (object, reason) for each that does not
/// authenticate or parse.
pub fn check_all(vault: &Vault) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for o in vault.storage().list(Kind::Notice)? {
        let h = Handle::new(Kind::Notice, &o.name);
        let data = match vault.storage().read(&h) {
            Ok(d) => d,
            Err(e) if e.kind == SK::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let companion = o.name.len() == 64 + COMPANION_SUFFIX.len();
        let res = if companion {
            open(vault, COMPANION_AAD, &data).and_then(|p| {
                serde_json::from_slice::<Companion>(&p)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        } else {
            if Id::of_stored(&data).to_hex() != o.name {
                out.push((h.path(), "content does not match its name".into()));
                continue;
            }
            open(vault, NOTICE_AAD, &data).and_then(|p| {
                serde_json::from_slice::<Notice>(&p)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        };
        if let Err(e) = res {
            out.push((h.path(), e));
        }
    }
    Ok(out)
}

/// The packs condemned by any notice in the vault.
pub fn condemned_packs(vault: &Vault) -> Result<HashSet<Id>> {
    let mut out = HashSet::new();
    for p in list_notices(vault)? {
        out.extend(p.notice.packs.iter().filter_map(|h| Id::from_hex(h)));
    }
    Ok(out)
}

/// Remove a notice and its companion (companion first: a notice without a companion is
/// completed conservatively by the next prune).
pub fn remove_notice(storage: &dyn Storage, name: &str) -> Result<()> {
    storage.delete(&Handle::new(
        Kind::Notice,
        format!("{name}{COMPANION_SUFFIX}"),
    ))?;
    storage.delete(&Handle::new(Kind::Notice, name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn notices_round_trip(packs in proptest::collection::vec("[0-9a-f]{64}", 0..20),
                              host in "[a-z]{0,12}", created in 0i64..i64::MAX) {
            let n = Notice { version: 1, packs, host, created };
            let json = serde_json::to_vec(&n).expect("json");
            let back: Notice = serde_json::from_slice(&json).expect("parse");
            proptest::prop_assert_eq!(back, n);
        }
    }
}
