//! Index objects (decrypted plaintext).
#![no_main]
use holdfast_engine::index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = index::decode_plain(data);
});
