//! Index objects and the in-memory index (docs/format.md, "Index").
//!
//! An index object lists packs — id, size, wrapped data key — and the blobs in each, so that
//! writers can deduplicate and readers can find a blob without opening pack headers. It is
//! encrypted under the index key, which write-only keys hold too: they learn which blob ids
//! exist, never content.

use std::collections::HashMap;

use crate::crypto::{SymKey, WRAPPED_LEN};
use crate::id::Id;
use crate::pack::{self, PackEntry};
use crate::wire::{Reader, WireError, Writer};

const AAD: &[u8] = b"holdfast v1 index";

/// One pack as recorded in an index object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack's name.
    pub id: Id,
    /// Its stored size.
    pub size: u64,
    /// Its data key, wrapped to the vault's public key.
    pub wrapped: [u8; WRAPPED_LEN],
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

/// Encode and encrypt an index object.
pub fn encode(packs: &[IndexedPack], key: &SymKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1);
    w.u32(packs.len() as u32);
    for p in packs {
        w.raw(&p.id.0);
        w.u64(p.size);
        w.raw(&p.wrapped);
        pack::encode_entries(&mut w, &p.entries);
    }
    key.seal(AAD, &w.into_inner())
}

/// Why an index object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Authentication failed.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// Malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Decrypt and decode an index object.
pub fn decode(data: &[u8], key: &SymKey) -> Result<Vec<IndexedPack>, IndexError> {
    let plain = key.open(AAD, data)?;
    Ok(decode_plain(&plain)?)
}

/// Decode the plaintext of an index object (exposed for fuzzing).
pub fn decode_plain(plain: &[u8]) -> Result<Vec<IndexedPack>, WireError> {
    let mut r = Reader::new(plain);
    let v = r.u8()?;
    if v != 1 {
        return Err(WireError(format!("unknown index version {v}")));
    }
    let n = r.count(32 + 8 + WRAPPED_LEN + 4)?;
    let mut packs = Vec::with_capacity(n);
    for _ in 0..n {
        packs.push(IndexedPack {
            id: Id(r.array()?),
            size: r.u64()?,
            wrapped: r.array()?,
            entries: pack::decode_entries(&mut r)?,
        });
    }
    r.finish()?;
    Ok(packs)
}

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Index into [`Index::packs`] (a pack *record*: one pack may have several).
    pub pack: u32,
    /// The blob's entry.
    pub entry: PackEntry,
}

/// Summary of a pack record in the in-memory index.
#[derive(Debug, Clone)]
pub struct PackRecord {
    /// Pack name.
    pub id: Id,
    /// Stored size.
    pub size: u64,
    /// Wrapped data key.
    pub wrapped: [u8; WRAPPED_LEN],
    /// Number of blobs.
    pub blobs: u32,
    /// Condemned by a garbage-collection notice: its blobs are found by readers only when no
    /// other pack holds them, and writers do not deduplicate against them.
    pub demoted: bool,
    /// BLAKE3 of the record as encoded (size, wrapped key, entries): two index objects that
    /// list one pack with different records disagree, and one of them is forged.
    pub fingerprint: [u8; 32],
}

/// All index objects of a vault merged in memory.
///
/// Nothing an index object says is trusted to be unique or true: every index object can be
/// written by any holder of the index key, write-only keys included (docs/format.md 15.4).
/// So the index keeps **every** location of a blob (in load order: packs not condemned
/// first) and **every distinct record** of a pack. Readers try the locations in turn until
/// one authenticates; garbage collection authenticates a location before it relies on it.
#[derive(Debug, Default)]
pub struct Index {
    /// Known pack records: one per distinct record, so a pack id may appear more than once.
    pub packs: Vec<PackRecord>,
    pack_pos: HashMap<Id, u32>,
    blobs: HashMap<Id, BlobLocation>,
    /// Further locations of blobs (duplicates written by concurrent backups, repacked
    /// copies, disagreeing records), after the one in `blobs`.
    more: HashMap<Id, Vec<BlobLocation>>,
    /// Further records of packs, after the one in `pack_pos`.
    more_records: HashMap<Id, Vec<u32>>,
    /// Names of the index objects merged so far.
    pub objects: Vec<String>,
}

/// The fingerprint of one pack record.
pub fn record_fingerprint(p: &IndexedPack) -> [u8; 32] {
    let mut w = Writer::new();
    w.raw(&p.id.0);
    w.u64(p.size);
    w.raw(&p.wrapped);
    pack::encode_entries(&mut w, &p.entries);
    *blake3::hash(&w.into_inner()).as_bytes()
}

impl Index {
    /// Merge the packs of one index object.
    pub fn add(&mut self, packs: Vec<IndexedPack>) {
        self.add_as(packs, false)
    }

    /// Merge packs condemned by a garbage-collection notice (after all others).
    pub fn add_demoted(&mut self, packs: Vec<IndexedPack>) {
        self.add_as(packs, true)
    }

    fn add_as(&mut self, packs: Vec<IndexedPack>, demoted: bool) {
        for p in packs {
            let fingerprint = record_fingerprint(&p);
            let records = self.records_of(&p.id);
            if records
                .iter()
                .any(|&r| self.packs[r as usize].fingerprint == fingerprint)
            {
                continue; // the same record again (a consolidated index beside the original)
            }
            let first = records.is_empty();
            let pos = self.packs.len() as u32;
            if first {
                self.pack_pos.insert(p.id, pos);
            } else {
                self.more_records.entry(p.id).or_default().push(pos);
            }
            self.packs.push(PackRecord {
                id: p.id,
                size: p.size,
                wrapped: p.wrapped,
                blobs: p.entries.len() as u32,
                demoted,
                fingerprint,
            });
            for e in p.entries {
                let loc = BlobLocation {
                    pack: pos,
                    entry: e,
                };
                match self.blobs.entry(e.id) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(loc);
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {
                        self.more.entry(e.id).or_default().push(loc);
                    }
                }
            }
        }
    }

    /// Whether a blob is stored in a pack that is not condemned (what writers may
    /// deduplicate against).
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs
            .get(id)
            .is_some_and(|l| !self.packs[l.pack as usize].demoted)
    }

    /// Where a blob is stored first (the location readers try first).
    pub fn get(&self, id: &Id) -> Option<(&PackRecord, PackEntry)> {
        self.blobs
            .get(id)
            .map(|l| (&self.packs[l.pack as usize], l.entry))
    }

    /// Every location of a blob, in the order readers try them (not condemned first).
    pub fn locations(&self, id: &Id) -> Vec<BlobLocation> {
        let mut out: Vec<BlobLocation> = self.blobs.get(id).copied().into_iter().collect();
        if let Some(m) = self.more.get(id) {
            out.extend(m.iter().copied());
        }
        out
    }

    /// Whether any blob has more than one location.
    pub fn has_duplicates(&self) -> bool {
        !self.more.is_empty()
    }

    /// The positions in [`Index::packs`] of every record of a pack.
    pub fn records_of(&self, id: &Id) -> Vec<u32> {
        let mut out: Vec<u32> = self.pack_pos.get(id).copied().into_iter().collect();
        if let Some(m) = self.more_records.get(id) {
            out.extend(m.iter().copied());
        }
        out
    }

    /// Packs that two index objects record differently (one of the records is forged or
    /// damaged): pack id and number of records.
    pub fn disagreeing_packs(&self) -> impl Iterator<Item = (&Id, usize)> {
        self.more_records.iter().map(|(id, v)| (id, v.len() + 1))
    }

    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Whether a pack is indexed.
    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id)
    }

    /// The first location of every blob (in no particular order).
    pub fn blobs(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
    }

    /// Every pack with a size (from its first record) and the union of the entries of all
    /// its records, sorted by offset.
    pub fn entries_by_pack(&self) -> HashMap<Id, (u64, Vec<PackEntry>)> {
        let mut m: HashMap<Id, (u64, Vec<PackEntry>)> = HashMap::new();
        for p in &self.packs {
            m.entry(p.id).or_insert((p.size, Vec::new()));
        }
        for l in self.all_locations() {
            if let Some(e) = m.get_mut(&self.packs[l.pack as usize].id) {
                e.1.push(l.entry);
            }
        }
        for (_, es) in m.values_mut() {
            es.sort_by_key(|e| (e.offset, e.id));
            es.dedup();
        }
        m
    }

    /// Every location of every blob (in no particular order).
    pub fn all_locations(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values().chain(self.more.values().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::BlobType;
    use proptest::prelude::*;

    fn arb_pack() -> impl Strategy<Value = IndexedPack> {
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            prop::collection::vec(
                (
                    any::<bool>(),
                    any::<[u8; 32]>(),
                    any::<u32>(),
                    any::<u32>(),
                    any::<u32>(),
                ),
                0..20,
            ),
        )
            .prop_map(|(id, size, es)| IndexedPack {
                id: Id(id),
                size,
                wrapped: [7; WRAPPED_LEN],
                entries: es
                    .into_iter()
                    .map(|(t, id, offset, length, raw_len)| PackEntry {
                        ty: if t { BlobType::Tree } else { BlobType::Data },
                        id: Id(id),
                        offset,
                        length,
                        raw_len,
                    })
                    .collect(),
            })
    }

    fn entry(id: u8, offset: u32) -> PackEntry {
        PackEntry {
            ty: BlobType::Data,
            id: Id([id; 32]),
            offset,
            length: 20,
            raw_len: 4,
        }
    }

    fn pack(id: u8, entries: Vec<PackEntry>) -> IndexedPack {
        IndexedPack {
            id: Id([id; 32]),
            size: 1000,
            wrapped: [id; WRAPPED_LEN],
            entries,
        }
    }

    #[test]
    fn every_location_and_every_distinct_record_is_kept() {
        let mut idx = Index::default();
        let forged = pack(9, vec![entry(1, 0)]);
        let genuine = pack(2, vec![entry(1, 0), entry(3, 20)]);
        let forged_record_of_genuine = pack(2, vec![entry(7, 0)]);
        idx.add(vec![forged.clone(), forged_record_of_genuine]);
        idx.add(vec![genuine.clone(), genuine.clone()]);
        idx.add(vec![forged]); // the same record again: nothing new
        let locs = idx.locations(&Id([1; 32]));
        assert_eq!(locs.len(), 2, "{locs:?}");
        assert_eq!(idx.packs[locs[0].pack as usize].id, Id([9; 32]));
        assert_eq!(idx.packs[locs[1].pack as usize].id, Id([2; 32]));
        // The genuine record of pack 2 is not hidden by the forged one listed first.
        assert_eq!(idx.records_of(&Id([2; 32])).len(), 2);
        assert!(idx.contains(&Id([3; 32])));
        assert_eq!(idx.disagreeing_packs().count(), 1);
        assert_eq!(idx.all_locations().count(), 4);
    }

    #[test]
    fn demoted_locations_come_last() {
        let mut idx = Index::default();
        idx.add_demoted(vec![pack(5, vec![entry(1, 0)])]);
        assert!(!idx.contains(&Id([1; 32])));
        let mut idx = Index::default();
        idx.add(vec![pack(6, vec![entry(1, 0)])]);
        idx.add_demoted(vec![pack(5, vec![entry(1, 0)])]);
        let locs = idx.locations(&Id([1; 32]));
        assert_eq!(idx.packs[locs[0].pack as usize].id, Id([6; 32]));
        assert!(idx.contains(&Id([1; 32])));
    }

    proptest! {
        #[test]
        fn index_round_trip(packs in prop::collection::vec(arb_pack(), 0..8)) {
            let k = SymKey::generate();
            let enc = encode(&packs, &k);
            prop_assert_eq!(decode(&enc, &k).unwrap(), packs);
        }

        #[test]
        fn index_decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_plain(&data);
        }
    }
}
