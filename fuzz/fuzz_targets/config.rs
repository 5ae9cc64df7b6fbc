//! The vault config object.
#![no_main]
use holdfast_engine::config::VaultConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((c, mac)) = VaultConfig::decode(data) {
        let _ = c.mac_ok(&[0u8; 32], &mac);
    }
});
