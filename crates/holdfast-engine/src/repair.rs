//! `repair index`: rebuild the index from the packs themselves.
//!
//! Every pack carries its own header (its blobs and wrapped key, encrypted under the index
//! key), so the index is redundant and can be rebuilt. Index objects are **not trusted**:
//! any holder of the index key (write-only keys too) can write one that claims anything.
//! So every stored pack is read: its name must be the hash of its bytes, its header must
//! authenticate, and (unless `headers_only`) every blob the header lists is decrypted and
//! its id recomputed. The new index lists, for each pack, exactly the header's entries that
//! authenticated; records that disagree with a pack's header (forged or damaged), entries
//! whose bytes are not the blob they claim (forged), and packs storage no longer holds are
//! dropped. The new index objects are written before the old ones (including damaged ones)
//! are deleted.

use std::collections::{HashMap, HashSet};

use holdfast_storage::{Handle, Kind};
use rayon::prelude::*;
use serde::Serialize;

use crate::crypto;
use crate::error::Result;
use crate::id::Id;
use crate::index::{self, IndexedPack};
use crate::pack;
use crate::vault::{Damage, Vault};

/// What `repair index` did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RepairReport {
    /// Packs in storage.
    pub packs: usize,
    /// Packs added from their headers (no valid index object listed them).
    pub packs_added: usize,
    /// Packs the index named that storage does not hold.
    pub packs_dropped: usize,
    /// Index records that disagreed with their pack's header (forged or damaged), dropped.
    pub records_dropped: usize,
    /// Header entries whose bytes do not authenticate as the blob they claim, dropped.
    pub entries_dropped: usize,
    /// Packs whose header could not be read (left alone; `verify` reports them).
    pub unreadable: Vec<Damage>,
    /// Damaged index objects replaced.
    pub damaged_index_objects: usize,
    /// Index objects written.
    pub index_written: usize,
    /// Index objects deleted.
    pub index_deleted: usize,
    /// Whether blob contents were authenticated (not only headers).
    pub read_data: bool,
}

/// Rebuild the index (full key: old index objects are deleted). With `headers_only`, the
/// packs' headers are trusted (two range reads per pack) and blob contents are not read.
pub fn repair_index(
    vault: &Vault,
    headers_only: bool,
    log: &(dyn Fn(&str) + Sync),
) -> Result<RepairReport> {
    let secret = vault.require_full("repair index")?.clone();
    let storage = vault.storage();
    let mut report = RepairReport {
        read_data: !headers_only,
        ..Default::default()
    };
    // Index objects first, then the pack listing: a pack an index object names was created
    // before that object, so it is in the listing.
    let (objects, damage, _) = vault.read_index_objects()?;
    report.damaged_index_objects = damage.len();
    let listed: HashMap<Id, u64> = vault.stored_packs()?;
    report.packs = listed.len();
    let mut fingerprints: HashMap<Id, Vec<[u8; 32]>> = HashMap::new();
    for (_, ps) in &objects {
        for p in ps {
            let f = index::record_fingerprint(p);
            let v = fingerprints.entry(p.id).or_default();
            if !v.contains(&f) {
                v.push(f);
            }
        }
    }
    report.packs_dropped = fingerprints
        .keys()
        .filter(|p| !listed.contains_key(p))
        .count();
    let mut todo: Vec<(Id, u64)> = listed.iter().map(|(id, s)| (*id, *s)).collect();
    todo.sort();
    log(&format!(
        "reading {} {} packs",
        if headers_only {
            "the headers of"
        } else {
            "all"
        },
        todo.len()
    ));
    let read: Vec<Result<std::result::Result<(IndexedPack, usize), Damage>>> = todo
        .par_iter()
        .map(|(id, size)| rebuild_record(vault, &secret, id, *size, headers_only))
        .collect();
    let mut keep: Vec<IndexedPack> = Vec::new();
    for r in read {
        match r? {
            Ok((p, dropped)) => {
                report.entries_dropped += dropped;
                match fingerprints.get(&p.id) {
                    None => report.packs_added += 1,
                    Some(fs) => {
                        let f = index::record_fingerprint(&p);
                        report.records_dropped += fs.iter().filter(|x| **x != f).count();
                    }
                }
                keep.push(p);
            }
            Err(d) => report.unreadable.push(d),
        }
    }
    let mut written = HashSet::new();
    for chunk in keep.chunks(2048) {
        let data = index::encode(chunk, &vault.key_material().index_key);
        let name = Id::of_stored(&data).to_hex();
        crate::vault::create_idempotent(&**storage, &Handle::new(Kind::Index, &name), &data)?;
        written.insert(name);
        report.index_written += 1;
    }
    let mut old: Vec<String> = objects.into_iter().map(|(n, _)| n).collect();
    // A damaged object is deleted only if it reads back and still fails (not when the
    // storage merely failed to answer).
    old.extend(
        damage
            .iter()
            .filter_map(|d| d.object.strip_prefix("index/"))
            .filter(|name| {
                storage
                    .read(&Handle::new(Kind::Index, *name))
                    .is_ok_and(|data| {
                        Id::of_stored(&data).to_hex() != *name
                            || index::decode(&data, &vault.key_material().index_key).is_err()
                    })
            })
            .map(str::to_string),
    );
    for name in old {
        if !written.contains(&name) {
            storage.delete(&Handle::new(Kind::Index, &name))?;
            report.index_deleted += 1;
        }
    }
    vault.load_index()?;
    Ok(report)
}

/// The index record of one stored pack, from its own bytes: the header's entries that
/// authenticate (all of them with `headers_only`), and how many were dropped.
fn rebuild_record(
    vault: &Vault,
    secret: &crypto::SecretKey,
    id: &Id,
    size: u64,
    headers_only: bool,
) -> Result<std::result::Result<(IndexedPack, usize), Damage>> {
    let h = Handle::new(Kind::Pack, id.to_hex());
    let dmg = |reason: String| Damage {
        object: h.path(),
        reason,
    };
    if headers_only {
        return Ok(match vault.read_pack_header(id, size)? {
            Some((wrapped, entries)) => Ok((
                IndexedPack {
                    id: *id,
                    size,
                    wrapped,
                    entries,
                },
                0,
            )),
            None => Err(dmg("header does not authenticate or decode".into())),
        });
    }
    let data = match vault.storage().read(&h) {
        Ok(d) => d,
        Err(e) if e.kind == holdfast_storage::ErrorKind::Transient => return Err(e.into()),
        Err(e) => return Ok(Err(dmg(e.to_string()))),
    };
    if Id::of_stored(&data) != *id {
        return Ok(Err(dmg("content does not match its name".into())));
    }
    let (wrapped, entries) = match pack::read_header(&data, &vault.key_material().index_key) {
        Ok(x) => x,
        Err(e) => return Ok(Err(dmg(e.to_string()))),
    };
    let Ok(dk) = crypto::unwrap(secret, &wrapped) else {
        return Ok(Err(dmg("data key does not open".into())));
    };
    let n = entries.len();
    let good: Vec<pack::PackEntry> = entries
        .into_iter()
        .filter(|e| {
            let (s, l) = (e.offset as usize, e.length as usize);
            data.get(s..s.saturating_add(l))
                .and_then(|b| pack::open_blob(&dk, e, b.to_vec()).ok())
                .is_some_and(|plain| vault.blob_id(&plain) == e.id)
        })
        .collect();
    let dropped = n - good.len();
    Ok(Ok((
        IndexedPack {
            id: *id,
            size,
            wrapped,
            entries: good,
        },
        dropped,
    )))
}
