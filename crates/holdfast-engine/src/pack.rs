//! Blobs and packs (docs/format.md, "Packs").
//!
//! A blob is one chunk of file data or one tree, compressed (zstd, skipped when it does not
//! pay) and encrypted under its pack's one-use [`DataKey`], with the blob's offset as nonce and
//! its type and id as associated data. A pack is the concatenation of its blobs, followed by an
//! encrypted header listing them (and the pack's wrapped data key), the header's length and a
//! magic. Packs are named by the BLAKE3 hash of their bytes.

use crate::crypto::{self, CryptoError, DataKey, PublicKey, SymKey, WRAPPED_LEN};
use crate::id::Id;
use crate::wire::{Reader, WireError, Writer};

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    /// File content.
    Data = 0,
    /// A directory listing.
    Tree = 1,
}

impl BlobType {
    /// From the stored byte.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            _ => Err(WireError(format!("unknown blob type {v}"))),
        }
    }
}

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub ty: BlobType,
    /// The blob id: keyed BLAKE3 of its plaintext.
    pub id: Id,
    /// Offset of its stored bytes in the pack.
    pub offset: u32,
    /// Stored length (including the 16-byte tag).
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

/// Length of one encoded [`PackEntry`].
pub const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;
/// The last four bytes of every pack.
pub const TRAILER_MAGIC: &[u8; 4] = b"HFP1";
/// The associated data of pack headers.
pub const HEADER_AAD: &[u8] = b"holdfast v1 pack header";

fn blob_aad(ty: BlobType, id: &Id) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = ty as u8;
    a[1..].copy_from_slice(&id.0);
    a
}

thread_local! {
    /// One zstd compression context per thread and level: creating one per blob costs
    /// megabytes of allocation.
    static CCTX: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Append the stored payload of `plain` to `out`: `flag || bytes`, flag 0 = raw, 1 = zstd.
/// Compression is kept only when it saves at least 1/32 of the size.
pub fn compress_into(plain: &[u8], level: i32, out: &mut Vec<u8>) {
    let start = out.len();
    if level != 0 && plain.len() >= 64 {
        let bound = zstd::zstd_safe::compress_bound(plain.len());
        out.reserve(bound + 1 + crypto::TAG_LEN);
        out.push(1u8);
        out.resize(start + 1 + bound, 0);
        let n = CCTX.with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_none_or(|(l, _)| *l != level) {
                *c = zstd::bulk::Compressor::new(level).ok().map(|z| (level, z));
            }
            c.as_mut()
                .and_then(|(_, z)| z.compress_to_buffer(plain, &mut out[start + 1..]).ok())
        });
        if let Some(n) = n
            && n + n / 32 < plain.len()
        {
            out.truncate(start + 1 + n);
            return;
        }
        out.truncate(start);
    }
    out.reserve(plain.len() + 1 + crypto::TAG_LEN);
    out.push(0);
    out.extend_from_slice(plain);
}

/// The stored payload of `plain` as a new buffer (see [`compress_into`]). For the fuzz
/// targets and benchmarks; writers use [`compress_into`].
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn compress(plain: &[u8], level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    compress_into(plain, level, &mut out);
    out
}

/// Undo [`compress`]; `raw_len` is the expected plaintext length.
pub fn decompress(payload: &[u8], raw_len: usize) -> Result<Vec<u8>, WireError> {
    match payload.split_first() {
        Some((0, rest)) => Ok(rest.to_vec()),
        Some((1, rest)) => {
            let out = DCTX
                .with(|d| {
                    let mut d = d.borrow_mut();
                    if d.is_none() {
                        *d = zstd::bulk::Decompressor::new().ok();
                    }
                    match d.as_mut() {
                        Some(z) => z.decompress(rest, raw_len.max(1)),
                        None => zstd::bulk::decompress(rest, raw_len.max(1)),
                    }
                })
                .map_err(|e| WireError(format!("zstd: {e}")))?;
            Ok(out)
        }
        Some((f, _)) => Err(WireError(format!("unknown compression flag {f}"))),
        None => Err(WireError("empty blob payload".into())),
    }
}

/// Why a blob could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Authentication failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The payload did not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Decrypt and decompress one stored blob. The caller checks the id if it wants to.
pub fn open_blob(dk: &DataKey, e: &PackEntry, stored: Vec<u8>) -> Result<Vec<u8>, BlobError> {
    let payload = dk.decrypt(e.offset as u64, &blob_aad(e.ty, &e.id), stored)?;
    let plain = decompress(&payload, e.raw_len as usize)?;
    if plain.len() != e.raw_len as usize {
        return Err(WireError(format!("length {} instead of {}", plain.len(), e.raw_len)).into());
    }
    Ok(plain)
}

/// Accumulates blobs into one pack under one data key.
pub struct PackBuilder {
    dk: DataKey,
    wrapped: [u8; WRAPPED_LEN],
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to upload.
pub struct FinishedPack {
    /// Its name: BLAKE3 of `bytes`.
    pub id: Id,
    /// The pack as stored.
    pub bytes: Vec<u8>,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
    /// Its data key, wrapped to the vault's public key.
    pub wrapped: [u8; WRAPPED_LEN],
}

impl PackBuilder {
    /// A new pack with a fresh data key wrapped to `public`.
    pub fn new(public: &PublicKey, capacity: usize) -> Self {
        Self::with_buffer(public, Vec::with_capacity(capacity))
    }

    /// A new pack reusing `buf`'s allocation (its contents are discarded).
    pub fn with_buffer(public: &PublicKey, mut buf: Vec<u8>) -> Self {
        buf.clear();
        let dk = DataKey::generate();
        let wrapped = crypto::wrap(public, &dk);
        PackBuilder {
            dk,
            wrapped,
            buf,
            entries: Vec::new(),
        }
    }

    /// Compress, encrypt and append a blob straight into the pack buffer (no copies).
    pub fn add_plain(&mut self, ty: BlobType, id: Id, plain: &[u8], level: i32) -> u64 {
        let offset = self.buf.len();
        compress_into(plain, level, &mut self.buf);
        let tag = self
            .dk
            .encrypt_slice(offset as u64, &blob_aad(ty, &id), &mut self.buf[offset..]);
        self.buf.extend_from_slice(&tag);
        let length = self.buf.len() - offset;
        self.entries.push(PackEntry {
            ty,
            id,
            offset: offset as u32,
            length: length as u32,
            raw_len: plain.len() as u32,
        });
        length as u64
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encrypt and append a blob whose payload came from [`compress`] (fuzz targets,
    /// benchmarks and forging tests; writers use the buffer-reusing path).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn add(&mut self, ty: BlobType, id: Id, raw_len: u32, mut payload: Vec<u8>) {
        let offset = self.buf.len() as u64;
        self.dk.encrypt(offset, &blob_aad(ty, &id), &mut payload);
        self.entries.push(PackEntry {
            ty,
            id,
            offset: offset as u32,
            length: payload.len() as u32,
            raw_len,
        });
        self.buf.extend_from_slice(&payload);
    }

    /// Append the header and trailer; name the pack.
    pub fn finish(mut self, index_key: &SymKey) -> FinishedPack {
        let mut w = Writer::new();
        w.u8(1);
        w.raw(&self.wrapped);
        encode_entries(&mut w, &self.entries);
        let header = index_key.seal(HEADER_AAD, &w.into_inner());
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(TRAILER_MAGIC);
        let id = Id::of_stored(&self.buf);
        FinishedPack {
            id,
            bytes: std::mem::take(&mut self.buf),
            entries: std::mem::take(&mut self.entries),
            wrapped: self.wrapped,
        }
    }
}

/// Encode a list of entries: `count u32` then fixed-size records.
pub fn encode_entries(w: &mut Writer, entries: &[PackEntry]) {
    w.u32(entries.len() as u32);
    for e in entries {
        w.u8(e.ty as u8);
        w.raw(&e.id.0);
        w.u32(e.offset);
        w.u32(e.length);
        w.u32(e.raw_len);
    }
}

/// Decode what [`encode_entries`] wrote.
pub fn decode_entries(r: &mut Reader<'_>) -> Result<Vec<PackEntry>, WireError> {
    let n = r.count(ENTRY_LEN)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(PackEntry {
            ty: BlobType::from_u8(r.u8()?)?,
            id: Id(r.array()?),
            offset: r.u32()?,
            length: r.u32()?,
            raw_len: r.u32()?,
        });
    }
    Ok(v)
}

/// Why a pack's header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PackHeaderError {
    /// Authentication failed.
    #[error("header {0}")]
    Crypto(#[from] CryptoError),
    /// Malformed.
    #[error("header: {0}")]
    Wire(#[from] WireError),
}

/// Parse a whole pack's header: its wrapped key and entries. Entries are checked to lie
/// within the blob area, in order, without overlap.
pub fn read_header(
    pack: &[u8],
    index_key: &SymKey,
) -> Result<([u8; WRAPPED_LEN], Vec<PackEntry>), PackHeaderError> {
    if pack.len() < 8 || &pack[pack.len() - 4..] != TRAILER_MAGIC {
        return Err(WireError("missing pack trailer (truncated?)".into()).into());
    }
    let hlen = u32::from_le_bytes(
        pack[pack.len() - 8..pack.len() - 4]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    if hlen > pack.len() - 8 {
        return Err(WireError("header length exceeds pack".into()).into());
    }
    let area = pack.len() - 8 - hlen;
    let plain = index_key.open(HEADER_AAD, &pack[area..pack.len() - 8])?;
    Ok(parse_header(&plain, area)?)
}

/// Parse a decrypted pack header for a blob area of `area` bytes (exposed for fuzzing).
pub fn parse_header(
    plain: &[u8],
    area: usize,
) -> Result<([u8; WRAPPED_LEN], Vec<PackEntry>), WireError> {
    let mut r = Reader::new(plain);
    if r.u8()? != 1 {
        return Err(WireError("unknown pack header version".into()));
    }
    let wrapped = r.array()?;
    let entries = decode_entries(&mut r)?;
    r.finish()?;
    let mut next = 0u64;
    for e in &entries {
        if e.offset as u64 != next || e.offset as u64 + e.length as u64 > area as u64 {
            return Err(WireError("entries do not tile the blob area".into()));
        }
        next = e.offset as u64 + e.length as u64;
    }
    if next != area as u64 {
        return Err(WireError(
            "entries do not end where the header starts".into(),
        ));
    }
    Ok((wrapped, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    #[test]
    fn pack_round_trip() {
        let sk = SecretKey::generate();
        let ik = SymKey::generate();
        let mut pb = PackBuilder::new(&sk.public(), 0);
        let blobs: Vec<Vec<u8>> = vec![
            vec![1; 10000],
            (0..5000u32).map(|i| (i * 13) as u8).collect(),
            vec![],
        ];
        for (i, b) in blobs.iter().enumerate() {
            pb.add(
                BlobType::Data,
                Id([i as u8; 32]),
                b.len() as u32,
                compress(b, 3),
            );
        }
        let fp = pb.finish(&ik);
        assert_eq!(fp.id, Id::of_stored(&fp.bytes));
        let (wrapped, entries) = read_header(&fp.bytes, &ik).unwrap();
        assert_eq!(entries, fp.entries);
        let dk = crypto::unwrap(&sk, &wrapped).unwrap();
        for (e, b) in entries.iter().zip(&blobs) {
            let stored = fp.bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
            assert_eq!(&open_blob(&dk, e, stored.clone()).unwrap(), b);
            let mut t = stored;
            if !t.is_empty() {
                t[0] ^= 1;
                assert!(open_blob(&dk, e, t).is_err());
            }
        }
        assert!(read_header(&fp.bytes[..fp.bytes.len() - 1], &ik).is_err());
    }

    #[test]
    fn compression_is_skipped_when_useless() {
        let random: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        assert_eq!(compress(&random, 3)[0], 0);
        assert_eq!(compress(&[0u8; 4096], 3)[0], 1);
        assert_eq!(
            decompress(&compress(&[0u8; 4096], 3), 4096).unwrap(),
            vec![0u8; 4096]
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::crypto::SecretKey;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn pack_round_trip(blobs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..3000)), 0..12), level in 0i32..6) {
            let sk = SecretKey::generate();
            let ik = SymKey::generate();
            let mut pb = PackBuilder::new(&sk.public(), 0);
            for (i, (tree, b)) in blobs.iter().enumerate() {
                let ty = if *tree { BlobType::Tree } else { BlobType::Data };
                pb.add_plain(ty, Id([i as u8; 32]), b, level);
            }
            let fp = pb.finish(&ik);
            let (wrapped, entries) = read_header(&fp.bytes, &ik).unwrap();
            prop_assert_eq!(&entries, &fp.entries);
            let dk = crypto::unwrap(&sk, &wrapped).unwrap();
            for (e, (_, b)) in entries.iter().zip(&blobs) {
                let stored = fp.bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
                prop_assert_eq!(&open_blob(&dk, e, stored).unwrap(), b);
            }
        }

        #[test]
        fn header_parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..400), area in 0usize..100_000) {
            let _ = parse_header(&data, area);
            let _ = decompress(&data, area);
        }
    }
}
