//! Pack headers: the decrypted plaintext (`pack::parse_header`, `pack::decode_entries`) and
//! whole packs with their trailer (`pack::read_header`).
//!
//! Input: `area: u32 LE` (the blob area's length) then a header plaintext.
//! Checks: parsing never panics; accepted entries tile the blob area exactly, in order; an
//! accepted header re-encodes (`encode_entries`) to exactly the input; `decode_entries`
//! round-trips; a pack built from the header (blob area, header sealed under the index key,
//! length, magic) gives `read_header` the same answer as `parse_header`, and the raw input
//! as a pack never panics `read_header`.
#![no_main]
use std::sync::LazyLock;

use holdfast_engine::internals::crypto::SymKey;
use holdfast_engine::internals::pack;
use holdfast_engine::internals::wire::{Reader, Writer};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<SymKey> = LazyLock::new(SymKey::generate);

fuzz_target!(|data: &[u8]| {
    let _ = pack::read_header(data, &KEY);
    let mut r = Reader::new(data);
    if let Ok(es) = pack::decode_entries(&mut r) {
        let used = data.len() - r.remaining();
        let mut w = Writer::new();
        pack::encode_entries(&mut w, &es);
        assert_eq!(w.into_inner(), &data[..used]);
    }
    if data.len() < 4 {
        return;
    }
    let area = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let plain = &data[4..];
    let parsed = pack::parse_header(plain, area);
    if let Ok((wrapped, entries)) = &parsed {
        let mut next = 0u64;
        for e in entries {
            assert_eq!(u64::from(e.offset), next);
            next += u64::from(e.length);
        }
        assert_eq!(next, area as u64);
        let mut w = Writer::new();
        w.u8(1);
        w.raw(wrapped);
        pack::encode_entries(&mut w, entries);
        assert_eq!(w.into_inner(), plain);
    }
    if area <= 1 << 16 {
        let mut p = vec![0u8; area];
        let sealed = KEY.seal(pack::HEADER_AAD, plain);
        p.extend_from_slice(&sealed);
        p.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        p.extend_from_slice(pack::TRAILER_MAGIC);
        match (pack::read_header(&p, &KEY), &parsed) {
            (Ok(a), Ok(b)) => assert_eq!(&a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("read_header {:?} but parse_header {:?}", a.is_ok(), b.is_ok()),
        }
    }
});
