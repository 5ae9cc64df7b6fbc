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
    /// Index into [`Index::packs`].
    pub pack: u32,
    /// The blob's entry.
    pub entry: PackEntry,
}

/// Summary of a pack in the in-memory index.
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
}

/// All index objects of a vault merged in memory.
#[derive(Debug, Default)]
pub struct Index {
    /// Known packs.
    pub packs: Vec<PackRecord>,
    pack_pos: HashMap<Id, u32>,
    blobs: HashMap<Id, BlobLocation>,
    /// Names of the index objects merged so far.
    pub objects: Vec<String>,
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
            if self.pack_pos.contains_key(&p.id) {
                continue;
            }
            let pos = self.packs.len() as u32;
            self.pack_pos.insert(p.id, pos);
            self.packs.push(PackRecord {
                id: p.id,
                size: p.size,
                wrapped: p.wrapped,
                blobs: p.entries.len() as u32,
                demoted,
            });
            for e in p.entries {
                self.blobs.entry(e.id).or_insert(BlobLocation {
                    pack: pos,
                    entry: e,
                });
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

    /// Where a blob is stored.
    pub fn get(&self, id: &Id) -> Option<(&PackRecord, PackEntry)> {
        self.blobs
            .get(id)
            .map(|l| (&self.packs[l.pack as usize], l.entry))
    }

    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Whether a pack is indexed.
    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id)
    }

    /// Every blob of every pack, grouped by pack position.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
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
