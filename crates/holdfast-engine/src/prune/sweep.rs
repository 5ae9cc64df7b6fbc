//! Prune's sweep step: once the sessions a notice recorded are over, rescue what points now
//! need, write a consolidated index without the condemned packs, then delete them and the
//! notice.

use super::*;

/// Delete what a notice condemns, except what points need now.
pub(super) fn sweep(
    vault: &Vault,
    p: &Pending,
    refs: &mut References,
    report: &mut PruneReport,
    log: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let storage = vault.storage();
    // Points now: every session that could use condemned packs has ended, so its point (if
    // any) is visible.
    vault.load_index()?;
    let (points, damage) = vault.list_points()?;
    if let Some(d) = damage.first() {
        return Err(Error::damaged(
            &d.object,
            format!("{}; cannot decide what is safe to delete", d.reason),
        ));
    }
    refs.add_points(vault, &points)?;

    let condemned: HashSet<Id> = p
        .notice
        .packs
        .iter()
        .filter_map(|h| Id::from_hex(h))
        .collect();
    let (objects, idx_damage, _) = vault.read_index_objects()?;
    if let Some(d) = idx_damage.first() {
        return Err(Error::damaged(
            &d.object,
            format!("{}; run `holdfast repair index` before pruning", d.reason),
        ));
    }
    let listed: HashMap<Id, u64> = vault.stored_packs()?;
    // What each condemned pack really holds: every index record of it and its own header
    // (a record may be forged; the header is what its creator wrote). A pack is deleted only
    // if every used blob among these has a location outside the condemned packs that
    // authenticates (read and checked now, unless this process wrote that pack).
    let by_pack = vault.index().entries_by_pack();
    let mut delete: Vec<(Id, u64)> = Vec::new();
    for id in &condemned {
        let Some(&size) = listed.get(id) else {
            continue; // already gone
        };
        let mut at_stake: Vec<Id> = by_pack
            .get(id)
            .map(|(_, es)| es.iter().map(|e| e.id).collect())
            .unwrap_or_default();
        at_stake.extend(
            vault
                .read_pack_header(id, size)?
                .map_or_else(Vec::new, |(_, es)| es.into_iter().map(|e| e.id).collect()),
        );
        at_stake.retain(|b| refs.blobs.contains(b));
        at_stake.sort();
        at_stake.dedup();
        let mut needed = false;
        for b in &at_stake {
            if !refs.has_safe_copy(vault, b, &condemned, &listed)? {
                needed = true;
                break;
            }
        }
        if needed {
            report.rescued_packs += 1;
        } else {
            delete.push((*id, size));
        }
    }
    let doomed: HashSet<Id> = delete.iter().map(|d| d.0).collect();

    // Consolidated index without the doomed packs, before anything is deleted.
    let touched = objects
        .iter()
        .any(|(_, ps)| ps.iter().any(|pk| doomed.contains(&pk.id)));
    if touched || objects.len() > 1 {
        // Every distinct record is kept (not one per pack): which of two disagreeing
        // records is genuine is decided by authenticating blobs, never by listing order.
        let mut keep: Vec<IndexedPack> = Vec::new();
        let mut seen: HashSet<[u8; 32]> = HashSet::new();
        for (_, ps) in &objects {
            for pk in ps {
                if !doomed.contains(&pk.id) && seen.insert(index::record_fingerprint(pk)) {
                    keep.push(pk.clone());
                }
            }
        }
        let mut written: HashSet<String> = HashSet::new();
        for chunk in keep.chunks(PACKS_PER_CONSOLIDATED_INDEX) {
            let data = index::encode(chunk, &vault.key_material().index_key);
            let name = Id::of_stored(&data).to_hex();
            crate::vault::create_idempotent(&**storage, &Handle::new(Kind::Index, &name), &data)?;
            written.insert(name);
            report.index_written += 1;
        }
        for (name, _) in &objects {
            if !written.contains(name) {
                storage.delete(&Handle::new(Kind::Index, name))?;
                report.index_deleted += 1;
            }
        }
    }
    log(&format!("deleting {} packs", delete.len()));
    let results: Vec<holdfast_storage::Result<()>> = delete
        .par_iter()
        .map(|(id, _)| storage.delete(&Handle::new(Kind::Pack, id.to_hex())))
        .collect();
    for r in results {
        r?;
    }
    report.deleted_packs += delete.len();
    report.freed_bytes += delete.iter().map(|d| d.1).sum::<u64>();
    gc::remove_notice(&**storage, &p.name)?;
    Ok(())
}
