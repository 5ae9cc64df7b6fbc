//! Garbage-collection notices and their companions (decrypted JSON, `gc::Notice`,
//! `gc::Companion`), and the pack names a notice condemns (`Id::from_hex`, as
//! `gc::condemned_packs` reads them).
//!
//! Checks: decoding never panics; what decodes re-encodes to JSON that decodes to the same
//! value, and re-encoding is stable; every pack name that parses as an id prints back as
//! the same name (ignoring case).
#![no_main]
use holdfast_engine::Id;
use holdfast_engine::internals::gc::{Companion, Notice};
use libfuzzer_sys::fuzz_target;

fn check_id(s: &str) {
    if let Some(id) = Id::from_hex(s) {
        assert!(id.to_hex().eq_ignore_ascii_case(s), "{s:?} -> {id}");
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = serde_json::from_slice::<Notice>(data) {
        let enc = serde_json::to_vec(&n).unwrap();
        let again: Notice = serde_json::from_slice(&enc).unwrap();
        assert_eq!(again, n);
        assert_eq!(serde_json::to_vec(&again).unwrap(), enc);
        n.packs.iter().for_each(|p| check_id(p));
    }
    if let Ok(c) = serde_json::from_slice::<Companion>(data) {
        let enc = serde_json::to_vec(&c).unwrap();
        let again: Companion = serde_json::from_slice(&enc).unwrap();
        assert_eq!(again, c);
        assert_eq!(serde_json::to_vec(&again).unwrap(), enc);
        check_id(&c.notice);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        check_id(s);
    }
});
