//! Key files (`keys::decode_key_file`), key material (`KeyMaterial::decode`), key object
//! headers (`keys::key_object_info`) and key objects (`keys::open_key_object`).
//!
//! Checks: decoding never panics; decoded material re-encodes to exactly the input, and
//! survives a key file and a key object round trip (`encode_key_file`, `seal_key_object`);
//! a decoded key file re-encodes to exactly the input; a key object header survives a
//! `seal_key_object` round trip. Key objects are opened only when their Argon2 parameters
//! are cheap (at most 16 KiB, 1 pass, 2 lanes): the parser accepts up to 4 GiB by design,
//! which is a cost, not a bug, and would only make the fuzzer slow or run out of memory.
#![no_main]
use std::sync::LazyLock;

use holdfast_engine::keys::{self, KdfParams, KeyKind, KeyMaterial};
use libfuzzer_sys::fuzz_target;

const CHEAP: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

static MATERIAL: LazyLock<KeyMaterial> = LazyLock::new(|| KeyMaterial::generate([0; 16]));

fn check_material(m: &KeyMaterial) {
    let enc = m.encode();
    assert_eq!(KeyMaterial::decode(&enc).expect("re-decode").encode(), enc);
    let file = keys::encode_key_file(m);
    assert_eq!(keys::decode_key_file(&file).expect("key file").encode(), enc);
    let wo = m.write_only();
    assert_eq!(wo.kind(), KeyKind::WriteOnly);
    assert_eq!(wo.vault_id(), m.vault_id());
    assert_eq!(
        KeyMaterial::decode(&wo.encode()).expect("write-only").kind(),
        KeyKind::WriteOnly
    );
    let obj = keys::seal_key_object(m, b"pw", CHEAP, 1, "host", "label").expect("seal");
    assert_eq!(keys::open_key_object(&obj, b"pw").expect("open").encode(), enc);
    assert!(keys::open_key_object(&obj, b"wrong").is_err());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = KeyMaterial::decode(data) {
        assert_eq!(m.encode(), data);
        check_material(&m);
    }
    if let Ok(m) = keys::decode_key_file(data) {
        assert_eq!(keys::encode_key_file(&m), data);
    }
    if let Ok(info) = keys::key_object_info("00", data) {
        assert_eq!(info.id, "00");
        let k = info.kdf;
        if k.memory_kib <= 16 && k.iterations <= 1 && k.parallelism <= 2 {
            if let Ok(m) = keys::open_key_object(data, b"pw") {
                check_material(&m);
            }
        }
        if info.host.len() <= u16::MAX as usize && info.label.len() <= u16::MAX as usize {
            let obj = keys::seal_key_object(&MATERIAL, b"pw", CHEAP, info.created, &info.host, &info.label)
                .expect("seal");
            let again = keys::key_object_info("01", &obj).expect("header round trip");
            assert_eq!(
                (again.created, &again.host, &again.label, again.kdf),
                (info.created, &info.host, &info.label, CHEAP)
            );
        }
    }
});
