//! Tree blobs: decoding arbitrary bytes never panics, and what decodes re-encodes identically.
#![no_main]
use holdfast_engine::tree::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut t) = Tree::decode(data) {
        let enc = t.encode();
        assert_eq!(Tree::decode(&enc).expect("re-decode"), t);
    }
});
