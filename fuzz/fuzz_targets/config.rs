//! The vault `config` object (`VaultConfig::decode`), stored in plaintext with a MAC.
//!
//! Checks: decoding never panics; what decodes passes `validate`; re-encoding reproduces
//! the stored body byte for byte, decodes to the same config, and carries a MAC that
//! `mac_ok` accepts; the stored MAC is accepted exactly when it is the right one.
#![no_main]
use holdfast_engine::config::{self, VaultConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((c, mac)) = VaultConfig::decode(data) else {
        return;
    };
    assert!(c.validate().is_ok(), "decode returned an invalid config");
    assert!(c.version == config::FORMAT_VERSION || config::MIGRATABLE_VERSIONS.contains(&c.version));
    let key = [0x42u8; 32];
    let enc = c.encode(&key);
    assert_eq!(enc.len(), data.len());
    assert_eq!(enc[..enc.len() - 32], data[..data.len() - 32], "body not reproduced");
    let (again, mac2) = VaultConfig::decode(&enc).expect("re-decode");
    assert_eq!(again, c);
    assert!(again.mac_ok(&key, &mac2));
    assert_eq!(c.mac_ok(&key, &mac), enc == data);
    assert_eq!(c.id_hex().len(), 32);
});
