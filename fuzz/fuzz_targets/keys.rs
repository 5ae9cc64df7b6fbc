//! Key files, key objects and key material.
#![no_main]
use holdfast_engine::keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keys::decode_key_file(data);
    let _ = keys::KeyMaterial::decode(data);
    let _ = keys::key_object_info("00", data);
    // Opening runs Argon2 only after the header parses; keep inputs small and cheap.
    if data.len() < 256 {
        let _ = keys::open_key_object(data, b"pw");
    }
});
