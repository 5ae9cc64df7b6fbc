//! `repair index`: rebuild the index from the packs themselves.
//!
//! Every pack carries its own header (its blobs and wrapped key, encrypted under the index
//! key), so the index is redundant and can be rebuilt: packs no valid index object lists are
//! read and their headers added, packs the index names but storage no longer holds are
//! dropped, and everything is written as fresh consolidated index objects before the old
//! ones (including damaged ones) are deleted.

use std::collections::{HashMap, HashSet};

use holdfast_storage::{Handle, Kind};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::index::{self, IndexedPack};
use crate::pack;
use crate::vault::{Damage, Vault};

/// What `repair index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Packs in storage.
    pub packs: usize,
    /// Packs added from their headers.
    pub packs_added: usize,
    /// Packs the index named that storage does not hold.
    pub packs_dropped: usize,
    /// Packs whose header could not be read (left alone; `verify` reports them).
    pub unreadable: Vec<Damage>,
    /// Damaged index objects replaced.
    pub damaged_index_objects: usize,
    /// Index objects written.
    pub index_written: usize,
    /// Index objects deleted.
    pub index_deleted: usize,
}

/// Rebuild the index (full key: old index objects are deleted).
pub fn repair_index(vault: &Vault, log: &(dyn Fn(&str) + Sync)) -> Result<RepairReport> {
    vault.require_full("repair index")?;
    let storage = vault.storage();
    let mut report = RepairReport::default();
    let (objects, damage, _) = vault.read_index_objects()?;
    report.damaged_index_objects = damage.len();
    let listed: HashMap<Id, u64> = storage
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size)))
        .collect();
    report.packs = listed.len();
    let mut keep: Vec<IndexedPack> = Vec::new();
    let mut have: HashSet<Id> = HashSet::new();
    for (_, ps) in &objects {
        for p in ps {
            if listed.get(&p.id) == Some(&p.size) && have.insert(p.id) {
                keep.push(p.clone());
            }
        }
    }
    let named: HashSet<Id> = objects
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.id))
        .collect();
    report.packs_dropped = named.iter().filter(|p| !listed.contains_key(p)).count();
    let missing: Vec<(Id, u64)> = listed
        .iter()
        .filter(|(id, _)| !have.contains(id))
        .map(|(id, s)| (*id, *s))
        .collect();
    log(&format!("reading the headers of {} packs", missing.len()));
    let read: Vec<std::result::Result<IndexedPack, Damage>> = missing
        .par_iter()
        .map(|(id, size)| {
            let h = Handle::new(Kind::Pack, id.to_hex());
            let dmg = |reason: String| Damage {
                object: h.path(),
                reason,
            };
            let data = storage.read(&h).map_err(|e| dmg(e.to_string()))?;
            if Id::of_stored(&data) != *id {
                return Err(dmg("content does not match its name".into()));
            }
            let (wrapped, entries) = pack::read_header(&data, &vault.key_material().index_key)
                .map_err(|e| dmg(e.to_string()))?;
            Ok(IndexedPack {
                id: *id,
                size: *size,
                wrapped,
                entries,
            })
        })
        .collect();
    for r in read {
        match r {
            Ok(p) => {
                report.packs_added += 1;
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
