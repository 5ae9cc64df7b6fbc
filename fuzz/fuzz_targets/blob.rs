//! Blob payloads as stored in packs: the compression flag and zstd frames (`pack::decompress`),
//! and the whole blob opening path (`pack::open_blob`: AES-GCM, decompression, length check).
//!
//! Input: `raw_len: u16 LE` then a stored payload (`flag || bytes`).
//! Checks: decoding never panics; a zstd payload never inflates past `raw_len`; what decodes
//! re-compresses and decompresses to the same bytes (levels 0, 1 and 3); `open_blob` on the
//! payload encrypted the way packs are accepts exactly what `decompress` accepts at the
//! recorded length, with the same plaintext.
#![no_main]
use std::sync::LazyLock;

use holdfast_engine::Id;
use holdfast_engine::internals::crypto::DataKey;
use holdfast_engine::internals::pack::{self, BlobType, PackEntry};
use libfuzzer_sys::fuzz_target;

static DK: LazyLock<DataKey> = LazyLock::new(DataKey::generate);

/// The associated data of a blob (docs/format.md, "Packs"): its type byte and id.
fn blob_aad(ty: BlobType, id: &Id) -> Vec<u8> {
    let mut a = vec![ty as u8];
    a.extend_from_slice(&id.0);
    a
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        let _ = pack::decompress(data, 0);
        return;
    }
    let raw_len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let payload = &data[2..];
    let plain = pack::decompress(payload, raw_len);
    if let Ok(p) = &plain {
        if payload.first() == Some(&1) {
            assert!(p.len() <= raw_len.max(1), "zstd inflated past its bound");
        } else {
            assert_eq!(p.as_slice(), &payload[1..]);
        }
        for level in [0, 1, 3] {
            let c = pack::compress(p, level);
            assert_eq!(&pack::decompress(&c, p.len()).expect("round trip"), p);
        }
    }

    // The same payload as a blob of a pack: encrypted under the pack's data key with the
    // blob's offset as nonce and its type and id as associated data.
    let ty = if data[0] & 1 == 0 { BlobType::Data } else { BlobType::Tree };
    let id = Id([data[1]; 32]);
    let offset = u32::from(data[0]) * 7;
    let mut stored = payload.to_vec();
    DK.encrypt(u64::from(offset), &blob_aad(ty, &id), &mut stored);
    let e = PackEntry {
        ty,
        id,
        offset,
        length: stored.len() as u32,
        raw_len: raw_len as u32,
    };
    let opened = pack::open_blob(&DK, &e, stored.clone());
    match (&plain, &opened) {
        (Ok(p), Ok(o)) => assert_eq!(p, o),
        (Ok(p), Err(_)) => assert_ne!(p.len(), raw_len, "open_blob refused a good blob"),
        (Err(_), Ok(_)) => panic!("open_blob accepted a payload decompress refuses"),
        (Err(_), Err(_)) => {}
    }
    // A blob opened under the wrong offset or type never authenticates.
    let wrong = PackEntry {
        offset: offset.wrapping_add(1),
        ..e
    };
    assert!(pack::open_blob(&DK, &wrong, stored).is_err());
});
