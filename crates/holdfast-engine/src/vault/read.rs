//! Reading stored data: blobs (through the pack-key cache), pack headers, trees.

use super::*;

impl Vault {
    fn pack_key(&self, pack: &Id, wrapped: &[u8; crypto::WRAPPED_LEN]) -> Result<Arc<DataKey>> {
        // Keyed by the wrapped key too: two index records of one pack may carry different
        // wrapped keys (one of them forged), and only the right one may be cached.
        let k = (*pack, *wrapped);
        if let Some(dk) = self.pack_keys.lock().get(&k) {
            return Ok(dk.clone());
        }
        let secret = self.require_full("reading stored data")?;
        let dk = Arc::new(crypto::unwrap(secret, wrapped).map_err(|_| {
            Error::damaged(
                Handle::new(Kind::Pack, pack.to_hex()).path(),
                "wrapped key does not open",
            )
        })?);
        self.pack_keys.lock().insert(k, dk.clone());
        Ok(dk)
    }

    /// Read, decrypt, decompress and authenticate one blob (full key only).
    ///
    /// Every location the index knows is tried in turn (not condemned first): a location
    /// that is missing, damaged or forged (an index entry written by a write-only key for
    /// bytes that are not the blob) fails authentication and the next one is read. The
    /// error of the first location is returned when none authenticates.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let locations: Vec<(Id, [u8; crypto::WRAPPED_LEN], pack::PackEntry)> = {
            let idx = self.index.read();
            idx.locations(id)
                .into_iter()
                .map(|l| {
                    let p = &idx.packs[l.pack as usize];
                    (p.id, p.wrapped, l.entry)
                })
                .collect()
        };
        if locations.is_empty() {
            return Err(Error::damaged(
                format!("blob {}", id.short()),
                "not in any index (missing)",
            ));
        }
        self.require_full("reading stored data")?;
        let mut first_err = None;
        for (pack_id, wrapped, entry) in locations {
            match self.read_blob_at(id, &pack_id, &wrapped, &entry) {
                Ok(plain) => return Ok(plain),
                Err(e) if e.retryable() => return Err(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| Error::damaged(format!("blob {}", id.short()), "missing")))
    }

    /// Read and authenticate a blob at one given location (full key only): the stored bytes
    /// must decrypt under the pack key with the entry's offset, type and id, decompress to
    /// `raw_len` bytes and hash to `id`.
    pub fn read_blob_at(
        &self,
        id: &Id,
        pack_id: &Id,
        wrapped: &[u8; crypto::WRAPPED_LEN],
        entry: &pack::PackEntry,
    ) -> Result<Vec<u8>> {
        self.require_full("reading stored data")?;
        let h = Handle::new(Kind::Pack, pack_id.to_hex());
        let stored = self
            .storage
            .read_range(&h, entry.offset as u64, entry.length as u64)
            .map_err(|e| {
                if matches!(e.kind, SK::NotFound | SK::Permanent) {
                    Error::damaged(h.path(), e.message)
                } else {
                    e.into()
                }
            })?;
        let dk = self.pack_key(pack_id, wrapped)?;
        let plain = pack::open_blob(&dk, entry, stored)
            .map_err(|e| Error::damaged(format!("{} (blob {})", h.path(), id.short()), e))?;
        if entry.id != *id || self.blob_id(&plain) != *id {
            return Err(Error::damaged(
                format!("{} (blob {})", h.path(), id.short()),
                "content does not match its id",
            ));
        }
        Ok(plain)
    }

    /// Whether a blob authenticates at the given location (a damaged or forged location
    /// answers `Ok(false)`; storage that cannot be reached is an error).
    pub fn authenticates_at(&self, loc: &crate::index::BlobLocation) -> Result<bool> {
        let (pack_id, wrapped) = {
            let idx = self.index.read();
            let p = &idx.packs[loc.pack as usize];
            (p.id, p.wrapped)
        };
        match self.read_blob_at(&loc.entry.id, &pack_id, &wrapped, &loc.entry) {
            Ok(_) => Ok(true),
            Err(e) if e.retryable() => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// The packs in storage (listed now) with their sizes.
    pub fn stored_packs(&self) -> Result<HashMap<Id, u64>> {
        Ok(self
            .storage
            .list(Kind::Pack)?
            .into_iter()
            .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size)))
            .collect())
    }

    /// Read a pack's header with two range reads (trailer, then header): its wrapped key and
    /// entries. `Ok(None)` when the pack is gone or its header does not authenticate or
    /// decode (such a pack cannot serve any point).
    #[allow(clippy::type_complexity)]
    pub fn read_pack_header(
        &self,
        id: &Id,
        size: u64,
    ) -> Result<Option<([u8; crypto::WRAPPED_LEN], Vec<pack::PackEntry>)>> {
        let h = Handle::new(Kind::Pack, id.to_hex());
        let soft = |e: holdfast_storage::StorageError| -> Result<Option<_>> {
            if matches!(e.kind, SK::NotFound | SK::Permanent) {
                Ok(None)
            } else {
                Err(e.into())
            }
        };
        if size < 8 {
            return Ok(None);
        }
        let trailer = match self.storage.read_range(&h, size - 8, 8) {
            Ok(t) => t,
            Err(e) => return soft(e),
        };
        if trailer.len() != 8 || &trailer[4..] != pack::TRAILER_MAGIC {
            return Ok(None);
        }
        let hlen = u64::from(u32::from_le_bytes([
            trailer[0], trailer[1], trailer[2], trailer[3],
        ]));
        if hlen > size - 8 {
            return Ok(None);
        }
        let area = size - 8 - hlen;
        let sealed = match self.storage.read_range(&h, area, hlen) {
            Ok(b) => b,
            Err(e) => return soft(e),
        };
        let Ok(plain) = self.keys.index_key.open(pack::HEADER_AAD, &sealed) else {
            return Ok(None);
        };
        Ok(pack::parse_header(&plain, area as usize).ok())
    }

    /// Read and decode a tree.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let data = self.read_blob(id)?;
        Tree::decode(&data).map_err(|e| Error::damaged(format!("tree {}", id.short()), e))
    }

    /// Fail unless a blob type matches (helper for walkers).
    pub fn blob_type(&self, id: &Id) -> Option<BlobType> {
        self.index.read().get(id).map(|(_, e)| e.ty)
    }

    /// A blob's plaintext length, as the index records it (None: not in the index). With
    /// [`Vault::blob_id`] it lets a reader compare restored bytes with a point chunk by chunk
    /// without reading the vault again.
    pub fn blob_len(&self, id: &Id) -> Option<u64> {
        self.index.read().get(id).map(|(_, e)| u64::from(e.raw_len))
    }
}
