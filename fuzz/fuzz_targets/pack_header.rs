//! Pack headers (decrypted plaintext) and whole-pack trailers.
#![no_main]
use holdfast_engine::crypto::SymKey;
use holdfast_engine::pack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&area, rest)) = data.split_first() {
        let _ = pack::parse_header(rest, area as usize * 4096);
    }
    let _ = pack::read_header(data, &SymKey::generate());
});
